//! The fast path for a stream that goes only to a log file (no passthrough): splice(2) moves
//! the pipe's bytes into the file, so they are copied once, by the kernel, and never pass
//! through supd's memory or the writer thread. Moves carry up to a megabyte under a flood (see
//! [`PipeReader`]), and the in-memory tail only notes where they went (`Tail::defer`) and reads
//! them back when asked; while someone runs `supctl tail -f` every move is read back from the
//! page cache at once.
//!
//! No thread per stream: a quiet pipe is watched by the event loop (epoll, through tokio's
//! `AsyncFd`); once it has data it leaves the event loop (so the loop is not woken by each
//! write meanwhile) and is moved on tokio's blocking pool (a file write may wait for the disk)
//! for as long as it keeps coming, at most [`TURN`] bytes a turn, so a flooding stream takes
//! its turns behind the others.
//!
//! When the file refuses a splice (a FIFO or `/dev/stdout`, or a write fault) the turn reads
//! the bytes itself and hands them to [`LogFile::write`], which keeps the usual rules: nothing
//! stops the program, faults are reported, writing resumes once they clear.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use super::logfile::{LogFile, Spliced, pipe_len};
use super::reader::{PIPE_SIZE, PipeReader, retryable};
use super::tail::{TAIL_BYTES, Tail};

/// The most one turn on the blocking pool moves before the stream waits its turn again.
const TURN: usize = 4 * PIPE_SIZE;
/// How long a turn waits on an empty pipe before it hands the pipe back to the event loop: a
/// program writing in bulk refills it within this.
const LINGER: Duration = Duration::from_millis(5);

/// How a turn ended.
enum Turn {
    /// The pipe stayed empty: back to the event loop until it is readable.
    Empty,
    /// It moved [`TURN`] bytes and there may be more: go again, behind whatever is queued.
    More,
    /// The write end is closed and the pipe empty (or it failed): the stream is over.
    Eof,
}

/// Moves `pipe` into `file` until the pipe's end (every holder of its write end closed it).
pub async fn run(pipe: OwnedFd, file: Arc<Mutex<LogFile>>, tail: Arc<Tail>) {
    // Non-blocking, as `AsyncFd` needs.
    let _ = nix::fcntl::fcntl(pipe.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
    let mut reader = PipeReader::new(pipe);
    let mut waiting = true;
    loop {
        if waiting {
            // Registered only while it waits: epoll reports a pipe that already holds data at
            // once, and no write wakes the loop while a turn moves it.
            // SAFETY: the PipeReader owns the descriptor and always returns that same one,
            // and `into_inner` takes it back before anything else uses it.
            let Ok(registered) = (unsafe { AsyncFd::register(reader) }) else { return };
            let ready = registered.readable().await.is_ok();
            reader = registered.into_inner();
            if !ready {
                return;
            }
        }
        let (f, t) = (Arc::clone(&file), Arc::clone(&tail));
        let Ok((back, ended)) = tokio::task::spawn_blocking(move || {
            let ended = turn(&reader, &f, &t);
            (reader, ended)
        })
        .await
        else {
            return;
        };
        reader = back;
        match ended {
            Turn::Empty => waiting = true,
            Turn::More => waiting = false,
            Turn::Eof => return,
        }
    }
}

/// Moves what `pipe` holds while it keeps coming, up to [`TURN`] bytes.
fn turn(pipe: &PipeReader, file: &Mutex<LogFile>, tail: &Tail) -> Turn {
    let mut buf = Vec::new();
    let mut moved_total = 0;
    while moved_total < TURN {
        // An empty pipe ends the turn, and the stream once no one can write to it. (A full
        // file answers an empty pipe as its end, so the end is asked of the pipe itself.)
        if pipe_len(pipe.fd()) == 0 && !pipe.wait_for(LINGER) {
            return if pipe.hung_up() { Turn::Eof } else { Turn::Empty };
        }
        let Ok(mut f) = file.lock() else { return Turn::Eof };
        let moved = match f.splice_from(pipe.fd(), PIPE_SIZE) {
            Spliced::Eof => return Turn::Eof,
            Spliced::Again => 0, // interrupted: the loop asks the pipe again
            Spliced::Moved { n, at, file } if tail.followed() => {
                read_back(&file, at, n, tail, &mut buf);
                n
            }
            Spliced::Moved { n, at, file } => {
                tail.defer(&file, at, n);
                n
            }
            Spliced::Refused => {
                buf.clear();
                buf.reserve(TAIL_BYTES);
                match pipe.read(&mut buf) {
                    Ok(0) => return Turn::Eof,
                    Ok(n) => {
                        f.write(&buf);
                        tail.push(&buf);
                        n
                    }
                    Err(e) if retryable(&e) => 0,
                    Err(_) => return Turn::Eof,
                }
            }
        };
        drop(f);
        moved_total += moved;
        pipe.pace(moved, PIPE_SIZE);
    }
    Turn::More
}

/// Feeds a followed tail every byte just moved to offset `at` of `file`, in 64 KiB pieces.
fn read_back(file: &File, at: u64, n: usize, tail: &Tail, buf: &mut Vec<u8>) {
    buf.resize(TAIL_BYTES, 0);
    let mut off = 0;
    while off < n {
        let want = (n - off).min(TAIL_BYTES);
        match file.read_at(&mut buf[..want], at + off as u64) {
            Ok(0) | Err(_) => return,
            Ok(got) => {
                tail.push(&buf[..got]);
                off += got;
            }
        }
    }
}
