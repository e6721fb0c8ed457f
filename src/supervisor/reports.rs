//! Reports from the tasks beside the loop: probe results, and faults from the GPU poller.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::Supervisor;
use crate::events::live::{Change, Kind};
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
        let passed_before = p.last_probe().map(|o| o.ok);
        let outcome = report.outcome;
        if let Some(o) = &self.observer {
            o.probe_finished(&name, &p.cfg.group, outcome.latency);
        }
        if !outcome.ok {
            debug!("probe of {name} failed: {}", outcome.message);
        }
        self.apply(i, Event::Probe(outcome), Instant::now());
        let p = &self.slots[i].program;
        let word = |ok: bool| if ok { "pass" } else { "fail" }.to_string();
        if let Some(o) = p.last_probe().filter(|o| passed_before != Some(o.ok)) {
            let reason = Some(o.message.clone());
            self.feed
                .publish(|| Change::now(&name, &p.cfg.group, Kind::Probe, passed_before.map(word), word(o.ok), reason));
        }
        let after = p.health();
        if after != before
            && let Some(h) = after
        {
            let from = before.map(|b| b.as_str().to_string());
            self.feed.publish(|| Change::now(&name, &p.cfg.group, Kind::Health, from, h.as_str().to_string(), None));
        }
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

    /// A program's tree stayed over its `max_rss`: said, and passed to its lifecycle (a
    /// restart), if the process measured is still its process.
    pub(super) fn over_memory(&mut self, over: super::memory::OverMemory, now: Instant) {
        let Some(i) = self.find(&over.program) else { return };
        let p = &self.slots[i].program;
        if p.pid() != Some(over.pid) {
            return;
        }
        warn!("{}: {}; restarting it", p.cfg.name, over.reason);
        let reason = Some(over.reason.clone());
        self.feed.publish(|| Change::now(&p.cfg.name, &p.cfg.group, Kind::Memory, None, "over".into(), reason));
        self.apply(i, Event::OverMemory { reason: over.reason }, now);
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
            let (from, to) = if fault.is_some() { ("ok", "fault") } else { ("fault", "ok") };
            let p = &slot.program;
            let reason = fault.clone().or_else(|| p.gpu_fault().map(str::to_string));
            self.feed
                .publish(|| Change::now(&p.cfg.name, &p.cfg.group, Kind::Gpu, Some(from.into()), to.into(), reason));
            self.apply(i, Event::GpuFault(fault), now);
        }
    }
}
