//! A process that leaves its program's process group (`setsid`, a double fork, as daemons do)
//! does not survive `supctl stop`, with a cgroup v2 per program or without one.

use std::time::{Duration, Instant};

use crate::harness::{Supd, wait_until};

/// A program that ignores TERM, with a grandchild that calls `setsid`, double-forks away from
/// it and ignores TERM too: supervisord leaves it running.
const ESCAPER: &str = r#"
[program.a]
command = ["sh", "-c", "trap '' TERM; (setsid sh -c 'trap \"\" TERM; exec sleep 601' &) ; exec sleep 602"]
startsecs = 0
stopwaitsecs = 1
"#;

fn alive(supd: &Supd, what: &str) -> bool {
    supd.ns_processes().iter().any(|p| p.cmdline.starts_with(what) && p.state != 'Z')
}

fn stops_the_escaped_grandchild(supd: &Supd) {
    supd.wait_state("a", "RUNNING", Duration::from_secs(10));
    wait_until("the escapee to run", Duration::from_secs(5), || alive(supd, "sleep 601").then_some(()));
    let (code, tree, err) = supd.ctl(&["status", "--tree", "a"]);
    assert_eq!(code, 0, "{err}");
    assert!(tree.contains("sleep 602") && tree.contains("sleep 601"), "status --tree lists both:\n{tree}");
    let (_, json, _) = supd.ctl(&["--json", "status", "--tree", "a"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["programs"][0]["processes"].as_array().map(Vec::len), Some(2), "{json}");

    let t = Instant::now();
    let (code, out, err) = supd.ctl(&["stop", "a"]);
    assert_eq!((code, out.as_str()), (0, "a: stopped\n"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(4), "stop took {:?} (stopwaitsecs 1)", t.elapsed());
    assert!(!alive(supd, "sleep 601"), "the escaped grandchild survived supctl stop");
    assert!(!alive(supd, "sleep 602"));
}

/// Before: the escapee was alive 4 s after `supctl stop` reported success.
#[test]
fn stop_ends_a_grandchild_that_left_the_process_group() {
    let supd = Supd::start_with("cgroup = \"off\"", ESCAPER);
    supd.wait_output("no cgroup v2 for programs", Duration::from_secs(5));
    stops_the_escaped_grandchild(&supd);
    // Started again, it is found again.
    assert_eq!(supd.ctl(&["start", "a"]).0, 0);
    stops_the_escaped_grandchild(&supd);
}

#[test]
fn stop_ends_a_grandchild_that_left_the_process_group_through_the_cgroup() {
    let supd = Supd::start_in_cgroup2(ESCAPER);
    supd.wait_output("each program runs in a cgroup of its own", Duration::from_secs(5));
    stops_the_escaped_grandchild(&supd);
}

/// supd's own shutdown ends it too, within stopwaitsecs + 1 s (before: the escapee held the
/// output pipe open and shutdown waited on it).
#[test]
fn shutdown_ends_the_escaped_grandchild_in_time() {
    let mut supd = Supd::start_with("cgroup = \"off\"", ESCAPER);
    supd.wait_state("a", "RUNNING", Duration::from_secs(10));
    wait_until("the escapee to run", Duration::from_secs(5), || alive(&supd, "sleep 601").then_some(()));
    nix::sys::signal::kill(supd.host_pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    assert_eq!(supd.wait_exit(Duration::from_secs(10)), 0);
    assert!(t.elapsed() < Duration::from_secs(2), "shutdown took {:?}", t.elapsed());
    assert!(supd.output().contains("stopped: a"), "{}", supd.output());
}
