//! A reader of supd's stdout/stderr that stops reading (a slow `docker logs` driver in
//! blocking mode, `supd | sleep`) freezes nothing.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Supd, wait_until};

const PROGRAMS: &str = r#"
[program.chatty]
command = ["sh", "-c", "while :; do echo chatty chatty chatty chatty chatty chatty; done"]
startsecs = 0
[program.crash]
command = ["sh", "-c", "sleep 0.05; exit 1"]
startsecs = 0
autorestart = true
backoff_initial = "10ms"
backoff_max = "50ms"
[program.slow]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
startsecs = 0
stopwaitsecs = 2
"#;

/// Bytes waiting in a pipe.
fn queued(fd: &impl AsRawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    n
}

/// Before: supd's own log line fell back to a blocking write on the event loop when the output
/// queue was full, so `supctl status` timed out and SIGTERM was ignored.
#[test]
fn a_stalled_stdout_reader_freezes_nothing() {
    let _heavy = crate::heavy();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut supd = Supd::launch_to(&[], "", PROGRAMS, Some(OwnedFd::from(writer)));
    supd.wait_ready();
    wait_until("supd's stdout pipe to fill", Duration::from_secs(10), || (queued(&reader) >= 48 * 1024).then_some(()));
    // And stay full for a while, so supd has log lines it cannot write.
    let restarts = |supd: &Supd| supd.program("crash")["restarts"].as_u64().unwrap_or(0);
    let before = restarts(&supd);
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let (code, out, err) = supd.ctl(&["--timeout", "5", "status"]);
        worst = worst.max(t.elapsed());
        assert!(code == 0 || code == 3, "{out}{err}");
    }
    assert!(worst < Duration::from_secs(1), "supctl status took {worst:?} while stdout was blocked");
    wait_until("crash to keep restarting", Duration::from_secs(10), || (restarts(&supd) >= before + 5).then_some(()));

    // Output flows again: supd says how many of its own lines it dropped.
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::spawn({
        let seen = Arc::clone(&seen);
        move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut seen = seen.lock().unwrap();
                seen.extend_from_slice(&buf[..n]);
                if seen.len() > 64 << 20 {
                    seen.drain(..32 << 20);
                }
            }
        }
    });
    wait_until("the dropped-lines report", Duration::from_secs(10), || {
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        (text.contains("of its own log lines dropped while stdout was blocked")).then_some(())
    });
    let (_, metrics) = supd.http_get("/metrics");
    assert!(metrics.contains("supd_log_lines_dropped_total"), "{metrics}");

    // SIGTERM is acted on within stopwaitsecs (2 s) + 1 s even though stdout was blocked.
    nix::sys::signal::kill(supd.host_pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    supd.wait_exit(Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(4), "shutdown took {:?}", t.elapsed());
}

/// The same with the pipe never drained: shutdown still completes in time.
#[test]
fn sigterm_is_obeyed_while_stdout_stays_blocked() {
    let (reader, writer) = std::io::pipe().unwrap();
    let mut supd = Supd::launch_to(&[], "", PROGRAMS, Some(OwnedFd::from(writer)));
    supd.wait_ready();
    wait_until("supd's stdout pipe to fill", Duration::from_secs(10), || (queued(&reader) >= 48 * 1024).then_some(()));
    nix::sys::signal::kill(supd.host_pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    supd.wait_exit(Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(4), "shutdown took {:?}", t.elapsed());
    drop(reader);
}
