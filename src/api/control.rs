//! The control API on a unix socket: what supctl talks to.
//!
//! One request line in, one response line out. Reads come from the latest [`Snapshot`];
//! changes go to the supervisor as [`Command`]s, and `start`/`stop`/`restart` then wait on the
//! snapshot until each program settles, bounded by its own startsecs + stopwaitsecs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::admission::{Admission, MAX_CONNECTIONS, Ticket};
use super::protocol::{ErrorKind, Request, Response};
use super::{REQUEST_TIMEOUT, WRITE_TIMEOUT};
use crate::config::SupervisorConfig;
use crate::output::Sink;
use crate::supervisor::{Envelope, ProgramView, Snapshot};

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
    /// supd's live feed (`supctl events`).
    pub feed: crate::events::live::Feed,
    /// The metrics, whose process-tree sampler `status -v` shares.
    pub metrics: Arc<crate::metrics::Metrics>,
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
    let closed = async move {
        // The client sends nothing after its request; a read ends only when it goes.
        let mut byte = [0u8; 1];
        let _ = reader.read(&mut byte).await;
    };
    let result = match request {
        Ok(Request::Tail { name, stream, lines, bytes, follow }) => {
            let last = bytes.map_or(super::tail::Last::Lines(lines), super::tail::Last::Bytes);
            super::tail::tail(&handle, &mut write, &name, stream, last, follow, closed).await
        }
        Ok(Request::Events {}) => super::tail::events(&handle, &mut write, closed).await,
        Ok(Request::Maintail { bytes, follow }) => {
            super::tail::maintail(&handle, &mut write, bytes, follow, closed).await
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

/// The one program `name` names (`NAME` or `GROUP:NAME`, not `GROUP:*` or `all`); `None` when
/// it names none or several.
pub fn select_one<'a>(snapshot: &'a Snapshot, name: &str) -> Option<&'a ProgramView> {
    if name == "all" || name.ends_with(":*") {
        return None;
    }
    match select(snapshot, &[name.to_string()]).ok()?.as_slice() {
        &[i] => snapshot.programs.get(i),
        _ => None,
    }
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
