//! The config as the user wrote it: serde types that check shapes and names of keys only.
//! Nothing here touches the system; [`super::resolve`] does that.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::value::{
    Autorestart, Bytes, CommandLine, ConfigDuration, Count, Limit, MAX_COUNT, Octal, SignalName, StartSecs,
};

/// A count bounded by [`MAX_COUNT`].
pub type Counted = Count<MAX_COUNT>;

/// One config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub supervisor: Option<Spanned<RawSupervisor>>,
    #[serde(default)]
    pub program: BTreeMap<String, Spanned<RawProgram>>,
    #[serde(default)]
    pub group: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(default)]
    pub eventlistener: BTreeMap<String, Spanned<RawProgram>>,
    pub gpu: Option<Spanned<RawGpu>>,
}

/// `[gpu]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGpu {
    pub interval: Option<ConfigDuration>,
}

/// A program's use of NVIDIA GPUs (`gpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// No GPU: supd sets none of the GPU variables.
    #[default]
    None,
    /// Its GPUs when there are some; `USE_GPU=false` and the CPU otherwise.
    Optional,
    /// Its GPUs, or FATAL with the reason when there are none.
    Required,
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
    pub rpc: Option<Spanned<String>>,
    pub http_tails: Option<bool>,
    pub rpc_username: Option<Spanned<String>>,
    pub rpc_password: Option<Spanned<String>>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<LogLevel>,
    pub log_prefix: Option<String>,
    pub logfile: Option<Spanned<String>>,
    pub logfile_maxbytes: Option<Bytes>,
    pub logfile_backups: Option<Counted>,
    pub cgroup: Option<Spanned<String>>,
    pub minfds: Option<Limit>,
    pub minprocs: Option<Limit>,
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
    pub environment: BTreeMap<String, Spanned<String>>,
    pub priority: Option<i64>,
    pub autostart: Option<bool>,
    pub autorestart: Option<Autorestart>,
    pub exitcodes: Option<Vec<Spanned<i64>>>,
    pub startsecs: Option<Spanned<StartSecs>>,
    pub startretries: Option<Counted>,
    pub stopsignal: Option<SignalName>,
    pub stopwaitsecs: Option<ConfigDuration>,
    pub stopasgroup: Option<bool>,
    pub killasgroup: Option<bool>,
    pub redirect_stderr: Option<bool>,
    pub required: Option<bool>,
    pub backoff_initial: Option<ConfigDuration>,
    pub backoff_max: Option<Spanned<ConfigDuration>>,
    pub backoff_reset: Option<ConfigDuration>,
    pub healthcheck: Option<Spanned<RawHealthcheck>>,
    pub depends_on: Option<RawDependsOn>,
    pub stdout_logfile: Option<Spanned<String>>,
    pub stdout_logfile_maxbytes: Option<Bytes>,
    pub stdout_logfile_backups: Option<Counted>,
    pub stdout_passthrough: Option<bool>,
    pub stderr_logfile: Option<Spanned<String>>,
    pub stderr_logfile_maxbytes: Option<Bytes>,
    pub stderr_logfile_backups: Option<Counted>,
    pub stderr_passthrough: Option<bool>,
    pub stdin_pipe: Option<bool>,
    pub rlimit_nofile: Option<Limit>,
    pub rlimit_nproc: Option<Limit>,
    pub rlimit_core: Option<Limit>,
    pub rlimit_memlock: Option<Limit>,
    pub max_rss: Option<Spanned<Bytes>>,
    pub max_rss_for: Option<Spanned<ConfigDuration>>,
    pub max_rss_interval: Option<Spanned<ConfigDuration>>,
    pub memory_max: Option<Spanned<Bytes>>,
    pub memory_high: Option<Spanned<Bytes>>,
    pub memory_swap_max: Option<Spanned<Bytes>>,
    pub cpu_max: Option<Spanned<String>>,
    pub cpu_weight: Option<Spanned<u32>>,
    pub pids_max: Option<Spanned<u64>>,
    pub io_weight: Option<Spanned<u32>>,
    pub limits: Option<Spanned<String>>,
    pub stdout_events_enabled: Option<bool>,
    pub stderr_events_enabled: Option<bool>,
    pub log_prefix: Option<String>,
    pub gpu: Option<Spanned<GpuMode>>,
    pub gpus: Option<Spanned<Vec<Spanned<u32>>>>,
    pub gpu_count: Option<Spanned<u32>>,
    pub numprocs: Option<Spanned<u32>>,
    pub numprocs_start: Option<Count<1_000_000>>,
    /// `[eventlistener.NAME]` only: the events it subscribes to.
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    /// `[eventlistener.NAME]` only: how many events wait for it at most (supervisord: 10).
    pub buffer_size: Option<Spanned<Count<10_000>>>,
}

/// `[program.NAME.healthcheck]`: exactly one of `http`, `tcp`, `exec`, and Docker
/// HEALTHCHECK's timing names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthcheck {
    pub http: Option<Spanned<String>>,
    pub tcp: Option<Spanned<String>>,
    pub exec: Option<CommandLine>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    pub expect_status: Option<Spanned<ExpectStatus>>,
    pub interval: Option<ConfigDuration>,
    pub timeout: Option<ConfigDuration>,
    pub start_period: Option<ConfigDuration>,
    pub start_interval: Option<ConfigDuration>,
    pub retries: Option<Counted>,
    pub success_threshold: Option<Counted>,
    pub on_unhealthy: Option<OnUnhealthy>,
}

/// `expect_status`: one HTTP status or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "an HTTP status code or a list of them")]
pub enum ExpectStatus {
    One(u16),
    Many(Vec<u16>),
}

/// What to do when a program turns unhealthy (`on_unhealthy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnhealthy {
    /// Restart it, through the same backoff as a crash.
    #[default]
    Restart,
    /// Only report it.
    Ignore,
}

/// `depends_on`: a list of names (condition `started`) or a table of name = condition.
#[derive(Debug)]
pub enum RawDependsOn {
    List(Vec<Spanned<String>>),
    Table(BTreeMap<Spanned<String>, Condition>),
}

// By hand rather than `untagged`: an untagged enum buffers its input and loses the spans that
// `Spanned` needs for file:line:column.
impl<'de> Deserialize<'de> for RawDependsOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawDependsOn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a list of program names, or a table like { db = "healthy" }"#)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawDependsOn, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element()? {
                    names.push(name);
                }
                Ok(RawDependsOn::List(names))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawDependsOn, A::Error> {
                let mut table = BTreeMap::new();
                while let Some((name, condition)) = map.next_entry()? {
                    table.insert(name, condition);
                }
                Ok(RawDependsOn::Table(table))
            }
        }
        d.deserialize_any(V)
    }
}

/// A dependency condition, named as compose names them (without the `service_` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency is RUNNING.
    Started,
    /// The dependency is RUNNING and its healthcheck passes.
    Healthy,
    /// The dependency has EXITED with an expected code.
    CompletedSuccessfully,
}

impl Condition {
    /// The name as written in the config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::CompletedSuccessfully => "completed_successfully",
        }
    }
}

/// `[group.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub programs: Vec<Spanned<String>>,
    pub priority: Option<i64>,
}
