//! The fast path for a stream that goes only to a log file (no passthrough): a thread of its
//! own moves the pipe's bytes into the file with splice(2), so they are copied once, by the
//! kernel, and never pass through supd's memory, its event loop or the writer thread. Moves
//! carry up to a megabyte under a flood (see [`PipeReader`]), and the in-memory tail reads back
//! only the last 64 KiB of each from the page cache (all of it while someone runs
//! `supctl tail -f`).
//!
//! When the file refuses a splice (a FIFO or `/dev/stdout`, or a write fault) the thread reads
//! the bytes itself and hands them to [`LogFile::write`], which keeps the usual rules: nothing
//! stops the program, faults are reported, writing resumes once they clear.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use super::logfile::{LogFile, Spliced};
use super::reader::{PIPE_SIZE, PipeReader, retryable};
use super::tail::{TAIL_BYTES, Tail};

/// Starts the thread for one stream; `done` is dropped when it ends (at EOF of the pipe).
pub fn start(pipe: OwnedFd, file: Arc<Mutex<LogFile>>, tail: Arc<Tail>, done: impl Send + 'static) -> io::Result<()> {
    std::thread::Builder::new().name("supd-splice".into()).stack_size(64 * 1024).spawn(move || {
        run(&PipeReader::new(pipe), &file, &tail);
        drop(done);
    })?;
    Ok(())
}

fn run(pipe: &PipeReader, file: &Mutex<LogFile>, tail: &Tail) {
    let mut buf = Vec::new();
    while pipe.wait() {
        let Ok(mut f) = file.lock() else { return };
        let moved = match f.splice_from(pipe.fd(), PIPE_SIZE) {
            Spliced::Eof => return,
            Spliced::Moved { n, at } => {
                read_back(&f, at, n, tail, &mut buf);
                n
            }
            Spliced::Refused => {
                buf.clear();
                buf.reserve(TAIL_BYTES);
                match pipe.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        f.write(&buf);
                        tail.push(&buf);
                        n
                    }
                    Err(e) if retryable(&e) => 0,
                    Err(_) => return,
                }
            }
        };
        drop(f);
        pipe.pace(moved, PIPE_SIZE);
    }
}

/// Feeds the tail the bytes just moved to offset `at`: the last 64 KiB of them, or all of
/// them, in 64 KiB pieces, while someone follows the stream.
fn read_back(f: &LogFile, at: u64, n: usize, tail: &Tail, buf: &mut Vec<u8>) {
    let from = if tail.followed() { 0 } else { n.saturating_sub(TAIL_BYTES) };
    let mut off = from;
    while off < n {
        let want = (n - off).min(TAIL_BYTES);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let got = f.read_back(at + off as u64, &mut buf[..want]);
        if got == 0 {
            return;
        }
        tail.push(&buf[..got]);
        off += got;
    }
}
