//! The control API on a unix socket: what supctl talks to.
//!
//! One request line in, one response line out. Reads come from the latest [`Snapshot`];
//! changes go to the supervisor as [`Command`]s, and `start`/`stop`/`restart` then wait on the
//! snapshot until each program settles, bounded by its own startsecs + stopwaitsecs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use super::admission::{Admission, MAX_CONNECTIONS, Ticket};
use super::protocol::{ActionFault, ActionResult, ErrorKind, ProcessEntry, ProgramPid, Request, Response};
use super::readiness;
use super::wait::Wait;
use super::{REQUEST_TIMEOUT, WRITE_TIMEOUT};
use crate::config::{SignalName, SupervisorConfig};
use crate::lifecycle::State;
use crate::lifecycle::settle::Awaited;
use crate::output::Sink;
use crate::supervisor::{Command, Envelope, ProgramView, Snapshot, VerbError};

/// A request line longer than this is refused.
const MAX_REQUEST: u64 = 64 * 1024;

/// Why the control socket could not be set up: the path, the step that failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("control socket {}: {step}: {source}", path.display())]
pub struct BindError {
    /// The socket's path.
    pub path: PathBuf,
    /// What was being done (`cannot bind`, `cannot set its mode` …).
    pub step: String,
    /// Why it failed.
    pub source: std::io::Error,
}

/// The supervisor is gone (supd is shutting down): a command found no one to take it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("supd is shutting down")]
pub struct SupervisorGone;

/// Binds the control socket: creates its directory, replaces a stale socket file, and applies
/// `socket_mode` and `socket_group`. Errors name the path and the failing step.
pub fn bind(cfg: &SupervisorConfig) -> Result<UnixListener, BindError> {
    let path = &cfg.socket;
    let fail = |step: &str, source| BindError { path: path.clone(), step: step.to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create its directory", e))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail("cannot remove the old socket", e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| fail("cannot bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))
        .map_err(|e| fail("cannot set its mode", e))?;
    if let Some((name, gid)) = &cfg.socket_group {
        std::os::unix::fs::chown(path, None, Some(*gid))
            .map_err(|e| fail(&format!("cannot give it to group {name}"), e))?;
    }
    Ok(listener)
}

/// Removes the socket file (at exit).
pub fn unlink(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// What a connection handler needs: the way to the supervisor, the latest snapshot (which
/// also says where each program's output goes), and where the config is.
#[derive(Clone)]
pub struct Handle {
    /// Commands to the supervisor.
    pub commands: mpsc::Sender<Envelope>,
    /// The latest snapshot.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// The output writer (for clear and reopen).
    pub sink: Sink,
    /// The GPUs' latest state.
    pub gpu: crate::gpu::SharedGpuView,
    /// What this machine offers programs (its GPUs), for a reloaded config.
    pub machine: crate::config::Machine,
    /// The config XML-RPC's `reloadConfig` read last, for `addProcessGroup` to take groups from.
    pub pending: Arc<std::sync::Mutex<Option<crate::config::Config>>>,
    /// The config file or directory, read again by a reload.
    pub config: PathBuf,
}

/// Serves connections on `listener` until the task is dropped, admitting each as
/// [`Admission`] says (idle and slow clients lose their slots to new ones).
pub async fn serve(listener: UnixListener, handle: Handle) {
    let slots = Admission::new(MAX_CONNECTIONS);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Some(ticket) = slots.admit() else {
                    debug!("control socket: every connection is busy; refusing a new one");
                    continue;
                };
                tokio::spawn(connection(stream, handle.clone(), ticket));
            }
            Err(e) => {
                warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: supctl's JSON line, or (when it opens with an HTTP method) XML-RPC over HTTP.
async fn connection(stream: UnixStream, handle: Handle, ticket: Ticket) {
    let first = tokio::select! {
        first = tokio::time::timeout(REQUEST_TIMEOUT, first_byte(&stream)) => first,
        () = ticket.evicted() => return,
    };
    match first {
        Ok(Ok(Some(b))) if b.is_ascii_uppercase() => super::xmlrpc::serve(stream, handle, ticket).await,
        Ok(Ok(Some(_))) => json_request(stream, handle, ticket).await,
        _ => {} // gone, or silent past the time allowed
    }
}

/// The first byte the client sent, left in place for whoever reads the request; `None` when
/// it closed without sending anything.
async fn first_byte(stream: &UnixStream) -> std::io::Result<Option<u8>> {
    use std::os::fd::AsRawFd;
    loop {
        stream.readable().await?;
        let mut byte = [0u8; 1];
        let peeked = stream.try_io(tokio::io::Interest::READABLE, || {
            nix::sys::socket::recv(stream.as_raw_fd(), &mut byte, nix::sys::socket::MsgFlags::MSG_PEEK)
                .map_err(std::io::Error::from)
        });
        match peeked {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(byte[0])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// supctl's protocol: one JSON request line in, one response line out (many, for `tail -f`).
async fn json_request(stream: UnixStream, handle: Handle, mut ticket: Ticket) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A small buffer: requests are short, and 256 idle connections hold one each.
    let mut reader = BufReader::with_capacity(1024, read.take(MAX_REQUEST));
    let read = tokio::select! {
        read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)) => read,
        () = ticket.evicted() => return,
    };
    let request = match read {
        Ok(Ok(_)) => serde_json::from_str::<Request>(&line),
        Ok(Err(e)) => {
            let _ = send(&mut write, &error(ErrorKind::BadRequest, format!("cannot read the request: {e}"))).await;
            return;
        }
        Err(_) => return,
    };
    if !ticket.busy() {
        return; // closed to make room just as its request came in
    }
    let result = match request {
        Ok(Request::Tail { name, stream, lines, follow }) => {
            let closed = async move {
                // The client sends nothing after its request; a read ends only when it goes.
                let mut byte = [0u8; 1];
                let _ = reader.read(&mut byte).await;
            };
            super::tail::tail(&handle, &mut write, &name, stream, lines, follow, closed).await
        }
        Ok(request) => send(&mut write, &handle.answer(request).await).await,
        Err(e) => send(&mut write, &error(ErrorKind::BadRequest, format!("bad request: {e}"))).await,
    };
    if let Err(e) = result {
        debug!("control client went away: {e}");
    }
}

/// Writes one response line; a client that does not take it within [`WRITE_TIMEOUT`] is given
/// up on (a `tail -f` follower that stopped reading, say).
pub(super) async fn send(write: &mut (impl AsyncWriteExt + Unpin), response: &Response) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(response).unwrap_or_default();
    out.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&out))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client took no answer")))
}

pub(super) fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error { kind, message: message.into() }
}

impl Handle {
    /// Answers one request.
    pub async fn answer(&self, request: Request) -> Response {
        let snapshot = self.snapshot.borrow().clone();
        let now = Instant::now();
        let names = match &request {
            Request::Status { names, .. } | Request::Pid { names } => names.clone(),
            Request::Start { names } | Request::Stop { names } | Request::Restart { names } => names.clone(),
            Request::Signal { names, .. } => names.clone(),
            Request::Clear { names } => names.clone(),
            Request::Health {}
            | Request::Shutdown {}
            | Request::Reopen {}
            | Request::Tail { .. }
            | Request::Gpu {}
            | Request::Reload { .. } => Vec::new(),
        };
        let is_action = matches!(
            request,
            Request::Start { .. }
                | Request::Stop { .. }
                | Request::Restart { .. }
                | Request::Clear { .. }
                | Request::Signal { .. }
        );
        if is_action && names.is_empty() {
            return error(ErrorKind::BadRequest, "name a program, GROUP:* or all");
        }
        // The verbs take each name on its own, as supervisorctl does.
        let running = |s: State| matches!(s, State::Starting | State::Running | State::Backoff);
        match &request {
            Request::Start { .. } => {
                let wait = Wait::For(Awaited::Started);
                return self.verb(&snapshot, &names, Command::Start, wait, |s| !running(s)).await;
            }
            Request::Stop { .. } => {
                return self.verb(&snapshot, &names, Command::Stop, Wait::For(Awaited::Stopped), running).await;
            }
            Request::Restart { .. } => {
                return self.verb(&snapshot, &names, Command::Restart, Wait::For(Awaited::Started), |_| true).await;
            }
            Request::Signal { signal, .. } => {
                let Some(signal) = SignalName::parse(signal) else {
                    return error(ErrorKind::BadRequest, format!("unknown signal {signal:?}"));
                };
                let has_process = |s: State| matches!(s, State::Starting | State::Running | State::Stopping);
                return self.verb(&snapshot, &names, |n| Command::Signal(signal, n), Wait::No, has_process).await;
            }
            _ => {}
        }
        let ids = match select(&snapshot, &names) {
            Ok(ids) => ids,
            Err(unknown) => return error(ErrorKind::UnknownName, format!("no such process: {unknown}")),
        };
        match request {
            Request::Status { tree, .. } => {
                let mut programs: Vec<_> = ids
                    .iter()
                    .filter_map(|&i| snapshot.programs.get(i))
                    .map(|p| super::status::status(p, now))
                    .collect();
                if tree {
                    let views: Vec<_> = ids.iter().filter_map(|&i| snapshot.programs.get(i).cloned()).collect();
                    // /proc is read off the event loop.
                    let found = tokio::task::spawn_blocking(move || processes(&views)).await.unwrap_or_default();
                    for (status, found) in programs.iter_mut().zip(found) {
                        status.processes = Some(found);
                    }
                }
                Response::Status { programs }
            }
            Request::Pid { names } => Response::Pid {
                supd: std::process::id(),
                programs: if names.is_empty() { Vec::new() } else { pids(&snapshot, &ids) },
            },
            Request::Health {} => Response::Health(readiness::report(&snapshot, &self.gpu, now)),
            Request::Gpu {} => Response::Gpu(self.gpu.lock().map(|g| g.clone()).unwrap_or_default()),
            Request::Shutdown {} => match self.send(Command::Shutdown).await {
                Ok(_) => Response::ShuttingDown,
                Err(e) => error(ErrorKind::ShuttingDown, e.to_string()),
            },
            Request::Clear { .. } => self.clear(&snapshot, &ids).await,
            Request::Reopen {} => {
                self.sink.reopen().await;
                Response::Done { message: "reopened every log file".into() }
            }
            Request::Tail { .. } => error(ErrorKind::BadRequest, "tail is answered on its own connection"),
            Request::Reload { dry_run } => self.reload(dry_run).await,
            Request::Start { .. } | Request::Stop { .. } | Request::Restart { .. } | Request::Signal { .. } => {
                error(ErrorKind::BadRequest, "verbs are answered by Handle::verb")
            }
        }
    }

    /// Truncates the programs' log files and forgets their tails.
    async fn clear(&self, snapshot: &Snapshot, ids: &[usize]) -> Response {
        let views: Vec<ProgramView> = ids.iter().filter_map(|&i| snapshot.programs.get(i).cloned()).collect();
        self.clear_logs(&views).await;
        let cleared = |view: &ProgramView| ActionResult {
            name: view.full_name(),
            ok: true,
            message: "cleared".into(),
            state: Some(view.state),
            fault: None,
        };
        Response::Actions { results: views.iter().map(cleared).collect() }
    }

    /// A verb on `names`, each on its own: a name that matches nothing is reported and the
    /// rest go on (supervisorctl); `all` and `GROUP:*` take only the programs whose state
    /// `applies` (start: those not running; stop and signal: those running), as supervisord's
    /// group methods do, while a program named by itself always gets the verb.
    async fn verb(
        &self,
        snapshot: &Snapshot,
        names: &[String],
        command: impl FnOnce(Vec<String>) -> Command,
        wait: Wait,
        applies: impl Fn(State) -> bool,
    ) -> Response {
        let (mut targets, mut unknown) = (Vec::new(), Vec::new());
        for name in names {
            let Ok(ids) = select(snapshot, std::slice::from_ref(name)) else {
                unknown.push(name.clone());
                continue;
            };
            let whole = name == "all" || name.ends_with(":*");
            for p in ids.iter().filter_map(|&i| snapshot.programs.get(i)) {
                if (!whole || applies(p.state)) && !targets.contains(&p.name) {
                    targets.push(p.name.clone());
                }
            }
        }
        let mut response = if targets.is_empty() {
            Response::Actions { results: Vec::new() }
        } else {
            self.command_and_wait(command, targets, wait).await
        };
        if let Response::Actions { results } = &mut response {
            results.extend(unknown.into_iter().map(|name| ActionResult {
                name,
                ok: false,
                message: "no such process".into(),
                state: None,
                fault: Some(ActionFault::NoSuchProgram),
            }));
        }
        response
    }

    /// Truncates `programs`' log files and forgets their tails.
    pub(super) async fn clear_logs(&self, programs: &[ProgramView]) {
        let mut files = Vec::new();
        for view in programs {
            for log in [&view.logs.stdout, &view.logs.stderr] {
                log.tail.clear();
                files.extend(log.file.clone());
            }
        }
        self.sink.clear(files).await;
    }

    /// Hands `command` to the supervisor; its answer, per program named.
    pub(super) async fn send(&self, command: Command) -> Result<Vec<Result<u64, VerbError>>, SupervisorGone> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Envelope { command, reply }).await.map_err(|_| SupervisorGone)?;
        answer.await.map_err(|_| SupervisorGone)
    }

    /// Reads the config again, off the event loop (it reads files and the user database).
    /// Errors: why it does not load, for people.
    pub(super) async fn load_config(&self) -> Result<crate::config::Config, String> {
        let path = self.config.clone();
        let machine = self.machine.clone();
        match tokio::task::spawn_blocking(move || crate::config::load(&path, &machine)).await {
            Ok(Ok(config)) => Ok(config),
            Ok(Err(e)) => Err(format!("config error: {e}; nothing was changed")),
            Err(e) => Err(format!("cannot load the config: {e}")),
        }
    }

    /// Re-reads the config and hands it to the supervisor. A config that does not load changes
    /// nothing.
    async fn reload(&self, dry_run: bool) -> Response {
        let loaded = match self.load_config().await {
            Ok(config) => config,
            Err(e) => return error(ErrorKind::BadConfig, e),
        };
        let (reply, plan) = oneshot::channel();
        let command = Command::Reload { config: Box::new(loaded), dry_run, reply };
        if let Err(e) = self.send(command).await {
            return error(ErrorKind::ShuttingDown, e.to_string());
        }
        match plan.await {
            Ok(Ok(plan)) => Response::Reload(plan),
            Ok(Err(e)) => error(ErrorKind::BadConfig, format!("{e}; nothing was changed")),
            Err(_) => error(ErrorKind::ShuttingDown, "supd is shutting down"),
        }
    }
}

/// Every process of each of `programs` now: its cgroup's, or its process tree and the
/// processes marked with its name (see [`crate::process::tree`]).
fn processes(programs: &[ProgramView]) -> Vec<Vec<ProcessEntry>> {
    // All of /proc is read only when some program has no cgroup.
    let census = programs.iter().any(|p| p.cgroup.is_none()).then(crate::process::tree::Census::take);
    let command = |pid: i32| {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string()
    };
    programs
        .iter()
        .map(|p| {
            let pids = match (&p.cgroup, &census) {
                (Some(cg), _) => cg.pids(),
                (None, Some(census)) => census.members(&p.name, p.pid),
                (None, None) => Vec::new(),
            };
            pids.into_iter().map(|pid| ProcessEntry { pid, command: command(pid) }).collect()
        })
        .collect()
}

fn pids(snapshot: &Snapshot, ids: &[usize]) -> Vec<ProgramPid> {
    ids.iter()
        .filter_map(|&i| snapshot.programs.get(i))
        .map(|p| ProgramPid { name: p.full_name(), pid: p.pid })
        .collect()
}

/// Resolves names to program indices: `all` (or nothing) is every program, `GROUP:*` a group,
/// `GROUP:NAME` or `NAME` one program. Errors with the first name that matches nothing.
pub fn select(snapshot: &Snapshot, names: &[String]) -> Result<Vec<usize>, String> {
    let programs = &snapshot.programs;
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok((0..programs.len()).collect());
    }
    let mut ids = Vec::new();
    for name in names {
        let matched: Vec<usize> = match name.split_once(':') {
            Some((group, "*")) => (0..programs.len()).filter(|&i| programs[i].group == group).collect(),
            Some((group, program)) => {
                (0..programs.len()).filter(|&i| programs[i].group == group && programs[i].name == program).collect()
            }
            None => (0..programs.len()).filter(|&i| programs[i].name == *name).collect(),
        };
        if matched.is_empty() {
            return Err(name.clone());
        }
        for i in matched {
            if !ids.contains(&i) {
                ids.push(i);
            }
        }
    }
    Ok(ids)
}
