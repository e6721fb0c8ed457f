//! supervisord's INI config (with its `[include]` files) as supd TOML: what `supd -c
//! supervisord.conf` reads (through the usual stages after this one) and `supctl convert`
//! writes out.
//!
//! Every `[program:x]` and `[group:x]` and the keys that map are carried; `%(ENV_X)s` becomes
//! `${X}`, `%(program_name)s`, `%(group_name)s` and `%(here)s` are expanded, and
//! `%(process_num)s` is kept (supd has `numprocs`). Everything else gets a warning that says
//! what to use in supd instead. The INI is read by the rust-ini crate and the TOML written by
//! the toml crate.

mod supd_keys;

use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption, Properties};
use toml::{Table, Value};

/// The result: the TOML text and a warning for everything not carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The supd config.
    pub toml: String,
    /// One line each: `FILE [section] key: what happened; what to use instead`.
    pub warnings: Vec<String>,
}

/// Why a supervisord config could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not INI as supervisord reads it.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// `[include]` nests more than 10 deep (a loop, most likely).
    #[error("{}: [include] nests more than 10 deep", path.display())]
    TooDeep {
        /// The file that includes one more level.
        path: PathBuf,
    },
    /// The result cannot be written as TOML.
    #[error("cannot write TOML: {0}")]
    Write(#[from] toml::ser::Error),
}

/// Converts the supervisord config at `path`. Errors: a file cannot be read or parsed, or
/// `[include]` nests more than 10 deep.
pub fn convert(path: &Path) -> Result<Converted, ConvertError> {
    let mut c = Converter::default();
    c.file(path, 0)?;
    c.finish()
}

#[derive(Default)]
struct Converter {
    supervisor: Table,
    /// `[supervisord] environment`, given to every program (their own wins).
    environment: Table,
    programs: Table,
    groups: Table,
    eventlisteners: Table,
    /// `[supd]`: `[supervisor]` keys, over what supervisord's sections gave.
    supd: Table,
    gpu: Table,
    warnings: Vec<String>,
}

/// How a supervisord `[program:x]` key is carried: under the same name (supd uses
/// supervisord's), as text, a number or a boolean, or not at all.
enum Key {
    Text,
    Int,
    Bool,
    /// Not carried; the warning's advice.
    Dropped(&'static str),
}

fn program_key(key: &str) -> Option<Key> {
    use Key::*;
    Some(match key {
        "command" | "directory" | "user" | "umask" | "stopsignal" | "stdout_logfile" | "stderr_logfile" => Text,
        "stdout_logfile_maxbytes" | "stderr_logfile_maxbytes" => Text,
        "priority" | "startsecs" | "startretries" | "stopwaitsecs" | "numprocs" | "numprocs_start" => Int,
        "stdout_logfile_backups" | "stderr_logfile_backups" => Int,
        "autostart" | "stopasgroup" | "killasgroup" | "redirect_stderr" => Bool,
        "stdout_events_enabled" | "stderr_events_enabled" => Bool,
        "stdout_capture_maxbytes" | "stderr_capture_maxbytes" => Dropped("supd has no capture mode"),
        "stdout_syslog" | "stderr_syslog" => {
            Dropped("send output to supd's stdout (the default) and ship it from there")
        }
        "serverurl" => Dropped("programs reach supd through supctl and its [supervisor] socket"),
        "process_name" => Dropped("supd names numprocs copies NAME_00, NAME_01 …"),
        _ => return None,
    })
}

impl Converter {
    fn warn(&mut self, file: &Path, section: &str, message: String) {
        self.warnings.push(format!("{} [{section}] {message}", file.display()));
    }

    fn file(&mut self, path: &Path, depth: usize) -> Result<(), ConvertError> {
        if depth > 10 {
            return Err(ConvertError::TooDeep { path: path.to_path_buf() });
        }
        let text =
            std::fs::read_to_string(path).map_err(|source| ConvertError::Read { path: path.to_path_buf(), source })?;
        let options = ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            // Continuation lines are joined first (rust-ini's own joining drops keys that follow
            // an inline comment).
            enabled_indented_mutiline_value: false,
            enabled_preserve_key_leading_whitespace: false,
        };
        let ini = Ini::load_from_str_opt(&join_continuations(&text), options)
            .map_err(|e| ConvertError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        let here = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let here = here.canonicalize().unwrap_or_else(|_| here.to_path_buf());
        for (section, props) in ini.iter() {
            let Some(section) = section else { continue };
            let (kind, name) = section.split_once(':').unwrap_or((section, ""));
            match kind {
                "program" => self.program(path, &here, name, props),
                "group" => self.group(path, &here, name, props),
                "supervisord" => self.supervisord(path, &here, props),
                "supd" => {
                    for (key, value) in props.iter() {
                        let value = substitute(value, &here, "", "");
                        supd_keys::section_key(&mut self.supd, &mut self.gpu, key, &value);
                    }
                }
                "include" => {
                    let (files, unmatched) = include(&here, props);
                    for pattern in unmatched {
                        // supervisord warns of these too.
                        self.warn(path, section, format!("files: {pattern} matches no file"));
                    }
                    for file in files {
                        self.file(&file, depth + 1)?;
                    }
                }
                "eventlistener" => self.eventlistener(path, &here, name, props),
                "unix_http_server" => self.unix_http_server(path, &here, props),
                "supervisorctl" | "rpcinterface" => self.warn(
                    path,
                    section,
                    "not needed: supd serves supervisord's XML-RPC on its [supervisor] socket, so \
                     supervisorctl and XML-RPC clients work as they are"
                        .into(),
                ),
                "inet_http_server" => self.inet_http_server(path, &here, props),
                "fcgi-program" => self.warn(path, section, "not carried: supd does not run FastCGI programs".into()),
                _ => self.warn(path, section, "not carried: unknown section".into()),
            }
        }
        Ok(())
    }

    /// `[unix_http_server]`: supervisorctl's socket is supctl's. `file`, `chmod` and the group
    /// of `chown` carry over to `socket`, `socket_mode` and `socket_group`.
    fn unix_http_server(&mut self, file: &Path, here: &Path, props: &Properties) {
        for (key, value) in props.iter() {
            let value = substitute(value, here, "", "");
            match key {
                "file" => {
                    self.supervisor.insert("socket".into(), Value::String(value));
                }
                "chmod" => {
                    self.supervisor.insert("socket_mode".into(), Value::String(value));
                }
                "chown" => {
                    let (user, group) = value.split_once(':').unwrap_or((value.as_str(), ""));
                    if !group.is_empty() {
                        self.supervisor.insert("socket_group".into(), Value::String(group.into()));
                    }
                    if user != "root" {
                        self.warn(
                            file,
                            "unix_http_server",
                            format!(
                                "chown={value}: the socket stays supd's (root's); its group is socket_group, \
                                 and socket_mode = \"0660\" lets that group in"
                            ),
                        );
                    }
                }
                _ => self.warn(
                    file,
                    "unix_http_server",
                    format!("{key}: not carried; the socket's file permissions (socket_mode, socket_group) guard it"),
                ),
            }
        }
    }

    /// `[inet_http_server]`: XML-RPC over TCP is `rpc`, `rpc_username` and `rpc_password`.
    /// supd refuses XML-RPC reachable from outside without credentials (supervisord only warns),
    /// so such a listener is moved to 127.0.0.1; and where it takes port 9001, supd's own
    /// read-only `http` (`/health`, `/metrics`, 9001 by default) moves to 9002.
    fn inet_http_server(&mut self, file: &Path, here: &Path, props: &Properties) {
        let get = |k: &str| props.get(k).map(|v| substitute(v, here, "", ""));
        let Some(port) = get("port") else {
            self.warn(file, "inet_http_server", "not carried: it has no port".into());
            return;
        };
        let (host, number) = port.rsplit_once(':').unwrap_or(("", port.as_str()));
        let mut host = if host.is_empty() || host == "*" { "0.0.0.0".to_string() } else { host.to_string() };
        let (user, password) = (get("username"), get("password"));
        let loopback = host == "127.0.0.1" || host == "localhost" || host == "::1";
        if (user.is_none() || password.is_none()) && !loopback {
            self.warn(
                file,
                "inet_http_server",
                format!(
                    "port={port} without username and password: supd serves XML-RPC without credentials \
                     only on loopback, so rpc = \"127.0.0.1:{number}\"; add username and password to \
                     keep it reachable from outside"
                ),
            );
            host = "127.0.0.1".into();
        }
        let host = if host == "localhost" { "127.0.0.1".to_string() } else { host };
        self.supervisor.insert("rpc".into(), Value::String(format!("{host}:{number}")));
        if let (Some(u), Some(p)) = (user, password) {
            self.supervisor.insert("rpc_username".into(), Value::String(u));
            self.supervisor.insert("rpc_password".into(), Value::String(p));
        }
        if number == "9001" {
            self.supervisor.insert("http".into(), Value::String("0.0.0.0:9002".into()));
            self.warn(
                file,
                "inet_http_server",
                "port 9001 stays XML-RPC's; supd's read-only /health and /metrics (http) move to 0.0.0.0:9002".into(),
            );
        }
    }

    fn supervisord(&mut self, file: &Path, here: &Path, props: &Properties) {
        for (key, value) in props.iter() {
            let value = substitute(value, here, "", "");
            let carried = match key {
                // Docker's documented way to keep supervisord from writing a log file; with
                // nodaemon it still logs to stdout, as supd does to stderr by default.
                "logfile" if value == "/dev/null" => {
                    self.warn(
                        file,
                        "supervisord",
                        "logfile=/dev/null: left to supd's default, its own log on its stderr (docker logs)".into(),
                    );
                    continue;
                }
                "logfile" => Some(("logfile", Value::String(value))),
                "logfile_maxbytes" => Some(("logfile_maxbytes", Value::String(value))),
                "logfile_backups" => value.parse().ok().map(|n| ("logfile_backups", Value::Integer(n))),
                "minfds" => value.parse().ok().map(|n| ("minfds", Value::Integer(n))),
                "minprocs" => value.parse().ok().map(|n| ("minprocs", Value::Integer(n))),
                "loglevel" => Some(("log_level", Value::String(log_level(&value).into()))),
                "user" => Some(("user", Value::String(value))),
                "environment" => {
                    self.environment = environment(&value);
                    continue;
                }
                "nodaemon" | "silent" => continue, // supd always runs in the foreground
                _ => None,
            };
            match carried {
                Some((k, v)) => {
                    self.supervisor.insert(k.into(), v);
                }
                None => self.warn(file, "supervisord", format!("{key}: not carried (supd has no such setting)")),
            }
        }
        if !self.supervisor.contains_key("logfile") {
            // Rotation of a log file there is none of.
            self.supervisor.remove("logfile_maxbytes");
            self.supervisor.remove("logfile_backups");
        }
    }

    fn group(&mut self, file: &Path, here: &Path, name: &str, props: &Properties) {
        let mut table = Table::new();
        for (key, value) in props.iter() {
            let value = substitute(value, here, "", name);
            match key {
                "programs" => {
                    let list = value.split(',').map(str::trim).filter(|p| !p.is_empty());
                    table.insert("programs".into(), Value::Array(list.map(|p| Value::String(p.into())).collect()));
                }
                "priority" => match value.parse() {
                    Ok(n) => {
                        table.insert("priority".into(), Value::Integer(n));
                    }
                    Err(_) => self.warn(file, &format!("group:{name}"), format!("priority: {value:?} is not a number")),
                },
                _ => self.warn(file, &format!("group:{name}"), format!("{key}: not carried (unknown key)")),
            }
        }
        self.groups.insert(name.into(), Value::Table(table));
    }

    fn program(&mut self, file: &Path, here: &Path, name: &str, props: &Properties) {
        let section = format!("program:{name}");
        let mut table = Table::new();
        let mut environment_table = self.environment.clone();
        for (key, raw) in props.iter() {
            let value = substitute(raw, here, name, name);
            let bad = |what: &str| format!("{key}: {value:?} is not {what}; not carried");
            match (key, program_key(key)) {
                (k, _) if k.starts_with("supd_") => supd_keys::program_key(&mut table, k, &value),
                ("environment", _) => environment_table.extend(environment(&value)),
                // The names supd gives anyway: the program's own, or NAME_00 … under numprocs.
                ("process_name", _) if value == name || value == format!("{name}_%(process_num)02d") => {}
                ("autorestart", _) => {
                    let v = match value.to_ascii_lowercase().as_str() {
                        "unexpected" => Value::String("unexpected".into()),
                        other => Value::Boolean(truthy(other).unwrap_or(true)),
                    };
                    table.insert("autorestart".into(), v);
                }
                ("exitcodes", _) => {
                    let codes: Result<Vec<Value>, _> =
                        value.split(',').map(|c| c.trim().parse::<i64>().map(Value::Integer)).collect();
                    match codes {
                        Ok(codes) => {
                            table.insert("exitcodes".into(), Value::Array(codes));
                        }
                        Err(_) => self.warn(file, &section, bad("a list of exit codes")),
                    }
                }
                ("stdout_logfile" | "stderr_logfile", _) if value.eq_ignore_ascii_case("AUTO") => self.warn(
                    file,
                    &section,
                    format!("{key}=AUTO: not carried; supd's default sends output to its own stdout (docker logs)"),
                ),
                (_, Some(Key::Text)) => {
                    table.insert(key.into(), Value::String(value));
                }
                (_, Some(Key::Int)) => match value.parse() {
                    Ok(n) => {
                        table.insert(key.into(), Value::Integer(n));
                    }
                    Err(_) => self.warn(file, &section, bad("a number")),
                },
                (_, Some(Key::Bool)) => match truthy(&value) {
                    Some(b) => {
                        table.insert(key.into(), Value::Boolean(b));
                    }
                    None => self.warn(file, &section, bad("true or false")),
                },
                (_, Some(Key::Dropped(advice))) => self.warn(file, &section, format!("{key}: not carried; {advice}")),
                (_, None) => self.warn(file, &section, format!("{key}: not carried (unknown key)")),
            }
        }
        for stream in ["stdout", "stderr"] {
            self.std_stream_logfile(&mut table, stream, file, &section);
        }
        if !environment_table.is_empty() {
            table.insert("environment".into(), Value::Table(environment_table));
        }
        if !table.contains_key("command") {
            self.warn(file, &section, "no command: the program is left out".into());
            return;
        }
        // supervisord gives every program a stdin pipe (a read waits; `fg` and
        // `sendProcessStdin` write to it), where supd's default is /dev/null.
        table.entry("stdin_pipe").or_insert(Value::Boolean(true));
        self.programs.insert(name.into(), Value::Table(table));
    }

    /// `[eventlistener:x]`: a program with `events` and `buffer_size`. One on a `TICK_*` is
    /// often a health check; the note says how a healthcheck would do it faster.
    fn eventlistener(&mut self, file: &Path, here: &Path, name: &str, props: &Properties) {
        let section = format!("eventlistener:{name}");
        let mut own = Properties::new();
        let mut listener = Table::new();
        for (key, value) in props.iter() {
            match key {
                "events" => {
                    let events = value.split(',').map(|e| Value::String(e.trim().to_string())).collect();
                    listener.insert("events".into(), Value::Array(events));
                }
                "buffer_size" => match value.trim().parse::<i64>() {
                    Ok(n) => {
                        listener.insert("buffer_size".into(), Value::Integer(n));
                    }
                    Err(_) => self.warn(file, &section, format!("buffer_size: {value:?} is not a number; not carried")),
                },
                "result_handler" => self.warn(
                    file,
                    &section,
                    "result_handler: not carried; supd answers by supervisord's default handler".into(),
                ),
                _ => own.insert(key, value),
            }
        }
        self.program(file, here, name, &own);
        let Some(Value::Table(mut table)) = self.programs.remove(name) else { return };
        table.remove("stdin_pipe"); // a listener's stdin carries its events
        table.extend(listener);
        let events = props.get("events").unwrap_or("");
        if let Some(secs) = events.split(',').map(str::trim).find_map(|e| e.strip_prefix("TICK_")) {
            let command = props.get("command").unwrap_or("");
            self.warn(
                file,
                &section,
                format!(
                    "carried as [eventlistener.{name}]; it runs on TICK_{secs}, so if it is a health check, \
                     a [program.NAME.healthcheck] on the program it watches (exec = {command:?} or http = \
                     \"http://…\", interval = \"5s\", timeout = \"2s\", retries = 3) notices a failure \
                     within 15 s and restarts it under 30 s, where a TICK_{secs} check takes up to \
                     {secs} s per try"
                ),
            );
        }
        self.eventlisteners.insert(name.into(), Value::Table(table));
    }

    fn finish(mut self) -> Result<Converted, ConvertError> {
        let mut root = Table::new();
        self.supervisor.extend(self.supd);
        if !self.supervisor.is_empty() {
            root.insert("supervisor".into(), Value::Table(self.supervisor));
        }
        if !self.gpu.is_empty() {
            root.insert("gpu".into(), Value::Table(self.gpu));
        }
        if !self.groups.is_empty() {
            root.insert("group".into(), Value::Table(self.groups));
        }
        root.insert("program".into(), Value::Table(self.programs));
        if !self.eventlisteners.is_empty() {
            root.insert("eventlistener".into(), Value::Table(self.eventlisteners));
        }
        let body = toml::to_string(&root)?;
        let toml =
            format!("# Converted from supervisord.conf by `supctl convert`; check it with `supd check`.\n\n{body}");
        Ok(Converted { toml, warnings: self.warnings })
    }
}

/// supervisord's `%(…)s` expansions, as supd understands them: `%(ENV_X)s` → `${X}`,
/// `%(program_name)s`, `%(group_name)s` and `%(here)s` expanded, `%(process_num)…` kept, `%%`
/// → `%`. A `${` already there is escaped as `$${`, since supd would expand it.
fn substitute(value: &str, here: &Path, program: &str, group: &str) -> String {
    let value = value.replace("${", "$${");
    crate::config::expand::percent_fields(&value, true, |name, _| match name {
        "program_name" => Some(program.to_string()),
        "group_name" => Some(group.to_string()),
        "here" => Some(here.display().to_string()),
        n => n.strip_prefix("ENV_").map(|var| format!("${{{var}}}")), // process_num and the rest stay
    })
}

/// Joins ConfigParser's continuation lines (indented, after a `key = value` line) onto that
/// line, separated by a space, as supervisord's parsers read the newline.
fn join_continuations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_value = false;
    for line in text.lines() {
        let trimmed = line.trim();
        let continues = in_value && line.starts_with([' ', '\t']) && !trimmed.is_empty();
        if continues && !trimmed.starts_with([';', '#']) {
            out.push(' ');
            out.push_str(trimmed);
            continue;
        }
        if !continues {
            in_value = !trimmed.is_empty() && !trimmed.starts_with(['[', ';', '#']);
            out.push('\n');
            out.push_str(line);
        }
    }
    out
}

/// supervisord's `environment`: `KEY="value",KEY2=value2`, commas inside quotes kept.
fn environment(value: &str) -> Table {
    let mut out = Table::new();
    let mut pairs = Vec::new();
    let (mut current, mut quote) = (String::new(), None);
    for ch in value.chars() {
        match (ch, quote) {
            ('"' | '\'', None) => quote = Some(ch),
            (c, Some(q)) if c == q => quote = None,
            (',', None) => pairs.push(std::mem::take(&mut current)),
            (c, _) => current.push(c),
        }
    }
    pairs.push(current);
    for pair in pairs {
        if let Some((k, v)) = pair.split_once('=') {
            out.insert(k.trim().into(), Value::String(v.trim().into()));
        }
    }
    out
}

/// The files `[include] files` names, relative to the including file, and the patterns that
/// match none.
fn include(here: &Path, props: &Properties) -> (Vec<PathBuf>, Vec<String>) {
    let (mut out, mut unmatched) = (Vec::new(), Vec::new());
    for pattern in props.get("files").unwrap_or("").split_whitespace() {
        let full = here.join(substitute(pattern, here, "", ""));
        let mut matched: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
            .map(|paths| paths.filter_map(Result::ok).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        matched.sort();
        if matched.is_empty() {
            unmatched.push(pattern.to_string());
        }
        out.extend(matched);
    }
    (out, unmatched)
}

/// supervisord's boolean spellings.
impl Converter {
    /// `stdout_logfile=/dev/stdout` and the like (see [`crate::config::std_stream`]): supd
    /// passes such a stream through to its own stdout or stderr, whole lines, so the key goes
    /// (for the stream's own) or stays without its rotation keys (across), with a note.
    fn std_stream_logfile(&mut self, table: &mut Table, stream: &str, file: &Path, section: &str) {
        let key = format!("{stream}_logfile");
        let Some(Value::String(path)) = table.get(&key) else { return };
        let Some(to) = crate::config::std_stream(Path::new(path)) else { return };
        let path = path.clone();
        for rotation in ["maxbytes", "backups"] {
            table.remove(&format!("{key}_{rotation}"));
        }
        let to = match to {
            crate::config::StdStream::Stdout => "stdout",
            crate::config::StdStream::Stderr => "stderr",
        };
        let note = if to == stream {
            table.remove(&key);
            format!("{key}={path}: left to supd's default, prefixed whole lines on its {to} (docker logs)")
        } else {
            format!("{key}={path}: supd passes these lines through to its {to}, prefixed and whole")
        };
        self.warn(file, section, note);
    }
}

fn truthy(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// supervisord's log levels as supd's.
fn log_level(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "critical" | "error" => "error",
        "warn" => "warn",
        "debug" => "debug",
        "trace" | "blather" => "trace",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions_follow_supervisord() {
        let here = Path::new("/etc/sv");
        assert_eq!(
            substitute("%(here)s/%(program_name)s --x %(ENV_PORT)s %(process_num)02d 100%% ${X}", here, "api", "g"),
            "/etc/sv/api --x ${PORT} %(process_num)02d 100% $${X}"
        );
        assert_eq!(substitute("50% off %(", here, "a", "a"), "50% off %(");
    }

    #[test]
    fn continuation_lines_join_their_key() {
        let joined = join_continuations("[program:a]\nenvironment=\n    A=\"1\",\n    B=\"2\"\ncommand=x ; note\n");
        assert_eq!(joined, "\n[program:a]\nenvironment= A=\"1\", B=\"2\"\ncommand=x ; note");
    }

    #[test]
    fn environment_pairs_keep_quoted_commas() {
        let env = environment(r#"A="1,2",B=x, C='y z'"#);
        assert_eq!(env.get("A").and_then(Value::as_str), Some("1,2"));
        assert_eq!(env.get("B").and_then(Value::as_str), Some("x"));
        assert_eq!(env.get("C").and_then(Value::as_str), Some("y z"));
    }
}
