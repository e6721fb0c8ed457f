//! The lifecycle's rules, each a test with a fake clock: feed events, check states and effects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::config::{Autorestart, OnUnhealthy, ProgramConfig};
use crate::probe::ProbeOutcome;
use crate::process::ExitStatus;

fn cfg(edit: impl FnOnce(&mut ProgramConfig)) -> Arc<ProgramConfig> {
    let mut c = ProgramConfig::example("web");
    edit(&mut c);
    Arc::new(c)
}

/// A program plus a fake clock.
struct Rig {
    p: Program,
    now: Instant,
    next_pid: i32,
}

impl Rig {
    fn new(edit: impl FnOnce(&mut ProgramConfig)) -> Self {
        let now = Instant::now();
        Self { p: Program::new(cfg(edit), now, 1), now, next_pid: 100 }
    }
    /// Feeds an event and answers Spawn effects with a new pid, like the supervisor does.
    fn on(&mut self, e: Event) -> Vec<Effect> {
        let mut effects = self.p.on(e, self.now);
        while let Some(i) = effects.iter().position(|e| *e == Effect::Spawn) {
            effects.remove(i);
            self.next_pid += 1;
            effects.extend(self.p.on(Event::Spawned { pid: self.next_pid }, self.now));
        }
        effects
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
    /// Jumps to the pending deadline and fires it.
    fn fire(&mut self) -> Vec<Effect> {
        let d = self.p.deadline().unwrap_or_else(|| panic!("no deadline in {}", self.p.state()));
        self.now = d;
        self.on(Event::Deadline)
    }
    fn exit(&mut self, code: i32) -> Vec<Effect> {
        self.on(Event::Exited { status: ExitStatus::Code(code), group_alive: false })
    }
}

#[test]
fn start_is_running_after_startsecs() {
    let mut r = Rig::new(|_| {});
    r.on(Event::Start);
    assert_eq!((r.p.state(), r.p.pid()), (State::Starting, Some(101)));
    assert_eq!(r.p.deadline(), Some(r.now + Duration::from_secs(1)));
    r.fire();
    assert_eq!(r.p.state(), State::Running);
}

#[test]
fn a_tree_that_outlives_sigkill_is_reported_until_the_next_stop() {
    let mut r = Rig::new(|_| {});
    r.on(Event::Start);
    r.fire();
    r.on(Event::Stop);
    r.fire(); // SIGKILL
    assert!(r.p.killed());
    r.now = r.p.deadline().unwrap();
    r.on(Event::KillTimedOut { survivors: vec![7, 9] });
    assert_eq!((r.p.state(), r.p.survivors()), (State::Stopped, &[7, 9][..]));
    assert_eq!(r.p.error(), Some("still alive after SIGKILL: pid 7, 9"));
    r.on(Event::Start);
    r.fire();
    assert_eq!(r.p.survivors(), &[7, 9], "still shown while the next process runs");
    r.on(Event::Stop);
    assert!(r.p.survivors().is_empty(), "a new stop starts afresh");
}

#[test]
fn startsecs_zero_is_running_at_once() {
    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    assert_eq!(r.p.state(), State::Running);
}

#[test]
fn failed_starts_back_off_then_go_fatal_after_startretries() {
    let mut r = Rig::new(|c| c.startretries = 2);
    r.on(Event::Start);
    for attempt in 1..=2 {
        r.advance(Duration::from_millis(100));
        r.exit(1);
        assert_eq!(r.p.state(), State::Backoff, "failed start {attempt}");
        let wait = r.p.deadline().map(|d| d - r.now).unwrap_or_default().as_secs_f64();
        let base = f64::from(1u32 << (attempt - 1));
        assert!((base * 0.9..=base * 1.1).contains(&wait), "attempt {attempt} waited {wait}");
        r.fire();
        assert_eq!(r.p.state(), State::Starting);
    }
    r.exit(1);
    assert_eq!(r.p.state(), State::Fatal);
    assert!(r.p.error().unwrap_or("").contains("exited too quickly (exit status 1)"));
    assert_eq!(r.p.spawns(), 3, "1 start + startretries retries");
}

#[test]
fn spawn_errors_are_failed_starts() {
    let mut r = Rig::new(|c| c.startretries = 0);
    assert_eq!(r.p.on(Event::Start, r.now), vec![Effect::Spawn]);
    r.p.on(Event::SpawnFailed { error: "command not found: x".into() }, r.now);
    assert_eq!(r.p.state(), State::Fatal);
    assert!(r.p.error().unwrap_or("").contains("command not found: x"));
}

#[test]
fn exec_failures_after_the_fork_are_failed_starts_even_with_startsecs_zero() {
    let mut r = Rig::new(|c| {
        c.startsecs = Duration::ZERO;
        c.startretries = 1;
    });
    r.on(Event::Start);
    assert_eq!(r.p.state(), State::Running, "startsecs = 0: RUNNING before the exec is confirmed");
    let failed = || Event::SpawnFailed { error: "spawn error: cannot execute x: execve: Exec format error".into() };
    r.on(failed());
    assert_eq!(r.p.state(), State::Backoff, "an exec failure is a failed start, not a crash");
    r.fire();
    assert_eq!(r.p.state(), State::Running);
    r.on(failed());
    assert_eq!(r.p.state(), State::Fatal, "two failed starts with startretries = 1");
    assert!(r.p.error().unwrap_or("").contains("execve: Exec format error"), "{:?}", r.p.error());
}

#[test]
fn running_exit_restarts_at_once_then_backs_off_doubling() {
    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    r.advance(Duration::from_secs(5));
    r.exit(1);
    assert_eq!(r.p.state(), State::Running, "the first restart after a stable run is immediate");
    assert_eq!(r.p.restarts(), 1);
    for base in [1.0, 2.0, 4.0] {
        r.exit(1);
        assert_eq!(r.p.state(), State::Backoff);
        let wait = r.p.deadline().map(|d| d - r.now).unwrap_or_default().as_secs_f64();
        assert!((base * 0.9..=base * 1.1).contains(&wait), "waited {wait}, wanted ~{base}");
        r.fire();
        assert_eq!(r.p.state(), State::Running);
    }
}

#[test]
fn a_long_run_resets_the_backoff() {
    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    r.exit(1);
    r.exit(1);
    assert_eq!(r.p.state(), State::Backoff);
    r.fire();
    r.advance(Duration::from_secs(61));
    r.exit(1);
    assert_eq!(r.p.state(), State::Running, "60 s up forgets the streak");
}

#[test]
fn autorestart_and_exitcodes_follow_supervisord() {
    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    r.exit(0);
    assert_eq!(r.p.state(), State::Exited, "0 is expected: no restart under \"unexpected\"");
    r.on(Event::Start);
    r.on(Event::Exited { status: ExitStatus::Signal(9), group_alive: false });
    assert_eq!(r.p.state(), State::Running, "death by signal is unexpected");

    let mut r = Rig::new(|c| {
        c.startsecs = Duration::ZERO;
        c.autorestart = Autorestart::Always;
    });
    r.on(Event::Start);
    r.exit(0);
    assert_eq!(r.p.state(), State::Running);

    let mut r = Rig::new(|c| {
        c.startsecs = Duration::ZERO;
        c.autorestart = Autorestart::Never;
    });
    r.on(Event::Start);
    r.exit(3);
    assert_eq!((r.p.state(), r.p.last_exit()), (State::Exited, Some(ExitStatus::Code(3))));
}

#[test]
fn stop_signals_the_group_and_continues_it_then_kills_after_stopwaitsecs() {
    let mut r = Rig::new(|c| c.stopsignal = Signal::SIGINT);
    r.on(Event::Start);
    r.fire();
    let effects = r.on(Event::Stop);
    let sig = |signal| Effect::Signal { pid: 101, signal, group: true };
    assert_eq!(effects, vec![sig(Signal::SIGINT), sig(Signal::SIGCONT)]);
    assert_eq!(r.p.state(), State::Stopping);
    let effects = r.fire();
    assert_eq!(effects, vec![Effect::Signal { pid: 101, signal: Signal::SIGKILL, group: true }]);
    r.on(Event::Exited { status: ExitStatus::Signal(9), group_alive: false });
    assert_eq!(r.p.state(), State::Stopped);
}

#[test]
fn stopping_waits_for_the_whole_group() {
    let mut r = Rig::new(|_| {});
    r.on(Event::Start);
    r.on(Event::Stop);
    r.on(Event::Exited { status: ExitStatus::Code(0), group_alive: true });
    assert_eq!(r.p.state(), State::Stopping, "a grandchild is still in the group");
    let effects = r.fire();
    assert_eq!(effects, vec![Effect::Signal { pid: 101, signal: Signal::SIGKILL, group: true }]);
    r.on(Event::GroupGone);
    assert_eq!(r.p.state(), State::Stopped);
}

#[test]
fn restart_starts_again_once_stopped() {
    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    r.on(Event::Restart);
    assert_eq!(r.p.state(), State::Stopping);
    r.exit(0);
    assert_eq!((r.p.state(), r.p.pid()), (State::Running, Some(102)));
}

#[test]
fn shutdown_cancels_backoff_and_restarts() {
    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    r.exit(1);
    r.exit(1);
    assert_eq!(r.p.state(), State::Backoff);
    r.on(Event::Shutdown);
    assert_eq!(r.p.state(), State::Stopped);
    assert_eq!(r.on(Event::Start), vec![Effect::Refused(Refusal::ShuttingDown)], "no start during shutdown");
}

#[test]
fn manual_start_leaves_fatal_and_resets_retries() {
    let mut r = Rig::new(|c| c.startretries = 0);
    r.on(Event::Start);
    r.exit(1);
    assert_eq!(r.p.state(), State::Fatal);
    r.on(Event::Start);
    assert_eq!(r.p.state(), State::Starting);
}

fn with_check(edit: impl FnOnce(&mut crate::config::Healthcheck)) -> impl FnOnce(&mut ProgramConfig) {
    move |c: &mut ProgramConfig| {
        let mut check = crate::config::Healthcheck {
            probe: crate::config::Probe::Tcp { host: "127.0.0.1".into(), port: 1 },
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(1),
            retries: 3,
            success_threshold: 1,
            on_unhealthy: OnUnhealthy::Restart,
        };
        edit(&mut check);
        c.healthcheck = Some(check);
        c.startsecs = Duration::ZERO;
    }
}

impl Rig {
    fn probe(&mut self, ok: bool) -> Vec<Effect> {
        let outcome = ProbeOutcome { ok, message: String::new(), latency: Duration::ZERO, at: self.now };
        self.on(Event::Probe(outcome))
    }
}

#[test]
fn health_follows_docker_retries_and_success_threshold() {
    let mut r = Rig::new(with_check(|c| {
        c.success_threshold = 2;
        c.on_unhealthy = OnUnhealthy::Ignore;
    }));
    r.on(Event::Start);
    assert_eq!(r.p.health(), Some(Health::Starting));
    r.probe(true);
    assert_eq!(r.p.health(), Some(Health::Starting), "one pass of two");
    r.probe(true);
    assert_eq!(r.p.health(), Some(Health::Healthy));
    r.probe(false);
    r.probe(false);
    assert_eq!(r.p.health(), Some(Health::Healthy), "two failures of three");
    assert!(r.probe(false).is_empty(), "ignore: no stop");
    assert_eq!((r.p.health(), r.p.state()), (Some(Health::Unhealthy), State::Running));
}

#[test]
fn failures_in_start_period_do_not_count_until_it_ends() {
    let mut r = Rig::new(with_check(|c| {
        c.start_period = Duration::from_secs(30);
        c.retries = 1;
    }));
    r.on(Event::Start);
    r.probe(false);
    r.probe(false);
    assert_eq!(r.p.health(), Some(Health::Starting));
    r.advance(Duration::from_secs(31));
    let effects = r.probe(false);
    assert_eq!(r.p.health(), Some(Health::Unhealthy));
    assert_eq!(effects[0], Effect::Signal { pid: 101, signal: Signal::SIGTERM, group: true });
}

#[test]
fn unhealthy_restarts_through_the_crash_backoff() {
    let mut r = Rig::new(with_check(|c| c.retries = 1));
    r.on(Event::Start);
    r.advance(Duration::from_secs(5));
    for round in 0..3 {
        r.probe(false);
        assert_eq!(r.p.state(), State::Stopping, "round {round}");
        r.on(Event::Exited { status: ExitStatus::Signal(15), group_alive: false });
        if round == 0 {
            assert_eq!(r.p.state(), State::Running, "first restart after a stable run is immediate");
        } else {
            assert_eq!(r.p.state(), State::Backoff, "round {round} backs off");
            r.fire();
        }
    }
    assert_eq!((r.p.restarts(), r.p.health()), (3, Some(Health::Starting)));
}

#[test]
fn over_memory_stops_then_restarts_through_the_backoff_and_is_counted() {
    let mut r = Rig::new(|_| {});
    r.on(Event::Start);
    r.advance(Duration::from_secs(5));
    r.fire();
    assert_eq!(r.p.state(), State::Running);
    let effects = r.on(Event::OverMemory { reason: "rss 600 MiB over max_rss 512 MiB for 30s".into() });
    assert_eq!(effects[0], Effect::Signal { pid: 101, signal: Signal::SIGTERM, group: true });
    assert_eq!((r.p.state(), r.p.error()), (State::Stopping, Some("rss 600 MiB over max_rss 512 MiB for 30s")));
    // A second report while it stops changes nothing.
    assert!(r.on(Event::OverMemory { reason: "again".into() }).is_empty());
    r.on(Event::Exited { status: ExitStatus::Signal(15), group_alive: false });
    assert_eq!((r.p.state(), r.p.pid()), (State::Starting, Some(102)), "a stable run restarts at once");
    assert_eq!((r.p.restarts(), r.p.memory_restarts()), (1, 1));
    // Stopped by the user, it is not restarted for memory.
    r.on(Event::Stop);
    r.on(Event::Exited { status: ExitStatus::Signal(15), group_alive: false });
    assert!(r.on(Event::OverMemory { reason: "late".into() }).is_empty());
    assert_eq!(r.p.state(), State::Stopped);
}

#[test]
fn startsecs_healthy_gates_running_and_never_healthy_is_a_failed_start() {
    let mut r = Rig::new(|c| {
        with_check(|h| h.retries = 2)(c);
        c.ready_when_healthy = true;
        c.startretries = 0;
    });
    r.on(Event::Start);
    assert_eq!((r.p.state(), r.p.deadline()), (State::Starting, None));
    r.probe(true);
    assert_eq!(r.p.state(), State::Running);

    let mut r = Rig::new(|c| {
        with_check(|h| h.retries = 2)(c);
        c.ready_when_healthy = true;
        c.startretries = 0;
    });
    r.on(Event::Start);
    r.probe(false);
    r.probe(false);
    assert_eq!(r.p.state(), State::Stopping);
    r.on(Event::Exited { status: ExitStatus::Signal(15), group_alive: false });
    assert_eq!(r.p.state(), State::Fatal, "startretries = 0: the one failed start is fatal");
}

#[test]
fn dependencies_hold_the_start_and_a_failed_one_is_fatal() {
    let dep = || vec![crate::config::Dependency { program: "db".into(), condition: crate::config::Condition::Healthy }];
    let mut r = Rig::new(|c| c.depends_on = dep());
    assert!(r.on(Event::Start).is_empty());
    assert_eq!((r.p.state(), r.p.pid(), r.p.waiting()), (State::Starting, None, Some("dependencies")));
    r.on(Event::DependenciesPending { waiting_for: "db (healthy)".into() });
    assert_eq!(r.p.waiting(), Some("db (healthy)"));
    r.on(Event::DependenciesMet);
    assert_eq!((r.p.pid(), r.p.waiting()), (Some(101), None));

    let mut r = Rig::new(|c| c.depends_on = dep());
    r.on(Event::Start);
    r.on(Event::DependencyFailed { reason: "dependency db is FATAL".into() });
    assert_eq!((r.p.state(), r.p.error()), (State::Fatal, Some("dependency db is FATAL")));

    let mut r = Rig::new(|c| c.depends_on = dep());
    r.on(Event::Start);
    r.on(Event::Shutdown);
    assert_eq!(r.p.state(), State::Stopped, "a waiting program is simply not started at shutdown");
}

fn refused(why: Refusal) -> Vec<Effect> {
    vec![Effect::Refused(why)]
}

#[test]
fn start_is_refused_while_started_or_stopping_as_supervisord_does() {
    let mut r = Rig::new(|_| {});
    r.on(Event::Start);
    assert_eq!(r.on(Event::Start), refused(Refusal::AlreadyStarted), "STARTING");
    r.fire();
    assert_eq!(r.on(Event::Start), refused(Refusal::AlreadyStarted), "RUNNING");
    r.on(Event::Stop);
    assert_eq!(r.on(Event::Start), refused(Refusal::Stopping));
    assert_eq!(r.p.state(), State::Stopping, "a refusal changes nothing");

    let deps = vec![crate::config::Dependency { program: "db".into(), condition: crate::config::Condition::Started }];
    let mut r = Rig::new(|c| c.depends_on = deps);
    r.on(Event::Start);
    assert_eq!(r.on(Event::Start), refused(Refusal::AlreadyStarted), "waiting for dependencies is STARTING");
}

#[test]
fn stop_is_refused_without_a_process_or_backoff() {
    let mut r = Rig::new(|c| c.startretries = 0);
    assert_eq!(r.on(Event::Stop), refused(Refusal::NotRunning), "STOPPED");
    r.on(Event::Start);
    r.exit(1);
    assert_eq!(r.p.state(), State::Fatal);
    assert_eq!(r.on(Event::Stop), refused(Refusal::NotRunning), "FATAL");

    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    r.on(Event::Stop);
    assert_eq!(r.on(Event::Stop), refused(Refusal::NotRunning), "STOPPING");
    r.exit(0);
    r.on(Event::Start);
    r.exit(1);
    r.exit(1);
    assert_eq!(r.p.state(), State::Backoff);
    assert!(r.on(Event::Stop).is_empty(), "BACKOFF stops at once");
    assert_eq!(r.p.state(), State::Stopped);
}

#[test]
fn a_signal_goes_to_the_process_alone_and_is_refused_without_one() {
    let mut r = Rig::new(|_| {});
    assert_eq!(r.on(Event::Signal(Signal::SIGHUP)), refused(Refusal::NotRunning));
    r.on(Event::Start);
    assert_eq!(
        r.on(Event::Signal(Signal::SIGHUP)),
        vec![Effect::Signal { pid: 101, signal: Signal::SIGHUP, group: false }]
    );
    r.on(Event::Shutdown);
    assert_eq!(r.on(Event::Signal(Signal::SIGUSR1)).len(), 1, "a signal is still taken while shutting down");
}

#[test]
fn a_retired_program_stops_for_good_and_takes_no_verbs() {
    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    r.on(Event::Restart);
    let effects = r.on(Event::Retire);
    assert!(effects.is_empty(), "the stop under way goes on");
    assert!(!r.p.restart_pending(), "but no start follows it");
    assert_eq!(r.on(Event::Start), refused(Refusal::Retiring));
    r.exit(0);
    assert_eq!(r.p.state(), State::Stopped);

    let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
    r.on(Event::Start);
    assert_eq!(r.on(Event::Retire)[0], Effect::Signal { pid: 101, signal: Signal::SIGTERM, group: true });
    assert_eq!(r.p.state(), State::Stopping);
}

#[test]
fn the_ordered_shutdown_stops_what_still_runs() {
    let mut r = Rig::new(|_| {});
    r.on(Event::Start);
    r.on(Event::Shutdown);
    assert_eq!(r.p.state(), State::Starting, "shutdown alone stops nothing: its level comes in turn");
    assert_eq!(r.on(Event::Stop), refused(Refusal::ShuttingDown), "a verb is refused");
    r.on(Event::StopForShutdown);
    assert_eq!(r.p.state(), State::Stopping);
}

#[test]
fn probes_run_while_a_process_is_starting_or_running() {
    let mut r = Rig::new(with_check(|_| {}));
    let effects = r.p.on(Event::Start, r.now);
    assert_eq!(effects, vec![Effect::Spawn]);
    assert_eq!(r.p.on(Event::Spawned { pid: 7 }, r.now), vec![Effect::StartProbe]);
    let effects = r.on(Event::Stop);
    assert_eq!(effects.last(), Some(&Effect::StopProbe), "no probe of a stopping process");
    assert!(r.exit(0).is_empty(), "stopped once already");

    let mut r = Rig::new(with_check(|_| {}));
    r.on(Event::Start);
    let effects = r.exit(1);
    assert_eq!(effects.first(), Some(&Effect::StopProbe), "the process is gone");
    assert_eq!(effects.last(), Some(&Effect::StartProbe), "and its immediate restart is probed afresh");
}

#[test]
fn a_process_given_up_after_sigkill_is_forgotten() {
    let mut r = Rig::new(|_| {});
    r.on(Event::Start);
    r.fire();
    r.on(Event::Stop);
    r.fire(); // SIGKILL
    r.now = r.p.deadline().unwrap();
    assert_eq!(r.on(Event::KillTimedOut { survivors: vec![101] }), vec![Effect::ForgetPid(101)]);
    assert_eq!((r.p.state(), r.p.pid()), (State::Stopped, None));
}

#[test]
fn restart_of_a_waiting_program_waits_again() {
    let deps = vec![crate::config::Dependency { program: "db".into(), condition: crate::config::Condition::Started }];
    let mut r = Rig::new(|c| c.depends_on = deps);
    r.on(Event::Start);
    assert!(r.on(Event::Restart).is_empty());
    assert_eq!((r.p.state(), r.p.waiting(), r.p.restart_pending()), (State::Starting, Some("dependencies"), false));
}

#[test]
fn a_gpu_fault_makes_only_a_required_program_unhealthy() {
    let mut r = Rig::new(|c| c.gpu = crate::config::GpuMode::Required);
    r.on(Event::Start);
    r.on(Event::GpuFault(Some("GPU 0: XID error 79".into())));
    assert_eq!((r.p.health(), r.p.gpu_fault()), (Some(Health::Unhealthy), Some("GPU 0: XID error 79")));
    r.on(Event::GpuFault(None));
    assert_eq!(r.p.health(), None, "no healthcheck: no health once the fault is gone");

    let mut r = Rig::new(|c| c.gpu = crate::config::GpuMode::Optional);
    r.on(Event::Start);
    r.on(Event::GpuFault(Some("GPU 0: XID error 79".into())));
    assert_eq!((r.p.health(), r.p.gpu_fault()), (None, None), "an optional program may run on the CPU");
}
