//! Reload (SIGHUP, `supctl reload`): apply a new config's difference and nothing more.
//!
//! Each program is compared with its resolved config: new ones start, removed ones stop and
//! are forgotten, changed ones stop and start again under the new config, and unchanged ones
//! are not touched (supervisord's `update` restarts a whole group for a one-program change).
//! A program that is stopping finishes its stop under the config it was started with; the
//! change is carried out once it has stopped ([`Supervisor::settle_reloads`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use super::{GroupError, ReloadError, Replacement, Successor, Supervised, Supervisor};
use crate::config::{Config, ProgramConfig};
use crate::lifecycle::Event;
use crate::output::ProgramLogs;

/// What a reload changes, by program name, in the new config's start order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadPlan {
    /// Whether it was applied (false for `--dry-run`).
    pub applied: bool,
    /// New programs: started (when `autostart`).
    pub added: Vec<String>,
    /// Programs whose config changed: stopped, then started with the new config.
    pub changed: Vec<String>,
    /// Programs no longer in the config: stopped and forgotten.
    pub removed: Vec<String>,
    /// Programs left running as they are.
    pub unchanged: Vec<String>,
    /// Changes a reload does not apply (`[supervisor]`, `[gpu]`), which need a restart.
    pub ignored: Vec<String>,
}

/// The tables a reload does not apply, as they were at start-up: `[supervisor]` (the listeners
/// and supd's own log are set up once) and `[gpu]` (the poller's interval).
#[derive(Debug, Default)]
pub(super) struct FixedSettings {
    supervisor: String,
    gpu: String,
}

impl FixedSettings {
    /// What `config` has for them now.
    pub(super) fn of(config: &Config) -> FixedSettings {
        FixedSettings { supervisor: json(&config.supervisor), gpu: json(&config.gpu) }
    }

    /// Each table of `config` that differs, with what to do about it.
    fn changes(&self, config: &Config) -> Vec<String> {
        let now = FixedSettings::of(config);
        let mut out = Vec::new();
        if now.supervisor != self.supervisor {
            out.push("[supervisor] changed: it applies when supd restarts".to_string());
        }
        if now.gpu != self.gpu {
            out.push("[gpu] changed: it applies when supd restarts".to_string());
        }
        out
    }
}

/// A config table's JSON form, for comparing (the config types are `Serialize`).
fn json(table: &impl serde::Serialize) -> String {
    serde_json::to_string(table).unwrap_or_default()
}

/// What a reload does to one program of the new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Added,
    Changed,
    Unchanged,
}

impl Supervisor {
    /// Applies `config` (or, with `dry_run`, only says what would change). Errors: supd is
    /// shutting down; nothing changes then.
    pub(super) fn reload(&mut self, config: Config, dry_run: bool, now: Instant) -> Result<ReloadPlan, ReloadError> {
        if self.shutdown.is_some() {
            return Err(ReloadError::ShuttingDown);
        }
        let changes: Vec<Change> = config.programs.iter().map(|p| self.change(p)).collect();
        let kept: HashSet<&str> = config.programs.iter().map(|p| p.name.as_str()).collect();
        let removed: Vec<String> = self
            .slots
            .iter()
            .filter(|s| !matches!(s.next, Some(Successor::Remove)) && !kept.contains(s.program.cfg.name.as_str()))
            .map(|s| s.program.cfg.name.clone())
            .collect();
        let names = |want: Change| {
            config.programs.iter().zip(&changes).filter(|(_, c)| **c == want).map(|(p, _)| p.name.clone()).collect()
        };
        let plan = ReloadPlan {
            applied: !dry_run,
            added: names(Change::Added),
            changed: names(Change::Changed),
            removed,
            unchanged: names(Change::Unchanged),
            ignored: self.fixed.changes(&config),
        };
        if dry_run {
            return Ok(plan);
        }
        let list = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
        info!(
            "reload: added {}; changed {}; removed {}; {} unchanged",
            list(&plan.added),
            list(&plan.changed),
            list(&plan.removed),
            plan.unchanged.len()
        );
        for note in &plan.ignored {
            warn!("reload: {note}");
        }
        self.gpus.publish(&config.programs);
        self.publish_group_changes(&config.programs);

        let width = crate::output::prefix_width(&config);
        let ranks = crate::config::ranks(&config.programs);
        let mut old: Vec<Option<Supervised>> = std::mem::take(&mut self.slots).into_iter().map(Some).collect();
        let by_name: HashMap<String, usize> =
            old.iter().flatten().enumerate().map(|(i, s)| (s.program.cfg.name.clone(), i)).collect();
        let mut added = Vec::new();
        let programs = config.programs.into_iter().zip(ranks).zip(changes);
        for ((p, rank), change) in programs {
            let existing = by_name.get(&p.name).and_then(|&j| old.get_mut(j)?.take());
            let slot = match existing {
                Some(mut slot) => {
                    slot.rank = rank;
                    if change != Change::Unchanged {
                        let logs = reuse_logs(&slot, &p).unwrap_or_else(|| self.sink.logs(&p, width));
                        slot.next = Some(Successor::Replace(Box::new(Replacement { cfg: Arc::new(p), logs })));
                    }
                    slot
                }
                None => {
                    added.push(self.slots.len());
                    let logs = self.sink.logs(&p, width);
                    self.slot(Arc::new(p), logs, rank, now)
                }
            };
            self.slots.push(slot);
        }
        for mut slot in old.into_iter().flatten() {
            slot.next = Some(Successor::Remove);
            slot.rank = 0;
            self.slots.push(slot);
        }
        self.reindex();
        for i in 0..self.slots.len() {
            if self.slots[i].next.is_some() {
                self.apply(i, Event::Retire, now);
            }
        }
        for i in added {
            self.begin(i, now);
        }
        Ok(plan)
    }

    /// Tells event listeners of each group that `programs` add (`PROCESS_GROUP_ADDED`) or
    /// no longer have (`PROCESS_GROUP_REMOVED`), with supervisord's payload `groupname:NAME`.
    fn publish_group_changes(&self, programs: &[ProgramConfig]) {
        let before: BTreeSet<String> = self.live_programs().into_iter().map(|p| p.group).collect();
        let after: BTreeSet<String> = programs.iter().map(|p| p.group.clone()).collect();
        for group in after.difference(&before) {
            self.bus.publish("PROCESS_GROUP_ADDED", format!("groupname:{group}\n"));
        }
        for group in before.difference(&after) {
            self.bus.publish("PROCESS_GROUP_REMOVED", format!("groupname:{group}\n"));
        }
    }

    /// How `p` differs from the program of the same name that runs (or will run, once a
    /// replacement waits for its stop).
    fn change(&self, p: &ProgramConfig) -> Change {
        let Some(slot) = self.find(&p.name).map(|i| &self.slots[i]) else { return Change::Added };
        let current = match &slot.next {
            None => &slot.program.cfg,
            Some(Successor::Replace(incoming)) => &incoming.cfg,
            Some(Successor::Remove) => return Change::Added,
        };
        if **current == *p { Change::Unchanged } else { Change::Changed }
    }

    /// Carries out what reloads decided for programs that have stopped since: a replaced one
    /// takes its new config (and starts, when `autostart`), a removed one is forgotten.
    pub(super) fn settle_reloads(&mut self, now: Instant) {
        let ready = |s: &Supervised| s.next.is_some() && !s.program.state().is_active();
        if !self.slots.iter().any(ready) {
            return;
        }
        let before = self.slots.len();
        let observer = self.observer.clone();
        self.slots.retain(|s| {
            let gone = ready(s) && matches!(s.next, Some(Successor::Remove));
            if let Some(o) = observer.as_ref().filter(|_| gone) {
                o.forget(&s.program.cfg.name, &s.program.cfg.group);
            }
            if let Some(cg) = s.cgroup.as_ref().filter(|_| gone) {
                cg.remove();
            }
            !gone
        });
        if self.slots.len() != before {
            info!("reload: {} removed program(s) stopped and forgotten", before - self.slots.len());
        }
        let mut replaced = Vec::new();
        for i in 0..self.slots.len() {
            if !ready(&self.slots[i]) {
                continue;
            }
            let Some(Successor::Replace(incoming)) = self.slots[i].next.take() else { continue };
            let Replacement { cfg, logs } = *incoming;
            let fresh = self.slot(cfg, logs, self.slots[i].rank, now);
            self.slots[i] = fresh;
            replaced.push(i);
        }
        self.reindex();
        for i in replaced {
            info!("reload: {} starts under its new config", self.slots[i].program.cfg.name);
            self.begin(i, now);
        }
    }
}

/// The slot's output plumbing, when the new config sends output to the same places: its log
/// files then stay open and its tail keeps what it holds.
fn reuse_logs(slot: &Supervised, p: &ProgramConfig) -> Option<ProgramLogs> {
    let old = &slot.program.cfg;
    let same = old.stdout == p.stdout
        && old.stderr == p.stderr
        && old.log_prefix == p.log_prefix
        && old.log_json == p.log_json;
    same.then(|| slot.logs.clone())
}

impl Supervisor {
    /// The programs in force: each slot's config (or the config a reload will replace it
    /// with), leaving out those a reload removes.
    fn live_programs(&self) -> Vec<ProgramConfig> {
        self.slots
            .iter()
            .filter_map(|s| match &s.next {
                None => Some((*s.program.cfg).clone()),
                Some(Successor::Replace(r)) => Some((*r.cfg).clone()),
                Some(Successor::Remove) => None,
            })
            .collect()
    }

    /// Applies `programs` as a reload does, under the settings in force.
    fn apply_programs(&mut self, mut programs: Vec<ProgramConfig>, now: Instant) -> Result<(), GroupError> {
        programs.sort_by(|a, b| {
            (a.group_priority, &a.group, a.priority, &a.name).cmp(&(b.group_priority, &b.group, b.priority, &b.name))
        });
        let (supervisor, gpu, sources) = self.settings.clone();
        let config = Config { supervisor, programs, gpu, sources, notes: Vec::new() };
        self.reload(config, false, now).map(|_| ()).map_err(GroupError::Reload)
    }

    /// supervisord's `addProcessGroup`: the programs of `group` in `config` join those in
    /// force, which are not touched. Errors: `config` has no such group, or it is there already.
    pub(super) fn add_group(&mut self, config: Config, group: &str, now: Instant) -> Result<(), GroupError> {
        let mut programs = self.live_programs();
        if programs.iter().any(|p| p.group == group) {
            return Err(GroupError::AlreadyAdded);
        }
        let added: Vec<ProgramConfig> = config.programs.into_iter().filter(|p| p.group == group).collect();
        if added.is_empty() {
            return Err(GroupError::BadName);
        }
        programs.extend(added);
        self.apply_programs(programs, now)
    }

    /// supervisord's `removeProcessGroup`: forgets `group`, whose programs must all be stopped.
    /// Errors: no such group, or one of its programs still runs.
    pub(super) fn remove_group(&mut self, group: &str, now: Instant) -> Result<(), GroupError> {
        let programs = self.live_programs();
        if !programs.iter().any(|p| p.group == group) {
            return Err(GroupError::BadName);
        }
        if self.slots.iter().any(|s| s.program.cfg.group == group && s.program.state().is_active()) {
            return Err(GroupError::StillRunning);
        }
        self.apply_programs(programs.into_iter().filter(|p| p.group != group).collect(), now)
    }
}
