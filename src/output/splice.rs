//! The fast path for a stream that goes only to a log file (no passthrough): a thread of its
//! own moves the pipe's bytes into the file with splice(2), so they are copied once, by the
//! kernel, and never pass through supd's memory, its event loop or the writer thread.
//!
//! Two things make it cheap under a flood (measured in bench/logs.py):
//! - the pipe grows to 1 MiB, and after a large move the thread naps [`COALESCE`] so the next
//!   move carries up to a megabyte instead of the producer's last 8 KiB write; a program that
//!   writes a line now and then is never delayed, and the nap is shorter than the time a
//!   1 GiB/s producer needs to fill the pipe, so it never blocks the program;
//! - the in-memory tail reads back only the last 64 KiB of each move from the page cache (all
//!   of it while someone runs `supctl tail -f`).
//!
//! When the file refuses a splice (a FIFO or `/dev/stdout`, or a write fault) the thread reads
//! the bytes itself and hands them to [`LogFile::write`], which keeps the usual rules: nothing
//! stops the program, faults are reported, writing resumes once they clear.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::logfile::{LogFile, Spliced};
use super::tail::{TAIL_BYTES, Tail};

/// The pipe size asked for (Linux's default `pipe-max-size`).
const PIPE_SIZE: libc::c_int = 1 << 20;
/// The most moved by one splice.
const MOVE_MAX: usize = 1 << 20;
/// A move at least this large means the program is writing in bulk.
const BULK: usize = 4096;
/// How long to let a bulk writer's output gather in the pipe before the next move.
const COALESCE: Duration = Duration::from_micros(250);

/// Starts the thread for one stream; `done` is dropped when it ends (at EOF of the pipe).
pub fn start(pipe: OwnedFd, file: Arc<Mutex<LogFile>>, tail: Arc<Tail>, done: impl Send + 'static) -> io::Result<()> {
    std::thread::Builder::new().name("supd-splice".into()).stack_size(64 * 1024).spawn(move || {
        run(pipe.as_fd(), &file, &tail);
        drop(done);
    })?;
    Ok(())
}

fn run(pipe: BorrowedFd<'_>, file: &Mutex<LogFile>, tail: &Tail) {
    // SAFETY: F_SETPIPE_SZ on a pipe we own; failure (a lowered pipe-max-size) leaves the
    // default size, and then a nap could fill the pipe, so there are none.
    let grown = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) } >= PIPE_SIZE;
    let mut buf = Vec::new();
    while wait_readable(pipe) {
        let Ok(mut f) = file.lock() else { return };
        let moved = match f.splice_from(pipe, MOVE_MAX) {
            Spliced::Eof => return,
            Spliced::Moved { n, at } => {
                read_back(&f, at, n, tail, &mut buf);
                n
            }
            Spliced::Refused => {
                buf.resize(TAIL_BYTES, 0);
                // SAFETY: reads into a live buffer of its length.
                let n = unsafe { libc::read(pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                match usize::try_from(n) {
                    Ok(0) => return,
                    Ok(n) => {
                        f.write(&buf[..n]);
                        tail.push(&buf[..n]);
                        n
                    }
                    Err(_) if retryable(&io::Error::last_os_error()) => 0,
                    Err(_) => return,
                }
            }
        };
        drop(f);
        // A move of half the pipe or more means the program outpaces the disk: no nap then.
        if grown && (BULK..PIPE_SIZE as usize / 2).contains(&moved) {
            std::thread::sleep(COALESCE);
        }
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

/// Waits until the pipe has data or its write end is closed; false on an error.
fn wait_readable(pipe: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd { fd: pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd; no timeout: this thread exists to wait for this pipe.
        match unsafe { libc::poll(&mut pfd, 1, -1) } {
            n if n > 0 => return pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
}

fn retryable(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock)
}
