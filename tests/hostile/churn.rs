//! Restart churn (200 programs that each exit every 100 ms, about 2,000 spawns a second on
//! this machine) starves neither the control socket nor `/metrics`, and memory stays bounded.

use std::time::{Duration, Instant};

use crate::harness::Supd;

pub fn churners(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[program.c{i}]\ncommand = [\"sleep\", \"0.1\"]\nstartsecs = 0\nautorestart = true\n\
                 backoff_reset = \"50ms\"\n"
            )
        })
        .collect()
}

fn p99(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[(times.len() * 99).div_ceil(100) - 1]
}

/// Before: the control socket and /metrics stopped answering for the whole run, and supd grew
/// from 7 to 26 MiB.
#[test]
fn restart_churn_starves_no_client() {
    let _heavy = crate::heavy();
    let supd = Supd::start(&churners(200));
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = supd.rss_kib();
    let restarts = |supd: &Supd| -> u64 { supd.status().iter().filter_map(|p| p["restarts"].as_u64()).sum() };
    let first = restarts(&supd);
    let started = Instant::now();
    let (mut status, mut metrics) = (Vec::new(), Vec::new());
    while started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let (code, out, err) = supd.ctl(&["--timeout", "30", "status"]);
        status.push(t.elapsed());
        assert!(code == 0 || code == 3, "{out}{err}");
        let t = Instant::now();
        assert_eq!(supd.http_get("/metrics").0, 200);
        metrics.push(t.elapsed());
    }
    let spawned = restarts(&supd) - first;
    let rate = spawned as f64 / started.elapsed().as_secs_f64();
    let rss = supd.rss_kib();
    let (status, metrics) = (p99(status), p99(metrics));
    eprintln!(
        "churn: {rate:.0} restarts/s; p99 supctl status {status:?}, GET /metrics {metrics:?}; RSS {rss_before} -> {rss} KiB"
    );
    assert!(rate > 200.0, "only {rate:.0} restarts a second: the churn did not happen");
    assert!(status < Duration::from_secs(1), "supctl status p99 {status:?} under churn");
    assert!(metrics < Duration::from_secs(1), "GET /metrics p99 {metrics:?} under churn");
    assert!(rss < rss_before + 4 * 1024, "supd grew from {rss_before} to {rss} KiB under churn");
}
