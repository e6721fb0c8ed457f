//! supervisord's config methods: `reloadConfig` reads the config again and says which groups
//! it adds, changes and removes, without applying anything; `addProcessGroup` and
//! `removeProcessGroup` then apply it one group at a time (what `supervisorctl update`,
//! `add` and `remove` call); `getAllConfigInfo` lists the programs (`supervisorctl avail`).

use std::collections::{BTreeMap, BTreeSet};

use crate::api::groups::GroupChanges;

use dxr::Value;

use super::fault::{Code, Fault};
use crate::api::control::Handle;
use crate::config::{Config, ProgramConfig};
use crate::supervisor::{GroupError, Snapshot};

/// `reloadConfig`: `[[added, changed, removed]]` group names, from the config on disk against
/// the programs in force; the config is kept for `addProcessGroup`. Errors: `CANT_REREAD`
/// with why it does not load.
pub async fn reload_config(handle: &Handle, snapshot: &Snapshot) -> Result<Value, Fault> {
    let config = handle.load_config().await.map_err(|e| Fault::new(Code::CantReread, e))?;
    let changes = GroupChanges::of(snapshot, &config);
    let names = |groups: Vec<String>| Value::Array(groups.into_iter().map(Value::String).collect());
    let lists = vec![names(changes.added), names(changes.changed), names(changes.removed)];
    let answer = Value::Array(vec![Value::Array(lists)]);
    if let Ok(mut pending) = handle.pending.lock() {
        *pending = Some(config);
    }
    Ok(answer)
}

/// `restart`, what `supervisorctl reload` calls (see [`Handle::restart_everything`]).
/// Answers true once the config has loaded, before the programs have stopped, as supervisord
/// answers. Errors: `CANT_REREAD` with why the config does not load (then nothing is stopped).
pub async fn restart(handle: &Handle, snapshot: &Snapshot) -> Result<Value, Fault> {
    let config = handle.load_config().await.map_err(|e| Fault::new(Code::CantReread, e))?;
    handle.restart_everything(config, snapshot);
    Ok(Value::Boolean(true))
}

/// `addProcessGroup(name)`: adds (and, where `autostart`, starts) the group of the config
/// `reloadConfig` read. Errors: `BAD_NAME` (not in that config, or none read), `ALREADY_ADDED`.
pub async fn add(handle: &Handle, group: &str) -> Result<Value, Fault> {
    let config = handle.pending.lock().ok().and_then(|p| p.clone());
    let Some(config) = config else { return Err(Fault::new(Code::BadName, group)) };
    group_answer(handle.add_group(config, group).await, group)
}

/// `removeProcessGroup(name)`: forgets a group whose programs are all stopped. Errors:
/// `BAD_NAME`, `STILL_RUNNING`.
pub async fn remove(handle: &Handle, group: &str) -> Result<Value, Fault> {
    group_answer(handle.remove_group(group).await, group)
}

fn group_answer(done: Result<(), GroupError>, group: &str) -> Result<Value, Fault> {
    match done {
        Ok(()) => Ok(Value::Boolean(true)),
        Err(GroupError::BadName) => Err(Fault::new(Code::BadName, group)),
        Err(GroupError::AlreadyAdded) => Err(Fault::new(Code::AlreadyAdded, group)),
        Err(GroupError::StillRunning) => Err(Fault::new(Code::StillRunning, group)),
        Err(GroupError::Reload(_)) => Err(Fault::new(Code::ShutdownState, "")),
    }
}

/// `getAllConfigInfo`: every program of the config `reloadConfig` read (or, before one, of the
/// config in force), `inuse` when it is among the programs in force, sorted by name.
pub fn config_info(handle: &Handle, snapshot: &Snapshot) -> Value {
    let pending: Option<Config> = handle.pending.lock().ok().and_then(|p| p.clone());
    let in_force: BTreeSet<(&str, &str)> =
        snapshot.programs.iter().map(|p| (p.group.as_str(), p.name.as_str())).collect();
    let programs: Vec<ProgramConfig> = match &pending {
        Some(config) => config.programs.clone(),
        None => snapshot.programs.iter().map(|p| (*p.cfg).clone()).collect(),
    };
    let mut infos: Vec<(String, Value)> = programs
        .iter()
        .map(|p| (p.name.clone(), info(p, in_force.contains(&(p.group.as_str(), p.name.as_str())))))
        .collect();
    infos.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(infos.into_iter().map(|(_, v)| v).collect())
}

/// One program's config info, with supervisord's members where supd has the setting.
fn info(p: &ProgramConfig, inuse: bool) -> Value {
    let secs = |d: std::time::Duration| Value::Integer(i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
    let int = |n: i64| Value::Integer(i32::try_from(n).unwrap_or(i32::MAX));
    let text = |s: &str| Value::String(s.to_string());
    let log =
        |s: &crate::config::StreamConfig| s.file.as_ref().map_or("none".to_string(), |f| f.path.display().to_string());
    let mut m = BTreeMap::new();
    m.insert("name".to_string(), text(&p.name));
    m.insert("group".to_string(), text(&p.group));
    m.insert("inuse".to_string(), Value::Boolean(inuse));
    m.insert("autostart".to_string(), Value::Boolean(p.autostart));
    m.insert("group_prio".to_string(), int(p.group_priority));
    m.insert("process_prio".to_string(), int(p.priority));
    m.insert("command".to_string(), text(&shell_words::join(&p.command)));
    m.insert("directory".to_string(), text(&p.directory.as_ref().map_or("none".into(), |d| d.display().to_string())));
    m.insert("exitcodes".to_string(), Value::Array(p.exitcodes.iter().map(|&c| Value::Integer(c)).collect()));
    m.insert("killasgroup".to_string(), Value::Boolean(p.killasgroup));
    m.insert("redirect_stderr".to_string(), Value::Boolean(p.redirect_stderr));
    m.insert("startretries".to_string(), int(i64::from(p.startretries)));
    m.insert("startsecs".to_string(), secs(p.startsecs));
    m.insert("stopsignal".to_string(), Value::Integer(p.stopsignal as i32));
    m.insert("stopwaitsecs".to_string(), secs(p.stopwaitsecs));
    m.insert("stdout_logfile".to_string(), text(&log(&p.stdout)));
    m.insert("stderr_logfile".to_string(), text(&log(&p.stderr)));
    m.insert("uid".to_string(), p.user.as_ref().map_or(text("none"), |u| int(i64::from(u.uid))));
    Value::Struct(m)
}
