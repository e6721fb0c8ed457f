//! A passthrough stream whose program floods it (more than [`FLOOD_BYTES`] within
//! [`FLOOD_WINDOW`]) leaves the event loop for a thread of its own, which reads it in large
//! pieces (see [`PipeReader`]) and hands them to the writer thread like the event loop does.
//! On the event loop every 4 KiB the program writes would cost a wake-up of supd and of the
//! writer thread; here one wake-up carries up to 128 KiB. The thread lasts until the stream
//! ends; a program that never floods never has one.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::reader::{PipeReader, retryable};
use super::{Msg, Sink, StreamLog};

/// Bytes within [`FLOOD_WINDOW`] that make a stream a flood (8 MiB/s).
pub const FLOOD_BYTES: usize = 8 << 20;
/// See [`FLOOD_BYTES`].
pub const FLOOD_WINDOW: Duration = Duration::from_secs(1);
/// The most read at once. With the writer thread's queue of 16 messages, a flooding stream
/// holds at most about 4 MiB in supd (its bytes, framed, and the same bytes for its file).
const CHUNK: usize = 128 * 1024;

/// Counts a stream's bytes to tell a flood (see [`FLOOD_BYTES`]).
#[derive(Debug)]
pub struct Meter {
    since: Instant,
    bytes: usize,
}

impl Meter {
    /// A meter starting now.
    pub fn new() -> Meter {
        Meter { since: Instant::now(), bytes: 0 }
    }

    /// Counts `n` bytes just read; true once the stream is a flood.
    pub fn flooding(&mut self, n: usize) -> bool {
        self.bytes += n;
        if self.bytes < FLOOD_BYTES {
            return false;
        }
        let quick = self.since.elapsed() < FLOOD_WINDOW;
        *self = Meter::new();
        quick
    }
}

/// Starts the thread for one stream, with the unfinished line the event loop had read;
/// `done` is dropped when it ends (at EOF of the pipe).
pub fn start(pipe: OwnedFd, sink: Sink, log: StreamLog, pending: Vec<u8>, done: impl Send + 'static) -> io::Result<()> {
    std::thread::Builder::new().name("supd-flood".into()).stack_size(64 * 1024).spawn(move || {
        run(&PipeReader::new(pipe), &sink, &log, pending);
        // After the stream's last lines, so the writer has freed them all.
        let _ = sink.tx.blocking_send(Msg::Trim);
        drop(done);
    })?;
    Ok(())
}

fn run(pipe: &PipeReader, sink: &Sink, log: &StreamLog, mut pending: Vec<u8>) {
    while pipe.wait() {
        let mut buf = Vec::with_capacity(CHUNK);
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if retryable(&e) => continue,
            Err(_) => break,
        };
        for msg in sink.deliver(log, &mut pending, Bytes::from(buf)).into_iter().flatten() {
            if sink.tx.blocking_send(msg).is_err() {
                return;
            }
        }
        pipe.pace(n, CHUNK);
    }
    if let Some(msg) = sink.last_line(log, &mut pending) {
        let _ = sink.tx.blocking_send(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_many_bytes_in_little_time() {
        let mut quick = Meter::new();
        assert!(!quick.flooding(FLOOD_BYTES - 1));
        assert!(quick.flooding(1));
        let mut slow = Meter { since: Instant::now() - 2 * FLOOD_WINDOW, bytes: 0 };
        assert!(!slow.flooding(FLOOD_BYTES), "8 MiB over two seconds is no flood");
        assert!(slow.flooding(FLOOD_BYTES), "the count starts again after each verdict");
    }
}
