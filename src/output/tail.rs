//! The in-memory tail of each program stream: its last 64 KiB, for `supctl tail`, whether or
//! not a log file is configured, and a broadcast of new output for `supctl tail -f`.
//!
//! A stream spliced into its log file never passes through supd's memory, so its newest bytes
//! are kept as a place in that file (a `Deferred` span) and read back only when someone asks
//! for the tail or the stream moves on to another file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;

/// Bytes kept per stream.
pub const TAIL_BYTES: usize = 64 * 1024;

/// One stream's tail.
#[derive(Debug, Default)]
pub struct Tail {
    ring: Mutex<Ring>,
    /// The channel to `tail -f` followers, made by the first one: a broadcast channel holds its
    /// 64 slots from the start, a few KiB per stream, which 200 idle programs would pay for.
    follow: OnceLock<broadcast::Sender<Bytes>>,
}

/// The last `TAIL_BYTES` bytes, in a buffer that grows with them until full, then wraps.
#[derive(Debug, Default)]
struct Ring {
    buf: Vec<u8>,
    /// Where the next byte goes.
    end: usize,
    /// Bytes kept (at most `TAIL_BYTES`).
    len: usize,
    /// The newest bytes, still only in a log file.
    deferred: Option<Deferred>,
}

/// The last `len` bytes (at most `TAIL_BYTES`) spliced into `file`, ending at offset `end`.
/// The open file is kept, so a rotation (a rename) does not lose them.
#[derive(Debug)]
struct Deferred {
    file: Arc<File>,
    end: u64,
    len: usize,
}

impl Ring {
    /// Copies the deferred bytes in from their file. A file truncated meanwhile (logrotate's
    /// `copytruncate`) gives back fewer or none: the tail then lacks them; the file never did.
    fn settle(&mut self) {
        let Some(d) = self.deferred.take() else { return };
        let mut buf = vec![0; d.len];
        let mut got = 0;
        while got < d.len {
            match d.file.read_at(&mut buf[got..], d.end - (d.len - got) as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.push(&buf[..got]);
    }

    fn push(&mut self, data: &[u8]) {
        self.settle();
        let mut data = &data[data.len().saturating_sub(TAIL_BYTES)..];
        if self.buf.len() < TAIL_BYTES {
            // Not full yet: the buffer grows with what comes, so a quiet stream (and supd's own
            // log) holds what it wrote, not 64 KiB.
            let take = data.len().min(TAIL_BYTES - self.buf.len());
            let want = (self.buf.len() + take).max(self.buf.capacity() * 2).min(TAIL_BYTES);
            self.buf.reserve_exact(want - self.buf.len());
            self.buf.extend_from_slice(&data[..take]);
            self.end = self.buf.len() % TAIL_BYTES;
            self.len = self.buf.len();
            data = &data[take..];
            if data.is_empty() {
                return;
            }
        }
        let first = data.len().min(TAIL_BYTES - self.end);
        self.buf[self.end..self.end + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
        self.end = (self.end + data.len()) % TAIL_BYTES;
        self.len = (self.len + data.len()).min(TAIL_BYTES);
    }

    fn contents(&self) -> Vec<u8> {
        let start = (self.end + TAIL_BYTES - self.len) % TAIL_BYTES;
        if self.len == 0 {
            Vec::new()
        } else if start < self.end {
            self.buf[start..self.end].to_vec()
        } else {
            [&self.buf[start..], &self.buf[..self.end]].concat()
        }
    }
}

impl Tail {
    /// Keeps `chunk` (dropping the oldest bytes beyond 64 KiB) and passes it to followers.
    pub fn push(&self, chunk: &[u8]) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.push(chunk);
        }
        if let Some(follow) = self.follow.get().filter(|f| f.receiver_count() > 0) {
            let _ = follow.send(Bytes::copy_from_slice(chunk));
        }
    }

    /// Whether someone follows the stream (`supctl tail -f`).
    pub fn followed(&self) -> bool {
        self.follow.get().is_some_and(|f| f.receiver_count() > 0)
    }

    /// Notes that `n` bytes were spliced into `file` at offset `at`, to be read back from it
    /// only when asked for (see the module's doc); bytes noted in another file before are read
    /// back now. Blocking: it may read a file.
    pub fn defer(&self, file: &Arc<File>, at: u64, n: usize) {
        let Ok(mut ring) = self.ring.lock() else { return };
        match &mut ring.deferred {
            Some(d) if Arc::ptr_eq(&d.file, file) && d.end == at => {
                d.end += n as u64;
                d.len = (d.len + n).min(TAIL_BYTES);
            }
            _ => {
                ring.settle();
                ring.deferred = Some(Deferred { file: Arc::clone(file), end: at + n as u64, len: n.min(TAIL_BYTES) });
            }
        }
    }

    /// The last `lines` lines kept (fewer if 64 KiB holds fewer; the first may be partial).
    /// Blocking: it may read a log file (see [`Tail::defer`]).
    pub fn last_lines(&self, lines: usize) -> Vec<u8> {
        let Ok(mut ring) = self.ring.lock() else { return Vec::new() };
        ring.settle();
        let all = ring.contents();
        let body = all.strip_suffix(b"\n").unwrap_or(&all);
        let start =
            if lines == 0 { body.len() } else { memchr::memrchr_iter(b'\n', body).nth(lines - 1).map_or(0, |i| i + 1) };
        all[start..].to_vec()
    }

    /// The last `n` bytes kept (fewer if fewer are kept): supervisord's `readProcessStdoutLog`
    /// with a negative offset. Blocking: it may read a log file (see [`Tail::defer`]).
    pub fn last_bytes(&self, n: usize) -> Vec<u8> {
        let Ok(mut ring) = self.ring.lock() else { return Vec::new() };
        ring.settle();
        let all = ring.contents();
        all[all.len().saturating_sub(n)..].to_vec()
    }

    /// New output from now on. A follower that falls more than 64 chunks behind is told how
    /// many it missed (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.follow.get_or_init(|| broadcast::channel(64).0).subscribe()
    }

    /// Forgets what is kept (`supctl clear`).
    pub fn clear(&self) {
        if let Ok(mut ring) = self.ring.lock() {
            *ring = Ring::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_64_kib_and_returns_last_lines() {
        let t = Tail::default();
        t.push(b"a\nb\nc\n");
        assert_eq!(t.last_lines(2), b"b\nc\n");
        assert_eq!(t.last_lines(10), b"a\nb\nc\n");
        t.push(&[b'x'; TAIL_BYTES]);
        assert_eq!(t.last_lines(1).len(), TAIL_BYTES);
        t.push(b"\nend\n");
        assert_eq!(t.last_lines(1), b"end\n");
        t.clear();
        assert!(t.last_lines(5).is_empty());
    }

    #[test]
    fn spliced_bytes_are_read_back_from_their_file_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"one\ntwo\nmore\n").unwrap();
        let t = Tail::default();
        t.push(b"zero\n");
        let first = Arc::new(File::open(&a).unwrap());
        t.defer(&first, 0, 4);
        t.defer(&first, 4, 4);
        assert_eq!(t.last_lines(3), b"zero\none\ntwo\n");
        // More goes to the file, it is renamed away (a rotation), and the next move goes to a
        // new one: the bytes noted in the first are read back, under its new name.
        t.defer(&first, 8, 5);
        std::fs::rename(&a, dir.path().join("a.1")).unwrap();
        std::fs::write(&b, b"three\n").unwrap();
        t.defer(&Arc::new(File::open(&b).unwrap()), 0, 6);
        assert_eq!(t.last_lines(3), b"two\nmore\nthree\n");
    }

    #[test]
    fn the_ring_wraps_around() {
        let mut r = Ring::default();
        let data: Vec<u8> = (0..TAIL_BYTES + 100).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(999) {
            r.push(piece);
        }
        assert_eq!(r.contents(), data[100..]);
    }

    #[test]
    fn a_quiet_stream_holds_only_what_it_wrote() {
        let mut r = Ring::default();
        r.push(b"ready\n");
        assert_eq!(r.contents(), b"ready\n");
        assert!(r.buf.capacity() < 64, "{}", r.buf.capacity());
        let data: Vec<u8> = (0..3 * TAIL_BYTES).map(|i| (i % 253) as u8).collect();
        r.push(&data[..TAIL_BYTES - 6]); // exactly full
        r.push(&data[TAIL_BYTES - 6..]);
        assert_eq!(r.contents(), data[2 * TAIL_BYTES..]);
        assert_eq!(r.buf.capacity(), TAIL_BYTES);
    }
}
