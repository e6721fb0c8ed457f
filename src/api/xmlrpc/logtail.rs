//! `GET /logtail/NAME[/stdout|/stderr]`: supervisord's streamed tail, what `supervisorctl tail
//! -f` reads. The last 1 KiB kept, then each new chunk as the program writes it, until the
//! client goes away. A client that reads too slowly skips chunks rather than holding supd up.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::{broadcast, mpsc};

use crate::output::StreamLog;

/// What the stream starts with, as supervisord's tail does.
const FIRST_BYTES: usize = 1024;

/// A response body fed by a channel.
pub struct Streamed(mpsc::Receiver<Bytes>);

impl Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// The body of a `/logtail` of `log`: its last bytes, then what comes, until the client goes.
pub async fn follow(log: &StreamLog) -> Streamed {
    // Subscribed before the last bytes are read, so nothing falls in between.
    let mut updates = log.tail.subscribe();
    let tail = std::sync::Arc::clone(&log.tail);
    let first = tokio::task::spawn_blocking(move || tail.last_bytes(FIRST_BYTES)).await.unwrap_or_default();
    let (tx, rx) = mpsc::channel(16);
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
    Streamed(rx)
}
