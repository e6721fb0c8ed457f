//! Program output: each program's stdout and stderr go to supd's own, line by line, behind a
//! `name | ` prefix, so `docker logs` shows everything.
//!
//! Readers are async tasks on the supervisor's thread; one writer thread owns fds 1 and 2, so a
//! slow reader of supd's stdout (a stalled log driver) never blocks the event loop. Between
//! them sits a bounded channel: when it is full a reader stops reading, the program's pipe
//! fills, and the program blocks in write(2). Back-pressure, never dropped lines.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use tokio::net::unix::pipe;
use tokio::sync::mpsc;

/// A line longer than this is passed on in pieces of this size, each its own prefixed line,
/// so memory stays bounded whatever a program writes (Docker splits at 16 KiB the same way).
pub const MAX_LINE: usize = 64 * 1024;
/// How many chunks may wait for the writer thread before readers stop reading.
const QUEUE: usize = 64;

thread_local! {
    /// One read buffer shared by every reader on the supervisor's thread: a reader holds it
    /// only between readiness and the end of one `read`, never across an await.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_LINE]);
}

/// Which of supd's own streams a chunk goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// fd 1.
    Stdout,
    /// fd 2.
    Stderr,
}

impl Stream {
    fn fd(self) -> RawFd {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Msg {
    Write(Stream, Vec<u8>),
    /// Answer once everything queued before has been written.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The sending side of the writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<Msg>,
}

impl Sink {
    /// Starts the writer thread. Errors: the thread could not be created.
    pub fn start() -> io::Result<Sink> {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        std::thread::Builder::new().name("supd-output".into()).stack_size(64 * 1024).spawn(move || {
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Write(stream, bytes) => write_all(stream.fd(), &bytes),
                    Msg::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })?;
        Ok(Sink { tx })
    }

    /// Waits, at most `timeout`, until everything queued so far is written. For exit: call it
    /// outside the async runtime (it blocks).
    pub fn flush(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = done_rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
    }

    /// Forwards everything read from `fd` to `stream`, each line behind `prefix`, until EOF
    /// (which comes once every process holding the pipe's write end has closed it). The task
    /// ends at EOF; its handle lets shutdown wait for the last lines.
    pub fn forward(
        &self,
        fd: OwnedFd,
        prefix: std::sync::Arc<[u8]>,
        stream: Stream,
    ) -> io::Result<tokio::task::JoinHandle<()>> {
        let pipe = pipe::Receiver::from_owned_fd(fd)?;
        let sink = self.clone();
        Ok(tokio::spawn(async move { sink.pump(pipe, &prefix, stream).await }))
    }

    async fn pump(&self, pipe: pipe::Receiver, prefix: &[u8], stream: Stream) {
        let mut pending = Vec::new();
        loop {
            if pipe.readable().await.is_err() {
                break;
            }
            let read = SCRATCH.with_borrow_mut(|buf| match pipe.try_read(buf) {
                Ok(0) => None,
                Ok(n) => Some(frame(&mut pending, &buf[..n], prefix)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Vec::new()),
                Err(_) => None,
            });
            match read {
                None => break,
                Some(out) if out.is_empty() => continue,
                Some(out) => {
                    if self.tx.send(Msg::Write(stream, out)).await.is_err() {
                        return;
                    }
                }
            }
        }
        if !pending.is_empty() {
            let mut out = Vec::with_capacity(prefix.len() + pending.len() + 1);
            out.extend_from_slice(prefix);
            out.extend_from_slice(&pending);
            out.push(b'\n');
            let _ = self.tx.send(Msg::Write(stream, out)).await;
        }
    }

    /// A `tracing` writer for supd's own log lines, which go to stderr through the same queue
    /// so they interleave whole with program lines. When the queue is full (a flooding program
    /// and a stalled stderr) the line is written directly rather than lost or awaited.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter { sink: Some(self.clone()), buf: Vec::new() }
    }
}

/// Appends every complete line of `data` (the first joined to `pending`) to the returned
/// buffer, each behind `prefix`; keeps the unfinished tail in `pending`, cut into `MAX_LINE`
/// pieces when it grows that long.
fn frame(pending: &mut Vec<u8>, data: &[u8], prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 4 * prefix.len());
    let mut rest = data;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        out.extend_from_slice(prefix);
        out.append(pending);
        out.extend_from_slice(&rest[..=i]);
        rest = &rest[i + 1..];
    }
    pending.extend_from_slice(rest);
    while pending.len() >= MAX_LINE {
        out.extend_from_slice(prefix);
        out.extend(pending.drain(..MAX_LINE));
        out.push(b'\n');
    }
    if pending.is_empty() && pending.capacity() > 4096 {
        *pending = Vec::new();
    }
    out
}

/// Writes all of `bytes` to `fd`, waiting out EAGAIN on a non-blocking descriptor. Other
/// errors (EPIPE when nobody reads supd's stdout) drop the rest: there is nowhere to report to.
fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a live slice to a descriptor supd keeps open for its lifetime.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n >= 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 1000) };
            }
            _ => return,
        }
    }
}

/// See [`Sink::log_writer`].
#[derive(Debug)]
pub struct LogWriter {
    sink: Option<Sink>,
    buf: Vec<u8>,
}

impl LogWriter {
    /// A writer straight to stderr, for before the writer thread exists.
    pub fn direct() -> LogWriter {
        LogWriter { sink: None, buf: Vec::new() }
    }
}

impl io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            return;
        }
        let rejected = match &self.sink {
            Some(sink) => sink.tx.try_send(Msg::Write(Stream::Stderr, buf)).err().and_then(|e| match e {
                mpsc::error::TrySendError::Full(Msg::Write(_, b))
                | mpsc::error::TrySendError::Closed(Msg::Write(_, b)) => Some(b),
                _ => None,
            }),
            None => Some(buf),
        };
        if let Some(buf) = rejected {
            write_all(io::stderr().as_raw_fd(), &buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_and_keeps_partial_tail() {
        let mut pending = Vec::new();
        assert_eq!(frame(&mut pending, b"one\ntw", b"p | "), b"p | one\n");
        assert_eq!(pending, b"tw");
        assert_eq!(frame(&mut pending, b"o\nthree\n", b"p | "), b"p | two\np | three\n");
        assert!(pending.is_empty());
    }

    #[test]
    fn long_lines_are_cut_not_lost() {
        let mut pending = Vec::new();
        let data = vec![b'x'; MAX_LINE * 2 + 10];
        let out = frame(&mut pending, &data, b"p | ");
        assert_eq!(out.len(), 2 * (4 + MAX_LINE + 1));
        assert_eq!(pending.len(), 10);
        let out = frame(&mut pending, b"y\n", b"p | ");
        assert_eq!(out, [b"p | ".as_slice(), &[b'x'; 10], b"y\n"].concat());
    }
}
