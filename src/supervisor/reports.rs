//! Reports from the tasks beside the loop: probe results, and faults from the GPU poller.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::Supervisor;
use crate::lifecycle::{Event, Health};
use crate::probe::runner::Report;

impl Supervisor {
    pub(super) fn probe_report(&mut self, report: Report) {
        let Some(i) = self.slots.iter().position(|s| s.key == report.program) else { return };
        let p = &self.slots[i].program;
        if p.spawns() != report.spawn || p.pid().is_none() {
            return; // about a process that is gone
        }
        let (before, name) = (p.health(), p.cfg.name.clone());
        let outcome = report.outcome;
        if let Some(o) = &self.observer {
            o.probe_finished(&name, &p.cfg.group, outcome.latency);
        }
        if !outcome.ok {
            debug!("probe of {name} failed: {}", outcome.message);
        }
        self.apply(i, Event::Probe(outcome), Instant::now());
        let after = self.slots[i].program.health();
        if after != before
            && let Some(h) = after
        {
            let last = self.slots[i].program.last_probe().map(|o| o.message.clone()).unwrap_or_default();
            match h {
                Health::Unhealthy => warn!("{name} is unhealthy ({last})"),
                _ => info!("{name} is {} ({last})", h.as_str()),
            }
        }
    }

    /// Records a change in a GPU's fault and passes it on to the `required` programs that
    /// hold that GPU.
    pub(super) fn gpu_fault(&mut self, (index, fault): crate::gpu::Fault, now: Instant) {
        match fault {
            Some(why) => self.broken.insert(index, why),
            None => self.broken.remove(&index),
        };
        for i in 0..self.slots.len() {
            self.sync_gpu_fault(i, now);
        }
    }

    /// Tells program `i` the fault of the first broken GPU it holds (its lifecycle decides
    /// what that means for it).
    pub(super) fn sync_gpu_fault(&mut self, i: usize, now: Instant) {
        let slot = &self.slots[i];
        let fault = slot.program.cfg.gpus_held.iter().find_map(|g| self.broken.get(g)).cloned();
        if fault.as_deref() != slot.program.gpu_fault() {
            self.apply(i, Event::GpuFault(fault), now);
        }
    }
}
