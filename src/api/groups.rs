//! Groups of the config on disk, one at a time: `supctl avail`, `add` and `remove`
//! (supervisorctl's verbs), and what XML-RPC's `addProcessGroup` and `removeProcessGroup` send
//! the supervisor. A group is added or removed whole; every other program is left as it is.
//! And all of them at once: supervisord's `restart` (`supervisorctl reload`).

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::oneshot;

use super::control::{Handle, error};
use super::protocol::{ActionFault, ActionResult, ConfigEntry, ErrorKind, Response};
use super::wait::Wait;
use crate::config::{Config, ProgramConfig};
use crate::lifecycle::settle::Awaited;
use crate::supervisor::{Command, GroupError, ReloadError, Snapshot};

impl Handle {
    /// Adds group `group` of `config` (and starts its `autostart` programs). Errors: not in
    /// `config` (`BadName`), already there (`AlreadyAdded`), supd is shutting down.
    pub(super) async fn add_group(&self, config: Config, group: &str) -> Result<(), GroupError> {
        let (reply, answer) = oneshot::channel();
        self.group_command(Command::AddGroup { config: Box::new(config), group: group.to_string(), reply }, answer)
            .await
    }

    /// Forgets group `group`. Errors: no such group (`BadName`), a program of it still runs
    /// (`StillRunning`), supd is shutting down.
    pub(super) async fn remove_group(&self, group: &str) -> Result<(), GroupError> {
        let (reply, answer) = oneshot::channel();
        self.group_command(Command::RemoveGroup { group: group.to_string(), reply }, answer).await
    }

    async fn group_command(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<(), GroupError>>,
    ) -> Result<(), GroupError> {
        let gone = || GroupError::Reload(ReloadError::ShuttingDown);
        self.send(command).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// supervisord's `restart`, which starts supervisord over in the same process; supd, PID 1,
    /// does the same without exiting: in a task of its own, it stops every program (waiting
    /// for each as a stop does), applies `config` and starts every `autostart` program of it.
    pub(super) fn restart_everything(&self, config: Config, snapshot: &Snapshot) {
        let (handle, every) = (self.clone(), snapshot.programs.iter().map(|p| p.name.clone()).collect());
        tokio::spawn(async move {
            let stopped = Wait::For(Awaited::Stopped);
            // Those already stopped refuse (not running), which is what a restart wants anyway.
            if handle.verb_and_wait(Command::Stop, every, stopped).await.is_err() {
                return; // supd is shutting down
            }
            let autostart: Vec<String> =
                config.programs.iter().filter(|p| p.autostart).map(|p| p.name.clone()).collect();
            let (reply, applied) = oneshot::channel();
            let reload = Command::Reload { config: Box::new(config), dry_run: false, reply };
            if handle.send(reload).await.is_err() || !matches!(applied.await, Ok(Ok(_))) {
                return;
            }
            // New and changed programs start by themselves; unchanged ones are told to.
            let _ = handle.send(Command::Start(autostart)).await;
        });
    }

    /// `supctl update [GROUP...]` and `reread` (`dry_run`), in supervisorctl's words: each group
    /// the config on disk removes (`stopped`, `removed process group`), changes (`stopped`,
    /// `updated process group`) and adds (`added process group`), or with `dry_run` which are
    /// `available`, `changed` and `disappeared`. All of them go as a reload does (only the
    /// programs that changed restart); named groups one at a time, as supervisorctl's do.
    pub(super) async fn update(&self, snapshot: &Snapshot, names: &[String], dry_run: bool) -> Response {
        let config = match self.load_config().await {
            Ok(config) => config,
            Err(e) => return error(ErrorKind::BadConfig, e),
        };
        let changes = GroupChanges::of(snapshot, &config);
        let all = names.is_empty() || names.iter().any(|n| n == "all");
        let line = |name: &str, message: &str| ActionResult {
            name: name.to_string(),
            ok: true,
            message: message.to_string(),
            state: None,
            fault: None,
            detail: None,
        };
        let mut results = Vec::new();
        if dry_run {
            let kinds =
                [(&changes.added, "available"), (&changes.changed, "changed"), (&changes.removed, "disappeared")];
            for (groups, what) in kinds {
                results.extend(groups.iter().map(|g| line(g, what)));
            }
            results.sort_by(|a, b| a.name.cmp(&b.name));
            return Response::Actions { results };
        }
        if !all {
            for name in names.iter().filter(|n| !snapshot.programs.iter().any(|p| &p.group == *n)) {
                if !changes.added.contains(name) {
                    let mut bad = line(name, &format!("no such group: {name}"));
                    (bad.ok, bad.fault) = (false, Some(ActionFault::NoSuchProgram));
                    results.push(bad);
                }
            }
        }
        let wanted = |g: &String| all || names.contains(g);
        if all {
            let (reply, plan) = oneshot::channel();
            let reload = Command::Reload { config: Box::new(config.clone()), dry_run: false, reply };
            if self.send(reload).await.is_err() {
                return error(ErrorKind::ShuttingDown, "supd is shutting down");
            }
            match plan.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return error(ErrorKind::BadConfig, format!("{e}; nothing was changed")),
                Err(_) => return error(ErrorKind::ShuttingDown, "supd is shutting down"),
            }
        }
        for g in changes.removed.iter().filter(|g| wanted(g)) {
            if !all {
                self.stop_group(snapshot, g).await;
            }
            results.push(line(g, "stopped"));
            if !all && self.remove_group(g).await.is_err() {
                let mut bad = line(g, "has problems; not removing");
                (bad.ok, bad.fault) = (false, Some(ActionFault::Failed));
                results.push(bad);
                continue;
            }
            results.push(line(g, "removed process group"));
        }
        for g in changes.changed.iter().filter(|g| wanted(g)) {
            if !all {
                self.stop_group(snapshot, g).await;
                let _ = self.remove_group(g).await;
                let _ = self.add_group(config.clone(), g).await;
            }
            results.push(line(g, "stopped"));
            results.push(line(g, "updated process group"));
        }
        for g in changes.added.iter().filter(|g| wanted(g)) {
            if !all {
                let _ = self.add_group(config.clone(), g).await;
            }
            results.push(line(g, "added process group"));
        }
        Response::Actions { results }
    }

    /// Stops every program of group `group` and waits until they have stopped.
    async fn stop_group(&self, snapshot: &Snapshot, group: &str) {
        let names = snapshot.programs.iter().filter(|p| p.group == group).map(|p| p.name.clone()).collect();
        let _ = self.verb_and_wait(Command::Stop, names, Wait::For(Awaited::Stopped)).await;
    }

    /// `supctl avail`: the programs of the config on disk, each in use or not.
    pub(super) async fn avail(&self, snapshot: &Snapshot) -> Response {
        let config = match self.load_config().await {
            Ok(config) => config,
            Err(e) => return error(ErrorKind::BadConfig, e),
        };
        let in_force: BTreeSet<(&str, &str)> =
            snapshot.programs.iter().map(|p| (p.group.as_str(), p.name.as_str())).collect();
        let mut programs: Vec<ConfigEntry> = config
            .programs
            .iter()
            .map(|p| ConfigEntry {
                full_name: p.display_name(),
                in_use: in_force.contains(&(p.group.as_str(), p.name.as_str())),
                autostart: p.autostart,
                group_priority: p.group_priority,
                priority: p.priority,
            })
            .collect();
        programs.sort_by(|a, b| a.full_name.cmp(&b.full_name));
        Response::Avail { programs }
    }

    /// `supctl add` and `remove`: each group on its own, in supervisorctl's words.
    pub(super) async fn add_or_remove(&self, names: &[String], add: bool) -> Response {
        let config = if add {
            match self.load_config().await {
                Ok(config) => Some(config),
                Err(e) => return error(ErrorKind::BadConfig, e),
            }
        } else {
            None
        };
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let done = match &config {
                Some(config) => self.add_group(config.clone(), name).await,
                None => self.remove_group(name).await,
            };
            let (message, fault) = match done {
                Ok(()) if add => ("added process group".to_string(), None),
                Ok(()) => ("removed process group".to_string(), None),
                Err(GroupError::BadName) => {
                    (format!("no such process/group: {name}"), Some(ActionFault::NoSuchProgram))
                }
                // supervisorctl reports this one and still exits 0.
                Err(GroupError::AlreadyAdded) => {
                    ("process group already active".into(), Some(ActionFault::AlreadyStarted))
                }
                Err(GroupError::StillRunning) => {
                    (format!("process/group still running: {name}"), Some(ActionFault::Failed))
                }
                Err(GroupError::Reload(_)) => ("shutting down".into(), Some(ActionFault::Failed)),
            };
            results.push(ActionResult {
                name: name.clone(),
                ok: fault.is_none(),
                message,
                state: None,
                fault,
                detail: None,
            });
        }
        Response::Actions { results }
    }
}

/// The groups a config on disk adds, changes and removes against the programs in force, each
/// list in name order (supervisord's `reloadConfig`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct GroupChanges {
    /// In the config, not in force.
    pub added: Vec<String>,
    /// In both, with programs that differ.
    pub changed: Vec<String>,
    /// In force, not in the config.
    pub removed: Vec<String>,
}

impl GroupChanges {
    /// What `config` changes against `snapshot`'s programs, group by group.
    pub(super) fn of(snapshot: &Snapshot, config: &Config) -> GroupChanges {
        let old = group_map(snapshot.programs.iter().map(|p| &*p.cfg));
        let new = group_map(config.programs.iter());
        let names = |groups: Vec<&&str>| groups.into_iter().map(|g| g.to_string()).collect();
        GroupChanges {
            added: names(new.keys().filter(|g| !old.contains_key(*g)).collect()),
            changed: names(
                new.iter().filter(|(g, p)| old.get(*g).is_some_and(|was| was != *p)).map(|(g, _)| g).collect(),
            ),
            removed: names(old.keys().filter(|g| !new.contains_key(*g)).collect()),
        }
    }
}

/// Programs by group, each group's in name order, for comparing.
fn group_map<'a>(programs: impl Iterator<Item = &'a ProgramConfig>) -> BTreeMap<&'a str, Vec<&'a ProgramConfig>> {
    let mut groups: BTreeMap<&str, Vec<&ProgramConfig>> = BTreeMap::new();
    for p in programs {
        groups.entry(p.group.as_str()).or_default().push(p);
    }
    for programs in groups.values_mut() {
        programs.sort_by(|a, b| a.name.cmp(&b.name));
    }
    groups
}
