//! `supctl tail`: the last lines of a program's stream, then, with `-f`, its output as it comes;
//! `supctl maintail`: the same for supd's own log; `supctl events`: supd's live feed.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::control::{Handle, error, select, send};
use super::protocol::{ErrorKind, Response};
use crate::output::StreamLog;

/// `tail`: the `last` lines (or bytes) of one stream, then, with `follow`, new output as it comes until the
/// client goes away. The subscription is taken before the last lines are read, with no await
/// between, so nothing falls in between (readers run on this same thread).
/// With `follow` it also ends when `closed` resolves (the client went away), so an abandoned
/// follower of a silent program does not hold a connection slot.
pub(super) async fn tail(
    handle: &Handle,
    write: &mut (impl AsyncWriteExt + Unpin),
    name: &str,
    stream: Option<String>,
    last: Last,
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
    send_log(write, &log, last, follow, closed).await
}

/// How much of what a log holds to send first.
pub(super) enum Last {
    /// The last lines (the first may be partial).
    Lines(usize),
    /// The last bytes.
    Bytes(usize),
}

/// `maintail`: the last `bytes` of supd's own log, then, with `follow`, its new lines.
pub(super) async fn maintail(
    handle: &Handle,
    write: &mut (impl AsyncWriteExt + Unpin),
    bytes: usize,
    follow: bool,
    closed: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    send_log(write, handle.sink.own_log(), Last::Bytes(bytes), follow, closed).await
}

/// Sends the `last` of `log`, then, with `follow`, each chunk as it comes until `closed`.
async fn send_log(
    write: &mut (impl AsyncWriteExt + Unpin),
    log: &StreamLog,
    last: Last,
    follow: bool,
    closed: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut updates = follow.then(|| log.tail.subscribe());
    let text = |bytes: &[u8]| Response::Tail { data: String::from_utf8_lossy(bytes).into_owned() };
    // Off the event loop: a spliced stream's tail is read back from its log file.
    let tail = Arc::clone(&log.tail);
    let last = tokio::task::spawn_blocking(move || match last {
        Last::Lines(n) => tail.last_lines(n),
        Last::Bytes(n) => tail.last_bytes(n),
    });
    send(write, &text(&last.await.unwrap_or_default())).await?;
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

/// `events`: each change as it happens, until the client goes away (`closed`), falls more than
/// 256 changes behind, or takes no answer for 5 s. Refused when 32 follow already.
pub(super) async fn events(
    handle: &Handle,
    write: &mut (impl AsyncWriteExt + Unpin),
    closed: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let Some(mut follower) = handle.feed.follow() else {
        return send(write, &error(ErrorKind::BadRequest, "too many followers of events; try again later")).await;
    };
    tokio::pin!(closed);
    loop {
        let change = tokio::select! {
            change = follower.next() => change,
            () = &mut closed => return Ok(()),
        };
        let Some(change) = change else { return Ok(()) };
        send(write, &Response::Change((*change).clone())).await?;
    }
}
