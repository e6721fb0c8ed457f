//! A scrape of `/metrics` leaves nothing running: an idle supd is back to zero wake-ups.

use std::time::Duration;

use crate::harness::Supd;

/// Context switches of every thread of `pid` so far (each is a wake-up).
fn switches(pid: nix::unistd::Pid) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// Before: the first scrape started a sampler thread that walked /proc every 5 s forever.
#[test]
fn after_a_scrape_an_idle_supd_does_not_wake() {
    let supd = Supd::start("[program.a]\ncommand = \"sleep 600\"\nstartsecs = 0\n");
    supd.wait_state("a", "RUNNING", Duration::from_secs(10));
    let (code, body) = supd.http_get("/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("supd_program_resident_memory_bytes{program=\"a\",group=\"a\"}"), "{body}");
    // Let what the scrape and the status calls set off settle, then watch.
    std::thread::sleep(Duration::from_millis(500));
    let pid = supd.host_pid();
    let before = switches(pid);
    std::thread::sleep(Duration::from_secs(6));
    let woke = switches(pid) - before;
    assert_eq!(woke, 0, "supd woke {woke} times in 6 idle seconds after one scrape");
}
