//! `supctl`: control a running supd from a shell. Exit codes follow supervisorctl 4.x.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use supd::api::protocol::{Request, Response};
mod client;
mod render;
mod supervisorctl;
mod top;

use render::{EXIT_FAILED, EXIT_OK};

#[derive(Parser)]
#[command(name = "supctl", version, about = "Control a running supd", after_help = EXIT_CODES)]
struct Cli {
    /// supd's control socket.
    #[arg(short, long, env = "SUPD_SOCKET", default_value = supd::config::DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Print supd's answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for supd's answer (start, stop and restart wait for the programs).
    #[arg(long, default_value_t = 300, global = true)]
    timeout: u64,
    /// Run as supervisorctl (set when supctl is started under that name).
    #[arg(long, hide = true, global = true)]
    supervisorctl: bool,
    #[command(subcommand)]
    command: Cmd,
}

const EXIT_CODES: &str = "Exit codes, as supervisorctl 4.3.0's: 0 ok (also for `start` of a started \
program and `stop` of a stopped one, which are reported); 1 failed (an action did not work, an \
unknown name given to an action or `pid`, bad arguments); 3 status: a listed program is STOPPED, \
EXITED or FATAL; 4 status or tail of an unknown name, or supd cannot be reached; 7 a start that \
ended in BACKOFF, EXITED or FATAL.\n\
`health` exits 0 when healthy and 1 otherwise, as Docker's HEALTHCHECK expects.";

#[derive(Subcommand)]
enum Cmd {
    /// Show program states (NAME, GROUP:*, or all; default all).
    Status {
        /// Also list each program's processes: its process group and whatever left it.
        #[arg(long)]
        tree: bool,
        /// Also give each program's CPU % and resident memory (its whole process tree).
        #[arg(short, long)]
        verbose: bool,
        names: Vec<String>,
    },
    /// Start programs and wait until RUNNING or a failure.
    Start {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop programs and wait until stopped.
    Stop {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop (if running) and start programs, and wait until RUNNING or a failure.
    Restart {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal (HUP, USR1, ...) to programs' processes.
    Signal {
        signal: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// A live view of every program (state, health, pid, uptime, restarts, CPU, memory,
    /// GPUs) with the selected one's output; keys start, stop, restart and signal it or its
    /// group. Prints the table once when stdout is not a terminal.
    Top {
        /// Print the table once as text and exit.
        #[arg(long)]
        once: bool,
    },
    /// Print supd's pid, or the pids of the named programs (0 when not running).
    Pid { names: Vec<String> },
    /// Stop every program and make supd exit.
    Shutdown,
    /// Exit 0 when every autostart program is ready, 1 otherwise (for HEALTHCHECK).
    Health,
    /// Print the last lines of a program's output (from memory, 64 KiB per stream).
    Tail {
        /// Keep printing new output until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// How many bytes instead (supervisorctl's `tail -1600 NAME`).
        #[arg(short = 'c', long)]
        bytes: Option<usize>,
        /// The program.
        name: String,
        /// Which stream.
        #[arg(default_value = "stdout", value_parser = ["stdout", "stderr"])]
        stream: String,
    },
    /// Truncate programs' log files (and forget their in-memory tails).
    Clear {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Follow every change as it happens (state, restart, health, probe result, GPU fault),
    /// one line each; with --json, one JSON object per line. The same feed as GET /events.
    Events,
    /// Print the end of supd's own log (supervisorctl's maintail).
    Maintail {
        /// Keep printing new lines until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many bytes.
        #[arg(short = 'c', long, default_value_t = 1600)]
        bytes: usize,
    },
    /// List the programs of the config on disk: in use or available, auto or manual, and their
    /// priorities (supervisorctl's avail).
    Avail,
    /// Add groups of the config on disk (and start their autostart programs), leaving every
    /// other program as it is (supervisorctl's add).
    Add {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Forget stopped groups (supervisorctl's remove).
    Remove {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Attach to a program (supervisorctl's fg): print its output as it comes and send each
    /// line typed to its stdin (it needs stdin_pipe), until Ctrl-D or Ctrl-C; it keeps running.
    Fg { name: String },
    /// supervisorctl's reload: stop every program, read the config again, start every
    /// autostart one (supd stays PID 1). `reload` applies only the difference.
    RestartAll,
    /// Reopen every log file (as SIGUSR2 does), after logrotate moved them.
    Reopen,
    /// Show the NVIDIA GPUs: memory, utilization, temperature, and which programs hold each.
    Gpu,
    /// Re-read supd's config and apply the difference (as SIGHUP does): new programs start,
    /// removed ones stop, changed ones restart, the others are not touched. Exits 1 with the
    /// error when the config is invalid; nothing is changed then.
    Reload {
        /// Print what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// supervisorctl's `reread`: say which groups the config on disk adds (available), changes
    /// and removes (disappeared); nothing is changed.
    Reread,
    /// supervisorctl's `update [all|GROUP...]`: apply the config on disk, reported group by
    /// group as supervisorctl reports it; all groups as `reload` does (only changed programs
    /// restart), named ones stopped, removed and added again.
    Update { groups: Vec<String> },
    /// Print supd's version.
    Version,
    /// Convert a supervisord.conf (and its [include] files) to supd TOML, with a warning on
    /// stderr for each setting not carried. Needs no running supd.
    Convert {
        /// The supervisord config file.
        file: PathBuf,
        /// Write DIR/supd.toml instead of printing it.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

fn main() {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.first().is_some_and(supervisorctl::invoked_as) {
        match supervisorctl::translate(argv.split_off(1)) {
            Ok(args) => argv.extend(args),
            Err(e) => {
                eprintln!("Error: {e}");
                std::process::exit(EXIT_FAILED);
            }
        }
    }
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_FAILED } else { EXIT_OK });
        }
    };
    let request = match cli.command {
        Cmd::Status { names, tree, verbose } => Request::Status { names, tree, verbose },
        Cmd::Start { names } => Request::Start { names },
        Cmd::Stop { names } => Request::Stop { names },
        Cmd::Restart { names } => Request::Restart { names },
        Cmd::Signal { signal, names } => Request::Signal { signal, names },
        Cmd::Pid { names } => Request::Pid { names },
        Cmd::Top { once } => std::process::exit(top::run(&unix_path(&cli.socket), once)),
        Cmd::Shutdown => Request::Shutdown {},
        Cmd::Health => Request::Health {},
        Cmd::Tail { follow, lines, bytes, name, stream } => {
            Request::Tail { name, stream: Some(stream), lines, bytes, follow }
        }
        Cmd::Clear { names } => Request::Clear { names },
        Cmd::Reopen => Request::Reopen {},
        Cmd::RestartAll => Request::RestartAll {},
        Cmd::Fg { name } => std::process::exit(fg(&cli.socket, &name)),
        Cmd::Maintail { follow, bytes } => Request::Maintail { bytes, follow },
        Cmd::Avail => Request::Avail {},
        Cmd::Events => Request::Events {},
        Cmd::Add { names } => Request::Add { names },
        Cmd::Remove { names } => Request::Remove { names },
        Cmd::Gpu => Request::Gpu {},
        Cmd::Reload { dry_run } => Request::Reload { dry_run },
        Cmd::Reread => Request::Update { groups: Vec::new(), dry_run: true },
        Cmd::Update { groups } => Request::Update { groups, dry_run: false },
        Cmd::Version => {
            // supervisorctl prints the version supd's XML-RPC gives it.
            let prefix = if cli.supervisorctl { supd::api::xmlrpc::methods::SUPERVISORD_VERSION } else { "" };
            print(&format!("{prefix}{}\n", env!("CARGO_PKG_VERSION")));
            std::process::exit(EXIT_OK);
        }
        Cmd::Convert { file, output } => std::process::exit(convert(&file, output.as_deref())),
    };
    let socket = unix_path(&cli.socket);
    if let Request::Tail { follow: true, .. } | Request::Maintail { follow: true, .. } | Request::Events {} = request {
        std::process::exit(follow(&socket, &request, cli.json));
    }
    let timeout = Duration::from_secs(cli.timeout);
    let how = Printed { json: cli.json, supervisorctl: cli.supervisorctl };
    let code = match request {
        // supervisorctl's restart is its stop, then its start, each reported as such.
        Request::Restart { names } if !cli.json => {
            let stopped = call(&socket, &Request::Stop { names: names.clone() }, timeout, &how);
            let started = call(&socket, &Request::Start { names }, timeout, &how);
            if started == EXIT_OK { stopped } else { started }
        }
        request => call(&socket, &request, timeout, &how),
    };
    std::process::exit(code);
}

/// How an answer is printed.
struct Printed {
    /// As JSON.
    json: bool,
    /// As supervisorctl prints it, where supctl's own output differs (`tail`'s last newline).
    supervisorctl: bool,
}

/// Sends `request`, prints the answer as `how` says and the details of failures on stderr;
/// the exit code.
fn call(socket: &std::path::Path, request: &Request, timeout: Duration, how: &Printed) -> i32 {
    match client::call(socket, request, timeout) {
        Ok(response) => {
            let (mut text, code) = render::render(request, &response);
            if how.supervisorctl && matches!(request, Request::Tail { .. } | Request::Maintail { .. }) {
                text.push('\n'); // supervisorctl prints what it read, then a newline
            }
            if how.json {
                text = format!("{}\n", serde_json::to_string_pretty(&response).unwrap_or_default());
            } else if let Response::Actions { results } = &response {
                // supervisorctl's words on stdout; supd's account of each failure beside them.
                for r in results.iter().filter(|r| !r.ok) {
                    if let Some(detail) = &r.detail {
                        eprintln!("supctl: {}: {detail}", r.name);
                    }
                }
            }
            print(&text);
            code
        }
        Err(e) => {
            eprintln!("supctl: {e}");
            // Docker reads any non-zero as unhealthy, but only 1 is defined for HEALTHCHECK.
            if matches!(request, Request::Health {}) { EXIT_FAILED } else { e.code }
        }
    }
}

/// `fg`: follows both streams of `name` on threads of their own and sends each line read from
/// supctl's stdin to the program's, until stdin ends.
fn fg(socket: &std::path::Path, name: &str) -> i32 {
    let socket = unix_path(socket);
    // Writes `data`; the exit code of a failure, said on stderr.
    let send = |data: String| {
        let request = Request::Stdin { name: name.to_string(), data };
        match client::call(&socket, &request, Duration::from_secs(10)) {
            Ok(Response::Error { message, .. }) => {
                eprintln!("supctl: {message}");
                Err(EXIT_FAILED)
            }
            Err(e) => {
                eprintln!("supctl: {e}");
                Err(e.code)
            }
            Ok(_) => Ok(()),
        }
    };
    // Nothing written: only whether it runs with a stdin to write to.
    if let Err(code) = send(String::new()) {
        return code;
    }
    for stream in ["stdout", "stderr"] {
        let tail = Request::Tail {
            name: name.to_string(),
            stream: Some(stream.into()),
            lines: 0,
            bytes: Some(0),
            follow: true,
        };
        let socket = socket.clone();
        std::thread::spawn(move || {
            let _ = client::stream(&socket, &tail, None, |response| match response {
                Response::Tail { data } if stream == "stderr" => {
                    eprint!("{data}");
                    true
                }
                Response::Tail { data } => print(&data),
                _ => false,
            });
        });
    }
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        if let Err(code) = send(format!("{line}\n")) {
            return code;
        }
    }
    EXIT_OK
}

/// `socket`, also given as supervisorctl writes it (`unix:///run/supd/supd.sock`).
fn unix_path(socket: &std::path::Path) -> PathBuf {
    socket.to_str().and_then(|s| s.strip_prefix("unix://")).map_or(socket.to_path_buf(), PathBuf::from)
}

/// `tail -f`: prints each chunk as supd sends it, until interrupted or supd goes away.
fn follow(socket: &std::path::Path, request: &Request, json: bool) -> i32 {
    let mut code = EXIT_OK;
    let result = client::stream(socket, request, None, |response| {
        let (text, c) = render::render(request, &response);
        code = c;
        let text = if json { format!("{}\n", serde_json::to_string(&response).unwrap_or_default()) } else { text };
        print(&text) && c == EXIT_OK
    });
    match result {
        Ok(()) => code,
        Err(e) => {
            eprintln!("supctl: {e}");
            e.code
        }
    }
}

/// `convert`: 0 when written (warnings or not), 1 when the file could not be read or written.
fn convert(file: &std::path::Path, output: Option<&std::path::Path>) -> i32 {
    let converted = match supd::config::ini::convert(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("supctl: {e}");
            return EXIT_FAILED;
        }
    };
    for w in &converted.warnings {
        eprintln!("warning: {w}");
    }
    let Some(dir) = output else {
        print(&converted.toml);
        return EXIT_OK;
    };
    let path = dir.join("supd.toml");
    match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &converted.toml)) {
        Ok(()) => {
            eprintln!(
                "wrote {} ({} warnings); check it with: supd check -c {}",
                path.display(),
                converted.warnings.len(),
                path.display()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("supctl: cannot write {}: {e}", path.display());
            EXIT_FAILED
        }
    }
}

/// Writes to stdout; whether it could. A closed pipe (`supctl status | head`) is not an error.
fn print(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_ok()
}
