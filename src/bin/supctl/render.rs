//! supctl's text: each response as people read it, and supervisorctl's exit codes.

use supd::api::protocol::{
    ActionFault, ActionResult, ConfigEntry, ErrorKind, ProgramStatus, ReloadPlan, Request, Response,
};

/// Success.
pub const EXIT_OK: i32 = 0;
/// A failure: an action that did not work, bad arguments.
pub const EXIT_FAILED: i32 = 1;
/// `status`: a listed program is STOPPED, EXITED or FATAL (supervisorctl, LSB).
pub const EXIT_NOT_RUNNING: i32 = 3;
/// An unknown program name, or supd cannot be reached (supervisorctl, LSB "unknown").
pub const EXIT_UNKNOWN: i32 = 4;

/// A start that ended in BACKOFF, EXITED or FATAL (supervisorctl: a spawn error or an
/// abnormal termination), or the pid of a program not running: LSB init's "not running".
pub const EXIT_START_FAILED: i32 = 7;

/// supervisorctl's exit code for one action's result: `already started` and `not running`
/// are reported but succeed; a failed start is 7; any other failure 1.
fn action_exit_code(r: &ActionResult) -> i32 {
    match r.fault {
        None | Some(ActionFault::AlreadyStarted | ActionFault::NotRunning) => EXIT_OK,
        Some(ActionFault::StartFailed) => EXIT_START_FAILED,
        Some(ActionFault::NoSuchProgram | ActionFault::Failed) => EXIT_FAILED,
    }
}

/// The text and exit code for `response` to `request`.
pub fn render(request: &Request, response: &Response) -> (String, i32) {
    match response {
        Response::Error { kind, message } => {
            let code = match kind {
                // supervisorctl: `pid` of an unknown name is a plain failure.
                ErrorKind::UnknownName if matches!(request, Request::Pid { .. }) => EXIT_FAILED,
                ErrorKind::UnknownName => EXIT_UNKNOWN,
                ErrorKind::BadRequest | ErrorKind::ShuttingDown | ErrorKind::BadConfig => EXIT_FAILED,
            };
            (format!("error: {message}\n"), code)
        }
        Response::Status { programs, unknown, .. } => {
            // supervisorctl: unknown names first, exit 4, unless a listed program is stopped (3).
            let mut out: String = unknown
                .iter()
                .map(|n| match n.strip_suffix(":*") {
                    Some(group) => format!("{group}: ERROR (no such group)\n"),
                    None => format!("{n}: ERROR (no such process)\n"),
                })
                .collect();
            out.push_str(&status_table(programs));
            let code = if programs.iter().any(|p| p.state.is_stopped()) {
                EXIT_NOT_RUNNING
            } else if !unknown.is_empty() {
                EXIT_UNKNOWN
            } else {
                EXIT_OK
            };
            (out, code)
        }
        Response::Actions { results } => {
            let mut out = String::new();
            // supervisorctl's `add`, `remove` and `update` say `ERROR: …` without the name.
            let bare = matches!(request, Request::Add { .. } | Request::Remove { .. } | Request::Update { .. });
            if results.is_empty() && matches!(request, Request::Update { dry_run: true, .. }) {
                return ("No config updates to processes\n".into(), EXIT_OK);
            }
            for r in results {
                if bare && !r.ok {
                    out.push_str(&format!("ERROR: {}\n", r.message));
                } else if r.ok {
                    out.push_str(&format!("{}: {}\n", r.name, r.message));
                } else {
                    out.push_str(&format!("{}: ERROR ({})\n", r.name, r.message));
                }
            }
            (out, results.iter().map(action_exit_code).max().unwrap_or(EXIT_OK))
        }
        Response::Health(report) => {
            if report.healthy() {
                ("healthy\n".into(), EXIT_OK)
            } else {
                (format!("unhealthy: {}\n", report.not_ready.join(", ")), EXIT_FAILED)
            }
        }
        Response::Pid { supd, programs } => match request {
            Request::Pid { names } if !names.is_empty() => {
                // supervisorctl: `No such process NAME` (exit 1), and 0 for one not running (exit 7,
                // LSB init's "program is not running", as for a failed start).
                let mut code = EXIT_OK;
                let mut out = String::new();
                for p in programs {
                    if p.unknown {
                        out.push_str(&format!("No such process {}\n", p.name));
                        code = EXIT_FAILED;
                    } else {
                        out.push_str(&format!("{}\n", p.pid.unwrap_or(0)));
                        if p.pid.is_none() && !names.iter().any(|n| n == "all") {
                            code = EXIT_START_FAILED;
                        }
                    }
                }
                (out, code)
            }
            _ => (format!("{supd}\n"), EXIT_OK),
        },
        Response::ShuttingDown => ("Shut down\n".into(), EXIT_OK),
        Response::Tail { data } => (data.clone(), EXIT_OK),
        Response::Done { message } => (format!("{message}\n"), EXIT_OK),
        Response::Gpu(view) => (gpu_table(view), EXIT_OK),
        Response::Reload(plan) => (reload_plan(plan), EXIT_OK),
        Response::Avail { programs } => (avail(programs), EXIT_OK),
        Response::Change(c) => (change(c), EXIT_OK),
    }
}

/// `supctl events`: `TIME GROUP:NAME KIND FROM -> TO (REASON)`.
fn change(c: &supd::events::live::Change) -> String {
    let name = supd::config::namespec(&c.group, &c.program);
    let from = c.from.as_deref().map(|f| format!("{f} -> ")).unwrap_or_default();
    let why = c.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    format!("{} {name} {} {from}{}{why}\n", c.time, c.kind.as_str(), c.to)
}

/// supervisorctl's `avail`: `NAME` padded to 32, `in use` or `avail`, `auto` or `manual`,
/// `GROUP_PRIORITY:PRIORITY`.
fn avail(programs: &[ConfigEntry]) -> String {
    programs
        .iter()
        .map(|p| {
            let in_use = if p.in_use { "in use" } else { "avail" };
            let auto = if p.autostart { "auto" } else { "manual" };
            format!("{:<32} {in_use:<9} {auto:<9} {}:{}\n", p.full_name, p.group_priority, p.priority)
        })
        .collect()
}

/// `supctl reload`: one line per kind of change, e.g. `changed: api (restarted)`.
pub fn reload_plan(plan: &ReloadPlan) -> String {
    let mut out = String::new();
    if !plan.applied {
        out.push_str("dry run: nothing was changed\n");
    }
    let what = |done: &'static str, planned: &'static str| if plan.applied { done } else { planned };
    for (label, names, effect) in [
        ("added", &plan.added, what("started", "would start")),
        ("changed", &plan.changed, what("restarted", "would restart")),
        ("removed", &plan.removed, what("stopped", "would stop")),
    ] {
        if !names.is_empty() {
            out.push_str(&format!("{label}: {} ({effect})\n", names.join(", ")));
        }
    }
    out.push_str(&format!("unchanged: {} program(s), not touched\n", plan.unchanged.len()));
    for note in &plan.ignored {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// `supctl gpu`: one line per device, or why there is none.
pub fn gpu_table(view: &supd::gpu::GpuView) -> String {
    if !view.available {
        return format!("{}\n", view.reason.as_deref().unwrap_or("no NVIDIA GPU"));
    }
    let mib = |b: u64| b >> 20;
    let mut out = format!(
        "driver {}\n{:<4}{:<28}{:>17}  {:>5}  {:>5}  {:<7}{}\n",
        view.driver.as_deref().unwrap_or("?"),
        "GPU",
        "NAME",
        "MEMORY (MiB)",
        "UTIL",
        "TEMP",
        "STATUS",
        "PROGRAMS"
    );
    for d in &view.devices {
        let (used, util, temp) = match d.reading {
            Some(r) => (
                mib(r.memory_used_bytes).to_string(),
                format!("{}%", r.utilization_percent),
                format!("{}C", r.temperature_celsius),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let memory = format!("{used} / {}", mib(d.device.memory_total_bytes));
        let programs = if d.programs.is_empty() { "-".to_string() } else { d.programs.join(", ") };
        let error = d.error.as_ref().map(|e| format!("  ({e})")).unwrap_or_default();
        out.push_str(&format!(
            "{:<4}{:<28}{memory:>17}  {util:>5}  {temp:>5}  {:<7}{programs}{error}\n",
            d.device.index,
            d.device.name,
            d.status.as_str()
        ));
    }
    out
}

/// supervisorctl 4.3.0's status table: the name padded to the longest (at least 30) plus 3,
/// the state to 10, then the description.
pub fn status_table(programs: &[ProgramStatus]) -> String {
    let width = programs.iter().map(|p| p.full_name.len()).max().unwrap_or(0).max(30) + 3;
    programs
        .iter()
        .map(|p| {
            // `status -v`: the tree's use after the description.
            let used = p.resources.map_or(String::new(), |r| {
                let cpu = r.cpu_percent.map_or(String::new(), |c| format!("cpu {c:.1}%, "));
                format!("; {cpu}rss {:.1} MiB", r.rss_bytes as f64 / f64::from(1 << 20))
            });
            let mut line = format!("{:<width$}{:<10}{}{used}\n", p.full_name, p.state.as_str(), p.description);
            // `status --tree`: each process below its program.
            for proc in p.processes.iter().flatten() {
                line.push_str(&format!("    pid {:<8} {}\n", proc.pid, proc.command));
            }
            line
        })
        .collect()
}
