//! Configuration: TOML files in, a validated [`Config`] out.
//!
//! Stages, each with its errors at file:line:column and key: `raw` parses what the user wrote
//! (serde, with exact key paths from `serde_path_to_error`); `expand` replaces `${VAR}` and
//! supervisord's `%(…)s`; `resolve` merges the files, forms groups and `numprocs` copies,
//! looks users and groups up, and gives out this [`Machine`]'s GPUs (`gpu`). Nothing starts
//! unless every stage passes, and nothing edits a [`Config`] afterwards. This module knows
//! nothing of processes or the supervisor.

mod depends;
mod error;
pub mod expand;
mod gpu;
mod healthcheck;
pub mod ini;
pub mod limits;
mod load;
mod raw;
mod resolve;
mod value;

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

pub use depends::ranks;
pub use error::{ConfigError, Source};
pub use gpu::Machine;
pub use load::load;
pub use raw::{Condition, GpuMode, LogFormat, LogLevel, OnUnhealthy};
pub use value::{Autorestart, SignalName};

/// The default config path (`-c` and `SUPD_CONFIG` override it).
pub const DEFAULT_CONFIG: &str = "/etc/supd/supd.toml";
/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/supd/supd.sock";
/// The default read-only HTTP listener.
pub const DEFAULT_HTTP: &str = "0.0.0.0:9001";

/// Everything supd runs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `[supervisor]`.
    pub supervisor: SupervisorConfig,
    /// Every program, in start order: group priority, then priority, then name.
    pub programs: Vec<ProgramConfig>,
    /// `[gpu]`.
    pub gpu: GpuConfig,
    /// The files read, in order.
    pub sources: Vec<PathBuf>,
    /// What a supervisord INI config had that supd does not carry, one line each (logged at
    /// start and by `supd check`); empty for TOML.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// `[supervisor]`: supd's own settings.
#[derive(Debug, Clone, Serialize)]
pub struct SupervisorConfig {
    /// Control socket path (`socket`, default `/run/supd/supd.sock`).
    pub socket: PathBuf,
    /// Socket permission bits (`socket_mode`, default `0o600`).
    pub socket_mode: u32,
    /// Group that owns the socket (`socket_group`), as (name, gid).
    pub socket_group: Option<(String, u32)>,
    /// HTTP listener address (`http`, default `0.0.0.0:9001`); `None` when `http = ""`.
    pub http: Option<std::net::SocketAddr>,
    /// `http_tails` (default false): whether the HTTP listener serves programs' output
    /// (`GET /logtail/NAME`, the dashboard's log pane). Output can hold secrets and the listener
    /// has no credentials, so it is off unless asked for; the `rpc` listener always serves it.
    pub http_tails: bool,
    /// supervisord's XML-RPC over TCP (`rpc`, off by default; supervisord's
    /// `[inet_http_server] port`), and the credentials it asks for.
    pub rpc: Option<RpcListener>,
    /// supd's own log format (`log_format`, default text).
    pub log_format: LogFormat,
    /// supd's own log level (`log_level`, default info).
    pub log_level: LogLevel,
    /// supd's own log file (`logfile`, with `logfile_maxbytes` and `logfile_backups`);
    /// `None` writes it to stderr.
    pub logfile: Option<LogFileConfig>,
    /// `cgroup`: where programs' cgroups go.
    pub cgroup: CgroupSetting,
    /// `minfds` and `minprocs` (supervisord's): supd raises its own open-file and process
    /// limits to at least these at start (its programs inherit them), or exits saying why.
    pub minfds: Option<u64>,
    /// See `minfds`.
    pub minprocs: Option<u64>,
}

/// `[supervisor] cgroup`: `"auto"` (the default), `"off"`, or a cgroup2 directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupSetting {
    /// supd's own cgroup, when a cgroup2 hierarchy shows it writable.
    Auto,
    /// No cgroups: stop finds a program's processes by `SUPD_PROCESS_NAME`.
    Off,
    /// This cgroup2 directory.
    Path(PathBuf),
}

/// Where one stream of a program's output goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamConfig {
    /// `*_logfile`: a file, with rotation (`None`: no file).
    pub file: Option<LogFileConfig>,
    /// Lines go to supd's own stdout/stderr, behind the prefix: the default, and with a file
    /// only when `*_passthrough = true`. `*_logfile = "NONE"` turns both off.
    pub passthrough: bool,
    /// Which of supd's streams the passthrough goes to: `None` for the stream's own (stdout
    /// to stdout), `Some` when `*_logfile` names one of supd's (`/dev/stdout`, `/dev/fd/2`,
    /// `/proc/self/fd/1` …, see [`std_stream`]).
    pub to: Option<StdStream>,
    /// `*_events_enabled` (false): each chunk of this stream is a `PROCESS_LOG_STDOUT` or
    /// `PROCESS_LOG_STDERR` event for event listeners (supervisord's keys).
    pub events_enabled: bool,
}

/// One of supd's own output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StdStream {
    /// fd 1.
    Stdout,
    /// fd 2.
    Stderr,
}

/// The stream a log file path names, if it names one of supd's own: `/dev/stdout`,
/// `/dev/stderr`, `/dev/fd/1`, `/dev/fd/2`, `/proc/self/fd/1`, `/proc/self/fd/2`. supervisord
/// configs use these to reach `docker logs`; opened as files, they would be written from
/// several places at once at their own offsets, tearing lines or (when supd's stdout is a
/// regular file) overwriting them, so they mean the passthrough instead.
pub fn std_stream(path: &std::path::Path) -> Option<StdStream> {
    match path.to_str()? {
        "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" => Some(StdStream::Stdout),
        "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2" => Some(StdStream::Stderr),
        _ => None,
    }
}

/// `max_rss`: a program restarted when its tree's resident memory stays over `bytes` for
/// `sustained`, checked every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MaxRss {
    /// `max_rss`, bytes (`"512MB"`, as `*_logfile_maxbytes` takes them).
    pub bytes: u64,
    /// `max_rss_for` (30 s): how long it must stay over before the restart.
    pub sustained: std::time::Duration,
    /// `max_rss_interval` (10 s, at least 100 ms): how often its tree is measured.
    pub interval: std::time::Duration,
}

/// A log file and its rotation (supervisord's `*_logfile`, `*_logfile_maxbytes`,
/// `*_logfile_backups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogFileConfig {
    /// The file. Non-seekable ones (`/dev/stdout`, a FIFO) are written and never rotated.
    pub path: PathBuf,
    /// Rotate once it would grow past this many bytes (50 MiB); 0 never rotates.
    pub maxbytes: u64,
    /// Rotated files kept as PATH.1 … PATH.N (10); 0 truncates instead.
    pub backups: u32,
}

/// `[gpu]`: how supd watches NVIDIA GPUs.
#[derive(Debug, Clone, Serialize)]
pub struct GpuConfig {
    /// How often the devices are read (`interval`, default 10 s); zero turns polling off, and
    /// then `supctl gpu` shows the readings taken at start-up.
    pub interval: std::time::Duration,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig { interval: std::time::Duration::from_secs(10) }
    }
}

/// Which GPUs a program asks for, with `gpu = "optional"` or `"required"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuDevices {
    /// Every GPU, shared with other programs (neither `gpus` nor `gpu_count`).
    All,
    /// These GPU indices (`gpus = [0, 1]`), its own.
    Indices(Vec<u32>),
    /// This many GPUs of its own (`gpu_count`), given in config order from those no other
    /// program names.
    Count(u32),
}

/// A resource a program's `rlimit_*` key limits (setrlimit(2)'s names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Rlimit {
    /// `RLIMIT_NOFILE`: open files.
    NoFile,
    /// `RLIMIT_NPROC`: processes of the user.
    NProc,
    /// `RLIMIT_CORE`: core file size, bytes.
    Core,
    /// `RLIMIT_MEMLOCK`: locked memory, bytes.
    MemLock,
}

/// What an event listener subscribes to (supervisord: `events`, `buffer_size`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerConfig {
    /// Event type names, each supervisord's (`PROCESS_STATE`, `PROCESS_STATE_EXITED`,
    /// `TICK_60`, `SUPERVISOR_STATE_CHANGE` …); a family name takes all of its members.
    pub events: Vec<String>,
    /// How many events wait for it at most; past that the oldest is dropped, with a warning.
    pub buffer_size: usize,
}

/// The event types a listener may subscribe to: supervisord's that supd sends.
pub const EVENT_TYPES: &[&str] = &[
    "EVENT",
    "PROCESS_STATE",
    "PROCESS_STATE_STOPPED",
    "PROCESS_STATE_STARTING",
    "PROCESS_STATE_RUNNING",
    "PROCESS_STATE_BACKOFF",
    "PROCESS_STATE_STOPPING",
    "PROCESS_STATE_EXITED",
    "PROCESS_STATE_FATAL",
    "PROCESS_LOG",
    "PROCESS_LOG_STDOUT",
    "PROCESS_LOG_STDERR",
    "PROCESS_GROUP",
    "PROCESS_GROUP_ADDED",
    "PROCESS_GROUP_REMOVED",
    "REMOTE_COMMUNICATION",
    "SUPERVISOR_STATE_CHANGE",
    "SUPERVISOR_STATE_CHANGE_RUNNING",
    "SUPERVISOR_STATE_CHANGE_STOPPING",
    "TICK",
    "TICK_5",
    "TICK_60",
    "TICK_3600",
];

/// The XML-RPC listener on TCP (`[supervisor] rpc`, `rpc_username`, `rpc_password`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcListener {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// HTTP Basic credentials every request must carry; `None` only on a loopback address.
    #[serde(skip)]
    pub credentials: Option<RpcCredentials>,
}

/// `rpc_username` and `rpc_password` (supervisord: `[inet_http_server] username`, `password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcCredentials {
    /// The user name.
    pub username: String,
    /// The password's SHA-1 digest: supervisord accepts it written as `{SHA}` and 40 hex
    /// digits, or plain (hashed here, so the plain text is not kept).
    pub password_sha1: [u8; 20],
}

impl RpcCredentials {
    /// Whether `username` and `password` (from a request's HTTP Basic header) are these.
    pub fn accept(&self, username: &str, password: &str) -> bool {
        use sha1::Digest;
        let digest: [u8; 20] = sha1::Sha1::digest(password.as_bytes()).into();
        // Compared whole, without an early exit on the first differing byte.
        let same = digest.iter().zip(&self.password_sha1).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same & (username == self.username)
    }
}

/// One `[program.NAME]`, resolved. Keys and defaults follow supervisord's where it has them.
/// Equality is what a reload compares: a program whose resolved config is equal is untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramConfig {
    /// The program's name (the table key).
    pub name: String,
    /// Its group: the `[group.X]` that lists it, or its own name (supervisord's rule).
    pub group: String,
    /// The group's priority (its own `priority` when it has no group).
    pub group_priority: i64,
    /// argv, after `${VAR}` expansion of each argument.
    pub command: Vec<String>,
    /// Working directory (`directory`).
    pub directory: Option<PathBuf>,
    /// The user it runs as (`user`, else `[supervisor] user`); `None` keeps supd's own.
    pub user: Option<Credentials>,
    /// `umask`, if set.
    pub umask: Option<u32>,
    /// `environment`, applied over supd's own environment.
    pub environment: Vec<(String, String)>,
    /// `priority` (999): lower starts first and stops last.
    pub priority: i64,
    /// `autostart` (true).
    pub autostart: bool,
    /// `autorestart` ("unexpected").
    pub autorestart: Autorestart,
    /// `exitcodes` (`[0]`): the expected exit codes.
    pub exitcodes: Vec<i32>,
    /// `startsecs` (1 s): how long it must stay up for a start to count. Unused when
    /// `ready_when_healthy`.
    pub startsecs: Duration,
    /// `startsecs = "healthy"`: the start counts once the healthcheck passes.
    pub ready_when_healthy: bool,
    /// `startretries` (3): failed starts in a row allowed before FATAL.
    pub startretries: u32,
    /// `stopsignal` (TERM).
    #[serde(serialize_with = "signal_name")]
    pub stopsignal: Signal,
    /// `stopwaitsecs` (10 s): wait after stopsignal before SIGKILL.
    pub stopwaitsecs: Duration,
    /// `stopasgroup` (true here, false in supervisord): send stopsignal to the process group.
    pub stopasgroup: bool,
    /// `killasgroup` (true here, false in supervisord): send SIGKILL to the process group.
    pub killasgroup: bool,
    /// `redirect_stderr` (false): send stderr to the stdout stream.
    pub redirect_stderr: bool,
    /// `required` (false): when it goes FATAL, supd stops everything and exits 1.
    pub required: bool,
    /// Restart backoff after exits from RUNNING and failed starts.
    pub backoff: BackoffConfig,
    /// `[program.NAME.healthcheck]`.
    pub healthcheck: Option<Healthcheck>,
    /// `depends_on`: programs that must meet a condition before this one starts.
    pub depends_on: Vec<Dependency>,
    /// `gpu`: none (default), optional or required.
    pub gpu: GpuMode,
    /// `gpus` / `gpu_count`: which GPUs, when `gpu` is not none.
    pub gpu_devices: GpuDevices,
    /// The GPUs it was given on this machine (from `gpu`, `gpus` and `gpu_count`, by [`load`]
    /// for its [`Machine`]).
    pub gpus_held: Vec<u32>,
    /// Why it cannot run on this machine (`gpu = "required"` and no GPU): every start goes
    /// FATAL with this reason.
    pub gpu_unavailable: Option<String>,
    /// Set for an `[eventlistener.NAME]`: a program that gets events on its stdin and answers
    /// on its stdout (supervisord's event listener protocol).
    pub listener: Option<ListenerConfig>,
    /// Resource limits set in the child before exec, soft and hard alike (`rlimit_nofile`,
    /// `rlimit_nproc`, `rlimit_core` bytes, `rlimit_memlock` bytes; `u64::MAX` is unlimited):
    /// each a resource and its value.
    pub rlimits: Vec<(Rlimit, u64)>,
    /// `max_rss` with `max_rss_for` and `max_rss_interval`: restart it when its whole tree's
    /// resident memory stays over a limit (superlance memmon's job, for containers without
    /// memory cgroups); `None` when not set.
    pub max_rss: Option<MaxRss>,
    /// Its cgroup's limits (`memory_max`, `cpu_max`, …); none set by default.
    pub cgroup_limits: limits::CgroupLimits,
    /// `limits` (`"required"`): whether it may run where its cgroup limits cannot apply.
    pub limits_mode: limits::LimitsMode,
    /// `stdin_pipe` (false): its stdin is a pipe supd holds, for `sendProcessStdin` and
    /// `supctl fg`, as supervisord gives every program; else /dev/null (a read gets EOF). The
    /// INI reader sets it for every program, as supervisord runs them.
    pub stdin_pipe: bool,
    /// Where its stdout goes.
    pub stdout: StreamConfig,
    /// Where its stderr goes (unused with `redirect_stderr`).
    pub stderr: StreamConfig,
    /// The passthrough line prefix template (`log_prefix`, else `[supervisor] log_prefix`):
    /// `{name}`, `{stream}` and `{time}` (RFC 3339, UTC) are replaced; `None` is the default
    /// `name | `, padded to the longest program name.
    pub log_prefix: Option<String>,
    /// Passthrough lines as JSON objects (`[supervisor] log_format = "json"`).
    pub log_json: bool,
}

/// A dependency: start only once `program` meets `condition` (compose's `depends_on`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The program depended on.
    pub program: String,
    /// What it must reach.
    pub condition: Condition,
}

/// `[program.NAME.healthcheck]`, with Docker HEALTHCHECK's timing names and meanings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// What to probe.
    pub probe: Probe,
    /// Time between probes once started (`interval`, 10 s).
    pub interval: Duration,
    /// A probe that takes longer fails (`timeout`, 2 s).
    pub timeout: Duration,
    /// Failures in this time after a start do not count; the first success ends it
    /// (`start_period`, 0).
    pub start_period: Duration,
    /// Time between probes during `start_period` (`start_interval`, 1 s).
    pub start_interval: Duration,
    /// Consecutive failures that make a program unhealthy (`retries`, 3).
    pub retries: u32,
    /// Consecutive successes that make it healthy (`success_threshold`, 1; from Kubernetes).
    pub success_threshold: u32,
    /// What an unhealthy program gets (`on_unhealthy`, restart).
    pub on_unhealthy: OnUnhealthy,
}

/// One kind of probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// GET a URL; healthy on 2xx/3xx, or on `expect_status`.
    Http {
        /// The URL as written, for messages.
        url: String,
        /// Host to connect to.
        host: String,
        /// Port to connect to.
        port: u16,
        /// The `Host` header.
        authority: String,
        /// Path and query to request.
        path: String,
        /// Extra request headers.
        headers: Vec<(String, String)>,
        /// Statuses that count as healthy; empty means 200-399.
        expect_status: Vec<u16>,
    },
    /// Connect to `host:port`.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Run a command as the program's user; healthy on exit 0. Killed at `timeout`.
    Exec {
        /// argv.
        command: Vec<String>,
    },
}

/// Restart backoff (`backoff_initial` 1 s, `backoff_max` 60 s, `backoff_reset` 60 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackoffConfig {
    /// The first non-zero delay.
    pub initial: Duration,
    /// The cap the doubling stops at.
    pub max: Duration,
    /// A run this long without exiting forgets earlier restarts.
    pub reset: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self { initial: Duration::from_secs(1), max: Duration::from_secs(60), reset: Duration::from_secs(60) }
    }
}

/// A user to run a program as, looked up in the passwd and group databases at load time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    /// Login name.
    pub user: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (getgrouplist), primary included.
    pub groups: Vec<u32>,
    /// Home directory, for `HOME`.
    pub home: PathBuf,
    /// Login shell, for `SHELL`.
    pub shell: PathBuf,
}

fn signal_name<S: serde::Serializer>(sig: &Signal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sig.as_str().trim_start_matches("SIG"))
}

impl ProgramConfig {
    /// The name supervisorctl shows: `group:name` when it is in a group of another name.
    pub fn display_name(&self) -> String {
        namespec(&self.group, &self.name)
    }
}

/// supervisorctl's name of program `name` in `group`: `group:name`, or `name` when the group is
/// its own (supervisord's `make_namespec`).
pub fn namespec(group: &str, name: &str) -> String {
    if group == name { name.to_string() } else { format!("{group}:{name}") }
}

#[cfg(test)]
impl ProgramConfig {
    /// A program named `name` with every default, for tests.
    pub(crate) fn example(name: &str) -> ProgramConfig {
        ProgramConfig {
            name: name.into(),
            group: name.into(),
            group_priority: 999,
            command: vec![name.into()],
            directory: None,
            user: None,
            umask: None,
            environment: vec![],
            priority: 999,
            autostart: true,
            autorestart: Autorestart::Unexpected,
            exitcodes: vec![0],
            startsecs: std::time::Duration::from_secs(1),
            startretries: 3,
            stopsignal: nix::sys::signal::Signal::SIGTERM,
            stopwaitsecs: std::time::Duration::from_secs(10),
            stopasgroup: true,
            killasgroup: true,
            redirect_stderr: false,
            required: false,
            backoff: BackoffConfig::default(),
            ready_when_healthy: false,
            healthcheck: None,
            depends_on: vec![],
            gpu: GpuMode::None,
            gpu_devices: GpuDevices::All,
            gpus_held: Vec::new(),
            gpu_unavailable: None,
            listener: None,
            stdin_pipe: false,
            rlimits: Vec::new(),
            max_rss: None,
            cgroup_limits: limits::CgroupLimits::default(),
            limits_mode: limits::LimitsMode::Required,
            stdout: StreamConfig { file: None, passthrough: true, to: None, events_enabled: false },
            stderr: StreamConfig { file: None, passthrough: true, to: None, events_enabled: false },
            log_prefix: None,
            log_json: false,
        }
    }
}
