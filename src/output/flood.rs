//! A passthrough stream whose program floods it (more than [`FLOOD_BYTES`] within
//! [`FLOOD_WINDOW`]) leaves the event loop for a thread of its own, which works like the splice
//! thread: it reads the pipe in large pieces (see [`PipeReader`]) into one buffer, frames them
//! into another, and writes both itself, to supd's stdout or stderr (taking turns with the
//! writer thread, whole buffers of whole lines at a time) and to the stream's log file. On the
//! event loop every 4 KiB the program writes would cost a wake-up of supd, a message, and a
//! wake-up of the writer thread; here a wake-up carries up to 128 KiB, and nothing is
//! allocated per read. The thread lasts until the stream ends; a program that never floods
//! never has one.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime};

use super::reader::{PipeReader, retryable};
use super::{FRAMED_MAX, Sink, StreamLog, with_file, write_stdio};

/// Bytes within [`FLOOD_WINDOW`] that make a stream a flood (8 MiB/s).
pub const FLOOD_BYTES: usize = 8 << 20;
/// See [`FLOOD_BYTES`].
pub const FLOOD_WINDOW: Duration = Duration::from_secs(1);
/// The most read at once (larger reads measured no faster in bench/logs.py); the thread holds
/// this and up to `FRAMED_MAX` of framed lines.
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
        // What the event loop read before must be out first.
        sink.wait_written();
        run(&PipeReader::new(pipe), &log, pending);
        drop(done);
    })?;
    Ok(())
}

fn run(pipe: &PipeReader, log: &StreamLog, mut pending: Vec<u8>) {
    let (mut buf, mut out) = (Vec::with_capacity(CHUNK), Vec::new());
    while pipe.wait() {
        buf.clear();
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if retryable(&e) => continue,
            Err(_) => break,
        };
        log.tail.push(&buf);
        if let Some(framer) = &log.framer {
            let (mut rest, now) = (&buf[..], SystemTime::now());
            while !rest.is_empty() {
                out.clear();
                rest = &rest[framer.frame_into(&mut out, &mut pending, rest, now, FRAMED_MAX)..];
                if !out.is_empty() {
                    write_stdio(super::fd(log.stream), &out);
                }
            }
        }
        if let Some(file) = &log.file {
            with_file(&file.file, |f| f.write(&buf));
        }
        pipe.pace(n, CHUNK);
    }
    if let Some(framer) = &log.framer {
        write_stdio(super::fd(log.stream), &framer.finish(&mut pending, SystemTime::now()));
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
