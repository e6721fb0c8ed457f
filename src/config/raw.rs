//! The config as the user wrote it: serde types that check shapes and names of keys only.
//! Nothing here touches the system; [`super::resolve`] does that.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::value::{Autorestart, CommandLine, Octal, Seconds, SignalName};

/// One config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub supervisor: Option<Spanned<RawSupervisor>>,
    #[serde(default)]
    pub program: BTreeMap<Spanned<String>, RawProgram>,
    #[serde(default)]
    pub group: BTreeMap<Spanned<String>, RawGroup>,
}

/// `[supervisor]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSupervisor {
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub socket: Option<String>,
    pub socket_mode: Option<Octal>,
    pub socket_group: Option<Spanned<String>>,
    pub http: Option<Spanned<String>>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<LogLevel>,
}

/// supd's own log format (`[supervisor] log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// supd's own log level (`[supervisor] log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// `[program.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProgram {
    pub command: Spanned<CommandLine>,
    pub directory: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub umask: Option<Octal>,
    #[serde(default)]
    pub environment: BTreeMap<Spanned<String>, Spanned<String>>,
    pub priority: Option<i64>,
    pub autostart: Option<bool>,
    pub autorestart: Option<Autorestart>,
    pub exitcodes: Option<Vec<Spanned<i64>>>,
    pub startsecs: Option<Seconds>,
    pub startretries: Option<u32>,
    pub stopsignal: Option<SignalName>,
    pub stopwaitsecs: Option<Seconds>,
    pub stopasgroup: Option<bool>,
    pub killasgroup: Option<bool>,
    pub redirect_stderr: Option<bool>,
    pub required: Option<bool>,
    pub backoff_initial: Option<Seconds>,
    pub backoff_max: Option<Spanned<Seconds>>,
    pub backoff_reset: Option<Seconds>,
}

/// `[group.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub programs: Vec<Spanned<String>>,
    pub priority: Option<i64>,
}
