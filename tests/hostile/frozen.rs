//! A stopped (SIGSTOP) program recovers at once, not after stopwaitsecs.

use std::time::{Duration, Instant};

use crate::harness::{Supd, wait_until};

/// Before: stopsignal alone reached a stopped process, which cannot act on it, so the stop
/// waited the whole stopwaitsecs for SIGKILL.
#[test]
fn a_stopped_program_restarts_without_waiting_stopwaitsecs() {
    let supd = Supd::start("[program.a]\ncommand = \"sleep 600\"\nstartsecs = 0\nstopwaitsecs = 30\n");
    let pid = supd.wait_state("a", "RUNNING", Duration::from_secs(10))["pid"].as_i64().unwrap();
    assert_eq!(supd.ctl(&["signal", "STOP", "a"]).0, 0);
    wait_until("a to be stopped (T)", Duration::from_secs(5), || {
        supd.ns_processes().iter().any(|p| p.cmdline == "sleep 600" && p.state == 'T').then_some(())
    });
    let started = Instant::now();
    let (code, out, err) = supd.ctl(&["restart", "a"]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    assert!(took < Duration::from_secs(5), "restart of a stopped program took {took:?} (stopwaitsecs is 30 s)");
    let new = supd.program("a");
    assert_ne!(new["pid"].as_i64(), Some(pid));
    assert!(supd.output().contains("stopped: a (killed by SIGTERM)"), "{}", supd.output());
}
