//! A program's whole process tree, for stop: processes that left its process group (a
//! daemon that called `setsid`, a double fork) are signalled with it and waited for, through
//! its cgroup where supd has cgroup v2 ([`crate::process::cgroup`]), else found by
//! [`crate::process::tree`].

use nix::sys::signal::Signal;
use tracing::{debug, warn};

use super::Supervisor;
use crate::process::tree::{self, Census};
use crate::process::{cgroup, signal as sig};

impl Supervisor {
    /// The program cgroup for slot `i`, made on first use when supd has cgroups.
    pub(super) fn cgroup_of(&mut self, i: usize) -> Option<cgroup::ProgramCgroup> {
        if self.slots[i].cgroup.is_none()
            && let Some(cgroups) = &self.cgroups
        {
            let name = &self.slots[i].program.cfg.name;
            match cgroups.program(name) {
                Ok(cg) => self.slots[i].cgroup = Some(cg),
                Err(e) => warn!("cannot make a cgroup for {name}: {e}; it runs in supd's"),
            }
        }
        self.slots[i].cgroup.clone()
    }

    /// Removes the programs' cgroups and supd's own directory, where empty (at exit).
    pub(super) fn remove_cgroups(&self) {
        for cg in self.slots.iter().filter_map(|s| s.cgroup.as_ref()) {
            cg.remove();
        }
        if let Some(cgroups) = &self.cgroups {
            cgroups.remove();
        }
    }

    /// /proc read once for this turn of the loop (see [`Census`]).
    fn census(&mut self) -> &Census {
        self.census.get_or_insert_with(Census::take)
    }

    /// After `signal` went to process group `pgid` of program `i`: sends it to the program's
    /// processes outside that group too (SIGKILL through `cgroup.kill`).
    pub(super) fn signal_escaped(&mut self, i: usize, pgid: i32, signal: Signal) {
        let name = self.slots[i].program.cfg.name.clone();
        if let Some(cg) = self.slots[i].cgroup.clone() {
            if signal == Signal::SIGKILL {
                if let Err(e) = cg.kill() {
                    warn!("cannot kill the cgroup of {name}: {e}");
                }
                return;
            }
            // Only the cgroup's few processes are read, not all of /proc.
            let outside = cg.pids().into_iter().filter(|&pid| tree::pgrp(pid).is_some_and(|g| g != pgid));
            for pid in outside {
                debug!("sending {} to {name}'s pid {pid}, outside its process group", signal.as_str());
                let _ = sig::send(pid, signal, false);
            }
            return;
        }
        let census = self.census();
        let outside = census.outside_group(&census.members(&name, Some(pgid)), pgid);
        if !outside.is_empty() {
            debug!("sending {} to {name}'s pids {outside:?}, outside its process group", signal.as_str());
            tree::signal(&outside, &name, Some(pgid), signal);
        }
    }

    /// Every process of program `i` that is alive: its group's and those outside it.
    pub(super) fn tree_members(&mut self, i: usize) -> Vec<i32> {
        let name = self.slots[i].program.cfg.name.clone();
        let root = self.slots[i].program.pgid();
        if let Some(cg) = &self.slots[i].cgroup {
            return cg.pids();
        }
        self.census().members(&name, root)
    }

    /// Whether anything of program `i` is left: its process group, or a process outside it.
    pub(super) fn tree_alive(&mut self, i: usize) -> bool {
        if self.slots[i].program.pgid().is_some_and(sig::group_alive) {
            return true;
        }
        match &self.slots[i].cgroup {
            Some(cg) => cg.populated(),
            None => {
                let name = self.slots[i].program.cfg.name.clone();
                !self.census().members(&name, None).is_empty()
            }
        }
    }
}
