//! `supd`: the init and supervisor. Thin: parse arguments, load the config, run the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use supd::api::protocol::{Request, Response};
use supd::api::{control, http};
use supd::config::{self, Config, LogFormat, LogLevel};
use supd::output::Sink;
use supd::process::signal::SignalStream;
use supd::supervisor::{Snapshot, Supervisor};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Exit code for a config that cannot be used (and for bad arguments).
const EXIT_CONFIG: i32 = 2;

#[derive(Parser)]
#[command(name = "supd", version, about = "A process supervisor for containers, made to run as PID 1")]
struct Cli {
    /// Config file, or a directory of *.toml files read in name order.
    #[arg(short, long, env = "SUPD_CONFIG", default_value = config::DEFAULT_CONFIG, global = true)]
    config: PathBuf,
    #[command(subcommand)]
    action: Option<Action>,
    /// Single-command mode: run CMD as the only child, forward signals, exit with its code.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

#[derive(Subcommand)]
enum Action {
    /// Validate the config and print the resolved programs; exit 0, or 2 on an error.
    Check,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = supd::process::reaper::become_subreaper() {
        eprintln!("supd: cannot become a child subreaper ({e}); orphans will not be reaped");
    }
    let code = if !cli.command.is_empty() {
        supd::logging::init(LogFormat::Text, LogLevel::Warn, None);
        runtime(supd::single::run(cli.command))
    } else {
        // `check` says what would run without looking for GPUs (so it never fails for want of
        // them); a real start finds them first, for the config to give them out.
        let checking = matches!(cli.action, Some(Action::Check));
        let gpu = (!checking).then(supd::gpu::Setup::detect);
        let machine = gpu.as_ref().map(|g| g.machine.clone()).unwrap_or_default();
        match (config::load(&cli.config, &machine), gpu) {
            (Err(e), _) => {
                eprintln!("supd: config error: {e}");
                EXIT_CONFIG
            }
            (Ok(cfg), Some(gpu)) => {
                let url = format!("unix://{}", cfg.supervisor.socket.display());
                // SAFETY: no other thread of supd runs yet (the output writer and the runtime
                // start in `supervise`), so nothing reads the environment meanwhile.
                unsafe { std::env::set_var("SUPERVISOR_SERVER_URL", url) };
                supervise(cfg, cli.config, gpu)
            }
            (Ok(cfg), None) => check(&cfg),
        }
    };
    std::process::exit(code);
}

/// Runs `fut` on a single-threaded runtime: a supervisor is I/O-bound, and one thread keeps
/// memory low and makes the spawner and the reaper exclusive by construction.
fn runtime(fut: impl std::future::Future<Output = std::io::Result<i32>>) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // What runs off the loop: file-only output (see output::splice), /proc walks, config
        // reads. Bounded, so no number of programs makes supd start hundreds of threads.
        .max_blocking_threads(16)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supd: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(fut).unwrap_or_else(|e| {
        eprintln!("supd: {e}");
        1
    })
}

fn supervise(cfg: Config, path: PathBuf, gpu: supd::gpu::Setup) -> i32 {
    if let Err(e) = supd::process::raise_own_limits(cfg.supervisor.minfds, cfg.supervisor.minprocs) {
        eprintln!("supd: {e}");
        return 1;
    }
    let sink = match Sink::start(&cfg) {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("supd: cannot start the output writer: {e}");
            return 1;
        }
    };
    supd::logging::init(cfg.supervisor.log_format, cfg.supervisor.log_level, Some(sink.clone()));
    // What a supervisord.conf had that supd does not carry, said once.
    for note in &cfg.notes {
        warn!("supervisord config: {note}");
    }
    let gpus = gpu.describe(&cfg.programs, cfg.gpu.interval);
    let last_lines = sink.clone();
    let code = runtime(async move {
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let view = Arc::clone(&gpus.view);
        let faults = gpu.start_polling(cfg.gpu.interval, &view);
        let metrics = supd::metrics::Metrics::new(snapshot_rx.clone());
        let supervisor = Supervisor::new(&cfg, gpus.clone(), faults, sink.clone(), snapshot_tx)
            .with_probe_observer(Arc::clone(&metrics) as Arc<dyn supd::supervisor::ProbeObserver>);
        info!(
            "supd {} starting {} programs as pid {} from {}",
            env!("CARGO_PKG_VERSION"),
            cfg.programs.len(),
            std::process::id(),
            cfg.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        let handle = control::Handle {
            commands: commands_tx,
            snapshot: snapshot_rx.clone(),
            sink,
            gpu: Arc::clone(&view),
            machine: gpus.machine.clone(),
            pending: Arc::default(),
            config: path,
            feed: supervisor.feed(),
            metrics: Arc::clone(&metrics),
        };
        // The SIGHUP handler goes in before any program starts, so an early HUP is not lost.
        let hangup = SignalStream::listen(&[nix::sys::signal::Signal::SIGHUP])?;
        tokio::spawn(reload_on_hangup(hangup, handle.clone()));
        // A listener that cannot start is reported, and the programs run regardless: PID 1
        // keeps the container's work going.
        match control::bind(&cfg.supervisor) {
            Ok(listener) => {
                tokio::spawn(control::serve(listener, handle.clone()));
            }
            Err(e) => error!("{e}; supctl will not work"),
        }
        if let Some(rpc) = &cfg.supervisor.rpc {
            match http::bind(rpc.addr) {
                Ok(listener) => {
                    info!("xml-rpc listening on {}", listener.local_addr().unwrap_or(rpc.addr));
                    tokio::spawn(supd::api::xmlrpc::serve_tcp(listener, handle.clone(), rpc.credentials.clone()));
                }
                Err(e) => {
                    error!("xml-rpc listener {}: cannot bind: {e}; supervisorctl over TCP will not work", rpc.addr)
                }
            }
        }
        if let Some(addr) = cfg.supervisor.http {
            match http::bind(addr) {
                Ok(listener) => {
                    info!("http listening on {}", listener.local_addr().unwrap_or(addr));
                    let sources =
                        http::Sources { snapshot: snapshot_rx, feed: handle.feed.clone(), gpu: view, metrics };
                    tokio::spawn(http::serve(listener, sources, cfg.supervisor.http_tails));
                }
                Err(e) => error!("http listener {addr}: cannot bind: {e}; /health will not answer"),
            }
        }
        let code = supervisor.run(commands_rx).await;
        control::unlink(&cfg.supervisor.socket);
        if let Ok(code) = code {
            info!("supd exiting with code {code}");
        }
        code
    });
    // Bounded so that shutdown ends within stopwaitsecs + 1 s even when nobody reads supd's
    // stdout: the supervisor's drain took at most 0.5 s of that.
    last_lines.flush(std::time::Duration::from_millis(400));
    code
}

/// SIGHUP: reload as `supctl reload` does, and log the outcome (a bad config is reported and
/// changes nothing).
async fn reload_on_hangup(mut hangup: SignalStream, handle: control::Handle) {
    while hangup.next().await.is_some() {
        info!("SIGHUP: reloading the config");
        // The supervisor logs what it changed.
        if let Response::Error { message, .. } = handle.answer(Request::Reload { dry_run: false }).await {
            error!("reload failed: {message}");
        }
    }
}

/// `supd check`: prints what would run. A closed stdout (`supd check | head`) is not an error.
fn check(cfg: &Config) -> i32 {
    use std::fmt::Write as _;
    for note in &cfg.notes {
        eprintln!("warning: {note}");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "config OK: {} programs from {}",
        cfg.programs.len(),
        list(cfg.sources.iter().map(|p| p.display()))
    );
    for p in &cfg.programs {
        let user =
            p.user.as_ref().map_or_else(|| "(supd's own)".to_string(), |u| format!("{} ({}:{})", u.user, u.uid, u.gid));
        let _ = writeln!(out, "\n[{}]", p.display_name());
        let _ = writeln!(out, "  command       {}", shell_words::join(&p.command));
        let _ = writeln!(out, "  user          {user}");
        if let Some(d) = &p.directory {
            let _ = writeln!(out, "  directory     {}", d.display());
        }
        let _ = writeln!(out, "  priority      {} (group {} {})", p.priority, p.group, p.group_priority);
        let autorestart = serde_json::to_string(&p.autorestart).unwrap_or_default();
        let _ = writeln!(
            out,
            "  autostart     {}, autorestart {}, exitcodes {:?}",
            p.autostart,
            autorestart.trim_matches('"'),
            p.exitcodes
        );
        let _ = writeln!(out, "  startsecs     {}, startretries {}", secs(p.startsecs), p.startretries);
        let _ = writeln!(
            out,
            "  stopsignal    {}, stopwaitsecs {}, stopasgroup {}, killasgroup {}",
            p.stopsignal.as_str().trim_start_matches("SIG"),
            secs(p.stopwaitsecs),
            p.stopasgroup,
            p.killasgroup
        );
        let b = &p.backoff;
        let _ = writeln!(
            out,
            "  backoff       {} doubling to {}, reset after {}",
            secs(b.initial),
            secs(b.max),
            secs(b.reset)
        );
        if p.required {
            let _ = writeln!(out, "  required      true (FATAL stops supd with exit code 1)");
        }
        if p.gpu != config::GpuMode::None {
            let devices = match &p.gpu_devices {
                config::GpuDevices::All => "every GPU, shared".to_string(),
                config::GpuDevices::Indices(list) => format!("gpus {list:?}"),
                config::GpuDevices::Count(n) => format!("{n} GPU(s) of its own"),
            };
            let mode = serde_json::to_string(&p.gpu).unwrap_or_default();
            let _ = writeln!(out, "  gpu           {} ({devices}; assigned at start-up)", mode.trim_matches('"'));
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = std::io::Write::write_all(&mut stdout, out.as_bytes()).and_then(|()| std::io::Write::flush(&mut stdout));
    0
}

fn secs(d: std::time::Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

fn list<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}
