//! supctl's side of the control protocol: connect, send one request, read the responses.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use supd::api::protocol::{Request, Response};

use crate::render::{EXIT_FAILED, EXIT_UNKNOWN};

/// What went wrong talking to supd, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CtlError {
    /// For people.
    pub message: String,
    /// The exit code.
    pub code: i32,
    /// supd reset the connection before any answer (see [`call`], which asks again).
    pub unanswered: bool,
}

/// How many times [`call`] asks again when supd closed the connection before reading the
/// request (it closes an idle connection to make room when a flood of clients fills its
/// slots; such a request was never acted on, so asking again is safe for every verb).
const ATTEMPTS: u32 = 3;

/// Sends `request` over the socket at `path` and waits up to `timeout` for the answer.
pub fn call(path: &Path, request: &Request, timeout: Duration) -> Result<Response, CtlError> {
    let mut attempt = 1;
    loop {
        let mut answer = None;
        let result = stream(path, request, Some(timeout), |r| {
            answer = Some(r);
            false
        });
        match (result, answer) {
            (Ok(()), Some(answer)) => return Ok(answer),
            (Err(e), _) if !e.unanswered || attempt == ATTEMPTS => return Err(e),
            (Ok(()), None) if attempt == ATTEMPTS => {
                return Err(CtlError {
                    message: "supd closed the connection without answering".into(),
                    code: EXIT_FAILED,
                    unanswered: true,
                });
            }
            _ => attempt += 1,
        }
    }
}

/// Sends `request` and hands each response line to `each` until it returns `false` or supd
/// closes the connection (`tail -f` gets many). `timeout` bounds each wait; `None` waits on.
pub fn stream(
    path: &Path,
    request: &Request,
    timeout: Option<Duration>,
    each: impl FnMut(Response) -> bool,
) -> Result<(), CtlError> {
    exchange(connect(path)?, request, timeout, each)
}

/// A connection to supd's socket at `path`; the error says why there is none.
pub fn connect(path: &Path) -> Result<UnixStream, CtlError> {
    let unreachable = |why: String| CtlError {
        message: format!("cannot reach supd at {}: {why}", path.display()),
        code: EXIT_UNKNOWN,
        unanswered: false,
    };
    UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => unreachable("no such socket (is supd running? -s or SUPD_SOCKET name another)".into()),
        std::io::ErrorKind::PermissionDenied => unreachable(
            "permission denied (run as root, or set [supervisor] socket_group to a group you are in and socket_mode = \"0660\")".into(),
        ),
        std::io::ErrorKind::ConnectionRefused => unreachable("connection refused (supd is not running)".into()),
        _ => unreachable(e.to_string()),
    })
}

/// [`stream`] over a connection made by [`connect`]: another thread may shut it down (with a
/// clone of it) to end the exchange.
pub fn exchange(
    mut sock: UnixStream,
    request: &Request,
    timeout: Option<Duration>,
    mut each: impl FnMut(Response) -> bool,
) -> Result<(), CtlError> {
    let failed = |what: &str, e: std::io::Error| {
        let unanswered = matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe);
        CtlError { message: format!("{what}: {e}"), code: EXIT_FAILED, unanswered }
    };
    let _ = sock.set_read_timeout(timeout);
    let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
    let mut line = serde_json::to_vec(request).map_err(|e| failed("cannot encode the request", e.into()))?;
    line.push(b'\n');
    sock.write_all(&line).map_err(|e| failed("cannot send the request to supd", e))?;
    let mut reader = BufReader::new(sock);
    loop {
        let mut answer = String::new();
        let n = reader.read_line(&mut answer).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => CtlError {
                message: format!("supd did not answer within {}s", timeout.unwrap_or_default().as_secs()),
                code: EXIT_FAILED,
                unanswered: false,
            },
            _ => failed("cannot read supd's answer", e),
        })?;
        if n == 0 {
            return Ok(());
        }
        let response = serde_json::from_str(&answer).map_err(|e| failed("cannot decode supd's answer", e.into()))?;
        if !each(response) {
            return Ok(());
        }
    }
}
