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

/// The last `TAIL_BYTES` bytes, in a buffer allocated on first use and filled by memcpy, or,
/// after a read of 64 KiB or more, that read itself, shared rather than copied: under a flood
/// every read is that large, and keeping the tail then costs no copy at all.
#[derive(Debug, Default)]
struct Ring {
    buf: Vec<u8>,
    /// Where the next byte goes.
    end: usize,
    /// Bytes kept (at most `TAIL_BYTES`).
    len: usize,
    /// A read that holds the whole tail (then `buf` holds nothing that counts).
    whole: Option<Bytes>,
}

impl Ring {
    fn keep(&mut self, chunk: &Bytes) {
        if chunk.len() >= TAIL_BYTES {
            (self.whole, self.end, self.len) = (Some(chunk.clone()), 0, 0);
        } else {
            self.push(chunk);
        }
    }

    fn push(&mut self, data: &[u8]) {
        if let Some(whole) = self.whole.take() {
            self.push(&whole);
        }
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
        if let Some(whole) = &self.whole {
            return whole[whole.len() - TAIL_BYTES..].to_vec();
        }
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

    /// [`Tail::push`] for a read the caller keeps in a [`Bytes`]: shared, not copied, when it
    /// holds 64 KiB or more.
    pub fn push_shared(&self, chunk: &Bytes) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.keep(chunk);
        }
        if self.followed() {
            let _ = self.follow.send(chunk.clone());
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

    #[test]
    fn a_large_read_is_kept_shared_until_a_small_one_follows() {
        let mut r = Ring::default();
        let big: Vec<u8> = (0..TAIL_BYTES * 2).map(|i| (i % 253) as u8).collect();
        r.push(b"old");
        r.keep(&Bytes::from(big.clone()));
        assert_eq!(r.contents(), big[TAIL_BYTES..]);
        r.keep(&Bytes::from_static(b"new"));
        assert_eq!(r.contents(), [&big[TAIL_BYTES + 3..], b"new"].concat());
    }
}
