//! Fuzzing on stable Rust (proptest as the generator and shrinker): arbitrary bytes and
//! structured mutations of valid configs through load + resolve + the fake-clock lifecycle,
//! arbitrary control requests through the protocol decoder, and arbitrary XML-RPC calls
//! through supd's XML-RPC interface (every one must be answered, a fault at worst). None may
//! panic.
//!
//! Each target runs for `SUPD_FUZZ_SECS` seconds (2 by default; CI sets more). A failing
//! input, shrunk, is written to `tests/fuzz/corpus/TARGET/` before the test fails; commit it,
//! and every later run replays the whole corpus first (`corpus_replays_clean`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestError, TestRunner};

use supd::api::protocol::Request;
use supd::lifecycle::{Event, Program};
use supd::probe::ProbeOutcome;
use supd::process::ExitStatus;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target)
}

/// Runs `check` on inputs from `strategy` until the time budget is spent; on a failure saves
/// the shrunk input (as `encode` writes it) to the target's corpus and fails.
fn fuzz<S: Strategy>(
    target: &str,
    strategy: S,
    encode: impl Fn(&S::Value) -> Vec<u8>,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let secs = std::env::var("SUPD_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut rounds = 0u32;
    while rounds == 0 || Instant::now() < deadline {
        rounds += 1;
        let config = RunnerConfig { cases: 64, failure_persistence: None, ..RunnerConfig::default() };
        let mut runner = TestRunner::new(config);
        if let Err(TestError::Fail(why, input)) = runner.run(&strategy, &check) {
            let bytes = encode(&input);
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).unwrap();
            let name = format!("{:016x}", fnv(&bytes));
            std::fs::write(dir.join(&name), &bytes).unwrap();
            panic!("{target}: {why}\ninput saved as tests/fuzz/corpus/{target}/{name}:\n{input:?}");
        }
    }
    eprintln!("{target}: {} inputs in {secs} s", rounds * 64);
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// Catches a panic as a failure (the runner does too; this keeps the message short).
fn no_panic(f: impl FnOnce() + std::panic::UnwindSafe) -> Result<(), TestCaseError> {
    std::panic::catch_unwind(f).map_err(|e| {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        TestCaseError::fail(format!("panicked: {}", msg.unwrap_or_default()))
    })
}

/// Loads `text` as a config file (in a directory of its own, so `include`s stay inside it) and
/// runs each resolved program through the lifecycle with `events`.
fn load_and_run(text: &[u8], events: &[Step]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("supd.toml");
    std::fs::write(&path, text).unwrap();
    let events = events.to_vec();
    no_panic(move || {
        if let Ok(config) = supd::config::load(&path, &two_gpus()) {
            for p in config.programs {
                run_lifecycle(Arc::new(p), &events);
            }
        }
    })
}

// ---- the lifecycle ---------------------------------------------------------------------------

/// One step of a fake-clock run: an event, or time passing (and the deadline firing if due).
#[derive(Debug, Clone)]
enum Step {
    Event(Event),
    Advance(Duration),
}

fn events() -> impl Strategy<Value = Vec<Step>> {
    let status = prop_oneof![any::<i32>().prop_map(ExitStatus::Code), any::<i32>().prop_map(ExitStatus::Signal)];
    let duration = prop_oneof![
        (0u64..5_000).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_secs),
        Just(Duration::MAX),
    ];
    let step = prop_oneof![
        Just(Event::Start),
        Just(Event::Stop),
        Just(Event::Restart),
        any::<i32>().prop_map(|pid| Event::Spawned { pid }),
        Just(Event::SpawnFailed { error: "ENOENT".into() }),
        (status, any::<bool>()).prop_map(|(status, group_alive)| Event::Exited { status, group_alive }),
        Just(Event::GroupGone),
        Just(Event::Deadline),
        (any::<bool>(), duration.clone()).prop_map(|(ok, latency)| Event::Probe(ProbeOutcome {
            ok,
            message: String::new(),
            latency,
            at: Instant::now()
        })),
        Just(Event::DependenciesPending { waiting_for: "db".into() }),
        Just(Event::DependenciesMet),
        Just(Event::DependencyFailed { reason: "db is FATAL".into() }),
        Just(Event::Unavailable { reason: "no GPU".into() }),
        prop_oneof![Just(None), Just(Some("XID 79".to_string()))].prop_map(Event::GpuFault),
        Just(Event::Shutdown),
        Just(Event::StopForShutdown),
        Just(Event::Retire),
        Just(Event::Signal(nix::sys::signal::Signal::SIGHUP)),
        proptest::collection::vec(any::<i32>(), 0..3).prop_map(|survivors| Event::KillTimedOut { survivors }),
    ]
    .prop_map(Step::Event);
    prop::collection::vec(prop_oneof![3 => step, 1 => duration.prop_map(Step::Advance)], 0..60)
}

/// Feeds `steps` to a program of `cfg` on a fake clock; answers spawn effects as the supervisor
/// does. Panics are what the caller looks for.
fn run_lifecycle(cfg: Arc<supd::config::ProgramConfig>, steps: &[Step]) {
    let mut now = Instant::now();
    let mut p = Program::new(cfg, now, 7);
    let mut pid = 100;
    for step in steps {
        let event = match step {
            Step::Event(e) => e.clone(),
            Step::Advance(d) => {
                now = now.checked_add(*d).unwrap_or(now);
                match p.deadline() {
                    Some(at) if at <= now => Event::Deadline,
                    _ => continue,
                }
            }
        };
        let mut effects = p.on(event, now);
        let mut rounds = 0;
        while effects.contains(&supd::lifecycle::Effect::Spawn) && rounds < 16 {
            effects.retain(|e| *e != supd::lifecycle::Effect::Spawn);
            pid += 1;
            effects.extend(p.on(Event::Spawned { pid }, now));
            rounds += 1;
        }
    }
}

// ---- configs ---------------------------------------------------------------------------------

/// Valid configs to mutate: every key with a number or a duration, and the shapes around them.
const BASES: &[&str] = &[
    r#"
[supervisor]
socket = "/tmp/supd-fuzz.sock"
logfile_backups = 2
[program.web]
command = "sleep 1"
startsecs = 1
startretries = 3
stopwaitsecs = 10
backoff_initial = 1
backoff_max = 60
backoff_reset = 60
priority = 5
exitcodes = [0, 2]
stdout_logfile_maxbytes = "1MB"
stdout_logfile_backups = 3
numprocs = 2
numprocs_start = 1
[program.web.healthcheck]
tcp = "127.0.0.1:1"
interval = 10
timeout = 2
start_period = 0
start_interval = 1
retries = 3
success_threshold = 1
[program.db]
command = ["sleep", "1"]
depends_on = { web = "healthy" }
[gpu]
interval = 10
"#,
    r#"
[program.a]
command = "true"
startsecs = "healthy"
[program.a.healthcheck]
http = "http://127.0.0.1:1/health"
expect_status = [200, 204]
[program.b]
command = "true"
depends_on = ["a"]
autorestart = true
"#,
];

/// Keys whose values get replaced, as TOML paths into the bases.
const NUMERIC_KEYS: &[&str] = &[
    "supervisor.logfile_backups",
    "program.web.startsecs",
    "program.web.startretries",
    "program.web.stopwaitsecs",
    "program.web.backoff_initial",
    "program.web.backoff_max",
    "program.web.backoff_reset",
    "program.web.priority",
    "program.web.exitcodes",
    "program.web.stdout_logfile_maxbytes",
    "program.web.stdout_logfile_backups",
    "program.web.numprocs",
    "program.web.numprocs_start",
    "program.web.stderr_logfile_maxbytes",
    "program.web.stderr_logfile_backups",
    "program.web.umask",
    "program.web.gpus",
    "program.web.gpu_count",
    "supervisor.logfile_maxbytes",
    "supervisor.socket_mode",
    "program.web.healthcheck.interval",
    "program.web.healthcheck.timeout",
    "program.web.healthcheck.start_period",
    "program.web.healthcheck.start_interval",
    "program.web.healthcheck.retries",
    "program.web.healthcheck.success_threshold",
    "program.a.startsecs",
    "program.a.healthcheck.expect_status",
    "gpu.interval",
];

fn toml_value() -> impl Strategy<Value = toml::Value> {
    let int = prop_oneof![
        any::<i64>(),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(0),
        Just(u32::MAX as i64),
        Just(u32::MAX as i64 + 1),
        -2i64..100_000,
    ];
    let float =
        prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(1e300), Just(-0.0), Just(31_536_000.5),];
    let text = prop_oneof![
        Just("1e30s".to_string()),
        Just("9999999999999999999h".to_string()),
        Just("healthy".to_string()),
        Just("50MB".to_string()),
        Just("18446744073709551615GB".to_string()),
        Just("".to_string()),
        "[0-9]{1,25}(ms|s|m|h|d|y|KB|MB|GB)?",
        ".{0,12}",
    ];
    // Mostly integers: every numeric key takes one, so most mutated configs still load and
    // reach the lifecycle.
    let leaf = prop_oneof![
        6 => int.prop_map(toml::Value::Integer),
        2 => float.prop_map(toml::Value::Float),
        2 => text.prop_map(toml::Value::String),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
    ];
    prop_oneof![9 => leaf.clone(), 1 => prop::collection::vec(leaf, 0..3).prop_map(toml::Value::Array)]
}

/// Sets `path` (dotted) in `table` to `value` where its table exists (a key of the other base
/// is skipped: a new table without `command` would only test one error).
fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let Some(last) = keys.pop() else { return };
    let mut t = table;
    for k in keys {
        let Some(toml::Value::Table(next)) = t.get_mut(k) else { return };
        t = next;
    }
    t.insert(last.to_string(), value);
}

fn mutated_config() -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((prop::sample::select(NUMERIC_KEYS), toml_value()), 1..4);
    (prop::sample::select(BASES), edits).prop_map(|(base, edits)| {
        let mut table: toml::Table = base.parse().unwrap();
        for (key, value) in edits {
            set(&mut table, key, value);
        }
        toml::to_string(&table).unwrap()
    })
}

#[test]
fn config_bytes_never_panic() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::sample::select(BASES)
            .prop_flat_map(|b| {
                let len = b.len();
                (Just(b.as_bytes().to_vec()), prop::collection::vec((0..len, any::<u8>()), 1..8))
            })
            .prop_map(|(mut b, flips)| {
                for (i, byte) in flips {
                    b[i] = byte;
                }
                b
            }),
    ];
    fuzz("config", bytes, |b| b.clone(), |b| load_and_run(&b, &[]));
}

#[test]
fn config_values_never_panic_through_resolve_and_lifecycle() {
    fuzz(
        "config",
        (mutated_config(), events()),
        |(text, _)| text.clone().into_bytes(),
        |(text, steps)| load_and_run(text.as_bytes(), &steps),
    );
}

#[test]
fn the_base_configs_load() {
    for base in BASES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supd.toml");
        std::fs::write(&path, base).unwrap();
        supd::config::load(&path, &two_gpus()).unwrap_or_else(|e| panic!("{e}"));
    }
}

// ---- control requests ------------------------------------------------------------------------

fn request() -> impl Strategy<Value = String> {
    let cmds = prop::sample::select(vec![
        "status", "start", "stop", "restart", "signal", "pid", "health", "tail", "clear", "reopen", "gpu", "reload",
        "shutdown", "bogus",
    ]);
    let keys = prop::sample::select(vec!["names", "signal", "name", "stream", "lines", "follow", "dry_run", "mames"]);
    let value = prop_oneof![
        Just(serde_json::json!([])),
        Just(serde_json::json!(["all"])),
        Just(serde_json::json!("HUP")),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(true)),
        Just(serde_json::json!(null)),
        Just(serde_json::json!({"a": [1, 2]})),
        ".{0,8}".prop_map(serde_json::Value::String),
    ];
    let structured = (cmds, prop::collection::vec((keys, value), 0..4)).prop_map(|(cmd, fields)| {
        let mut m = serde_json::Map::new();
        m.insert("cmd".into(), cmd.into());
        for (k, v) in fields {
            m.insert(k.into(), v);
        }
        serde_json::Value::Object(m).to_string()
    });
    prop_oneof![structured, ".{0,64}", "\\{\"cmd\":\"[a-z]{0,8}\".{0,32}"]
}

fn decode(line: &str) -> Result<(), TestCaseError> {
    let line = line.to_string();
    no_panic(move || {
        let _ = serde_json::from_str::<Request>(&line);
    })
}

#[test]
fn control_requests_never_panic() {
    fuzz("request", request(), |r| r.clone().into_bytes(), |r| decode(&r));
}

// ---- XML-RPC calls ---------------------------------------------------------------------------

/// A method call: a known method (or not) with arguments of any XML-RPC type, or text that
/// is not a call at all.
fn rpc_call() -> impl Strategy<Value = String> {
    let methods: Vec<&str> = supd::api::xmlrpc::methods::METHODS.iter().map(|(m, ..)| *m).collect();
    let method = prop_oneof![
        prop::sample::select(methods).prop_map(str::to_string),
        Just("supervisor.bogus".to_string()),
        "[a-z.]{0,12}",
    ];
    let leaf = prop_oneof![
        any::<i32>().prop_map(|n| format!("<int>{n}</int>")),
        any::<bool>().prop_map(|b| format!("<boolean>{}</boolean>", u8::from(b))),
        prop_oneof![Just("web"), Just("all"), Just("g:*"), Just("HUP"), Just("-1"), Just("")]
            .prop_map(|s| format!("<string>{s}</string>")),
        "[a-zA-Z0-9:*]{0,6}".prop_map(|s| format!("<string>{s}</string>")),
        Just("<double>1e308</double>".to_string()),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|vs| format!(
                "<array><data>{}</data></array>",
                vs.iter().map(|v| format!("<value>{v}</value>")).collect::<String>()
            )),
            prop::collection::vec(("[a-zA-Z]{1,10}", inner), 0..3).prop_map(|ms| {
                let members: String =
                    ms.iter().map(|(k, v)| format!("<member><name>{k}</name><value>{v}</value></member>")).collect();
                format!("<struct>{members}</struct>")
            }),
        ]
    });
    let call = (method, prop::collection::vec(value, 0..4)).prop_map(|(m, params)| {
        let params: String = params.iter().map(|p| format!("<param><value>{p}</value></param>")).collect();
        format!("<?xml version=\"1.0\"?><methodCall><methodName>{m}</methodName><params>{params}</params></methodCall>")
    });
    prop_oneof![4 => call, 1 => ".{0,64}", 1 => "<methodCall><methodName>[a-z.]{0,10}</methodName>.{0,32}"]
}

/// A Handle as the control socket's, for a supd whose supervisor is gone: verbs answer
/// SHUTDOWN_STATE, everything else is read from an empty snapshot and a config on disk.
fn rpc_handle(dir: &Path) -> supd::api::control::Handle {
    let path = dir.join("supd.toml");
    std::fs::write(&path, "[supervisor]\nhttp = \"\"\n[program.web]\ncommand = \"sleep 1\"\n").unwrap();
    let config = supd::config::load(&path, &supd::config::Machine::default()).unwrap();
    let (commands, _) = tokio::sync::mpsc::channel(1);
    let (_, snapshot) = tokio::sync::watch::channel(Arc::new(supd::supervisor::Snapshot::default()));
    supd::api::control::Handle {
        commands,
        snapshot,
        sink: supd::output::Sink::start(&config).unwrap(),
        gpu: Arc::default(),
        machine: supd::config::Machine::default(),
        pending: Arc::default(),
        config: path,
        feed: supd::events::live::Feed::default(),
        metrics: supd::metrics::Metrics::new(
            tokio::sync::watch::channel(Arc::new(supd::supervisor::Snapshot::default())).1,
        ),
    }
}

#[test]
fn xmlrpc_calls_are_always_answered() {
    let dir = tempfile::tempdir().unwrap();
    let handle = rpc_handle(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    fuzz(
        "xmlrpc",
        rpc_call(),
        |c| c.clone().into_bytes(),
        |call| {
            let answer = runtime.block_on(supd::api::xmlrpc::answer(&handle, call.as_bytes()));
            prop_assert!(answer.starts_with("<methodResponse>"), "not an answer to {call:?}: {answer}");
            Ok(())
        },
    );
}

/// The events a corpus config is replayed with: a start, probes, a crash and its backoff, a
/// stop that needs SIGKILL, a restart and a shutdown, each deadline fired.
fn tour() -> Vec<Step> {
    let probe = |ok| {
        Step::Event(Event::Probe(ProbeOutcome {
            ok,
            message: String::new(),
            latency: Duration::ZERO,
            at: Instant::now(),
        }))
    };
    let exit = |code| Step::Event(Event::Exited { status: ExitStatus::Code(code), group_alive: false });
    let far = Step::Advance(Duration::from_secs(400 * 24 * 3600));
    vec![
        Step::Event(Event::Start),
        far.clone(),
        probe(false),
        probe(false),
        probe(true),
        exit(1),
        far.clone(),
        Step::Event(Event::Stop),
        far.clone(),
        far.clone(),
        Step::Event(Event::Start),
        Step::Event(Event::Restart),
        exit(0),
        far.clone(),
        Step::Event(Event::Shutdown),
        exit(0),
    ]
}

/// Every input that ever failed, replayed.
#[test]
fn corpus_replays_clean() {
    let dir = tempfile::tempdir().unwrap();
    let handle = rpc_handle(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for target in ["config", "request", "xmlrpc"] {
        for entry in std::fs::read_dir(corpus(target)).into_iter().flatten().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let result = match target {
                "config" => load_and_run(&bytes, &tour()),
                "request" => decode(&String::from_utf8_lossy(&bytes)),
                _ => {
                    let answer = runtime.block_on(supd::api::xmlrpc::answer(&handle, &bytes));
                    if answer.starts_with("<methodResponse>") { Ok(()) } else { Err(TestCaseError::fail(answer)) }
                }
            };
            assert!(result.is_ok(), "{}: {result:?}", entry.path().display());
        }
    }
}

/// A machine with two GPUs, so the config's GPU stage runs on every input.
fn two_gpus() -> supd::config::Machine {
    supd::config::Machine { gpus: vec![0, 1], no_gpu: String::new() }
}
