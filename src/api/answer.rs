//! What each supctl request does: status and pid from the snapshot, verbs through the
//! supervisor (each name on its own, as supervisorctl takes them), clear, reload.

use std::time::Instant;

use tokio::sync::oneshot;

use super::control::{Handle, SupervisorGone, error, select};
use super::protocol::{ActionFault, ActionResult, ErrorKind, ProcessEntry, ProgramPid, Request, Response};
use super::readiness;
use super::wait::Wait;
use crate::config::SignalName;
use crate::lifecycle::State;
use crate::lifecycle::settle::Awaited;
use crate::supervisor::{Command, Envelope, ProgramView, Snapshot, VerbError};

impl Handle {
    /// Answers one request.
    pub async fn answer(&self, request: Request) -> Response {
        let snapshot = self.snapshot.borrow().clone();
        let now = Instant::now();
        let names = match &request {
            Request::Status { names, .. } | Request::Pid { names } => names.clone(),
            Request::Start { names } | Request::Stop { names } | Request::Restart { names } => names.clone(),
            Request::Signal { names, .. } => names.clone(),
            Request::Clear { names } => names.clone(),
            Request::Health {}
            | Request::Shutdown {}
            | Request::Reopen {}
            | Request::Tail { .. }
            | Request::Maintail { .. }
            | Request::Events {}
            | Request::Gpu {}
            | Request::Avail {}
            | Request::Add { .. }
            | Request::Remove { .. }
            | Request::RestartAll {}
            | Request::Stdin { .. }
            | Request::Update { .. }
            | Request::Reload { .. } => Vec::new(),
        };
        let is_action = matches!(
            request,
            Request::Start { .. }
                | Request::Stop { .. }
                | Request::Restart { .. }
                | Request::Clear { .. }
                | Request::Signal { .. }
        );
        if is_action && names.is_empty() {
            return error(ErrorKind::BadRequest, "name a program, GROUP:* or all");
        }
        // The verbs take each name on its own, as supervisorctl does.
        let running = |s: State| matches!(s, State::Starting | State::Running | State::Backoff);
        match &request {
            Request::Start { .. } => {
                let wait = Wait::For(Awaited::Started);
                return self.verb(&snapshot, &names, Command::Start, wait, |s| !running(s)).await;
            }
            Request::Stop { .. } => {
                return self.verb(&snapshot, &names, Command::Stop, Wait::For(Awaited::Stopped), running).await;
            }
            Request::Restart { .. } => {
                return self.verb(&snapshot, &names, Command::Restart, Wait::For(Awaited::Started), |_| true).await;
            }
            Request::Signal { signal, .. } => {
                let Some(signal) = SignalName::parse(signal) else {
                    return error(ErrorKind::BadRequest, format!("unknown signal {signal:?}"));
                };
                let has_process = |s: State| matches!(s, State::Starting | State::Running | State::Stopping);
                return self.verb(&snapshot, &names, |n| Command::Signal(signal, n), Wait::No, has_process).await;
            }
            Request::Avail {} => return self.avail(&snapshot).await,
            Request::Add { names } | Request::Remove { names } if names.is_empty() => {
                return error(ErrorKind::BadRequest, "name a group");
            }
            Request::Add { names } => return self.add_or_remove(names, true).await,
            Request::Remove { names } => return self.add_or_remove(names, false).await,
            Request::Stdin { name, data } => return send_stdin(&snapshot, name, data.as_bytes()).await,
            Request::Update { groups, dry_run } => return self.update(&snapshot, groups, *dry_run).await,
            Request::RestartAll {} => {
                return match self.load_config().await {
                    Ok(config) => {
                        self.restart_everything(config, &snapshot);
                        Response::Done { message: "Restarted supervisord".into() }
                    }
                    Err(e) => error(ErrorKind::BadConfig, e),
                };
            }
            _ => {}
        }
        // Status and pid take each name on its own, and report the ones that match nothing.
        let (ids, unknown) = match &request {
            Request::Status { .. } | Request::Pid { .. } => each_name(&snapshot, &names),
            _ => match select(&snapshot, &names) {
                Ok(ids) => (ids, Vec::new()),
                Err(unknown) => return error(ErrorKind::UnknownName, format!("no such process: {unknown}")),
            },
        };
        match request {
            Request::Status { tree, verbose, .. } => {
                let mut programs: Vec<_> = ids
                    .iter()
                    .filter_map(|&i| snapshot.programs.get(i))
                    .map(|p| super::status::status(p, now))
                    .collect();
                if tree {
                    let views: Vec<_> = ids.iter().filter_map(|&i| snapshot.programs.get(i).cloned()).collect();
                    // /proc is read off the event loop.
                    let found = tokio::task::spawn_blocking(move || processes(&views)).await.unwrap_or_default();
                    for (status, found) in programs.iter_mut().zip(found) {
                        status.processes = Some(found);
                    }
                }
                let supd = match verbose {
                    true => super::status::add_resources(&mut programs, self.metrics.sampler()).await,
                    false => None,
                };
                Response::Status { programs, unknown, supd }
            }
            Request::Pid { names } => Response::Pid {
                supd: std::process::id(),
                programs: if names.is_empty() { Vec::new() } else { pids(&snapshot, &names) },
            },
            Request::Health {} => Response::Health(readiness::report(&snapshot, &self.gpu, now)),
            Request::Gpu {} => Response::Gpu(self.gpu.lock().map(|g| g.clone()).unwrap_or_default()),
            Request::Shutdown {} => match self.send(Command::Shutdown).await {
                Ok(_) => Response::ShuttingDown,
                Err(e) => error(ErrorKind::ShuttingDown, e.to_string()),
            },
            Request::Clear { .. } => self.clear(&snapshot, &ids).await,
            Request::Reopen {} => {
                self.sink.reopen().await;
                Response::Done { message: "reopened every log file".into() }
            }
            Request::Tail { .. } | Request::Maintail { .. } | Request::Events {} => {
                error(ErrorKind::BadRequest, "tail is answered on its own connection")
            }
            Request::Reload { dry_run } => self.reload(dry_run).await,
            Request::Start { .. }
            | Request::Stop { .. }
            | Request::Restart { .. }
            | Request::Signal { .. }
            | Request::Avail {}
            | Request::Add { .. }
            | Request::Remove { .. }
            | Request::RestartAll {}
            | Request::Update { .. }
            | Request::Stdin { .. } => error(ErrorKind::BadRequest, "verbs are answered before"),
        }
    }

    /// Truncates the programs' log files and forgets their tails.
    async fn clear(&self, snapshot: &Snapshot, ids: &[usize]) -> Response {
        let views: Vec<ProgramView> = ids.iter().filter_map(|&i| snapshot.programs.get(i).cloned()).collect();
        self.clear_logs(&views).await;
        let cleared = |view: &ProgramView| ActionResult {
            name: view.full_name(),
            ok: true,
            message: "cleared".into(),
            state: Some(view.state),
            fault: None,
            detail: None,
        };
        Response::Actions { results: views.iter().map(cleared).collect() }
    }

    /// A verb on `names`, each on its own: a name that matches nothing is reported and the
    /// rest go on (supervisorctl); `all` and `GROUP:*` take only the programs whose state
    /// `applies` (start: those not running; stop and signal: those running), as supervisord's
    /// group methods do, while a program named by itself always gets the verb.
    async fn verb(
        &self,
        snapshot: &Snapshot,
        names: &[String],
        command: impl FnOnce(Vec<String>) -> Command,
        wait: Wait,
        applies: impl Fn(State) -> bool,
    ) -> Response {
        let (mut targets, mut unknown) = (Vec::new(), Vec::new());
        for name in names {
            let Ok(ids) = select(snapshot, std::slice::from_ref(name)) else {
                unknown.push(name.clone());
                continue;
            };
            let whole = name == "all" || name.ends_with(":*");
            for p in ids.iter().filter_map(|&i| snapshot.programs.get(i)) {
                if (!whole || applies(p.state)) && !targets.contains(&p.name) {
                    targets.push(p.name.clone());
                }
            }
        }
        let mut response = if targets.is_empty() {
            Response::Actions { results: Vec::new() }
        } else {
            self.command_and_wait(command, targets, wait).await
        };
        if let Response::Actions { results } = &mut response {
            results.extend(unknown.into_iter().map(|name| ActionResult {
                name,
                ok: false,
                message: "no such process".into(),
                state: None,
                fault: Some(ActionFault::NoSuchProgram),
                detail: None,
            }));
        }
        response
    }

    /// Truncates `programs`' log files and forgets their tails.
    pub(super) async fn clear_logs(&self, programs: &[ProgramView]) {
        let mut files = Vec::new();
        for view in programs {
            for log in [&view.logs.stdout, &view.logs.stderr] {
                log.tail.clear();
                files.extend(log.file.clone());
            }
        }
        self.sink.clear(files).await;
    }

    /// Hands `command` to the supervisor; its answer, per program named.
    pub(super) async fn send(&self, command: Command) -> Result<Vec<Result<u64, VerbError>>, SupervisorGone> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Envelope { command, reply }).await.map_err(|_| SupervisorGone)?;
        answer.await.map_err(|_| SupervisorGone)
    }

    /// Reads the config again, off the event loop (it reads files and the user database).
    /// Errors: why it does not load, for people.
    pub(super) async fn load_config(&self) -> Result<crate::config::Config, String> {
        let path = self.config.clone();
        let machine = self.machine.clone();
        match tokio::task::spawn_blocking(move || crate::config::load(&path, &machine)).await {
            Ok(Ok(config)) => Ok(config),
            Ok(Err(e)) => Err(format!("config error: {e}; nothing was changed")),
            Err(e) => Err(format!("cannot load the config: {e}")),
        }
    }

    /// Re-reads the config and hands it to the supervisor. A config that does not load changes
    /// nothing.
    async fn reload(&self, dry_run: bool) -> Response {
        let loaded = match self.load_config().await {
            Ok(config) => config,
            Err(e) => return error(ErrorKind::BadConfig, e),
        };
        let (reply, plan) = oneshot::channel();
        let command = Command::Reload { config: Box::new(loaded), dry_run, reply };
        if let Err(e) = self.send(command).await {
            return error(ErrorKind::ShuttingDown, e.to_string());
        }
        match plan.await {
            Ok(Ok(plan)) => Response::Reload(plan),
            Ok(Err(e)) => error(ErrorKind::BadConfig, format!("{e}; nothing was changed")),
            Err(_) => error(ErrorKind::ShuttingDown, "supd is shutting down"),
        }
    }
}

/// Every process of each of `programs` now: its cgroup's, or its process tree and the
/// processes marked with its name (see [`crate::process::tree`]).
fn processes(programs: &[ProgramView]) -> Vec<Vec<ProcessEntry>> {
    // All of /proc is read only when some program has no cgroup.
    let census = programs.iter().any(|p| p.cgroup.is_none()).then(crate::process::tree::Census::take);
    let command = |pid: i32| {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string()
    };
    programs
        .iter()
        .map(|p| {
            let pids = match (&p.cgroup, &census) {
                (Some(cg), _) => cg.pids(),
                (None, Some(census)) => census.members(&p.name, p.pid),
                (None, None) => Vec::new(),
            };
            pids.into_iter().map(|pid| ProcessEntry { pid, command: command(pid) }).collect()
        })
        .collect()
}

fn pids(snapshot: &Snapshot, names: &[String]) -> Vec<ProgramPid> {
    let pid = |p: &ProgramView| ProgramPid { name: p.full_name(), pid: p.pid, unknown: false };
    if names.iter().any(|n| n == "all") {
        // supervisorctl: every program's, in getAllProcessInfo's order (group, then name).
        let mut all: Vec<&ProgramView> = snapshot.programs.iter().collect();
        all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        return all.into_iter().map(pid).collect();
    }
    let mut out = Vec::new();
    for name in names {
        match select(snapshot, std::slice::from_ref(name)) {
            Ok(ids) => out.extend(ids.iter().filter_map(|&i| snapshot.programs.get(i)).map(pid)),
            Err(_) => out.push(ProgramPid { name: name.clone(), pid: None, unknown: true }),
        }
    }
    out
}

/// The programs `names` match (all for none or `all`), in the order named, and apart the
/// names that match nothing.
fn each_name(snapshot: &Snapshot, names: &[String]) -> (Vec<usize>, Vec<String>) {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return ((0..snapshot.programs.len()).collect(), Vec::new());
    }
    let (mut ids, mut unknown) = (Vec::new(), Vec::new());
    for name in names {
        match select(snapshot, std::slice::from_ref(name)) {
            Ok(found) => ids.extend(found.into_iter().filter(|i| !ids.contains(i)).collect::<Vec<_>>()),
            Err(_) => unknown.push(name.clone()),
        }
    }
    (ids, unknown)
}

/// `stdin`: writes `data` to the stdin of the one program `name` names.
async fn send_stdin(snapshot: &Snapshot, name: &str, data: &[u8]) -> Response {
    let Some(p) = super::control::select_one(snapshot, name) else {
        return error(ErrorKind::UnknownName, format!("no such process: {name}"));
    };
    match p.write_stdin(data).await {
        Ok(()) => Response::Done { message: String::new() },
        Err(e) => error(ErrorKind::BadRequest, format!("{}: {e}", p.full_name())),
    }
}
