//! The control protocol: one JSON [`Request`] line from the client, one JSON [`Response`] line
//! back, then the connection closes. `supctl --json` prints the response as it came.

use serde::{Deserialize, Serialize};

use crate::lifecycle::Health;
pub use crate::lifecycle::State;
use crate::process::ExitStatus;
pub use crate::supervisor::ReloadPlan;

/// A control request. `names` take `NAME`, `GROUP:NAME`, `GROUP:*` or `all`; an empty list
/// means all where that makes sense (status, pid).
///
/// Unknown fields and wrong types are refused (`{"cmd":"pid","mames":[]}` is an error that
/// names `mames`), as the config refuses them; that is why the variants without fields are
/// written `Health {}` (serde lets a unit variant ignore extra fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Program states.
    Status {
        /// Which programs; empty for all.
        #[serde(default)]
        names: Vec<String>,
        /// Also list each program's processes (`supctl status --tree`).
        #[serde(default)]
        tree: bool,
        /// Also give each program's CPU % and resident memory (`supctl status -v`).
        #[serde(default)]
        verbose: bool,
    },
    /// Start, and wait until RUNNING or a failure.
    Start {
        /// Which programs.
        names: Vec<String>,
    },
    /// Stop, and wait until stopped.
    Stop {
        /// Which programs.
        names: Vec<String>,
    },
    /// Stop if running, start, and wait until RUNNING or a failure.
    Restart {
        /// Which programs.
        names: Vec<String>,
    },
    /// Send a signal to each program's process.
    Signal {
        /// A signal name: `HUP`, `SIGUSR1`, …
        signal: String,
        /// Which programs.
        names: Vec<String>,
    },
    /// supd's pid, or programs' pids.
    Pid {
        /// Which programs; empty for supd's own pid.
        #[serde(default)]
        names: Vec<String>,
    },
    /// The same answer as `GET /health`.
    Health {},
    /// The last lines of a program's output, from its in-memory tail (64 KiB per stream).
    Tail {
        /// The program.
        name: String,
        /// `stdout` (the default) or `stderr`.
        #[serde(default)]
        stream: Option<String>,
        /// How many lines (10 by default).
        #[serde(default = "ten")]
        lines: usize,
        /// How many bytes instead of lines.
        #[serde(default)]
        bytes: Option<usize>,
        /// Keep the connection and send new output as it comes (`tail -f`).
        #[serde(default)]
        follow: bool,
    },
    /// Truncate programs' log files and forget their tails.
    Clear {
        /// Which programs.
        names: Vec<String>,
    },
    /// Reopen every log file (as SIGUSR2 does), for logrotate's copy-less rotation.
    Reopen {},
    /// The GPUs, their latest readings and which programs hold each.
    Gpu {},
    /// Re-read the config and apply the difference (as SIGHUP does).
    Reload {
        /// Only say what would change.
        #[serde(default)]
        dry_run: bool,
    },
    /// Stop everything and exit.
    Shutdown {},
    /// supd's own log: its last bytes, then, with `follow`, new lines as they come
    /// (supervisorctl's `maintail`).
    Maintail {
        /// How many bytes (1600 by default, as supervisorctl).
        #[serde(default = "maintail_bytes")]
        bytes: usize,
        /// Keep the connection and send new lines as they come.
        #[serde(default)]
        follow: bool,
    },
    /// Every program of the config on disk, and whether it is in use (supervisorctl's `avail`).
    Avail {},
    /// Add these groups of the config on disk, leaving every other program as it is
    /// (supervisorctl's `add`).
    Add {
        /// Group names (a program outside a group is a group of its own).
        names: Vec<String>,
    },
    /// Forget these groups, whose programs must be stopped (supervisorctl's `remove`).
    Remove {
        /// Group names.
        names: Vec<String>,
    },
    /// Keep the connection and send each change of every program as it happens (state,
    /// restart, health, probe result, GPU fault): `supctl events`.
    Events {},
    /// Apply the config on disk group by group, as supervisorctl's `update` does (and say what
    /// it would do, as `reread`, with `dry_run`): all groups, or the ones named.
    Update {
        /// Group names; none or `all` for every group.
        #[serde(default)]
        groups: Vec<String>,
        /// Only say which groups are available, changed and disappeared.
        #[serde(default)]
        dry_run: bool,
    },
    /// Stop every program, read the config again, start every `autostart` one (supervisord's
    /// `restart`, `supervisorctl reload`); answered once the config has loaded.
    RestartAll {},
    /// Write `data` to a program's stdin (it needs `stdin_pipe`; `supctl fg` sends each line).
    Stdin {
        /// The program.
        name: String,
        /// What to write.
        data: String,
    },
}

fn maintail_bytes() -> usize {
    1600
}

/// A control response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// For `status`.
    Status {
        /// The programs asked for, in start order.
        programs: Vec<ProgramStatus>,
        /// The names asked for that match nothing (`NAME`, or `GROUP:*` for a group).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unknown: Vec<String>,
        /// supd's own figures and the container's memory, with `verbose` (`supctl top`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supd: Option<SupdFigures>,
    },
    /// For `start`, `stop`, `restart` and `signal`: one result per program.
    Actions {
        /// Per program.
        results: Vec<ActionResult>,
    },
    /// For `health`.
    Health(HealthReport),
    /// For `pid`.
    Pid {
        /// supd's own pid.
        supd: u32,
        /// The programs asked for; `pid` is `None` when not running.
        programs: Vec<ProgramPid>,
    },
    /// For `shutdown`: accepted.
    ShuttingDown,
    /// For `tail`: output, as text (invalid UTF-8 replaced). With `follow`, one per chunk.
    Tail {
        /// The bytes.
        data: String,
    },
    /// For `gpu`.
    Gpu(crate::gpu::GpuView),
    /// For `reload`: what changed (or, with `dry_run`, would change).
    Reload(ReloadPlan),
    /// For `events`: one change (many, one per line).
    Change(crate::events::live::Change),
    /// For `avail`: the programs of the config on disk.
    Avail {
        /// In name order.
        programs: Vec<ConfigEntry>,
    },
    /// For `reopen`: done.
    Done {
        /// What was done.
        message: String,
    },
    /// The request failed as a whole.
    Error {
        /// What kind of failure (supctl maps it to an exit code).
        kind: ErrorKind,
        /// What went wrong, for people.
        message: String,
    },
}

/// Why a request failed as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A name matches no program or group.
    UnknownName,
    /// The request did not parse, or an argument is invalid.
    BadRequest,
    /// supd is shutting down and takes no more changes.
    ShuttingDown,
    /// The config on disk is invalid (reload): nothing was changed.
    BadConfig,
}

/// One program as `supctl status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramStatus {
    /// Program name.
    pub name: String,
    /// Group name (the program's own name when it has no group).
    pub group: String,
    /// `group:name` in a group of another name, else `name` (supervisorctl's form).
    pub full_name: String,
    /// supervisord state.
    pub state: State,
    /// Process id while one runs.
    pub pid: Option<i32>,
    /// ConfigDuration since it entered RUNNING, while RUNNING.
    pub uptime_secs: Option<u64>,
    /// supervisorctl-style description: `pid 123, uptime 0:01:02`, the exit, the error.
    pub description: String,
    /// How the last process ended.
    pub exit_status: Option<ExitStatus>,
    /// Whether that exit was expected (its code is in `exitcodes`).
    pub exit_expected: Option<bool>,
    /// The last spawn error or the reason for FATAL.
    pub error: Option<String>,
    /// Automatic restarts so far.
    pub restarts: u64,
    /// Restarts for `max_rss` so far (its tree stayed over the limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_rss_restarts: u64,
    /// OOM kills in its cgroup so far (at its `memory_max`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub oom_kills: u64,
    /// Spawn attempts so far.
    pub spawns: u64,
    /// `autostart`.
    pub autostart: bool,
    /// Health of the running process (`starting`, `healthy`, `unhealthy`), for programs with a
    /// healthcheck.
    pub health: Option<Health>,
    /// The last probe's result.
    pub last_probe: Option<ProbeStatus>,
    /// Faults of its log files (disk full, …); empty when they are written.
    #[serde(default)]
    pub log_errors: Vec<String>,
    /// Processes of it that outlived SIGKILL in its last stop (pids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub survivors: Vec<i32>,
    /// Every process of it now, with `status --tree`: its process group and whatever left it
    /// (in its cgroup, or found by `SUPD_PROCESS_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<ProcessEntry>>,
    /// Its process tree's use, with `status -v`, while it has a process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// A program's whole process tree's use now (`supctl status -v`), from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU, in % of one core, over the last 0.25 to 30 s.
    pub cpu_percent: Option<f64>,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
}

/// supd's own use and the container's memory (`supctl status -v --json`, `supctl top`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SupdFigures {
    /// supd's pid.
    pub pid: u32,
    /// Seconds since supd started.
    pub uptime_secs: u64,
    /// supd's resident memory, bytes.
    pub rss_bytes: u64,
    /// The container's memory in use, bytes (its cgroup's, else the machine's).
    pub memory_used_bytes: Option<u64>,
    /// The container's memory limit, bytes (the cgroup's, else the machine's total).
    pub memory_limit_bytes: Option<u64>,
}

/// One process of a program (`supctl status --tree`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    /// Its pid.
    pub pid: i32,
    /// Its command line, arguments joined by spaces.
    pub command: String,
}

impl ProgramStatus {
    /// The state as `supctl status` shows it: `RUNNING (healthy)` for a probed program.
    pub fn state_text(&self) -> String {
        match self.health {
            Some(h) if matches!(self.state, State::Running | State::Starting) => {
                format!("{} ({})", self.state, h.as_str())
            }
            _ => self.state.as_str().to_string(),
        }
    }
}

/// A probe's result, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeStatus {
    /// Passed.
    pub ok: bool,
    /// `HTTP 200`, `connected`, `exit status 1`, `timed out after 2s` …
    pub message: String,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// How long ago it ran, in seconds.
    pub secs_ago: u64,
}

/// The result of an action on one program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// `full_name` of the program.
    pub name: String,
    /// Whether the action did what was asked.
    pub ok: bool,
    /// `started`, `stopped`, or what went wrong.
    pub message: String,
    /// Its state when the action finished; `None` for a name that matches no program.
    pub state: Option<State>,
    /// Why it did not do what was asked, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<ActionFault>,
    /// supd's own account of a failure, beyond supervisorctl's words in `message` (a start
    /// that ended in BACKOFF: its state, the retry and the last exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Why an action did not do what was asked for one program: what supctl's exit code follows
/// (supervisorctl 4.3.0's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionFault {
    /// No program has that name (exit 1).
    NoSuchProgram,
    /// `start` of a program that is started: reported, and still exit 0.
    AlreadyStarted,
    /// `stop` or `signal` of a program that does not run: reported, and still exit 0.
    NotRunning,
    /// The start ended in BACKOFF, EXITED or FATAL (exit 7, supervisorctl's spawn error).
    StartFailed,
    /// Anything else (exit 1).
    Failed,
}

/// One program of the config on disk (`avail`), with supervisord's `getAllConfigInfo` members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// `group:name` in a group of another name, else `name`.
    pub full_name: String,
    /// Whether supd runs it now (`in use`), or a reload or `add` would add it (`avail`).
    pub in_use: bool,
    /// `autostart`.
    pub autostart: bool,
    /// Its group's `priority`.
    pub group_priority: i64,
    /// Its own `priority`.
    pub priority: i64,
}

/// One program's pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramPid {
    /// `full_name` of the program.
    pub name: String,
    /// Its process id, when running.
    pub pid: Option<i32>,
    /// No program has this name (`name` is as asked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

/// The container's health, as `GET /health` and `supctl health` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `"healthy"` or `"unhealthy"`.
    pub status: String,
    /// The `full_name (STATE)` of each autostart program that is not ready.
    pub not_ready: Vec<String>,
    /// Every program.
    pub programs: Vec<ProgramStatus>,
    /// The GPUs: `{"available": false, "reason": …}` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::gpu::GpuView>,
}

impl HealthReport {
    /// Whether every autostart program is ready.
    pub fn healthy(&self) -> bool {
        self.not_ready.is_empty()
    }
}

fn ten() -> usize {
    10
}

/// For `skip_serializing_if`: a count of 0 is left out.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::Request;

    fn decode(line: &str) -> Result<Request, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        assert_eq!(decode(r#"{"cmd":"pid","names":["a"]}"#), Ok(Request::Pid { names: vec!["a".into()] }));
        assert!(decode(r#"{"cmd":"pid","mames":["a"]}"#).unwrap_err().contains("mames"));
        assert!(decode(r#"{"cmd":"health","extra":1}"#).unwrap_err().contains("extra"));
        assert!(decode(r#"{"cmd":"shutdown","now":true}"#).unwrap_err().contains("now"));
        assert!(decode(r#"{"cmd":"tail","name":"a","lines":"ten"}"#).is_err());
        assert!(decode(r#"{"cmd":"stop","names":"a"}"#).is_err());
        assert!(decode(r#"{"cmd":"launch"}"#).unwrap_err().contains("launch"));
    }
}
