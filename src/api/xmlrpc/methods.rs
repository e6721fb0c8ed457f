//! The `supervisor.*` and `system.*` methods of supervisord 4.x's XML-RPC interface, with its
//! argument types, return values and faults (`supervisor/rpcinterface.py`), on supd's
//! programs. Verbs go to the supervisor as commands and wait as `supctl` does.

use dxr::Value;
use std::collections::BTreeMap;

use super::fault::{Code, Fault};
use super::info::process_info;
use crate::api::control::{Handle, select_one};
use crate::api::wait::{StartFailure, VerbOutcome, Wait};
use crate::config::SignalName;
use crate::lifecycle::settle::{Awaited, Settled};
use crate::lifecycle::{Refusal, State};
use crate::supervisor::{Command, ProgramView, Snapshot, VerbError};

/// supervisord's API version; supervisorctl refuses to talk to any other.
pub const API_VERSION: &str = "3.0";

/// What `getSupervisorVersion` says before supd's version: the supervisord it answers as.
pub const SUPERVISORD_VERSION: &str = "4.3.0+supd.";

/// Every method: its name, signature (return type, then parameter types) and help.
pub const METHODS: &[(&str, &[&str], &str)] = &[
    ("supervisor.getAPIVersion", &["string"], "The version of the RPC API (3.0, as supervisord 4.x)."),
    ("supervisor.getVersion", &["string"], "Deprecated alias of getAPIVersion."),
    ("supervisor.getSupervisorVersion", &["string"], "The supervisord version emulated, and supd's."),
    ("supervisor.getIdentification", &["string"], "The identifier (\"supervisor\")."),
    ("supervisor.getState", &["struct"], "supd's state: statecode and statename."),
    ("supervisor.getPID", &["int"], "supd's pid."),
    ("supervisor.getProcessInfo", &["struct", "string"], "Info about one process (name or group:name)."),
    ("supervisor.getAllProcessInfo", &["array"], "Info about every process."),
    ("supervisor.startProcess", &["boolean", "string", "boolean"], "Start a process; wait for RUNNING."),
    ("supervisor.startProcessGroup", &["array", "string", "boolean"], "Start every process of a group."),
    ("supervisor.startAllProcesses", &["array", "boolean"], "Start every process not running."),
    ("supervisor.stopProcess", &["boolean", "string", "boolean"], "Stop a process; wait until stopped."),
    ("supervisor.stopProcessGroup", &["array", "string", "boolean"], "Stop every process of a group."),
    ("supervisor.stopAllProcesses", &["array", "boolean"], "Stop every process that runs."),
    ("supervisor.signalProcess", &["boolean", "string", "string"], "Send a signal (name or number)."),
    ("supervisor.signalProcessGroup", &["array", "string", "string"], "Signal every process of a group."),
    ("supervisor.signalAllProcesses", &["array", "string"], "Signal every process that runs."),
    ("supervisor.readProcessStdoutLog", &["string", "string", "int", "int"], "Bytes of a process's stdout log."),
    ("supervisor.readProcessStderrLog", &["string", "string", "int", "int"], "Bytes of a process's stderr log."),
    ("supervisor.tailProcessStdoutLog", &["array", "string", "int", "int"], "[bytes, offset, overflow] of stdout."),
    ("supervisor.tailProcessStderrLog", &["array", "string", "int", "int"], "[bytes, offset, overflow] of stderr."),
    ("supervisor.tailProcessLog", &["array", "string", "int", "int"], "Alias of tailProcessStdoutLog."),
    ("supervisor.readProcessLog", &["string", "string", "int", "int"], "Alias of readProcessStdoutLog."),
    ("supervisor.clearProcessLogs", &["boolean", "string"], "Truncate a process's logs."),
    ("supervisor.clearProcessLog", &["boolean", "string"], "Alias of clearProcessLogs."),
    ("supervisor.clearAllProcessLogs", &["array"], "Truncate every process's logs."),
    ("supervisor.sendProcessStdin", &["boolean", "string", "string"], "Write to a process's stdin (stdin_pipe)."),
    ("supervisor.sendRemoteCommEvent", &["boolean", "string", "string"], "Send a REMOTE_COMMUNICATION event."),
    ("supervisor.readLog", &["string", "int", "int"], "Bytes of supd's own log (the last ones for a negative offset)."),
    ("supervisor.readMainLog", &["string", "int", "int"], "Alias of readLog."),
    ("supervisor.clearLog", &["boolean"], "Truncate supd's own log."),
    ("supervisor.restart", &["boolean"], "Stop every process, read the config again, start them again."),
    ("supervisor.shutdown", &["boolean"], "Stop every process and exit."),
    ("supervisor.reloadConfig", &["array"], "Read the config again: [[added, changed, removed]] groups."),
    ("supervisor.addProcessGroup", &["boolean", "string"], "Add a group of the config read last."),
    ("supervisor.removeProcessGroup", &["boolean", "string"], "Forget a stopped group."),
    ("supervisor.getAllConfigInfo", &["array"], "Every program of the config read last."),
    ("system.listMethods", &["array"], "The names of every method."),
    ("system.methodHelp", &["string", "string"], "A method's help."),
    ("system.methodSignature", &["array", "string"], "A method's signature."),
    ("system.multicall", &["array", "array"], "Several calls in one; each result or fault in turn."),
];

/// Calls `name` with `params`.
pub async fn call(handle: &Handle, name: &str, params: &[Value]) -> Result<Value, Fault> {
    if name == "system.multicall" {
        return multicall(handle, params).await;
    }
    single(handle, name, params).await
}

/// `system.multicall`: each call's result as a one-element array, or its fault as a struct.
async fn multicall(handle: &Handle, params: &[Value]) -> Result<Value, Fault> {
    let [Value::Array(calls)] = params else { return Err(Fault::new(Code::IncorrectParameters, "")) };
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        let Value::Struct(call) = call else { return Err(Fault::new(Code::BadArguments, "")) };
        let (Some(Value::String(name)), Some(Value::Array(args))) = (call.get("methodName"), call.get("params")) else {
            return Err(Fault::new(Code::BadArguments, ""));
        };
        // supervisord refuses a multicall inside a multicall.
        let result = if name == "system.multicall" {
            Err(Fault::new(Code::IncorrectParameters, "recursive system.multicall forbidden"))
        } else {
            single(handle, name, args).await
        };
        out.push(match result {
            Ok(v) => Value::Array(vec![v]),
            Err(f) => fault_struct(f),
        });
    }
    Ok(Value::Array(out))
}

fn fault_struct(f: Fault) -> Value {
    let mut s = BTreeMap::new();
    s.insert("faultCode".to_string(), Value::Integer(f.code as i32));
    s.insert("faultString".to_string(), Value::String(f.text));
    Value::Struct(s)
}

async fn single(handle: &Handle, name: &str, params: &[Value]) -> Result<Value, Fault> {
    let Some((_, signature, _)) = METHODS.iter().find(|(m, ..)| *m == name) else {
        return Err(Fault::new(Code::UnknownMethod, ""));
    };
    // Trailing `wait` flags may be left out, as Python's defaults allow.
    let most = signature.len() - 1;
    let least = most - usize::from(signature.last() == Some(&"boolean") && most > 0);
    if params.len() < least || params.len() > most {
        return Err(Fault::new(Code::IncorrectParameters, ""));
    }
    let snapshot = handle.snapshot.borrow().clone();
    let text = |s: &str| Ok(Value::String(s.to_string()));
    match name {
        "supervisor.getAPIVersion" | "supervisor.getVersion" => text(API_VERSION),
        "supervisor.getSupervisorVersion" => text(&format!("{SUPERVISORD_VERSION}{}", env!("CARGO_PKG_VERSION"))),
        "supervisor.getIdentification" => text("supervisor"),
        "supervisor.getState" => {
            let (code, name) = if snapshot.shutting_down { (-1, "SHUTDOWN") } else { (1, "RUNNING") };
            let mut s = BTreeMap::new();
            s.insert("statecode".to_string(), Value::Integer(code));
            s.insert("statename".to_string(), Value::String(name.into()));
            Ok(Value::Struct(s))
        }
        "supervisor.getPID" => Ok(Value::Integer(i32::try_from(std::process::id()).unwrap_or(0))),
        "supervisor.getProcessInfo" => Ok(process_info(program(&snapshot, &string(params, 0)?)?)),
        "supervisor.getAllProcessInfo" => {
            let mut all: Vec<&ProgramView> = snapshot.programs.iter().collect();
            all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
            Ok(Value::Array(all.into_iter().map(process_info).collect()))
        }
        "supervisor.startProcess" | "supervisor.stopProcess" => {
            let spec = string(params, 0)?;
            let wait = flag(params, 1)?;
            let start = name == "supervisor.startProcess";
            if let Some(group) = spec.strip_suffix(":*") {
                return many(handle, &snapshot, members(&snapshot, group)?, start, wait).await;
            }
            let p = program(&snapshot, &spec)?;
            let outcomes = verb(handle, vec![p.name.clone()], start, wait).await?;
            match outcomes.first() {
                Some((p, outcome)) => fault_of(p, outcome, start).map_or(Ok(Value::Boolean(true)), Err),
                None => Err(Fault::new(Code::BadName, spec)),
            }
        }
        "supervisor.startProcessGroup" | "supervisor.stopProcessGroup" => {
            let ids = members(&snapshot, &string(params, 0)?)?;
            many(handle, &snapshot, ids, name == "supervisor.startProcessGroup", flag(params, 1)?).await
        }
        "supervisor.startAllProcesses" | "supervisor.stopAllProcesses" => {
            let ids = (0..snapshot.programs.len()).collect();
            many(handle, &snapshot, ids, name == "supervisor.startAllProcesses", flag(params, 0)?).await
        }
        "supervisor.signalProcess" => {
            let p = program(&snapshot, &string(params, 0)?)?;
            let signal = signal(params, 1)?;
            let outcomes = handle
                .verb_and_wait(|n| Command::Signal(signal, n), vec![p.name.clone()], Wait::No)
                .await
                .map_err(|_| Fault::new(Code::ShutdownState, ""))?;
            match outcomes.first() {
                Some((p, outcome)) => fault_of(p, outcome, false).map_or(Ok(Value::Boolean(true)), Err),
                None => Err(Fault::new(Code::BadName, &p.name)),
            }
        }
        "supervisor.signalProcessGroup" | "supervisor.signalAllProcesses" => {
            let (ids, at) = if name == "supervisor.signalAllProcesses" {
                ((0..snapshot.programs.len()).collect(), 0)
            } else {
                (members(&snapshot, &string(params, 0)?)?, 1)
            };
            let signal = signal(params, at)?;
            // Only programs with a process are signalled (supervisord: those running).
            let names = running(&snapshot, &ids, true);
            let outcomes = handle
                .verb_and_wait(|n| Command::Signal(signal, n), names, Wait::No)
                .await
                .map_err(|_| Fault::new(Code::ShutdownState, ""))?;
            Ok(results(&outcomes, false))
        }
        "supervisor.readProcessStdoutLog" | "supervisor.readProcessLog" | "supervisor.readProcessStderrLog" => {
            let p = program(&snapshot, &string(params, 0)?)?;
            let (offset, length) = (int(params, 1)?, int(params, 2)?);
            let log = if name.ends_with("StderrLog") { &p.logs.stderr } else { &p.logs.stdout };
            super::logs::read_log(log, offset, length).await.map(Value::String)
        }
        "supervisor.tailProcessStdoutLog" | "supervisor.tailProcessLog" | "supervisor.tailProcessStderrLog" => {
            let p = program(&snapshot, &string(params, 0)?)?;
            let (offset, length) = (int(params, 1)?, int(params, 2)?);
            let log = if name.ends_with("StderrLog") { &p.logs.stderr } else { &p.logs.stdout };
            Ok(super::logs::tail_log(log, offset, length).await)
        }
        "supervisor.clearProcessLogs" | "supervisor.clearProcessLog" => {
            let p = program(&snapshot, &string(params, 0)?)?;
            handle.clear_logs(std::slice::from_ref(p)).await;
            Ok(Value::Boolean(true))
        }
        "supervisor.clearAllProcessLogs" => {
            handle.clear_logs(&snapshot.programs).await;
            let ok = snapshot.programs.iter().map(|p| group_result(p, None)).collect();
            Ok(Value::Array(ok))
        }
        "supervisor.sendProcessStdin" => {
            let p = program(&snapshot, &string(params, 0)?)?;
            super::logs::send_stdin(p, string(params, 1)?.as_bytes()).await.map(|()| Value::Boolean(true))
        }
        "supervisor.sendRemoteCommEvent" => {
            let command = Command::RemoteCommunication { kind: string(params, 0)?, data: string(params, 1)? };
            handle.send(command).await.map_err(|_| Fault::new(Code::ShutdownState, ""))?;
            Ok(Value::Boolean(true))
        }
        "supervisor.readLog" | "supervisor.readMainLog" => {
            let (offset, length) = (int(params, 0)?, int(params, 1)?);
            super::logs::read_log(handle.sink.own_log(), offset, length).await.map(Value::String)
        }
        "supervisor.clearLog" => {
            let own = handle.sink.own_log();
            own.tail.clear();
            handle.sink.clear(own.file.iter().cloned().collect()).await;
            Ok(Value::Boolean(true))
        }
        "supervisor.restart" => super::groups::restart(handle, &snapshot).await,
        "supervisor.shutdown" => match handle.send(Command::Shutdown).await {
            Ok(_) => Ok(Value::Boolean(true)),
            Err(_) => Err(Fault::new(Code::ShutdownState, "")),
        },
        "supervisor.reloadConfig" => super::groups::reload_config(handle, &snapshot).await,
        "supervisor.addProcessGroup" => super::groups::add(handle, &string(params, 0)?).await,
        "supervisor.removeProcessGroup" => super::groups::remove(handle, &string(params, 0)?).await,
        "supervisor.getAllConfigInfo" => Ok(super::groups::config_info(handle, &snapshot)),
        "system.listMethods" => Ok(Value::Array(METHODS.iter().map(|(m, ..)| Value::String(m.to_string())).collect())),
        "system.methodHelp" | "system.methodSignature" => {
            let asked = string(params, 0)?;
            let Some((_, sig, help)) = METHODS.iter().find(|(m, ..)| *m == asked) else {
                return Err(Fault::new(Code::BadName, asked));
            };
            if name == "system.methodHelp" {
                return text(help);
            }
            let types = sig.iter().map(|t| Value::String(t.to_string())).collect();
            Ok(Value::Array(vec![Value::Array(types)]))
        }
        _ => Err(Fault::new(Code::UnknownMethod, "")),
    }
}

/// Starts (or stops) `names`, waiting as asked. Errors: supd is shutting down.
async fn verb(
    handle: &Handle,
    names: Vec<String>,
    start: bool,
    wait: bool,
) -> Result<Vec<(ProgramView, VerbOutcome)>, Fault> {
    let awaited = if start { Awaited::Started } else { Awaited::Stopped };
    let wait = if wait { Wait::For(awaited) } else { Wait::No };
    let command = if start { Command::Start } else { Command::Stop };
    handle.verb_and_wait(command, names, wait).await.map_err(|_| Fault::new(Code::ShutdownState, ""))
}

/// The group verbs: start the programs `ids` that do not run (or stop those that do), and
/// answer supervisord's result array.
async fn many(handle: &Handle, snapshot: &Snapshot, ids: Vec<usize>, start: bool, wait: bool) -> Result<Value, Fault> {
    let names = running(snapshot, &ids, !start);
    let outcomes = verb(handle, names, start, wait).await?;
    Ok(results(&outcomes, start))
}

/// Names of the programs `ids` that run (supervisord's RUNNING_STATES), or of those that do not.
fn running(snapshot: &Snapshot, ids: &[usize], runs: bool) -> Vec<String> {
    let active = |p: &&ProgramView| matches!(p.state, State::Starting | State::Running | State::Backoff) == runs;
    ids.iter().filter_map(|&i| snapshot.programs.get(i)).filter(active).map(|p| p.name.clone()).collect()
}

/// supervisord's result array: `{name, group, status, description}` per program.
fn results(outcomes: &[(ProgramView, VerbOutcome)], start: bool) -> Value {
    Value::Array(outcomes.iter().map(|(p, o)| group_result(p, fault_of(p, o, start))).collect())
}

fn group_result(p: &ProgramView, fault: Option<Fault>) -> Value {
    let (status, description) = match fault {
        None => (Code::Success as i32, "OK".to_string()),
        Some(f) => (f.code as i32, f.text),
    };
    let mut s = BTreeMap::new();
    s.insert("name".to_string(), Value::String(p.name.clone()));
    s.insert("group".to_string(), Value::String(p.group.clone()));
    s.insert("status".to_string(), Value::Integer(status));
    s.insert("description".to_string(), Value::String(description));
    Value::Struct(s)
}

/// The fault a verb's `outcome` on `p` answers, as supervisord's would; `None` for success.
fn fault_of(p: &ProgramView, outcome: &VerbOutcome, start: bool) -> Option<Fault> {
    let name = p.full_name();
    match outcome {
        VerbOutcome::Done | VerbOutcome::Settled(Settled::Done) => None,
        VerbOutcome::Settled(Settled::LeftSurvivors) if start => None,
        VerbOutcome::Settled(Settled::LeftSurvivors) => {
            Some(Fault::new(Code::Failed, format!("{name}: {}", crate::api::wait::survivors(&p.survivors))))
        }
        VerbOutcome::Settled(Settled::Failed) => {
            // supervisord sets `spawnerr` for an exit before startsecs too, and its waiting
            // start then answers SPAWN_ERROR, as for a spawn that failed.
            let code = match StartFailure::of(p) {
                StartFailure::NoFile => Code::NoFile,
                StartFailure::NotExecutable => Code::NotExecutable,
                StartFailure::SpawnError => Code::SpawnError,
            };
            Some(Fault::new(code, name))
        }
        VerbOutcome::TimedOut => Some(Fault::new(Code::Failed, format!("{name}: timed out waiting for it to settle"))),
        VerbOutcome::Refused(e) => Some(match e {
            VerbError::NoSuchProgram => Fault::new(Code::BadName, name),
            VerbError::Refused(Refusal::AlreadyStarted) => Fault::new(Code::AlreadyStarted, name),
            VerbError::Refused(Refusal::NotRunning) => Fault::new(Code::NotRunning, name),
            VerbError::Refused(Refusal::ShuttingDown) => Fault::new(Code::ShutdownState, ""),
            VerbError::Refused(r) => Fault::new(Code::Failed, format!("{name}: {r}")),
            VerbError::Signal(errno) => Fault::new(Code::Failed, format!("{name}: {errno}")),
        }),
    }
}

/// The program `spec` names: `group:name`, or `name` (supervisord: the group of that name's
/// program of that name; supd also takes a program's own name in a group of another name).
fn program<'a>(snapshot: &'a Snapshot, spec: &str) -> Result<&'a ProgramView, Fault> {
    select_one(snapshot, spec).ok_or_else(|| Fault::new(Code::BadName, spec))
}

/// The programs of group `group`.
fn members(snapshot: &Snapshot, group: &str) -> Result<Vec<usize>, Fault> {
    let ids: Vec<usize> = (0..snapshot.programs.len()).filter(|&i| snapshot.programs[i].group == group).collect();
    if ids.is_empty() { Err(Fault::new(Code::BadName, group)) } else { Ok(ids) }
}

pub(super) fn string(params: &[Value], i: usize) -> Result<String, Fault> {
    match params.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(Fault::new(Code::BadArguments, "")),
    }
}

pub(super) fn int(params: &[Value], i: usize) -> Result<i32, Fault> {
    match params.get(i) {
        Some(Value::Integer(n)) => Ok(*n),
        _ => Err(Fault::new(Code::BadArguments, "")),
    }
}

/// A `wait` flag: true when left out, as in supervisord.
fn flag(params: &[Value], i: usize) -> Result<bool, Fault> {
    match params.get(i) {
        None => Ok(true),
        Some(Value::Boolean(b)) => Ok(*b),
        Some(Value::Integer(n)) => Ok(*n != 0),
        Some(_) => Err(Fault::new(Code::BadArguments, "")),
    }
}

/// A signal by name (`HUP`, `SIGHUP`) or number, as supervisord's `signal_number` takes it.
fn signal(params: &[Value], i: usize) -> Result<nix::sys::signal::Signal, Fault> {
    let text = match params.get(i) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Integer(n)) => n.to_string(),
        _ => return Err(Fault::new(Code::BadArguments, "")),
    };
    let by_number = text.parse::<i32>().ok().and_then(|n| nix::sys::signal::Signal::try_from(n).ok());
    by_number.or_else(|| SignalName::parse(&text)).ok_or_else(|| Fault::new(Code::BadSignal, text))
}
