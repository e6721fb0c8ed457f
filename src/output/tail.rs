//! The in-memory tail of each program stream: its last 64 KiB, for `supctl tail`, whether or
//! not a log file is configured, and a broadcast of new output for `supctl tail -f`.

use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::broadcast;

/// Bytes kept per stream.
pub const TAIL_BYTES: usize = 64 * 1024;

/// One stream's tail.
#[derive(Debug)]
pub struct Tail {
    ring: Mutex<Ring>,
    follow: broadcast::Sender<Bytes>,
}

/// The last `TAIL_BYTES` bytes, in a buffer allocated on first use and filled by memcpy.
#[derive(Debug, Default)]
struct Ring {
    buf: Vec<u8>,
    /// Where the next byte goes.
    end: usize,
    /// Bytes kept (at most `TAIL_BYTES`).
    len: usize,
}

impl Ring {
    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(TAIL_BYTES)..];
        if self.buf.is_empty() {
            self.buf = vec![0; TAIL_BYTES];
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

impl Default for Tail {
    fn default() -> Self {
        Tail { ring: Mutex::new(Ring::default()), follow: broadcast::channel(64).0 }
    }
}

impl Tail {
    /// Keeps `chunk` (dropping the oldest bytes beyond 64 KiB) and passes it to followers.
    pub fn push(&self, chunk: &[u8]) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.push(chunk);
        }
        if self.followed() {
            let _ = self.follow.send(Bytes::copy_from_slice(chunk));
        }
    }

    /// Whether someone follows the stream (`supctl tail -f`).
    pub fn followed(&self) -> bool {
        self.follow.receiver_count() > 0
    }

    /// The last `lines` lines kept (fewer if 64 KiB holds fewer; the first may be partial).
    pub fn last_lines(&self, lines: usize) -> Vec<u8> {
        let Ok(ring) = self.ring.lock() else { return Vec::new() };
        let all = ring.contents();
        let body = all.strip_suffix(b"\n").unwrap_or(&all);
        let start =
            if lines == 0 { body.len() } else { memchr::memrchr_iter(b'\n', body).nth(lines - 1).map_or(0, |i| i + 1) };
        all[start..].to_vec()
    }

    /// New output from now on. A follower that falls more than 64 chunks behind is told how
    /// many it missed (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.follow.subscribe()
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
    fn the_ring_wraps_around() {
        let mut r = Ring::default();
        let data: Vec<u8> = (0..TAIL_BYTES + 100).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(999) {
            r.push(piece);
        }
        assert_eq!(r.contents(), data[100..]);
    }
}
