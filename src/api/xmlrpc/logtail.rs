//! `GET /logtail/NAME[/stdout|/stderr]`: supervisord's streamed tail, what `supervisorctl tail
//! -f` reads. The last 1 KiB kept, then each new chunk as the program writes it, until the
//! client goes away. A client that reads too slowly skips chunks rather than holding supd up.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::broadcast;

use crate::api::streamed::{Streamed, channel};

use crate::output::StreamLog;

/// What the stream starts with, as supervisord's tail does.
const FIRST_BYTES: usize = 1024;

/// `GET /logtail/NAME[/stdout|/stderr]` (supervisorctl `tail -f`, the dashboard's log pane):
/// the program's stream as it comes; 404 for an unknown name.
pub async fn response(snapshot: &crate::supervisor::Snapshot, spec: &str) -> Response<Either<Full<Bytes>, Streamed>> {
    let (name, stream) = match spec.rsplit_once('/') {
        Some((name, stream @ ("stdout" | "stderr"))) => (name, stream),
        _ => (spec, "stdout"),
    };
    let Some(p) = crate::api::control::select_one(snapshot, name) else {
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(b"no such process\n"))));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let log = if stream == "stderr" { &p.logs.stderr } else { &p.logs.stdout };
    streamed(follow(log).await)
}

/// A `text/plain` response that streams `body`.
pub fn streamed(body: Streamed) -> Response<Either<Full<Bytes>, Streamed>> {
    let mut resp = Response::new(Either::Right(body));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// The body of a `/logtail` of `log`: its last bytes, then what comes, until the client goes.
pub async fn follow(log: &StreamLog) -> Streamed {
    // Subscribed before the last bytes are read, so nothing falls in between.
    let mut updates = log.tail.subscribe();
    let tail = std::sync::Arc::clone(&log.tail);
    let first = tokio::task::spawn_blocking(move || tail.last_bytes(FIRST_BYTES)).await.unwrap_or_default();
    let (tx, body) = channel(16);
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        loop {
            let chunk = tokio::select! {
                chunk = updates.recv() => chunk,
                () = tx.closed() => return, // the client went away
            };
            match chunk {
                Ok(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    body
}
