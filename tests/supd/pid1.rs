//! PID 1 duties: reaping, ordered shutdown, SIGKILL after stopwaitsecs, single-command mode.

use std::time::Duration;

use crate::harness::{SUPD, Supd, ns_processes, spawn_pid1, wait_until};

const S: Duration = Duration::from_secs(1);

/// A program that orphans 50 short-lived grandchildren: each `( sleep & )` subshell exits at
/// once, so its `sleep` is re-parented to PID 1 and must be reaped there.
const ORPHANER: &str = "for i in $(seq 50); do ( sleep 0.2 & ); done; touch ORPHANED; exec sleep 1000";

fn zombies(unshare_pid: u32) -> Vec<String> {
    ns_processes(unshare_pid)
        .into_iter()
        .filter(|p| p.state == 'Z')
        .map(|p| format!("{} {}", p.pid, p.cmdline))
        .collect()
}

#[test]
fn orphaned_grandchildren_leave_no_zombie() {
    let supd = Supd::start(&format!(
        "[program.orphaner]\ncommand = [\"sh\", \"-c\", \"cd @DIR@ && {ORPHANER}\"]\nstartsecs = 0\n"
    ));
    wait_until("the orphans to be made", 10 * S, || supd.path("ORPHANED").exists().then_some(()));
    // The sleeps end 0.2 s later; each must be reaped as it ends. (A fresh zombie has an empty
    // cmdline, so both conditions are checked together.)
    wait_until("every orphaned sleep to be gone and reaped", 10 * S, || {
        let procs = supd.ns_processes();
        let left = procs.iter().filter(|p| p.cmdline == "sleep 0.2" || p.state == 'Z').count();
        (left == 0).then_some(())
    });
}

/// Negative control: the same check does see zombies when PID 1 does not reap.
#[test]
fn zombie_check_fails_without_a_reaping_pid1() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("cd {} && ( {ORPHANER} ) & exec sleep 1000", dir.path().display());
    let mut child = spawn_pid1(dir.path(), &["sh".as_ref(), "-c".as_ref(), script.as_ref()]);
    let found = wait_until("zombies under a non-reaping PID 1", 10 * S, || {
        let z = zombies(child.id());
        (z.len() >= 50).then_some(z.len())
    });
    child.kill().ok();
    child.wait().ok();
    assert!(found >= 50);
}

#[test]
fn shutdown_stops_in_reverse_priority_then_exits_0() {
    // Each program logs its name when told to stop, then exits.
    let prog = |name: &str, prio: i32| {
        format!(
            "[program.{name}]\ncommand = [\"sh\", \"-c\", \"trap 'echo {name} >> @DIR@/stops; exit 0' TERM; \
             while :; do sleep 0.05; done\"]\nstartsecs = 0\npriority = {prio}\n"
        )
    };
    let mut supd = Supd::start(&(prog("db", 1) + &prog("api", 2) + &prog("web", 3)));
    for name in ["db", "api", "web"] {
        supd.wait_state(name, "RUNNING", 5 * S);
    }
    let (code, out, _) = supd.ctl(&["shutdown"]);
    assert_eq!((code, out.as_str()), (0, "Shut down\n"));
    assert_eq!(supd.wait_exit(10 * S), 0);
    assert_eq!(std::fs::read_to_string(supd.path("stops")).unwrap(), "web\napi\ndb\n");
}

#[test]
fn sigterm_to_supd_is_a_graceful_shutdown() {
    let mut supd = Supd::start("[program.a]\ncommand = \"sleep 1000\"\nstartsecs = 0\n");
    supd.wait_state("a", "RUNNING", 5 * S);
    nix::sys::signal::kill(supd.host_pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(supd.wait_exit(5 * S), 0);
    assert!(supd.output().contains("shutting down (SIGTERM)"));
    assert!(supd.output().contains("stopped: a (killed by SIGTERM)"));
}

#[test]
fn a_program_ignoring_sigterm_is_killed_with_its_whole_group() {
    // sh ignores TERM and so do its children (SIG_IGN is inherited across exec).
    let supd = Supd::start(
        "[program.stubborn]\ncommand = [\"sh\", \"-c\", \"trap '' TERM; sleep 1001 & sleep 1002 & wait\"]\n\
         startsecs = 0\nstopwaitsecs = \"300ms\"\n",
    );
    supd.wait_state("stubborn", "RUNNING", 5 * S);
    wait_until("the grandchildren", 5 * S, || {
        (supd.ns_processes().iter().filter(|p| p.cmdline.starts_with("sleep 100")).count() == 2).then_some(())
    });
    let started = std::time::Instant::now();
    let (code, out, _) = supd.ctl(&["stop", "stubborn"]);
    assert_eq!((code, out.as_str()), (0, "stubborn: stopped\n"));
    assert!(started.elapsed() >= Duration::from_millis(300), "waited stopwaitsecs before SIGKILL");
    let left: Vec<String> =
        supd.ns_processes().into_iter().map(|p| p.cmdline).filter(|c| !c.starts_with(SUPD)).collect();
    assert!(left.is_empty(), "processes left after stop: {left:?}");
    assert_eq!(supd.program("stubborn")["state"], "STOPPED");
}

fn single(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut argv: Vec<&std::ffi::OsStr> = vec![SUPD.as_ref(), "--".as_ref()];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    let mut child = spawn_pid1(dir.path(), &argv);
    let status = wait_until("supd -- to exit", 10 * S, || child.try_wait().ok().flatten());
    let out = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap_or_default();
    (status.code().unwrap_or(-1), out)
}

#[test]
fn single_command_mode_exits_with_the_child_code() {
    assert_eq!(single(&["sh", "-c", "echo hi; exit 7"]), (7, "hi\n".into()));
    assert_eq!(single(&["sh", "-c", "kill -KILL $$"]).0, 137, "128 + SIGKILL");
    assert_eq!(single(&["/no/such/cmd"]).0, 127);
}

#[test]
fn single_command_mode_forwards_signals_and_reaps() {
    // The child orphans sleeps, then is told to stop by a SIGTERM sent to supd (PID 1).
    let script = "trap 'echo got-term; exit 42' TERM; for i in 1 2 3; do ( sleep 0.1 & ); done; \
                  kill -TERM 1; while :; do sleep 0.05; done";
    let (code, out) = single(&["sh", "-c", script]);
    assert_eq!((code, out.as_str()), (42, "got-term\n"));
}
