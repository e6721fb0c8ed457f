//! The fast path for a stream that goes only to a log file (no passthrough): a thread of its
//! own moves the pipe's bytes into the file with splice(2), so they are copied once, by the
//! kernel, and never pass through supd's memory, its event loop or the writer thread. Moves
//! carry up to a megabyte under a flood (see [`PipeReader`]), and the in-memory tail only notes
//! where they went (`Tail::defer`) and reads them back when asked; while someone runs
//! `supctl tail -f` every move is read back from the page cache at once.
//!
//! When the file refuses a splice (a FIFO or `/dev/stdout`, or a write fault) the thread reads
//! the bytes itself and hands them to [`LogFile::write`], which keeps the usual rules: nothing
//! stops the program, faults are reported, writing resumes once they clear.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
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
            Spliced::Again => 0,
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
