//! Idle and slowloris connections on both listeners hold nobody off: a fresh `supctl status`,
//! `supctl health` and `GET /health` answer at once, and supd's memory stays bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Supd, http_get};

/// One connection of the attacker's.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(target: &Target) -> Option<Conn> {
        let c = match target {
            Target::Tcp(port) => Conn::Tcp(TcpStream::connect(("127.0.0.1", *port)).ok()?),
            Target::Unix(path) => Conn::Unix(UnixStream::connect(path).ok()?),
        };
        match &c {
            Conn::Tcp(s) => s.set_nonblocking(true).ok()?,
            Conn::Unix(s) => s.set_nonblocking(true).ok()?,
        }
        Some(c)
    }
    /// Whether supd closed it.
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 512];
        let r = match self {
            Conn::Tcp(s) => s.read(&mut b),
            Conn::Unix(s) => s.read(&mut b),
        };
        !matches!(r, Err(ref e) if e.kind() == ErrorKind::WouldBlock)
    }
    fn send(&mut self, b: &[u8]) {
        let _ = match self {
            Conn::Tcp(s) => s.write(b),
            Conn::Unix(s) => s.write(b),
        };
    }
}

#[derive(Clone)]
enum Target {
    Tcp(u16),
    Unix(PathBuf),
}

/// Holds `n` connections to `target` open until `stop`: the first half idle, the second half
/// slowloris (a request head one byte a second that never ends). Whatever supd closes is
/// opened again at once, as a determined attacker would.
fn attack(target: Target, n: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let head: &[u8] = match target {
            Target::Tcp(_) => b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            Target::Unix(_) => b"{\"cmd\":\"status\",\"names\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        };
        let mut conns: Vec<(Option<Conn>, usize)> = (0..n).map(|_| (Conn::open(&target), 0)).collect();
        let mut reopened = 0;
        let mut last_byte = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let byte_due = last_byte.elapsed() >= Duration::from_secs(1);
            for (i, (conn, sent)) in conns.iter_mut().enumerate() {
                if conn.as_mut().is_none_or(Conn::closed) {
                    *conn = Conn::open(&target);
                    *sent = 0;
                    reopened += 1;
                }
                if byte_due
                    && i >= n / 2
                    && let Some(c) = conn
                {
                    c.send(&head[*sent % head.len()..][..1]);
                    *sent += 1;
                }
            }
            if byte_due {
                last_byte = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reopened
    })
}

fn p99(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() * 99 / 100 - 1]
}

/// Before: 500 idle connections held `supctl status` off for about 15 s (128 slots, a 5 s
/// request timeout), and 1,000 slowloris connections delayed `GET /health` by 4.4 s.
#[test]
fn idle_and_slow_connections_starve_neither_listener() {
    let _heavy = crate::heavy();
    let supd = Supd::start("[program.a]\ncommand = \"sleep 600\"\nstartsecs = 0\n");
    supd.wait_state("a", "RUNNING", Duration::from_secs(10));
    let rss_before = supd.rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let attackers = [
        attack(Target::Tcp(supd.port), 1000, Arc::clone(&stop)),
        attack(Target::Unix(supd.socket.clone()), 1000, Arc::clone(&stop)),
    ];
    // Let the attack settle in: every slot taken, slow heads under way.
    std::thread::sleep(Duration::from_secs(3));
    let (mut status, mut health, mut http) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..100 {
        let t = Instant::now();
        let (code, out, err) = supd.ctl(&["--timeout", "20", "status"]);
        status.push(t.elapsed());
        assert_eq!(code, 0, "{out}{err}");
        let t = Instant::now();
        assert_eq!(supd.ctl(&["--timeout", "20", "health"]).0, 0);
        health.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(http_get(supd.port, "/health").0, 200);
        http.push(t.elapsed());
    }
    let rss_during = supd.rss_kib();
    let fds = std::fs::read_dir(format!("/proc/{}/fd", supd.host_pid())).map(|d| d.count()).unwrap_or(0);
    stop.store(true, Ordering::Relaxed);
    let reopened: Vec<usize> = attackers.into_iter().map(|a| a.join().unwrap()).collect();
    let (status, health, http) = (p99(status), p99(health), p99(http));
    eprintln!(
        "p99 under 1,000 idle/slow connections a listener: supctl status {status:?}, supctl health {health:?}, \
         GET /health {http:?}; supd RSS {rss_before} -> {rss_during} KiB, {fds} fds; attacker reconnects {reopened:?}"
    );
    // Gross bounds (supctl is a process start of its own; bench/hostile.py has the figures).
    for (what, t) in [("supctl status", status), ("supctl health", health), ("GET /health", http)] {
        assert!(t < Duration::from_millis(500), "{what} p99 {t:?} under attack");
    }
    // Bounded by the slots: 2 x 256 connections, with their buffers and tasks (about 16 KiB
    // each in a debug build).
    assert!(rss_during < rss_before + 16 * 1024, "supd grew from {rss_before} to {rss_during} KiB");
}

/// A request head past 16 KiB is refused (431) rather than buffered: hyper's default would let
/// each connection hold about 400 KiB.
#[test]
fn an_oversized_request_head_is_refused() {
    let supd = Supd::start("[program.a]\ncommand = \"sleep 600\"\nstartsecs = 0\n");
    let mut s = TcpStream::connect(("127.0.0.1", supd.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let filler = "a".repeat(20 * 1024);
    let _ = write!(s, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {filler}\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{}", &answer[..answer.len().min(100)]);
    assert_eq!(http_get(supd.port, "/health").0, 200);
}
