//! Programs' cgroup limits in the supervisor: where they can apply (found when the first
//! program with limits begins), each program's limits written at its first spawn, and an OOM
//! kill read from its cgroup when it exits.

use std::os::fd::OwnedFd;
use std::time::Instant;

use tracing::{error, info, warn};

use super::Supervisor;
use crate::config::limits::LimitsMode;
use crate::events::live::{Change, Kind};
use crate::lifecycle::Event;
use crate::process::limits::Limiter;

impl Supervisor {
    /// Where limits apply here, found at the first call; why not, where nowhere.
    fn limiter(&mut self) -> Result<&Limiter, String> {
        if self.limiter.is_none() {
            let base = self.cgroups.as_ref().map(|c| c.base().to_path_buf());
            let found = match self.settings.0.cgroup {
                crate::config::CgroupSetting::Off => Err("[supervisor] cgroup = \"off\"".to_string()),
                _ => Limiter::detect(base.as_deref()),
            };
            match &found {
                Ok(Limiter::V2 { .. }) => info!("programs' cgroup limits apply through cgroup v2"),
                Ok(Limiter::V1 { dirs }) => {
                    info!("programs' cgroup limits apply through cgroup v1 ({} hierarchies)", dirs.len())
                }
                Err(why) => warn!("programs' cgroup limits cannot apply: {why}"),
            }
            self.limiter = Some(found);
        }
        match &self.limiter {
            Some(Ok(limiter)) => Ok(limiter),
            Some(Err(why)) => Err(why.clone()),
            None => Err("not looked for".into()),
        }
    }

    /// As program `i` begins: when some of its limits cannot apply here, it cannot run
    /// (`limits = "required"`: FATAL at its start, saying why) or runs with a warning.
    pub(super) fn check_limits(&mut self, i: usize, now: Instant) {
        let cfg = std::sync::Arc::clone(&self.slots[i].program.cfg);
        if !cfg.cgroup_limits.any() {
            return;
        }
        let missing = match self.limiter() {
            Ok(limiter) => {
                let keys = limiter.missing(&cfg.cgroup_limits);
                if keys.is_empty() {
                    return;
                }
                format!("{} cannot apply here (no cgroup controller for it)", keys.join(", "))
            }
            Err(why) => format!("its cgroup limits cannot apply: {why}"),
        };
        match cfg.limits_mode {
            LimitsMode::Required => {
                let reason = format!("{missing}; limits = \"best_effort\" runs it without them");
                self.apply(i, Event::Unavailable { reason }, now);
            }
            LimitsMode::BestEffort => warn!("{}: {missing}; it runs without them (limits = \"best_effort\")", cfg.name),
        }
    }

    /// At program `i`'s spawn: its limit cgroups (made and written at its first spawn), as
    /// the `cgroup.procs` its child joins. Errors: a limit could not be written, with
    /// `limits = "required"` (a spawn error, saying which).
    pub(super) fn limit_cgroups(&mut self, i: usize) -> Result<Vec<OwnedFd>, String> {
        let cfg = std::sync::Arc::clone(&self.slots[i].program.cfg);
        if !cfg.cgroup_limits.any() {
            return Ok(Vec::new());
        }
        if self.slots[i].limits.is_none() {
            let v2_dir = self.slots[i].cgroup.as_ref().map(|c| c.dir().to_path_buf());
            let made = self.limiter().and_then(|l| l.apply(&cfg.name, &cfg.cgroup_limits, v2_dir.as_deref()));
            match (made, cfg.limits_mode) {
                (Ok(made), _) => self.slots[i].limits = Some(made),
                (Err(e), LimitsMode::Required) => return Err(format!("cgroup limits: {e}")),
                (Err(e), LimitsMode::BestEffort) => warn!("{}: cgroup limits: {e}; it runs without them", cfg.name),
            }
        }
        let slot = &mut self.slots[i];
        slot.oom_seen = slot.limits.as_ref().and_then(|l| l.oom_kills()).unwrap_or(0);
        Ok(slot.limits.as_ref().map(|l| l.procs_for_child()).unwrap_or_default())
    }

    /// Program `i`'s process exited: an OOM kill in its cgroup since its spawn is told to its
    /// lifecycle (before the exit), logged and put on the live feed.
    pub(super) fn check_oom(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        let Some(kills) = slot.limits.as_ref().and_then(|l| l.oom_kills()) else { return };
        if kills <= slot.oom_seen {
            return;
        }
        slot.oom_seen = kills;
        let cfg = &slot.program.cfg;
        let at =
            cfg.cgroup_limits.memory_max.map_or(String::new(), |b| format!(" at memory_max {}", super::memory::mib(b)));
        let reason = format!("OOM killed{at}");
        error!("{}: {reason}", cfg.name);
        let why = Some(reason.clone());
        self.feed.publish(|| Change::now(&cfg.name, &cfg.group, Kind::Memory, None, "oom_kill".into(), why));
        self.apply(i, Event::OomKilled { reason }, now);
    }

    /// Removes the programs' limit cgroups and supd's own v1 directories, where empty.
    pub(super) fn remove_limits(&self) {
        for limits in self.slots.iter().filter_map(|s| s.limits.as_ref()) {
            limits.remove();
        }
        if let Some(Ok(limiter)) = &self.limiter {
            crate::process::limits::remove(limiter);
        }
    }
}
