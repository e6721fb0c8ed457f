//! Resolution: raw files → [`Config`]. Merges files, checks names across them, looks users
//! and groups up in the system databases, expands `${VAR}`, and fills in defaults.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Group, User, getgrouplist};
use toml::Spanned;

use super::SupervisorConfig;
use super::error::{ConfigError, Source};
use super::expand::expand;
use super::raw::{RawFile, RawGroup, RawProgram, RawSupervisor};
use super::value::StartSecs;
use super::{BackoffConfig, Config, Credentials, GpuDevices, GpuMode, LogFileConfig, ProgramConfig, StreamConfig};
use super::{DEFAULT_HTTP, DEFAULT_SOCKET};
use super::{depends, healthcheck};

/// A table found in some file: its name, where it starts, and what it says.
struct NamedTable<'a, T> {
    source: &'a Source,
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
    let programs = collect(files, "program", |raw| &raw.program)?;
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
            let key = format!("program.{name}.depends_on");
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

    Ok(Config {
        supervisor: supervisor(supervisor_raw)?,
        programs: resolved,
        gpu: gpu_config(files)?,
        sources: files.iter().map(|(s, _)| s.path.clone()).collect(),
    })
}

/// `[supervisor]` may be written in one file only.
fn single_supervisor(files: &[(Source, RawFile)]) -> Result<Option<(&Source, &Spanned<RawSupervisor>)>, ConfigError> {
    let mut found: Option<(&Source, &Spanned<RawSupervisor>)> = None;
    for (source, raw) in files {
        if let Some(sup) = &raw.supervisor {
            if let Some((first, first_sup)) = found {
                return Err(source.error_at(
                    sup.span().start,
                    "supervisor",
                    format!(
                        "[supervisor] is already set at {}; keep it in one file",
                        first.location(first_sup.span().start)
                    ),
                ));
            }
            found = Some((source, sup));
        }
    }
    Ok(found)
}

/// `[gpu]`, written in one file at most.
fn gpu_config(files: &[(Source, RawFile)]) -> Result<super::GpuConfig, ConfigError> {
    let mut found: Option<(&Source, &Spanned<super::raw::RawGpu>)> = None;
    for (source, raw) in files {
        if let Some(gpu) = &raw.gpu {
            if let Some((first, first_gpu)) = found {
                let there = first.location(first_gpu.span().start);
                return Err(source.error_at(gpu.span().start, "gpu", format!("[gpu] is already set at {there}")));
            }
            found = Some((source, gpu));
        }
    }
    let defaults = super::GpuConfig::default();
    Ok(super::GpuConfig { interval: found.and_then(|(_, g)| g.get_ref().interval).map_or(defaults.interval, |s| s.0) })
}

/// A program's `gpu`, `gpus` and `gpu_count`.
fn gpu_request(
    found: &NamedTable<'_, RawProgram>,
    key: &impl Fn(&str) -> String,
) -> Result<(GpuMode, GpuDevices), ConfigError> {
    let raw = found.raw;
    let mode = raw.gpu.as_ref().map_or(GpuMode::None, |m| *m.get_ref());
    let devices = match (&raw.gpus, &raw.gpu_count) {
        (Some(_), Some(count)) => {
            return Err(found.error(count.span().start, &key("gpu_count"), "set gpus or gpu_count, not both"));
        }
        (Some(list), None) => {
            let mut seen = Vec::new();
            for i in list.get_ref() {
                if seen.contains(i.get_ref()) {
                    return Err(found.error(
                        i.span().start,
                        &key("gpus"),
                        format!("GPU {} is listed twice", i.get_ref()),
                    ));
                }
                seen.push(*i.get_ref());
            }
            if seen.is_empty() {
                return Err(found.error(list.span().start, &key("gpus"), "list at least one GPU index"));
            }
            GpuDevices::Indices(seen)
        }
        (None, Some(count)) if *count.get_ref() == 0 => {
            return Err(found.error(count.span().start, &key("gpu_count"), "gpu_count must be at least 1"));
        }
        (None, Some(count)) => GpuDevices::Count(*count.get_ref()),
        (None, None) => GpuDevices::All,
    };
    if mode == GpuMode::None && devices != GpuDevices::All {
        let (k, at) = match (&raw.gpus, &raw.gpu_count) {
            (Some(l), _) => ("gpus", l.span().start),
            (_, Some(c)) => ("gpu_count", c.span().start),
            _ => ("gpu", found.at),
        };
        return Err(found.error(at, &key(k), "needs gpu = \"optional\" or \"required\""));
    }
    Ok((mode, devices))
}

/// Every `[KIND.NAME]` across files; a name defined twice, or not a valid name, is an error.
fn collect<'a, T>(
    files: &'a [(Source, RawFile)],
    kind: &str,
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
            out.insert(name.clone(), NamedTable { source, name, at, raw: table.get_ref() });
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
    let key = format!("program.{}.numprocs", found.name);
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

/// What resolving one program (or one copy of it) needs besides its table.
struct Context<'a, E> {
    group: String,
    group_priority: i64,
    defaults: &'a Defaults,
    env: &'a E,
    /// The copy's number, for `%(process_num)s`, under `numprocs`.
    process_num: Option<u32>,
}

/// What `[supervisor]` sets for every program.
struct Defaults {
    user: Option<Credentials>,
    log_prefix: Option<String>,
    log_json: bool,
}

fn program<E: Fn(&str) -> Option<String>>(
    found: &NamedTable<'_, RawProgram>,
    ctx: &Context<'_, E>,
    users: &mut UserCache,
) -> Result<ProgramConfig, ConfigError> {
    let (defaults, env) = (ctx.defaults, ctx.env);
    let (group, group_priority) = (ctx.group.clone(), ctx.group_priority);
    let name = found.name;
    let raw = found.raw;
    let key = |k: &str| format!("program.{name}.{k}");
    let expand_at = |value: &str, at: usize, k: &str| {
        let k = k.strip_prefix(&format!("program.{name}.")).unwrap_or(k).to_string();
        let value = match ctx.process_num {
            Some(num) => super::expand::process_num(value, num),
            None => value.to_string(),
        };
        expand(&value, env).map_err(|e| found.error(at, &key(&k), e.to_string()))
    };

    let command_at = raw.command.span().start;
    let command = raw
        .command
        .get_ref()
        .0
        .iter()
        .map(|arg| expand_at(arg, command_at, "command"))
        .collect::<Result<Vec<_>, _>>()?;
    let directory = match &raw.directory {
        Some(d) => Some(PathBuf::from(expand_at(d.get_ref(), d.span().start, "directory")?)),
        None => None,
    };
    let mut environment = Vec::with_capacity(raw.environment.len());
    for (k, v) in &raw.environment {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(found.error(
                v.span().start,
                &key("environment"),
                "a variable name cannot be empty or hold '='",
            ));
        }
        environment.push((k.clone(), expand_at(v.get_ref(), v.span().start, "environment")?));
    }
    let user = match &raw.user {
        Some(u) => Some(users.lookup(u.get_ref()).map_err(|m| found.error(u.span().start, &key("user"), m))?),
        None => defaults.user.clone(),
    };
    let mut exitcodes = Vec::new();
    for code in raw.exitcodes.as_deref().unwrap_or(&[]) {
        let c = i32::try_from(*code.get_ref()).ok().filter(|c| (0..=255).contains(c));
        exitcodes.push(c.ok_or_else(|| found.error(code.span().start, &key("exitcodes"), "exit codes are 0 to 255"))?);
    }
    if raw.exitcodes.is_none() {
        exitcodes.push(0);
    }
    let healthcheck = match &raw.healthcheck {
        Some(h) => Some(healthcheck::resolve(found.source, &key("healthcheck"), h, &expand_at)?),
        None => None,
    };
    let (startsecs, ready_when_healthy) = match raw.startsecs.as_ref().map(|s| (*s.get_ref(), s.span().start)) {
        None => (std::time::Duration::from_secs(1), false),
        Some((StartSecs::After(d), _)) => (d, false),
        Some((StartSecs::Healthy, _)) if healthcheck.is_some() => (std::time::Duration::ZERO, true),
        Some((StartSecs::Healthy, at)) => {
            return Err(found.error(at, &key("startsecs"), "\"healthy\" needs a [healthcheck] for this program"));
        }
    };
    let backoff_defaults = BackoffConfig::default();
    let backoff = BackoffConfig {
        initial: raw.backoff_initial.map_or(backoff_defaults.initial, |s| s.0),
        max: raw.backoff_max.as_ref().map_or(backoff_defaults.max, |s| s.get_ref().0),
        reset: raw.backoff_reset.map_or(backoff_defaults.reset, |s| s.0),
    };
    let [stdout, stderr] = [
        (
            "stdout_logfile",
            &raw.stdout_logfile,
            (raw.stdout_logfile_maxbytes, raw.stdout_logfile_backups),
            raw.stdout_passthrough,
        ),
        (
            "stderr_logfile",
            &raw.stderr_logfile,
            (raw.stderr_logfile_maxbytes, raw.stderr_logfile_backups),
            raw.stderr_passthrough,
        ),
    ]
    .map(|(k, file, rotation, passthrough)| {
        stream(found.source, &key(k), file.as_ref(), rotation, passthrough, &expand_at)
    });
    let (stdout, stderr) = (stdout?, stderr?);
    let (gpu, gpu_devices) = gpu_request(found, &key)?;
    if backoff.max < backoff.initial {
        let at = raw.backoff_max.as_ref().map_or(found.at, |s| s.span().start);
        return Err(found.error(at, &key("backoff_max"), "backoff_max must not be less than backoff_initial"));
    }

    Ok(ProgramConfig {
        name: name.to_string(),
        group,
        group_priority,
        command,
        directory,
        user,
        umask: raw.umask.map(|u| u.0),
        environment,
        priority: raw.priority.unwrap_or(999),
        autostart: raw.autostart.unwrap_or(true),
        autorestart: raw.autorestart.unwrap_or_default(),
        exitcodes,
        startsecs,
        ready_when_healthy,
        startretries: raw.startretries.map_or(3, |c| c.0),
        stopsignal: raw.stopsignal.map_or(nix::sys::signal::Signal::SIGTERM, |s| s.0),
        stopwaitsecs: raw.stopwaitsecs.map_or(std::time::Duration::from_secs(10), |s| s.0),
        stopasgroup: raw.stopasgroup.unwrap_or(true),
        killasgroup: raw.killasgroup.unwrap_or(true),
        redirect_stderr: raw.redirect_stderr.unwrap_or(false),
        required: raw.required.unwrap_or(false),
        backoff,
        healthcheck,
        depends_on: Vec::new(),
        gpu,
        gpu_devices,
        gpus_held: Vec::new(),
        gpu_unavailable: None,
        stdout,
        stderr,
        log_prefix: raw.log_prefix.clone().or_else(|| defaults.log_prefix.clone()),
        log_json: defaults.log_json,
    })
}

/// A program stream's target: the passthrough by default; a file (and the passthrough only
/// when asked) when `*_logfile` names one; nothing for `"NONE"`.
fn stream(
    source: &Source,
    key: &str,
    logfile: Option<&Spanned<String>>,
    rotation: (Option<super::value::Bytes>, Option<super::raw::Counted>),
    passthrough: Option<bool>,
    expand_at: &dyn Fn(&str, usize, &str) -> Result<String, ConfigError>,
) -> Result<StreamConfig, ConfigError> {
    let Some(path) = logfile else {
        return Ok(StreamConfig { file: None, passthrough: passthrough.unwrap_or(true), to: None });
    };
    if path.get_ref() == "NONE" {
        return Ok(StreamConfig { file: None, passthrough: passthrough.unwrap_or(false), to: None });
    }
    let file = log_file(source, key, path, rotation, expand_at)?;
    if let Some(to) = super::std_stream(&file.path) {
        // `/dev/stdout` and the like: the passthrough, whole lines (see `std_stream`).
        return Ok(StreamConfig { file: None, passthrough: true, to: Some(to) });
    }
    Ok(StreamConfig { file: Some(file), passthrough: passthrough.unwrap_or(false), to: None })
}

/// A log file path (absolute, `${VAR}` expanded) with its rotation keys.
fn log_file(
    source: &Source,
    key: &str,
    path: &Spanned<String>,
    (maxbytes, backups): (Option<super::value::Bytes>, Option<super::raw::Counted>),
    expand_at: &dyn Fn(&str, usize, &str) -> Result<String, ConfigError>,
) -> Result<LogFileConfig, ConfigError> {
    let at = path.span().start;
    let expanded = PathBuf::from(expand_at(path.get_ref(), at, key)?);
    if !expanded.is_absolute() {
        return Err(source.error_at(at, key, "log file paths must be absolute (or \"NONE\")"));
    }
    // supervisord refuses a log file in a missing directory too; say so before anything runs.
    if let Some(dir) = expanded.parent().filter(|d| !d.is_dir()) {
        return Err(source.error_at(at, key, format!("directory {} does not exist", dir.display())));
    }
    Ok(LogFileConfig {
        path: expanded,
        maxbytes: maxbytes.map_or(50 << 20, |b| b.0),
        backups: backups.map_or(10, |c| c.0),
    })
}

fn supervisor(raw: Option<(&Source, &Spanned<RawSupervisor>)>) -> Result<SupervisorConfig, ConfigError> {
    let empty = RawSupervisor::default();
    let (source, sup) = match raw {
        Some((source, sup)) => (Some(source), sup.get_ref()),
        None => (None, &empty),
    };
    let error = |at: usize, key: &str, message: String| match source {
        Some(s) => s.error_at(at, key, message),
        None => ConfigError::Read { path: PathBuf::new(), source: std::io::Error::other(message) },
    };
    let http = match &sup.http {
        None => Some(DEFAULT_HTTP.parse().map_err(|_| error(0, "supervisor.http", "bad default".into()))?),
        Some(h) if h.get_ref().is_empty() => None,
        Some(h) => Some(h.get_ref().parse().map_err(|e| {
            error(
                h.span().start,
                "supervisor.http",
                format!("expected an address like \"0.0.0.0:9001\" or \"\" for none ({e})"),
            )
        })?),
    };
    let socket_group = match &sup.socket_group {
        None => None,
        Some(g) => match Group::from_name(g.get_ref()) {
            Ok(Some(group)) => Some((group.name, group.gid.as_raw())),
            _ => {
                return Err(error(
                    g.span().start,
                    "supervisor.socket_group",
                    format!("no group named {:?} in /etc/group", g.get_ref()),
                ));
            }
        },
    };
    let logfile = match (&sup.logfile, source) {
        (Some(path), Some(src)) if path.get_ref() != "NONE" => {
            let no_env = |v: &str, at: usize, k: &str| {
                expand(v, |n| std::env::var(n).ok()).map_err(|e| src.error_at(at, k, e.to_string()))
            };
            let file = log_file(src, "supervisor.logfile", path, (sup.logfile_maxbytes, sup.logfile_backups), &no_env)?;
            // `/dev/stdout` and the like (see `std_stream`): supd's own log stays on its stderr,
            // which `docker logs` shows beside stdout, rather than a second writer of fd 1.
            super::std_stream(&file.path).is_none().then_some(file)
        }
        _ => None,
    };
    let cgroup = match sup.cgroup.as_ref().map(|c| (c.get_ref().as_str(), c.span().start)) {
        None | Some(("auto", _)) => super::CgroupSetting::Auto,
        Some(("off", _)) => super::CgroupSetting::Off,
        Some((path, _)) if path.starts_with('/') => super::CgroupSetting::Path(PathBuf::from(path)),
        Some((other, at)) => {
            return Err(error(
                at,
                "supervisor.cgroup",
                format!("expected \"auto\", \"off\" or the absolute path of a cgroup2 directory, not {other:?}"),
            ));
        }
    };
    Ok(SupervisorConfig {
        cgroup,
        logfile,
        socket: PathBuf::from(sup.socket.as_deref().unwrap_or(DEFAULT_SOCKET)),
        socket_mode: sup.socket_mode.map_or(0o600, |m| m.0),
        socket_group,
        http,
        log_format: sup.log_format.unwrap_or_default(),
        log_level: sup.log_level.unwrap_or_default(),
    })
}

/// Looks users up once each.
#[derive(Default)]
struct UserCache(HashMap<String, Credentials>);

impl UserCache {
    fn lookup(&mut self, name: &str) -> Result<Credentials, String> {
        if let Some(c) = self.0.get(name) {
            return Ok(c.clone());
        }
        let user = match User::from_name(name) {
            Ok(Some(user)) => user,
            Ok(None) => return Err(format!("no user named {name:?} in /etc/passwd")),
            Err(e) => return Err(format!("cannot look up user {name:?}: {e}")),
        };
        let cname = CString::new(name).map_err(|_| format!("bad user name {name:?}"))?;
        let groups = getgrouplist(&cname, user.gid).map_err(|e| format!("cannot list the groups of {name:?}: {e}"))?;
        let creds = Credentials {
            user: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups: groups.into_iter().map(|g| g.as_raw()).collect(),
            home: user.dir,
            shell: user.shell,
        };
        self.0.insert(name.to_string(), creds.clone());
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
