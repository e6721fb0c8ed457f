//! Bounding a program: `max_rss` restarts one whose tree stays over its limit (superlance
//! memmon's job, built in), and leaves alone one that stays under it.

use std::time::Duration;

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);

/// A program that holds `mib` MiB, written so that it is resident.
fn holder(name: &str, mib: u32, limit: &str) -> String {
    format!(
        "[program.{name}]\ncommand = [\"/usr/bin/python3\", \"-c\", \"import time; x = b'x' * ({mib} << 20); \
         print('holding', flush=True); time.sleep(1000)\"]\nstartsecs = 0\n\
         max_rss = \"{limit}\"\nmax_rss_for = \"300ms\"\nmax_rss_interval = \"100ms\"\n"
    )
}

#[test]
fn a_tree_over_max_rss_is_restarted_and_counted_and_one_under_it_is_not() {
    let supd = Supd::start(&format!("{}{}", holder("hog", 64, "32MB"), holder("modest", 8, "256MB")));
    let first = supd.wait_state("hog", "RUNNING", 5 * S)["pid"].clone();
    let mut follower = std::process::Command::new(crate::harness::SUPCTL)
        .args(["-s", &supd.socket.display().to_string(), "events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let hog = wait_until("hog restarted for max_rss", 15 * S, || {
        let p = supd.program("hog");
        (p["max_rss_restarts"].as_u64() >= Some(1) && p["state"] == "RUNNING").then_some(p)
    });
    assert_ne!(hog["pid"], first, "a new process");
    assert!(hog["restarts"].as_u64() >= Some(1), "{hog}");
    assert!(hog["description"].as_str().unwrap().contains("for max_rss"), "{hog}");
    let modest = supd.program("modest");
    assert_eq!((modest["restarts"].as_u64(), modest.get("max_rss_restarts")), (Some(0), None), "{modest}");

    // supd's log and its feed say why.
    let log = supd.wait_output("over max_rss 32.0 MiB for 300ms; restarting it", 5 * S);
    assert!(log.contains("hog: tree RSS "), "{log}");
    use std::io::BufRead;
    // The hog keeps growing past its limit after each restart, so another event comes.
    let lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let said = lines.map_while(Result::ok).find(|l| l.contains(" memory ")).unwrap_or_default();
    let _ = follower.kill();
    assert!(said.contains("hog memory") && said.contains("over max_rss"), "{said}");
    let _ = follower.wait();

    let (_, metrics) = supd.http_get("/metrics");
    let counted = metrics.lines().find(|l| l.starts_with("supd_program_max_rss_restarts_total{") && l.contains("hog"));
    assert!(counted.is_some_and(|l| !l.ends_with(" 0")), "{metrics}");
}
