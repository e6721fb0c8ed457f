//! Program output: each stream of each program goes to up to three places:
//! - supd's own stdout/stderr, line by line behind a prefix (the default), so `docker logs`
//!   shows everything;
//! - a log file with supervisord's rotation (`stdout_logfile` …);
//! - an in-memory tail of its last 64 KiB, for `supctl tail [-f]`.
//!
//! Readers are async tasks on the supervisor's thread; one writer thread writes fds 1 and 2 and
//! the log files, so neither a slow reader of supd's stdout nor a slow disk ever blocks the
//! event loop. Between them sits a bounded queue: when it is full a reader stops reading, the
//! program's pipe fills, and the program blocks in write(2). Back-pressure, never dropped
//! lines. Two kinds of stream have a thread of their own instead, which reads, and writes what
//! it read itself: one that goes only to a file (the `splice` module), and one whose program
//! floods it, from the moment it does (the `flood` module).

mod flood;
mod frame;
pub mod logfile;
mod reader;
mod splice;
pub mod tail;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use flood::Meter;
pub use frame::Framer;
pub use logfile::{FileState, LogFile};
pub use tail::Tail;

use crate::config::{Config, ProgramConfig, StreamConfig};

/// A line longer than this is passed through in pieces of this size, each its own prefixed
/// line, so memory stays bounded whatever a program writes (Docker splits at 16 KiB the same
/// way). Files get the bytes as they are.
pub const MAX_LINE: usize = 64 * 1024;
/// The most read from a pipe at once.
const CHUNK: usize = 64 * 1024;
/// The passthrough lines of one read are framed into buffers of about this size (the last line
/// may take one past it), so an empty line that becomes a whole prefix or a whole JSON object
/// cannot blow up memory.
const FRAMED_MAX: usize = 64 * 1024;
/// How many chunks may wait for the writer thread before readers stop reading (1 MiB).
const QUEUE: usize = 16;

/// supd's own log lines dropped since the writer thread last said so (see [`LogWriter`]).
static OWN_DROPPED: AtomicU64 = AtomicU64::new(0);
/// supd's own log lines dropped since it started, for `/metrics`.
static OWN_DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// How many of supd's own log lines were dropped because its stdout/stderr (or log file) could
/// not take them, since it started (`supd_log_lines_dropped_total`).
pub fn own_lines_dropped() -> u64 {
    OWN_DROPPED_TOTAL.load(Ordering::Relaxed)
}

/// Which of supd's own streams passthrough lines go to (the config's name for them).
pub use crate::config::StdStream as Stream;

/// The descriptor of `stream`.
fn fd(stream: Stream) -> RawFd {
    match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    }
}

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Msg {
    /// Passthrough lines to fd 1 or 2.
    Write(Stream, Vec<u8>),
    /// Raw output to a log file.
    File(Arc<Mutex<LogFile>>, Bytes),
    /// A line of supd's own log.
    Own(Vec<u8>),
    /// Reopen every log file.
    Reopen(oneshot::Sender<()>),
    /// Truncate these log files and drop their backups.
    Clear(Vec<Arc<Mutex<LogFile>>>, oneshot::Sender<()>),
    /// Open a log file now, if it is not open (a program starts).
    Open(Arc<Mutex<LogFile>>),
    /// Answer once everything queued before has been written.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// One stream of one program: where its output goes.
#[derive(Debug, Clone)]
pub struct StreamLog {
    /// Its last 64 KiB.
    pub tail: Arc<Tail>,
    /// Its log file.
    pub file: Option<FileLog>,
    /// How its lines are framed for the passthrough; `None` when it has none.
    pub framer: Option<Framer>,
    /// Which of supd's streams the passthrough uses.
    pub stream: Stream,
}

/// A stream's log file, shared by the writer thread, the stream's splice thread and status.
#[derive(Debug, Clone)]
pub struct FileLog {
    /// The file itself; locked only around a write, a splice or a reopen.
    file: Arc<Mutex<LogFile>>,
    /// Its fault, read by status without waiting for a write.
    pub state: Arc<FileState>,
    /// Its path (supervisord's `stdout_logfile`), for XML-RPC's process info.
    pub path: Arc<std::path::Path>,
}

/// Both streams of one program.
#[derive(Debug, Clone)]
pub struct ProgramLogs {
    /// stdout (with stderr in it under `redirect_stderr`).
    pub stdout: StreamLog,
    /// stderr.
    pub stderr: StreamLog,
}

impl ProgramLogs {
    /// The faults of its log files, for status.
    pub fn errors(&self) -> Vec<String> {
        [&self.stdout, &self.stderr].iter().filter_map(|s| s.file.as_ref().and_then(|f| f.state.error())).collect()
    }
}

/// The sending side of the writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<Msg>,
    files: Registry,
    /// supd's own log: its last 64 KiB and `[supervisor] logfile`.
    own: StreamLog,
}

impl Sink {
    /// Starts the writer thread for supd's own log (`[supervisor] logfile`, else stderr).
    /// Errors: the thread could not be created.
    pub fn start(config: &Config) -> io::Result<Sink> {
        let files = Registry::default();
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let own = StreamLog {
            tail: Arc::default(),
            file: config.supervisor.logfile.clone().map(|cfg| register(&files, cfg)),
            framer: None,
            stream: Stream::Stderr,
        };
        let (own_tail, own_file) = (Arc::clone(&own.tail), own.file.as_ref().map(|f| Arc::clone(&f.file)));
        let registry = Arc::clone(&files);
        std::thread::Builder::new().name("supd-output".into()).stack_size(128 * 1024).spawn(move || {
            while let Some(msg) = rx.blocking_recv() {
                // Output flows again: say what was lost meanwhile (through the queue, so the
                // line has supd's log format; should it not fit, it is counted again).
                let dropped = OWN_DROPPED.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    tracing::warn!("supd: {dropped} of its own log lines dropped while stdout was blocked");
                }
                match msg {
                    Msg::Write(stream, bytes) => write_stdio(fd(stream), &bytes),
                    Msg::File(file, bytes) => with_file(&file, |f| f.write(&bytes)),
                    Msg::Open(file) => with_file(&file, LogFile::open_now),
                    Msg::Own(bytes) => {
                        own_tail.push(&bytes);
                        match &own_file {
                            Some(f) => with_file(f, |f| f.write(&bytes)),
                            None => write_stdio(2, &bytes),
                        }
                    }
                    Msg::Reopen(done) => {
                        for file in live(&registry) {
                            with_file(&file, LogFile::reopen);
                        }
                        let _ = done.send(());
                    }
                    Msg::Clear(files, done) => {
                        files.iter().for_each(|file| with_file(file, LogFile::clear));
                        let _ = done.send(());
                    }
                    Msg::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })?;
        Ok(Sink { tx, files, own })
    }

    /// supd's own log (supervisord's main log: `readLog`, `maintail`): its last 64 KiB, and
    /// `[supervisor] logfile` when set.
    pub fn own_log(&self) -> &StreamLog {
        &self.own
    }

    /// Where each of `config`'s programs' output goes, in config order (see [`Sink::logs`]).
    pub fn logs_for(&self, config: &Config) -> Vec<ProgramLogs> {
        let width = prefix_width(config);
        config.programs.iter().map(|p| self.logs(p, width)).collect()
    }

    /// Where `p`'s output goes: its tails, its log files (registered for reopen) and its
    /// passthrough framers, the default prefix padded to `width` bytes.
    pub fn logs(&self, p: &ProgramConfig, width: usize) -> ProgramLogs {
        let stream_log = |s: &StreamConfig, name: &'static str, to: Stream| {
            let file = s.file.clone().map(|cfg| register(&self.files, cfg));
            let framer = s.passthrough.then(|| Framer::new(&p.name, name, p.log_prefix.as_deref(), p.log_json, width));
            StreamLog { tail: Arc::default(), file, framer, stream: s.to.unwrap_or(to) }
        };
        ProgramLogs {
            stdout: stream_log(&p.stdout, "stdout", Stream::Stdout),
            stderr: stream_log(&p.stderr, "stderr", Stream::Stderr),
        }
    }

    /// Opens `logs`' files now, off the event loop (a program starts): through the writer
    /// thread, or, when its queue is full (a stalled stdout), a blocking-pool thread.
    pub fn open_files(&self, logs: &ProgramLogs) {
        for file in [&logs.stdout.file, &logs.stderr.file].into_iter().flatten() {
            if let Err(e) = self.tx.try_send(Msg::Open(Arc::clone(&file.file))) {
                let Msg::Open(file) = e.into_inner() else { continue };
                tokio::task::spawn_blocking(move || with_file(&file, LogFile::open_now));
            }
        }
    }

    /// Reopens every log file (SIGUSR2, `supctl reopen`); resolves once done.
    pub async fn reopen(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Reopen(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Truncates these log files (`supctl clear`); resolves once done.
    pub async fn clear(&self, files: Vec<FileLog>) {
        let files = files.into_iter().map(|f| f.file).collect();
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Clear(files, done)).await.is_ok() {
            let _ = wait.await;
        }
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

    /// Passes everything read from `fd` to `log`'s places until EOF (which comes once every
    /// process holding the pipe's write end has closed it). The task's handle lets shutdown
    /// wait for the last lines. A stream that goes only to a file takes the splice path; one
    /// that floods moves to a thread part way (the `flood` module).
    pub fn forward(&self, fd: OwnedFd, log: &StreamLog) -> io::Result<tokio::task::JoinHandle<()>> {
        if let (Some(file), None) = (&log.file, &log.framer) {
            return Ok(tokio::spawn(splice::run(fd, Arc::clone(&file.file), Arc::clone(&log.tail))));
        }
        let pipe = pipe::Receiver::from_owned_fd(fd)?;
        let (sink, log) = (self.clone(), log.clone());
        Ok(tokio::spawn(async move { sink.pump(pipe, log).await }))
    }

    /// Reads `pipe` on the event loop until EOF, or until its program floods it (see
    /// [`Meter`]) and a thread takes over.
    async fn pump(&self, pipe: pipe::Receiver, log: StreamLog) {
        let mut pending = Vec::new();
        let mut meter = Meter::new();
        loop {
            if pipe.readable().await.is_err() {
                break;
            }
            let mut buf = Vec::with_capacity(CHUNK);
            let n = match pipe.try_read_buf(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            };
            if n < CHUNK / 16 {
                buf.shrink_to_fit(); // a short line holds no 64 KiB
            }
            let chunk = Bytes::from(buf);
            log.tail.push(&chunk);
            if let Some(framer) = &log.framer {
                let (mut rest, now) = (&chunk[..], SystemTime::now());
                while !rest.is_empty() {
                    let mut lines = Vec::new();
                    rest = &rest[framer.frame_into(&mut lines, &mut pending, rest, now, FRAMED_MAX)..];
                    if !lines.is_empty() && self.tx.send(Msg::Write(log.stream, lines)).await.is_err() {
                        return;
                    }
                }
            }
            if let Some(file) = &log.file
                && self.tx.send(Msg::File(Arc::clone(&file.file), chunk)).await.is_err()
            {
                return;
            }
            if meter.flooding(n) {
                match self.hand_off(&pipe, &log, &mut pending) {
                    Ok(ended) => {
                        drop(pipe);
                        let _ = ended.await;
                        return;
                    }
                    Err(e) => tracing::warn!("cannot move a flood of program output to a thread: {e}"),
                }
            }
        }
        if let Some(framer) = &log.framer {
            let last = framer.finish(&mut pending, SystemTime::now());
            if !last.is_empty() {
                let _ = self.tx.send(Msg::Write(log.stream, last)).await;
            }
        }
    }

    /// Moves a flooding stream to a thread of its own (the `flood` module) with a second
    /// descriptor of its pipe, so the stream goes on here if that fails; resolves when the
    /// thread ends.
    fn hand_off(
        &self,
        pipe: &pipe::Receiver,
        log: &StreamLog,
        pending: &mut Vec<u8>,
    ) -> io::Result<oneshot::Receiver<()>> {
        let fd = pipe.as_fd().try_clone_to_owned()?;
        let (done, ended) = oneshot::channel::<()>();
        // A thread that cannot start takes the unfinished line with it: keep a copy.
        let kept = pending.clone();
        flood::start(fd, self.clone(), log.clone(), std::mem::take(pending), done).inspect_err(|_| *pending = kept)?;
        Ok(ended)
    }

    /// Blocks until everything queued so far is written; for threads outside the runtime.
    fn wait_written(&self) {
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if self.tx.blocking_send(Msg::Flush(done)).is_ok() {
            let _ = written.recv();
        }
    }

    /// A `tracing` writer for supd's own log lines, which go through the same queue (to
    /// `[supervisor] logfile`, or stderr) so they interleave whole with program lines. When the
    /// queue is full (a stalled reader of supd's stdout, a flooding program) the line is
    /// dropped and counted, never awaited or written on the caller's thread: that thread is
    /// the event loop, which must not block. The writer thread reports the count once output
    /// flows again, and `/metrics` has the total.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter { sink: Some(self.clone()), buf: Vec::new() }
    }
}

/// Runs `f` on a log file (a poisoned lock, which cannot happen as nothing panics under it,
/// skips the file).
fn with_file(file: &Mutex<LogFile>, f: impl FnOnce(&mut LogFile)) {
    if let Ok(mut file) = file.lock() {
        f(&mut file);
    }
}

/// Every log file of the programs that exist, for reopen: weak, so a program removed by a
/// reload lets its files close.
type Registry = Arc<Mutex<Vec<Weak<Mutex<LogFile>>>>>;

/// A log file for `cfg`, registered for reopen (not opened yet).
fn register(registry: &Registry, cfg: crate::config::LogFileConfig) -> FileLog {
    let path = Arc::from(cfg.path.as_path());
    let file = LogFile::new(cfg);
    let state = file.state();
    let file = Arc::new(Mutex::new(file));
    if let Ok(mut files) = registry.lock() {
        files.retain(|f| f.strong_count() > 0);
        files.push(Arc::downgrade(&file));
    }
    FileLog { file, state, path }
}

fn live(registry: &Registry) -> Vec<Arc<Mutex<LogFile>>> {
    registry.lock().map(|files| files.iter().filter_map(Weak::upgrade).collect()).unwrap_or_default()
}

/// The default prefix's width: the longest program name.
pub fn prefix_width(config: &Config) -> usize {
    config.programs.iter().map(|p| p.name.len()).max().unwrap_or(0)
}

/// Writes all of `bytes` to supd's `fd` (1 or 2), waiting out EAGAIN on a non-blocking
/// descriptor. Other errors (EPIPE when nobody reads supd's stdout) drop the rest: there is
/// nowhere to report to. The writer thread and flood threads take turns on each descriptor, so
/// each buffer of whole lines goes out whole.
fn write_stdio(fd: RawFd, mut bytes: &[u8]) {
    static TURNS: [Mutex<()>; 2] = [Mutex::new(()), Mutex::new(())];
    let _turn = TURNS[usize::from(fd == 2)].lock();
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
        match &self.sink {
            Some(sink) => {
                if sink.tx.try_send(Msg::Own(buf)).is_err() {
                    OWN_DROPPED.fetch_add(1, Ordering::Relaxed);
                    OWN_DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Before the writer thread exists (start-up, single-command mode): nothing else
            // writes yet, and a blocked stderr can only delay start-up.
            None => write_stdio(io::stderr().as_raw_fd(), &buf),
        }
    }
}
