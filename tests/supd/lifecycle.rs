//! States, transitions, restart timing and backoff, FATAL, required.

use std::time::Duration;

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);

fn spawn_times(path: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn starting_becomes_running_after_startsecs() {
    let supd = Supd::start("[program.web]\ncommand = \"sleep 1000\"\nstartsecs = \"300ms\"\n");
    let p = supd.program("web");
    assert!(p["state"] == "STARTING" || p["state"] == "RUNNING", "{p}");
    let p = supd.wait_state("web", "RUNNING", 5 * S);
    assert!(p["description"].as_str().unwrap().starts_with(&format!("pid {}, uptime 0:00:0", p["pid"])));
    supd.wait_output("web: STARTING -> RUNNING", 5 * S);
}

#[test]
fn kill_9_restarts_at_once_then_backs_off() {
    // Each start appends a timestamp; the program stays up past startsecs, then is killed.
    let supd = Supd::start(
        "[program.svc]\ncommand = [\"sh\", \"-c\", \"date +%s.%N >> @DIR@/starts; exec sleep 1000\"]\n\
         startsecs = 0\nbackoff_initial = \"300ms\"\n",
    );
    let starts = supd.path("starts");
    let mut last_pid = supd.wait_state("svc", "RUNNING", 5 * S)["pid"].as_i64().unwrap();
    for round in 1..=3 {
        wait_until("the start to be logged", 5 * S, || (spawn_times(&starts).len() == round).then_some(()));
        let (code, _, _) = supd.ctl(&["signal", "KILL", "svc"]);
        assert_eq!(code, 0);
        last_pid = wait_until("a new pid", 5 * S, || {
            let p = supd.program("svc");
            (p["state"] == "RUNNING" && p["pid"].as_i64() != Some(last_pid)).then(|| p["pid"].as_i64().unwrap())
        });
    }
    wait_until("4 starts", 5 * S, || (spawn_times(&starts).len() == 4).then_some(()));
    let t = spawn_times(&starts);
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] < 0.25, "the first restart after a stable run is immediate: {gaps:?}");
    assert!((0.25..0.6).contains(&gaps[1]), "then backoff_initial (300ms ±10%): {gaps:?}");
    assert!((0.5..1.0).contains(&gaps[2]), "then doubled (600ms ±10%): {gaps:?}");
    assert_eq!(supd.program("svc")["restarts"], 3);
}

#[test]
fn failed_starts_go_fatal_after_startretries() {
    let supd = Supd::start(
        "[program.bad]\ncommand = [\"sh\", \"-c\", \"echo x >> @DIR@/tries; exit 2\"]\nstartretries = 2\n\
         backoff_initial = \"50ms\"\n",
    );
    let p = supd.wait_state("bad", "FATAL", 10 * S);
    assert_eq!(std::fs::read_to_string(supd.path("tries")).unwrap().lines().count(), 3, "1 start + 2 retries");
    assert!(p["description"].as_str().unwrap().contains("exited too quickly (exit status 2)"), "{p}");
    supd.wait_output("gave up: bad entered FATAL", 5 * S);
    // A manual start leaves FATAL.
    let (code, out, err) = supd.ctl(&["start", "bad"]);
    assert_eq!((code, out.as_str()), (7, "bad: ERROR (spawn error)\n"), "the start fails again, as supervisorctl says");
    assert!(err.contains("supctl: bad: BACKOFF: retry in"), "supd's account on stderr: {err}");
}

#[test]
fn spawn_error_is_a_failed_start_shown_in_status() {
    let supd = Supd::start("[program.missing]\ncommand = \"/no/such/binary --flag\"\nstartretries = 0\n");
    let p = supd.wait_state("missing", "FATAL", 5 * S);
    assert!(p["description"].as_str().unwrap().contains("spawn error: command not found: /no/such/binary"), "{p}");
    supd.wait_output("spawn error: missing: command not found", 5 * S);
}

#[test]
fn exits_follow_autorestart_and_exitcodes() {
    let supd = Supd::start(
        "[program.oneshot]\ncommand = \"true\"\nstartsecs = 0\n\
         [program.never]\ncommand = \"sh -c 'exit 5'\"\nstartsecs = 0\nautorestart = false\n\
         [program.ok3]\ncommand = \"sh -c 'sleep 0.2; exit 3'\"\nstartsecs = 0\nexitcodes = [0, 3]\n",
    );
    let p = supd.wait_state("oneshot", "EXITED", 5 * S);
    assert!(p["description"].as_str().unwrap().ends_with("; exit status 0 (expected)"), "{p}");
    let p = supd.wait_state("never", "EXITED", 5 * S);
    assert_eq!(p["exit_expected"], false);
    let p = supd.wait_state("ok3", "EXITED", 5 * S);
    assert_eq!((p["spawns"].as_i64(), p["exit_expected"].as_bool()), (Some(1), Some(true)));
}

#[test]
fn required_fatal_stops_everything_and_exits_1() {
    let mut supd = Supd::start(
        "[program.db]\ncommand = \"sh -c 'exit 1'\"\nrequired = true\nstartretries = 1\nbackoff_initial = \"50ms\"\n\
         [program.app]\ncommand = \"sleep 1000\"\nstartsecs = 0\n",
    );
    assert_eq!(supd.wait_exit(10 * S), 1);
    let out = supd.output();
    assert!(out.contains("db is required and FATAL"), "{out}");
    assert!(out.contains("stopped: app (killed by SIGTERM)"), "app was stopped: {out}");
}
