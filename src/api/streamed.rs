//! A response body fed by a bounded channel, for answers that go on (`/logtail`, `/events`):
//! a task sends chunks as they come; the body ends when the task drops its sender.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// A streamed body and the sender that feeds it (`capacity` chunks may wait).
pub fn channel(capacity: usize) -> (mpsc::Sender<Bytes>, Streamed) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, Streamed(rx))
}

/// The body's side of [`channel`].
#[derive(Debug)]
pub struct Streamed(mpsc::Receiver<Bytes>);

impl Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
