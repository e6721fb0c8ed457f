//! Resolution: raw files → [`Config`]. Merges files, checks names across them, looks users
//! and groups up in the system databases, expands `${VAR}`, and fills in defaults.

use std::collections::{BTreeMap, HashMap};

use toml::Spanned;

use super::depends;
use super::error::{ConfigError, Source};
use super::raw::{RawFile, RawGroup, RawProgram};
use super::{Config, ProgramConfig};

mod limits;
mod program;
mod supervisor;
mod users;

use program::{Context, Defaults, program};
use supervisor::{gpu_config, single_supervisor, supervisor};
use users::UserCache;

/// A table found in some file: its name, where it starts, and what it says.
struct NamedTable<'a, T> {
    source: &'a Source,
    /// `program`, `eventlistener` or `group`.
    kind: &'static str,
    name: &'a str,
    /// Byte offset of the table (its `[header]`, or its inline `{`).
    at: usize,
    raw: &'a T,
}

impl<T> NamedTable<'_, T> {
    fn error(&self, at: usize, key: &str, message: impl Into<String>) -> ConfigError {
        self.source.error_at(at, key, message)
    }
}

/// Merges and resolves parsed files. `env` looks up `${VAR}` names.
pub(super) fn resolve(
    files: &[(Source, RawFile)],
    env: impl Fn(&str) -> Option<String>,
    machine: &super::Machine,
) -> Result<Config, ConfigError> {
    let supervisor_raw = single_supervisor(files)?;
    let mut programs = collect(files, "program", |raw| &raw.program)?;
    // Event listeners are programs with a protocol on their stdin and stdout; they share the
    // programs' names.
    for (name, listener) in collect(files, "eventlistener", |raw| &raw.eventlistener)? {
        if let Some(program) = programs.get(&name) {
            let there = program.source.location(program.at);
            let why = format!("{name:?} is already a program at {there}");
            return Err(listener.error(listener.at, &format!("eventlistener.{name}"), why));
        }
        programs.insert(name, listener);
    }
    let groups = collect(files, "group", |raw| &raw.group)?;
    let membership = membership(&groups, &programs)?;

    let mut users = UserCache::default();
    let default_user = match supervisor_raw {
        Some((source, sup)) => match &sup.get_ref().user {
            Some(name) => Some(
                users.lookup(name.get_ref()).map_err(|m| source.error_at(name.span().start, "supervisor.user", m))?,
            ),
            None => None,
        },
        None => None,
    };
    let defaults = Defaults {
        user: default_user,
        log_prefix: supervisor_raw.and_then(|(_, s)| s.get_ref().log_prefix.clone()),
        log_json: supervisor_raw.and_then(|(_, s)| s.get_ref().log_format) == Some(super::LogFormat::Json),
    };

    let mut resolved = Vec::with_capacity(programs.len());
    let mut copies = BTreeMap::new();
    let mut written = BTreeMap::new();
    for (name, found) in &programs {
        let (group, group_priority) = match membership.get(name.as_str()) {
            Some((group, priority)) => (group.to_string(), *priority),
            None => (name.clone(), found.raw.priority.unwrap_or(999)),
        };
        let ctx = Context { group, group_priority, defaults: &defaults, env: &env, process_num: None };
        match numprocs(found)? {
            None => resolved.push(program(found, &ctx, &mut users)?),
            Some(nums) => {
                // supervisord: the copies form a group named after the program.
                // `numprocs = 1` keeps the program's own name, as supervisord's default
                // process_name does.
                let single = nums.len() == 1;
                let mut each = Vec::with_capacity(nums.len());
                for num in nums {
                    let copy_ctx = Context { group: ctx.group.clone(), process_num: Some(num), ..ctx };
                    let mut copy = program(found, &copy_ctx, &mut users)?;
                    copy.name = if single { name.clone() } else { format!("{name}_{num:02}") };
                    each.push(copy);
                }
                // The program itself stands for its copies while dependencies are checked.
                resolved.extend(each.first().cloned().map(|first| ProgramConfig { name: name.clone(), ..first }));
                copies.insert(name.clone(), each);
            }
        }
        if let Some(deps) = &found.raw.depends_on {
            let source = found.source;
            let key = format!("{}.{name}.depends_on", found.kind);
            let error = Box::new(move |at, message: String| source.error_at(at, &key, message));
            written.insert(name.clone(), depends::Written { error, deps: depends::entries(deps) });
        }
    }
    depends::resolve(&mut resolved, &written)?;
    let mut resolved = expand_copies(resolved, copies);
    resolved.sort_by(|a, b| {
        (a.group_priority, &a.group, a.priority, &a.name).cmp(&(b.group_priority, &b.group, b.priority, &b.name))
    });
    super::gpu::apply(&mut resolved, machine).map_err(ConfigError::Gpus)?;
    let supervisor_config = supervisor(supervisor_raw)?;

    Ok(Config {
        supervisor: supervisor_config,
        programs: resolved,
        gpu: gpu_config(files)?,
        sources: files.iter().map(|(s, _)| s.path.clone()).collect(),
        notes: Vec::new(),
    })
}

/// Every `[KIND.NAME]` across files; a name defined twice, or not a valid name, is an error.
fn collect<'a, T>(
    files: &'a [(Source, RawFile)],
    kind: &'static str,
    tables: impl Fn(&'a RawFile) -> &'a BTreeMap<String, Spanned<T>>,
) -> Result<BTreeMap<String, NamedTable<'a, T>>, ConfigError> {
    let mut out: BTreeMap<String, NamedTable<'a, T>> = BTreeMap::new();
    for (source, raw) in files {
        for (name, table) in tables(raw) {
            let at = source.name_at(table.span().start, name);
            let key = format!("{kind}.{name}");
            if !valid_name(name) {
                return Err(source.error_at(
                    at,
                    key,
                    format!("{kind} names may use letters, digits, '_', '-' and '.'"),
                ));
            }
            if let Some(first) = out.get(name) {
                let there = first.source.location(first.at);
                return Err(source.error_at(at, key, format!("{kind} {name:?} is already defined at {there}")));
            }
            out.insert(name.clone(), NamedTable { source, kind, name, at, raw: table.get_ref() });
        }
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// program name → (group name, group priority). Each listed program must exist and belong to
/// one group only.
fn membership<'a>(
    groups: &'a BTreeMap<String, NamedTable<'a, RawGroup>>,
    programs: &BTreeMap<String, NamedTable<'_, RawProgram>>,
) -> Result<HashMap<&'a str, (&'a str, i64)>, ConfigError> {
    let mut out: HashMap<&str, (&str, i64)> = HashMap::new();
    for (group, found) in groups {
        let key = format!("group.{group}.programs");
        for member in &found.raw.programs {
            let at = member.span().start;
            if !programs.contains_key(member.get_ref()) {
                return Err(found.error(at, &key, format!("no program named {:?} is defined", member.get_ref())));
            }
            let priority = found.raw.priority.unwrap_or(999);
            if let Some((other, _)) = out.insert(member.get_ref(), (group, priority)) {
                return Err(found.error(
                    at,
                    &key,
                    format!("program {:?} is already in group {other:?}", member.get_ref()),
                ));
            }
        }
    }
    Ok(out)
}

/// `numprocs` (supervisord): the process numbers of the copies, `numprocs_start` and up;
/// `None` for a program without it.
fn numprocs(found: &NamedTable<'_, RawProgram>) -> Result<Option<std::ops::Range<u32>>, ConfigError> {
    let Some(n) = &found.raw.numprocs else { return Ok(None) };
    let start = found.raw.numprocs_start.map_or(0, |c| c.0);
    let key = format!("{}.{}.numprocs", found.kind, found.name);
    match start.checked_add(*n.get_ref()) {
        _ if *n.get_ref() == 0 => Err(found.error(n.span().start, &key, "numprocs must be at least 1")),
        Some(end) if *n.get_ref() <= 1000 => Ok(Some(start..end)),
        _ => Err(found.error(n.span().start, &key, "numprocs is at most 1000")),
    }
}

/// Replaces each `numprocs` program by its copies; a dependency on it becomes a dependency on
/// every copy.
fn expand_copies(programs: Vec<ProgramConfig>, mut copies: BTreeMap<String, Vec<ProgramConfig>>) -> Vec<ProgramConfig> {
    let names: BTreeMap<String, Vec<String>> =
        copies.iter().map(|(name, each)| (name.clone(), each.iter().map(|c| c.name.clone()).collect())).collect();
    let mut out = Vec::with_capacity(programs.len());
    for mut p in programs {
        let deps = std::mem::take(&mut p.depends_on);
        p.depends_on = deps
            .into_iter()
            .flat_map(|d| match names.get(&d.program) {
                Some(each) => {
                    each.iter().map(|c| super::Dependency { program: c.clone(), condition: d.condition }).collect()
                }
                None => vec![d],
            })
            .collect();
        match copies.remove(&p.name) {
            Some(each) => out.extend(each.into_iter().map(|c| ProgramConfig { depends_on: p.depends_on.clone(), ..c })),
            None => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{DEFAULT_SOCKET, GpuDevices, GpuMode};

    fn source(name: &str, text: &str) -> (Source, RawFile) {
        let source = Source { path: PathBuf::from(name), text: text.to_string() };
        let raw = source.parse().unwrap_or_else(|e| panic!("{e}"));
        (source, raw)
    }

    fn resolve_texts(texts: &[(&str, &str)]) -> Result<Config, String> {
        let files: Vec<_> = texts.iter().map(|(n, t)| source(n, t)).collect();
        resolve(&files, |n| (n == "PORT").then(|| "3002".to_string()), &super::super::Machine::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn max_rss_takes_bytes_and_durations_and_refuses_what_cannot_work() {
        let cfg =
            resolve_texts(&[("a.toml", "[program.w]\ncommand = \"x\"\nmax_rss = \"512MB\"\nmax_rss_for = \"1m\"\n")]);
        let limit = cfg.unwrap().programs[0].max_rss.unwrap();
        assert_eq!((limit.bytes, limit.sustained.as_secs(), limit.interval.as_secs()), (512 << 20, 60, 10));
        for (text, at) in [
            ("max_rss_for = 5\n", "a.toml:3:15: program.w.max_rss_for: needs max_rss"),
            ("max_rss = 0\n", "a.toml:3:11: program.w.max_rss: must be more than 0"),
            (
                "max_rss = \"1GB\"\nmax_rss_interval = \"10ms\"\n",
                "a.toml:4:20: program.w.max_rss_interval: must be at least 100ms",
            ),
        ] {
            let err = resolve_texts(&[("a.toml", &format!("[program.w]\ncommand = \"x\"\n{text}"))]).unwrap_err();
            assert!(err.starts_with(at), "{err}");
        }
    }

    #[test]
    fn numprocs_makes_numbered_copies_in_a_group_and_dependents_wait_for_each() {
        let cfg = resolve_texts(&[(
            "a.toml",
            "[program.worker]\ncommand = \"serve --port 80%(process_num)02d\"\nnumprocs = 2\nnumprocs_start = 1\n\
             environment = { N = \"%(process_num)s\" }\n[program.web]\ncommand = \"web\"\ndepends_on = [\"worker\"]\n",
        )])
        .unwrap();
        let names: Vec<_> = cfg.programs.iter().map(|p| p.display_name()).collect();
        assert_eq!(names, ["web", "worker:worker_01", "worker:worker_02"]);
        assert_eq!(cfg.programs[2].command, ["serve", "--port", "8002"]);
        assert_eq!(cfg.programs[2].environment, [("N".to_string(), "2".to_string())]);
        let deps: Vec<_> = cfg.programs[0].depends_on.iter().map(|d| d.program.as_str()).collect();
        assert_eq!(deps, ["worker_01", "worker_02"]);
        let err = resolve_texts(&[("a.toml", "[program.w]\ncommand = \"x\"\nnumprocs = 0\n")]).unwrap_err();
        assert!(err.contains("a.toml:3:12") && err.contains("program.w.numprocs"), "{err}");
    }

    #[test]
    fn std_streams_as_log_files_mean_the_passthrough() {
        let cfg = resolve_texts(&[(
            "a.toml",
            "[supervisor]\nlogfile = \"/dev/stdout\"\n[program.a]\ncommand = \"x\"\n\
             stdout_logfile = \"/dev/stderr\"\nstderr_logfile = \"/proc/self/fd/1\"\n",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.supervisor.logfile, None, "supd's own log stays on stderr");
        let (out, err) = (&cfg.programs[0].stdout, &cfg.programs[0].stderr);
        assert_eq!((out.file.is_none(), out.passthrough, out.to), (true, true, Some(super::super::StdStream::Stderr)));
        assert_eq!((err.file.is_none(), err.passthrough, err.to), (true, true, Some(super::super::StdStream::Stdout)));
    }

    #[test]
    fn defaults_follow_supervisord_and_order_is_by_priority() {
        let cfg = resolve_texts(&[(
            "a.toml",
            "[program.b]\ncommand = \"sleep 1\"\n[program.a]\ncommand = \"sleep 1\"\npriority = 5\n",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = cfg.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let b = &cfg.programs[1];
        assert_eq!((b.priority, b.autostart, b.startretries, b.exitcodes.clone()), (999, true, 3, vec![0]));
        assert_eq!(b.startsecs, std::time::Duration::from_secs(1));
        assert!(b.stopasgroup && b.killasgroup && !b.required);
        assert_eq!(cfg.supervisor.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn groups_set_group_name_and_priority() {
        let cfg = resolve_texts(&[(
            "a.toml",
            "[group.core]\nprograms = [\"x\"]\npriority = 1\n[program.x]\ncommand = \"true\"\n[program.y]\ncommand = \"true\"\npriority = 2\n",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.programs[0].display_name(), "core:x");
        assert_eq!(cfg.programs[1].display_name(), "y");
    }

    #[test]
    fn env_expands_per_argument() {
        let cfg = resolve_texts(&[("a.toml", "[program.x]\ncommand = \"serve --port ${PORT} ${HOST:-0.0.0.0}\"\n")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.programs[0].command, ["serve", "--port", "3002", "0.0.0.0"]);
    }

    #[test]
    fn output_events_need_the_output() {
        let ok = "[program.x]\ncommand = \"x\"\nstderr_events_enabled = true\n";
        let cfg = resolve_texts(&[("a.toml", ok)]).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.programs[0].stderr.events_enabled && !cfg.programs[0].stdout.events_enabled);
        let none = "[program.x]\ncommand = \"x\"\nstdout_logfile = \"NONE\"\nstdout_events_enabled = true\n";
        let err = resolve_texts(&[("a.toml", none)]).unwrap_err();
        assert!(err.contains("program.x.stdout_events_enabled: stdout_logfile = \"NONE\" discards"), "{err}");
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let err = resolve_texts(&[("a.toml", "[group.g]\nprograms = [\"nope\"]\n")]).unwrap_err();
        assert_eq!(err, "a.toml:2:13: group.g.programs: no program named \"nope\" is defined");
        let err = resolve_texts(&[
            ("a.toml", "[program.x]\ncommand = \"x\"\n"),
            ("b.toml", "\n[program.x]\ncommand = \"y\"\n"),
        ])
        .unwrap_err();
        assert_eq!(err, "b.toml:2:10: program.x: program \"x\" is already defined at a.toml:1:10");
        let err =
            resolve_texts(&[("a.toml", "[program.x]\ncommand = \"x\"\nuser = \"no-such-user-here\"\n")]).unwrap_err();
        assert!(err.starts_with("a.toml:3:8: program.x.user: no user named"), "{err}");
        let err = resolve_texts(&[("a.toml", "[program.x]\ncommand = \"x ${UNSET_VAR}\"\n")]).unwrap_err();
        assert!(err.contains("program.x.command: environment variable UNSET_VAR is not set"), "{err}");
        let err = resolve_texts(&[("a.toml", "[program.\"a b\"]\ncommand = \"x\"\n")]).unwrap_err();
        assert!(err.contains("program names may use"), "{err}");
    }

    #[test]
    fn root_resolves_with_groups_and_home() {
        let cfg = resolve_texts(&[("a.toml", "[supervisor]\nuser = \"root\"\n[program.x]\ncommand = \"x\"\n")])
            .unwrap_or_else(|e| panic!("{e}"));
        let user = cfg.programs[0].user.clone().unwrap_or_else(|| panic!("no user"));
        assert_eq!((user.uid, user.gid, user.home), (0, 0, PathBuf::from("/root")));
        assert!(user.groups.contains(&0));
    }

    #[test]
    fn gpu_keys_resolve_and_conflicts_are_errors_with_their_place() {
        let c = resolve_texts(&[(
            "a.toml",
            "[gpu]\ninterval = \"1s\"\n[program.w]\ncommand = \"w\"\ngpu = \"required\"\ngpu_count = 2\n",
        )])
        .unwrap();
        assert_eq!(
            (c.gpu.interval.as_secs(), c.programs[0].gpu, &c.programs[0].gpu_devices),
            (1, GpuMode::Required, &GpuDevices::Count(2))
        );
        let both = "[program.w]\ncommand = \"w\"\ngpu = \"optional\"\ngpus = [0]\ngpu_count = 1\n";
        let err = resolve_texts(&[("a.toml", both)]).unwrap_err();
        assert!(err.contains("a.toml:5:13: program.w.gpu_count: set gpus or gpu_count, not both"), "{err}");
        let no_mode = "[program.w]\ncommand = \"w\"\ngpus = [0, 0]\n";
        let err = resolve_texts(&[("a.toml", no_mode)]).unwrap_err();
        assert!(err.contains("a.toml:3:12: program.w.gpus: GPU 0 is listed twice"), "{err}");
        let err = resolve_texts(&[("a.toml", "[program.w]\ncommand = \"w\"\ngpus = [1]\n")]).unwrap_err();
        assert!(err.contains("program.w.gpus: needs gpu = \"optional\" or \"required\""), "{err}");
    }
}
