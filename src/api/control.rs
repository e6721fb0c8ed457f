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
use super::protocol::{ActionResult, ErrorKind, ProcessEntry, ProgramPid, Request, Response};
use super::readiness;
use super::{REQUEST_TIMEOUT, WRITE_TIMEOUT};
use crate::config::{SignalName, SupervisorConfig};
use crate::lifecycle::settle::{self, Awaited, Progress, Settled};
use crate::output::Sink;
use crate::supervisor::{Command, Envelope, ProgramView, Snapshot};

/// A request line longer than this is refused.
const MAX_REQUEST: u64 = 64 * 1024;

/// Binds the control socket: creates its directory, replaces a stale socket file, and applies
/// `socket_mode` and `socket_group`. Errors name the path and the failing step.
pub fn bind(cfg: &SupervisorConfig) -> Result<UnixListener, String> {
    let path = &cfg.socket;
    let fail = |step: &str, e: &dyn std::fmt::Display| format!("control socket {}: {step}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create its directory", &e))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail("cannot remove the old socket", &e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| fail("cannot bind", &e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))
        .map_err(|e| fail("cannot set its mode", &e))?;
    if let Some((name, gid)) = &cfg.socket_group {
        std::os::unix::fs::chown(path, None, Some(*gid))
            .map_err(|e| fail(&format!("cannot give it to group {name}"), &e))?;
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
    pub gpu: crate::gpu::Shared,
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

async fn connection(stream: UnixStream, handle: Handle, mut ticket: Ticket) {
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
            tail(&handle, &mut write, &name, stream, lines, follow, closed).await
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
async fn send(write: &mut (impl AsyncWriteExt + Unpin), response: &Response) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(response).unwrap_or_default();
    out.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&out))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client took no answer")))
}

/// `tail`: the last lines of one stream, then, with `follow`, new output as it comes until the
/// client goes away. The subscription is taken before the last lines are read, with no await
/// between, so nothing falls in between (readers run on this same thread).
/// With `follow` it also ends when `closed` resolves (the client went away), so an abandoned
/// follower of a silent program does not hold a connection slot.
async fn tail(
    handle: &Handle,
    write: &mut (impl AsyncWriteExt + Unpin),
    name: &str,
    stream: Option<String>,
    lines: usize,
    follow: bool,
    closed: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let snapshot = handle.snapshot.borrow().clone();
    let log = match select(&snapshot, &[name.to_string()]) {
        Ok(ids) if ids.len() == 1 => {
            let Some(logs) = ids.first().and_then(|&i| snapshot.programs.get(i)).map(|p| &p.logs) else {
                return Ok(());
            };
            match stream.as_deref() {
                None | Some("stdout") => logs.stdout.clone(),
                Some("stderr") => logs.stderr.clone(),
                Some(other) => {
                    return send(
                        write,
                        &error(ErrorKind::BadRequest, format!("no stream {other:?}; stdout or stderr")),
                    )
                    .await;
                }
            }
        }
        Ok(_) => return send(write, &error(ErrorKind::BadRequest, "tail takes one program")).await,
        Err(unknown) => {
            return send(write, &error(ErrorKind::UnknownName, format!("no such process: {unknown}"))).await;
        }
    };
    let mut updates = follow.then(|| log.tail.subscribe());
    let text = |bytes: &[u8]| Response::Tail { data: String::from_utf8_lossy(bytes).into_owned() };
    // Off the event loop: a spliced stream's tail is read back from its log file.
    let tail = Arc::clone(&log.tail);
    let last = tokio::task::spawn_blocking(move || tail.last_lines(lines)).await.unwrap_or_default();
    send(write, &text(&last)).await?;
    let Some(updates) = updates.as_mut() else { return Ok(()) };
    tokio::pin!(closed);
    loop {
        let update = tokio::select! {
            update = updates.recv() => update,
            () = &mut closed => return Ok(()),
        };
        match update {
            Ok(chunk) => send(write, &text(&chunk)).await?,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                send(write, &text(format!("[supctl tail: {n} chunks skipped, the reader was too slow]\n").as_bytes()))
                    .await?;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
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
        let ids = match select(&snapshot, &names) {
            Ok(ids) => ids,
            Err(unknown) => return error(ErrorKind::UnknownName, format!("no such process: {unknown}")),
        };
        let is_action = matches!(
            request,
            Request::Start { .. } | Request::Stop { .. } | Request::Restart { .. } | Request::Clear { .. }
        );
        if is_action && names.is_empty() {
            return error(ErrorKind::BadRequest, "name a program, GROUP:* or all");
        }
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
                Err(e) => error(ErrorKind::ShuttingDown, e),
            },
            Request::Signal { signal, .. } => {
                let Some(signal) = SignalName::parse(&signal) else {
                    return error(ErrorKind::BadRequest, format!("unknown signal {signal:?}"));
                };
                self.act(|names| Command::Signal(signal, names), names_of(&snapshot, &ids), Wait::No).await
            }
            Request::Clear { .. } => self.clear(&snapshot, &ids).await,
            Request::Reopen {} => {
                self.sink.reopen().await;
                Response::Done { message: "reopened every log file".into() }
            }
            Request::Tail { .. } => error(ErrorKind::BadRequest, "tail is answered on its own connection"),
            Request::Reload { dry_run } => self.reload(dry_run).await,
            Request::Start { .. } => {
                self.act(Command::Start, names_of(&snapshot, &ids), Wait::For(Awaited::Started)).await
            }
            Request::Restart { .. } => {
                self.act(Command::Restart, names_of(&snapshot, &ids), Wait::For(Awaited::Started)).await
            }
            Request::Stop { .. } => {
                self.act(Command::Stop, names_of(&snapshot, &ids), Wait::For(Awaited::Stopped)).await
            }
        }
    }

    /// Truncates the programs' log files and forgets their tails.
    async fn clear(&self, snapshot: &Snapshot, ids: &[usize]) -> Response {
        let mut files = Vec::new();
        let mut results = Vec::new();
        for &i in ids {
            let Some(view) = snapshot.programs.get(i) else { continue };
            for log in [&view.logs.stdout, &view.logs.stderr] {
                log.tail.clear();
                files.extend(log.file.clone());
            }
            results.push(ActionResult {
                name: view.full_name(),
                ok: true,
                message: "cleared".into(),
                state: view.state,
            });
        }
        self.sink.clear(files).await;
        Response::Actions { results }
    }

    async fn send(&self, command: Command) -> Result<Vec<Result<u64, String>>, String> {
        let (reply, answer) = oneshot::channel();
        let gone = || "supd is shutting down".to_string();
        self.commands.send(Envelope { command, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    /// Re-reads the config off the event loop (it reads files and the user database) and
    /// hands it to the supervisor. A config that does not load changes nothing.
    async fn reload(&self, dry_run: bool) -> Response {
        let path = self.config.clone();
        let loaded = match tokio::task::spawn_blocking(move || crate::config::load(&path)).await {
            Ok(Ok(config)) => config,
            Ok(Err(e)) => return error(ErrorKind::BadConfig, format!("config error: {e}; nothing was changed")),
            Err(e) => return error(ErrorKind::BadConfig, format!("cannot load the config: {e}")),
        };
        let (reply, plan) = oneshot::channel();
        let command = Command::Reload { config: Box::new(loaded), dry_run, reply };
        if let Err(e) = self.send(command).await {
            return error(ErrorKind::ShuttingDown, e);
        }
        match plan.await {
            Ok(Ok(plan)) => Response::Reload(plan),
            Ok(Err(e)) => error(ErrorKind::BadConfig, format!("{e}; nothing was changed")),
            Err(_) => error(ErrorKind::ShuttingDown, "supd is shutting down"),
        }
    }

    /// Sends `command(names)`, then waits for each accepted program to settle as `wait` says.
    /// Programs are followed by name: a reload may move them.
    async fn act(&self, command: impl FnOnce(Vec<String>) -> Command, names: Vec<String>, wait: Wait) -> Response {
        let answers = match self.send(command(names.clone())).await {
            Ok(a) => a,
            Err(e) => return error(ErrorKind::ShuttingDown, e),
        };
        let mut snapshot = self.snapshot.clone();
        let mut pending: Vec<(&String, Result<u64, String>)> = names.iter().zip(answers).collect();
        let find = |s: &Snapshot, name: &str| s.programs.iter().position(|p| p.name == name);
        let limit = {
            let s = snapshot.borrow();
            let found = names.iter().filter_map(|n| s.programs.get(find(&s, n)?));
            found.map(|p| p.settle_within).max().unwrap_or_default()
        };
        let deadline = crate::deadline::after_tokio(tokio::time::Instant::now(), limit);
        let mut results: Vec<Option<ActionResult>> = vec![None; pending.len()];
        loop {
            {
                let s = snapshot.borrow_and_update();
                for (slot, (name, answer)) in results.iter_mut().zip(&mut pending) {
                    if slot.is_none()
                        && let Some(p) = find(&s, name).and_then(|i| s.programs.get(i))
                    {
                        *slot = outcome(p, answer, wait);
                    }
                }
            }
            if results.iter().all(Option::is_some) {
                break;
            }
            match tokio::time::timeout_at(deadline, snapshot.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let s = snapshot.borrow();
        let results = results
            .into_iter()
            .zip(&names)
            .filter_map(|(r, name)| {
                let p = s.programs.get(find(&s, name)?)?;
                Some(r.unwrap_or_else(|| ActionResult {
                    name: p.full_name(),
                    ok: false,
                    message: "timed out waiting for the program to settle".into(),
                    state: p.state,
                }))
            })
            .collect();
        Response::Actions { results }
    }
}

/// What an action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Nothing: the answer is the result.
    No,
    /// As the lifecycle says ([`settle::settled`]).
    For(Awaited),
}

/// The result for one program if its action is done, else `None`.
fn outcome(p: &ProgramView, answer: &Result<u64, String>, wait: Wait) -> Option<ActionResult> {
    let result = |ok: bool, message: String| Some(ActionResult { name: p.full_name(), ok, message, state: p.state });
    let spawns_before = match answer {
        Err(e) => return result(false, e.clone()),
        Ok(n) => *n,
    };
    let Wait::For(awaited) = wait else { return result(true, "signalled".into()) };
    let progress =
        Progress { state: p.state, spawns: p.spawns, restart_pending: p.restart_pending, survivors: &p.survivors };
    match (settle::settled(progress, spawns_before, awaited)?, awaited) {
        (Settled::Done, Awaited::Stopped) => result(true, "stopped".into()),
        (Settled::Done, Awaited::Started) => result(true, "started".into()),
        (Settled::LeftSurvivors, Awaited::Stopped) => result(false, survivors(&p.survivors)),
        (Settled::LeftSurvivors, Awaited::Started) => {
            result(false, format!("started, but the old process: {}", survivors(&p.survivors)))
        }
        (Settled::Failed, _) => {
            result(false, format!("{}: {}", p.state, super::status::status(p, Instant::now()).description))
        }
    }
}

/// What a stop that could not end a program's tree says: its pids.
fn survivors(pids: &[i32]) -> String {
    let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
    format!("still alive after SIGKILL: pid {}", pids.join(", "))
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

/// The names of the programs `ids` of `snapshot`.
fn names_of(snapshot: &Snapshot, ids: &[usize]) -> Vec<String> {
    ids.iter().filter_map(|&i| snapshot.programs.get(i)).map(|p| p.name.clone()).collect()
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
