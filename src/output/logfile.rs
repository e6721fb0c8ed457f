//! A log file with supervisord's size-based rotation (PATH → PATH.1 … PATH.N, oldest dropped),
//! written only by the output thread.
//!
//! A write never stops anything: on an error (disk full, a deleted directory, permission
//! denied) the bytes for the file are dropped, the fault is shown in `supctl status` and
//! logged at most once a minute, and writing resumes by itself once the fault clears.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::LogFileConfig;

/// How often a failing file's fault is logged.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// How often a file that cannot be opened is tried again.
const RETRY_OPEN_EVERY: Duration = Duration::from_secs(1);

/// A log file's fault, shared with readers of the status.
#[derive(Debug, Default)]
pub struct FileState {
    error: Mutex<Option<String>>,
}

impl FileState {
    /// The current fault, if writing fails.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// A log file as the output thread holds it.
#[derive(Debug)]
pub struct LogFile {
    cfg: LogFileConfig,
    /// Shared with the tails of spliced streams, which read their last bytes back from it.
    file: Option<Arc<File>>,
    size: u64,
    /// Regular files rotate; `/dev/stdout`, FIFOs and the like are written as they are.
    seekable: bool,
    state: Arc<FileState>,
    last_report: Option<Instant>,
    last_open_attempt: Option<Instant>,
}

impl LogFile {
    /// A log file for `cfg`, opened on first write.
    pub fn new(cfg: LogFileConfig) -> LogFile {
        LogFile {
            cfg,
            file: None,
            size: 0,
            seekable: false,
            state: Arc::default(),
            last_report: None,
            last_open_attempt: None,
        }
    }

    /// Its fault state, for status.
    pub fn state(&self) -> Arc<FileState> {
        Arc::clone(&self.state)
    }

    /// Opens (or creates) the file now if it is not open, so a program that writes nothing
    /// still has its file, and a file that cannot be opened shows its fault at once.
    pub fn open_now(&mut self) {
        self.open();
    }

    /// Appends `data`, rotating exactly at `maxbytes` so every byte lands in one file once.
    pub fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if !self.open() {
                return;
            }
            let room = self.limit().saturating_sub(self.size);
            if room == 0 {
                self.rotate();
                continue;
            }
            let n = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let Some(mut file) = self.file.as_deref() else { return };
            match file.write(&data[..n]) {
                Ok(written) => {
                    self.size += written as u64;
                    data = &data[written..];
                    self.recovered();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed("cannot write", &e);
                    self.file = None; // reopened (and retried) with the next write
                    return;
                }
            }
        }
    }

    /// Moves up to `max` bytes waiting in pipe `from` into the file with splice(2), so they
    /// never pass through supd's memory; stops at the rotation boundary like [`LogFile::write`].
    /// The pipe must be readable (poll it first), so that an empty pipe means its end: the call
    /// does not wait for the pipe, only for the disk. Returns the file and where the bytes
    /// landed in it, for the in-memory tail to read them back.
    pub fn splice_from(&mut self, from: BorrowedFd<'_>, max: usize) -> Spliced {
        if !self.open() || !self.seekable {
            return Spliced::Refused;
        }
        let limit = self.limit();
        if limit <= self.size {
            // Rotate only for bytes to come: at the pipe's end a full file stays the last.
            if pipe_len(from) == 0 {
                return Spliced::Eof;
            }
            self.rotate();
            if !self.open() {
                return Spliced::Refused;
            }
        }
        let room = limit.saturating_sub(self.size);
        let len = max.min(usize::try_from(room).unwrap_or(usize::MAX));
        let Some(file) = self.file.clone() else { return Spliced::Refused };
        // SAFETY: both descriptors are open for the call; null offsets use the file positions.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                file.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        match usize::try_from(n) {
            Ok(0) => Spliced::Eof,
            Ok(n) => {
                let at = self.size;
                self.size += n as u64;
                self.recovered();
                Spliced::Moved { n, at, file }
            }
            Err(_) => {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => Spliced::Again,
                    _ => {
                        self.failed("cannot write", &e);
                        self.file = None;
                        Spliced::Refused
                    }
                }
            }
        }
    }

    /// Closes the file; the next write opens PATH again (`supctl reopen`, SIGUSR2: after an
    /// external `mv`, as logrotate does it).
    pub fn reopen(&mut self) {
        self.file = None;
        self.last_open_attempt = None;
    }

    /// Truncates PATH and removes its backups (`supctl clear`).
    pub fn clear(&mut self) {
        self.file = None;
        if let Err(e) = File::create(&self.cfg.path) {
            self.failed("cannot truncate", &e);
        }
        for i in 1..=self.cfg.backups {
            let _ = std::fs::remove_file(backup(&self.cfg.path, i));
        }
        self.size = 0;
    }

    /// The size at which the file rotates: `maxbytes`, or never (0, or not a regular file).
    fn limit(&self) -> u64 {
        if self.seekable && self.cfg.maxbytes > 0 { self.cfg.maxbytes } else { u64::MAX }
    }

    fn open(&mut self) -> bool {
        if let Some(file) = self.file.as_mut() {
            // Without O_APPEND, a file truncated by someone else (logrotate's copytruncate)
            // would be written at the old offset, behind a hole: follow it to its new end.
            if self.seekable && file.metadata().is_ok_and(|m| m.len() < self.size) {
                self.size = (&**file).seek(SeekFrom::End(0)).unwrap_or(0);
            }
            return true;
        }
        let now = Instant::now();
        if self.state.error().is_some() && self.last_open_attempt.is_some_and(|t| now - t < RETRY_OPEN_EVERY) {
            return false;
        }
        self.last_open_attempt = Some(now);
        // A regular file is opened read-write at its end rather than O_APPEND, as splice(2)
        // refuses O_APPEND targets, and readable so a spliced stream's tail can be read back
        // from it. Anything else (a FIFO must not be read by supd) is opened to append.
        let regular = std::fs::metadata(&self.cfg.path).map_or(true, |m| m.is_file());
        let mut options = OpenOptions::new();
        options.create(true);
        if regular {
            options.read(true).write(true)
        } else {
            options.append(true)
        };
        let opened = options.open(&self.cfg.path);
        match opened.and_then(|mut f| if regular { f.seek(SeekFrom::End(0)).map(|_| f) } else { Ok(f) }) {
            Ok(file) => {
                let meta = file.metadata().ok();
                self.seekable = meta.as_ref().is_some_and(|m| m.is_file());
                self.size = meta.map_or(0, |m| m.len());
                self.file = Some(Arc::new(file));
                true
            }
            Err(e) => {
                self.failed("cannot open", &e);
                false
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let path = &self.cfg.path;
        // With no backups the file is replaced rather than truncated in place: a spliced
        // stream's tail may still have to read its last bytes from the old one.
        let result = if self.cfg.backups == 0 {
            std::fs::remove_file(path)
                .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        } else {
            for i in (1..self.cfg.backups).rev() {
                let _ = std::fs::rename(backup(path, i), backup(path, i + 1));
            }
            std::fs::rename(path, backup(path, 1))
        };
        self.size = 0;
        if let Err(e) = result {
            self.failed("cannot rotate", &e);
        }
    }

    fn failed(&mut self, what: &str, e: &std::io::Error) {
        let message = format!("{}: {what}: {e}", self.cfg.path.display());
        let now = Instant::now();
        if self.last_report.is_none_or(|t| now - t >= REPORT_EVERY) {
            self.last_report = Some(now);
            tracing::warn!("log file {message}; the program keeps running, these lines are not saved");
        }
        if let Ok(mut error) = self.state.error.lock() {
            *error = Some(message);
        }
    }

    fn recovered(&mut self) {
        let was = self.state.error.lock().ok().and_then(|mut e| e.take());
        if was.is_some() {
            self.last_report = None;
            tracing::info!("log file {}: writing again", self.cfg.path.display());
        }
    }
}

/// What [`LogFile::splice_from`] did.
#[derive(Debug)]
pub enum Spliced {
    /// `n` bytes now lie in `file` at offset `at`.
    Moved {
        /// Bytes moved.
        n: usize,
        /// Their offset in `file`.
        at: u64,
        /// The file they went to (the next move may go to another, after a rotation).
        file: Arc<File>,
    },
    /// Nothing moved this time (interrupted, or the pipe had nothing after all).
    Again,
    /// The pipe's write end is closed and it is empty.
    Eof,
    /// The file cannot take a splice now (not open, not a regular file, or a write fault): the
    /// caller reads the bytes itself.
    Refused,
}

/// How many bytes `pipe` holds (FIONREAD); 0 when it cannot say.
pub(super) fn pipe_len(pipe: BorrowedFd<'_>) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r == 0 { usize::try_from(n).unwrap_or(0) } else { 0 }
}

/// PATH.i
fn backup(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap_or_default()
    }

    #[test]
    fn rotates_exactly_at_maxbytes_and_keeps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut f = LogFile::new(LogFileConfig { path: path.clone(), maxbytes: 10, backups: 2 });
        let data: Vec<u8> = (0..45u8).collect();
        for chunk in data.chunks(7) {
            f.write(chunk);
        }
        // 45 bytes in files of 10: the last 5 in PATH, 10 each in .1 and .2, the rest dropped.
        assert_eq!(read(&path), data[40..]);
        assert_eq!(read(&backup(&path, 1)), data[30..40]);
        assert_eq!(read(&backup(&path, 2)), data[20..30]);
        assert!(!backup(&path, 3).exists());
        f.clear();
        assert!(read(&path).is_empty() && !backup(&path, 1).exists());
    }

    #[test]
    fn zero_backups_truncates_and_zero_maxbytes_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut f = LogFile::new(LogFileConfig { path: path.clone(), maxbytes: 4, backups: 0 });
        f.write(b"abcdefgh-");
        assert_eq!(read(&path), b"-");
        let mut g = LogFile::new(LogFileConfig { path: dir.path().join("big.log"), maxbytes: 0, backups: 1 });
        g.write(&[b'x'; 1000]);
        assert_eq!(read(&dir.path().join("big.log")).len(), 1000);
    }

    #[test]
    fn a_failing_file_reports_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.log");
        let mut f = LogFile::new(LogFileConfig { path: path.clone(), maxbytes: 0, backups: 0 });
        f.write(b"lost\n");
        assert!(f.state().error().unwrap_or_default().contains("cannot open"));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        f.last_open_attempt = None; // skip the 1 s retry pause
        f.write(b"kept\n");
        assert_eq!((read(&path).as_slice(), f.state().error()), (b"kept\n".as_slice(), None));
    }
}
