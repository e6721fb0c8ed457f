//! One program's table (or one `numprocs` copy of it) → [`ProgramConfig`]: `${VAR}` and
//! `%(…)s` expanded, its user looked up, its streams, healthcheck and GPU request checked,
//! defaults filled in.

use std::path::PathBuf;

use toml::Spanned;

use super::NamedTable;
use super::users::UserCache;
use crate::config::error::{ConfigError, Source};
use crate::config::expand::expand;
use crate::config::healthcheck;
use crate::config::raw::RawProgram;
use crate::config::value::StartSecs;
use crate::config::{BackoffConfig, Credentials, GpuDevices, GpuMode, LogFileConfig, ProgramConfig, StreamConfig};

/// What resolving one program (or one copy of it) needs besides its table.
pub(super) struct Context<'a, E> {
    pub(super) group: String,
    pub(super) group_priority: i64,
    pub(super) defaults: &'a Defaults,
    pub(super) env: &'a E,
    /// The copy's number, for `%(process_num)s`, under `numprocs`.
    pub(super) process_num: Option<u32>,
}

/// What `[supervisor]` sets for every program.
pub(super) struct Defaults {
    pub(super) user: Option<Credentials>,
    pub(super) log_prefix: Option<String>,
    pub(super) log_json: bool,
}

pub(super) fn program<E: Fn(&str) -> Option<String>>(
    found: &NamedTable<'_, RawProgram>,
    ctx: &Context<'_, E>,
    users: &mut UserCache,
) -> Result<ProgramConfig, ConfigError> {
    let (defaults, env) = (ctx.defaults, ctx.env);
    let (group, group_priority) = (ctx.group.clone(), ctx.group_priority);
    let name = found.name;
    let raw = found.raw;
    let kind = found.kind;
    let key = |k: &str| format!("{kind}.{name}.{k}");
    let expand_at = |value: &str, at: usize, k: &str| {
        let k = k.strip_prefix(&format!("{kind}.{name}.")).unwrap_or(k).to_string();
        let value = match ctx.process_num {
            Some(num) => crate::config::expand::process_num(value, num),
            None => value.to_string(),
        };
        expand(&value, env).map_err(|e| found.error(at, &key(&k), e.to_string()))
    };

    let (cgroup_limits, limits_mode) = super::limits::limits(found)?;
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
    let (mut stdout, mut stderr) = (stdout?, stderr?);
    for (stream, name, enabled) in
        [(&mut stdout, "stdout", raw.stdout_events_enabled), (&mut stderr, "stderr", raw.stderr_events_enabled)]
    {
        stream.events_enabled = enabled.unwrap_or(false);
        if stream.events_enabled && stream.file.is_none() && !stream.passthrough {
            let k = key(&format!("{name}_events_enabled"));
            return Err(found.error(
                found.at,
                &k,
                format!("{name}_logfile = \"NONE\" discards the output these events carry"),
            ));
        }
    }
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
        listener: listener(found)?,
        // An event listener's stdin carries its events.
        stdin_pipe: raw.stdin_pipe.unwrap_or(false) && found.kind != "eventlistener",
        rlimits: [
            (crate::config::Rlimit::NoFile, raw.rlimit_nofile),
            (crate::config::Rlimit::NProc, raw.rlimit_nproc),
            (crate::config::Rlimit::Core, raw.rlimit_core),
            (crate::config::Rlimit::MemLock, raw.rlimit_memlock),
        ]
        .into_iter()
        .filter_map(|(r, v)| Some((r, v?.0)))
        .collect(),
        max_rss: max_rss(found, raw)?,
        cgroup_limits,
        limits_mode,
        stdout,
        stderr,
        log_prefix: raw.log_prefix.clone().or_else(|| defaults.log_prefix.clone()),
        log_json: defaults.log_json,
    })
}

/// A program stream's target: the passthrough by default; a file (and the passthrough only
/// when asked) when `*_logfile` names one; nothing for `"NONE"`.
pub(super) fn stream(
    source: &Source,
    key: &str,
    logfile: Option<&Spanned<String>>,
    rotation: (Option<crate::config::value::Bytes>, Option<crate::config::raw::Counted>),
    passthrough: Option<bool>,
    expand_at: &dyn Fn(&str, usize, &str) -> Result<String, ConfigError>,
) -> Result<StreamConfig, ConfigError> {
    let Some(path) = logfile else {
        return Ok(StreamConfig {
            file: None,
            passthrough: passthrough.unwrap_or(true),
            to: None,
            events_enabled: false,
        });
    };
    if path.get_ref() == "NONE" {
        return Ok(StreamConfig {
            file: None,
            passthrough: passthrough.unwrap_or(false),
            to: None,
            events_enabled: false,
        });
    }
    let file = log_file(source, key, path, rotation, expand_at)?;
    if let Some(to) = crate::config::std_stream(&file.path) {
        // `/dev/stdout` and the like: the passthrough, whole lines (see `std_stream`).
        return Ok(StreamConfig { file: None, passthrough: true, to: Some(to), events_enabled: false });
    }
    Ok(StreamConfig { file: Some(file), passthrough: passthrough.unwrap_or(false), to: None, events_enabled: false })
}

/// A log file path (absolute, `${VAR}` expanded) with its rotation keys.
pub(super) fn log_file(
    source: &Source,
    key: &str,
    path: &Spanned<String>,
    (maxbytes, backups): (Option<crate::config::value::Bytes>, Option<crate::config::raw::Counted>),
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

/// A program's `gpu`, `gpus` and `gpu_count`.
pub(super) fn gpu_request(
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

/// `events` and `buffer_size`: required and allowed only in an `[eventlistener.NAME]`.
fn listener(found: &NamedTable<'_, RawProgram>) -> Result<Option<crate::config::ListenerConfig>, ConfigError> {
    let (raw, kind, name) = (found.raw, found.kind, found.name);
    let key = |k: &str| format!("{kind}.{name}.{k}");
    if kind != "eventlistener" {
        if let Some(events) = &raw.events {
            return Err(found.error(events.span().start, &key("events"), "events are for an [eventlistener.NAME]"));
        }
        if let Some(size) = &raw.buffer_size {
            return Err(found.error(
                size.span().start,
                &key("buffer_size"),
                "buffer_size is for an [eventlistener.NAME]",
            ));
        }
        return Ok(None);
    }
    let Some(events) = &raw.events else {
        return Err(found.error(found.at, &key("events"), "an event listener needs events = [\"PROCESS_STATE\", …]"));
    };
    let mut names = Vec::new();
    for event in events.get_ref() {
        if !crate::config::EVENT_TYPES.contains(&event.get_ref().as_str()) {
            let known = crate::config::EVENT_TYPES.join(", ");
            return Err(found.error(
                event.span().start,
                &key("events"),
                format!("unknown event {:?}; supd sends {known}", event.get_ref()),
            ));
        }
        names.push(event.get_ref().clone());
    }
    if names.is_empty() {
        return Err(found.error(events.span().start, &key("events"), "list at least one event"));
    }
    let buffer_size = raw.buffer_size.as_ref().map_or(10, |b| b.get_ref().0 as usize).max(1);
    Ok(Some(crate::config::ListenerConfig { events: names, buffer_size }))
}

/// `max_rss`, `max_rss_for` (30 s) and `max_rss_interval` (10 s, at least 100 ms). Errors: a
/// limit of 0, an interval under 100 ms, or the other two without `max_rss`.
fn max_rss(found: &NamedTable<'_, RawProgram>, raw: &RawProgram) -> Result<Option<crate::config::MaxRss>, ConfigError> {
    let key = |k: &str| format!("{}.{}.{k}", found.kind, found.name);
    let Some(limit) = &raw.max_rss else {
        let stray = raw.max_rss_for.as_ref().map(|d| (d.span().start, "max_rss_for"));
        if let Some((at, k)) = stray.or(raw.max_rss_interval.as_ref().map(|d| (d.span().start, "max_rss_interval"))) {
            return Err(found.error(at, &key(k), "needs max_rss (the limit) beside it"));
        }
        return Ok(None);
    };
    if limit.get_ref().0 == 0 {
        return Err(found.error(limit.span().start, &key("max_rss"), "must be more than 0 bytes (\"512MB\")"));
    }
    let interval = raw.max_rss_interval.as_ref().map_or(std::time::Duration::from_secs(10), |i| i.get_ref().0);
    if interval < std::time::Duration::from_millis(100) {
        let at = raw.max_rss_interval.as_ref().map_or(found.at, |i| i.span().start);
        return Err(found.error(at, &key("max_rss_interval"), "must be at least 100ms"));
    }
    Ok(Some(crate::config::MaxRss {
        bytes: limit.get_ref().0,
        sustained: raw.max_rss_for.as_ref().map_or(std::time::Duration::from_secs(30), |d| d.get_ref().0),
        interval,
    }))
}
