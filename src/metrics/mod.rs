//! `GET /metrics`: Prometheus metrics, encoded by the prometheus-client crate.
//!
//! Most values mirror the latest [`Snapshot`], so a scrape builds them afresh from it and
//! nothing is kept in step by hand. Two things are not in the snapshot: probe durations, a
//! histogram the supervisor feeds as results come in, and process-tree usage, which [`sample`]
//! reads from /proc on demand, off the event loop, at most once a second however many scrapes
//! come.
//!
//! Labels are `program` and `group` names only (and `state` from a fixed set, `gpu` indices),
//! so their number stays bounded by the config. It only reads: nothing here changes a program,
//! and the supervisor holds none of its types (it reports through
//! [`crate::supervisor::ProbeObserver`]).

pub mod sample;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::UNIX_EPOCH;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::lifecycle::Health;
use crate::lifecycle::State;
use crate::supervisor::{ProbeObserver, ProgramView, Snapshot};

/// Which text a scrape gets: Prometheus text 0.0.4 unless it asks for OpenMetrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text exposition format 0.0.4 (the default, and for `Accept: text/plain`).
    Text004,
    /// OpenMetrics 1.0 (for `Accept: application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for (none, or anything else: text 0.0.4).
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text004,
        }
    }

    /// The `Content-Type` of a body in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Prometheus text 0.0.4 from OpenMetrics text as prometheus-client writes it: a counter's
/// family is named with its `_total` (as its samples are), and `# UNIT` and `# EOF` go.
fn text_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) if rest.split(' ').next().is_some_and(|name| counters.contains(name)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(&format!("{prefix}{name}_total {tail}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Every state, for the one-hot `supd_program_state`.
const STATES: [State; 7] =
    [State::Stopped, State::Starting, State::Running, State::Backoff, State::Stopping, State::Exited, State::Fatal];

/// The labels of a program's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProgramLabels {
    /// Program name.
    pub program: String,
    /// Group name.
    pub group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    program: String,
    group: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    gpu: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type ProbeDurations = Family<ProgramLabels, Histogram, fn() -> Histogram>;

/// What `/metrics` needs beyond the snapshot. Shared by the supervisor (which records probe
/// durations) and the HTTP listener.
#[derive(Debug)]
pub struct Metrics {
    probes: ProbeDurations,
    sampler: sample::Sampler,
}

/// Probe duration buckets, seconds: 1 ms to about 8 s, doubling (what
/// `exponential_buckets(0.001, 2.0, 14)` gives, made with shifts: its `powf(2, i)` compiles to
/// libm's `exp2`, the one reason supd's binary needed libm, 0.3 MiB of resident pages).
fn probe_histogram() -> Histogram {
    Histogram::new(probe_buckets())
}

/// The upper bounds of [`probe_histogram`]'s buckets, seconds.
fn probe_buckets() -> impl Iterator<Item = f64> {
    (0..14).map(|i| 0.001 * f64::from(1u32 << i))
}

/// Probe durations come from the supervisor as probes finish.
impl ProbeObserver for Metrics {
    /// Records how long one probe of `program` (in `group`) took, in seconds.
    fn probe_finished(&self, program: &str, group: &str, latency: std::time::Duration) {
        let labels = ProgramLabels { program: program.into(), group: group.into() };
        self.probes.get_or_create(&labels).observe(latency.as_secs_f64());
    }

    /// Drops a program's probe histogram (a reload removed it).
    fn forget(&self, program: &str, group: &str) {
        self.probes.remove(&ProgramLabels { program: program.into(), group: group.into() });
    }
}

impl Metrics {
    /// Metrics for the programs in `snapshot`.
    pub fn new(snapshot: watch::Receiver<Arc<Snapshot>>) -> Arc<Metrics> {
        Arc::new(Metrics {
            probes: Family::new_with_constructor(probe_histogram as fn() -> Histogram),
            sampler: sample::Sampler::new(snapshot),
        })
    }

    /// The process-tree sampler (`supctl status -v` shares its samples).
    pub fn sampler(&self) -> &sample::Sampler {
        &self.sampler
    }

    /// The metrics text for `snapshot` and `gpu`, in `format`. Tree usage comes from the sampler: a sample
    /// at most a second old, or a new one taken on a thread while this waits (at most 2 s).
    pub async fn render(&self, snapshot: &Snapshot, gpu: &crate::gpu::SharedGpuView, format: Format) -> String {
        let sample = self.sampler.latest().await;
        let mut registry = Registry::default();
        programs(&mut registry, snapshot, sample.as_deref());
        registry.register(
            "supd_probe_duration_seconds",
            "How long each healthcheck probe took, seconds",
            self.probes.clone(),
        );
        let dropped = Counter::<u64>::default();
        dropped.inc_by(crate::output::own_lines_dropped());
        registry.register(
            "supd_log_lines_dropped",
            "supd's own log lines dropped because its stdout/stderr or log file could not take them",
            dropped,
        );
        if let Some(s) = &sample {
            own(&mut registry, &s.own);
        }
        if let Ok(view) = gpu.lock() {
            gpus(&mut registry, &view);
        }
        let mut out = String::with_capacity(64 * 1024);
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        match format {
            Format::OpenMetrics => out,
            Format::Text004 => text_004(&out),
        }
    }
}

fn labels(p: &ProgramView) -> ProgramLabels {
    ProgramLabels { program: p.name.clone(), group: p.group.clone() }
}

/// The per-program series.
fn programs(registry: &mut Registry, snapshot: &Snapshot, sample: Option<&crate::process::usage::Sample>) {
    let up = Family::<ProgramLabels, Gauge>::default();
    let state = Family::<StateLabels, Gauge>::default();
    let healthy = Family::<ProgramLabels, Gauge>::default();
    let restarts = Family::<ProgramLabels, Counter>::default();
    let memory_restarts = Family::<ProgramLabels, Counter>::default();
    let oom_kills = Family::<ProgramLabels, Counter>::default();
    let started = Family::<ProgramLabels, FloatGauge>::default();
    let exit_code = Family::<ProgramLabels, Gauge>::default();
    let rss = Family::<ProgramLabels, Gauge>::default();
    let cpu = Family::<ProgramLabels, Counter<f64, AtomicU64>>::default();
    for p in &snapshot.programs {
        let l = labels(p);
        let running = p.state == State::Running;
        up.get_or_create(&l).set(i64::from(running));
        for s in STATES {
            let one = StateLabels { program: l.program.clone(), group: l.group.clone(), state: s.as_str() };
            state.get_or_create(&one).set(i64::from(p.state == s));
        }
        let is_healthy = running && matches!(p.health, None | Some(Health::Healthy)) && p.gpu_fault.is_none();
        healthy.get_or_create(&l).set(i64::from(is_healthy));
        restarts.get_or_create(&l).inc_by(p.restarts);
        if p.cfg.max_rss.is_some() {
            memory_restarts.get_or_create(&l).inc_by(p.memory_restarts);
        }
        if p.cfg.cgroup_limits.memory_max.is_some() {
            oom_kills.get_or_create(&l).inc_by(p.oom_kills);
        }
        if let Some(at) = p.started.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            started.get_or_create(&l).set(at.as_secs_f64());
        }
        if let Some((status, _)) = p.last_exit {
            exit_code.get_or_create(&l).set(i64::from(status.shell_code()));
        }
        if let Some(usage) = p.pid.and_then(|pid| sample?.trees.get(&pid)) {
            rss.get_or_create(&l).set(i64::try_from(usage.rss_bytes).unwrap_or(i64::MAX));
            cpu.get_or_create(&l).inc_by(usage.cpu_seconds);
        }
    }
    registry.register("supd_program_up", "1 when the program is RUNNING, else 0", up);
    registry.register("supd_program_state", "The program's supervisord state: 1 for the current one", state);
    registry.register(
        "supd_program_healthy",
        "1 when RUNNING and healthy (or without a healthcheck) and no GPU it needs is faulty",
        healthy,
    );
    registry.register("supd_program_restarts", "Automatic restarts since supd started", restarts);
    registry.register(
        "supd_program_max_rss_restarts",
        "Restarts because the program's tree stayed over max_rss, for programs that set it",
        memory_restarts,
    );
    registry.register(
        "supd_program_oom_kills",
        "OOM kills in the program's cgroup, for programs that set memory_max",
        oom_kills,
    );
    registry.register(
        "supd_program_start_time_seconds",
        "When the current process was spawned, seconds since the Unix epoch",
        started,
    );
    registry.register(
        "supd_program_exit_code",
        "How the last process ended: its exit code, or 128 + signal",
        exit_code,
    );
    registry.register(
        "supd_program_resident_memory_bytes",
        "Resident memory of the program's whole process tree, bytes (sampled every 5 s)",
        rss,
    );
    registry.register(
        "supd_program_cpu_seconds",
        "User and system CPU time of the program's whole process tree, seconds (sampled every 5 s)",
        cpu,
    );
}

/// The standard `process_*` metrics, for supd itself.
fn own(registry: &mut Registry, own: &crate::process::usage::Own) {
    let cpu = Counter::<f64, AtomicU64>::default();
    cpu.inc_by(own.cpu_seconds);
    registry.register("process_cpu_seconds", "supd's user and system CPU time, seconds", cpu);
    registry.register("process_resident_memory_bytes", "supd's resident memory, bytes", int_gauge(own.rss_bytes));
    registry.register("process_virtual_memory_bytes", "supd's virtual memory, bytes", int_gauge(own.virtual_bytes));
    let start = FloatGauge::default();
    start.set(own.start_time_seconds);
    registry.register("process_start_time_seconds", "When supd started, seconds since the Unix epoch", start);
    registry.register("process_open_fds", "supd's open file descriptors", int_gauge(own.open_fds));
    registry.register("process_max_fds", "supd's file descriptor limit", int_gauge(own.max_fds));
    registry.register("process_threads", "supd's threads", int_gauge(own.threads));
}

/// GPU gauges, per device index, when there are GPUs.
fn gpus(registry: &mut Registry, view: &crate::gpu::GpuView) {
    if !view.available {
        return;
    }
    let up = Family::<GpuLabels, Gauge>::default();
    let used = Family::<GpuLabels, Gauge>::default();
    let total = Family::<GpuLabels, Gauge>::default();
    let util = Family::<GpuLabels, FloatGauge>::default();
    let temp = Family::<GpuLabels, Gauge>::default();
    for d in &view.devices {
        let l = GpuLabels { gpu: d.device.index.to_string() };
        up.get_or_create(&l).set(i64::from(d.status == crate::gpu::DeviceStatus::Ok));
        total.get_or_create(&l).set(i64::try_from(d.device.memory_total_bytes).unwrap_or(i64::MAX));
        if let Some(r) = d.reading {
            used.get_or_create(&l).set(i64::try_from(r.memory_used_bytes).unwrap_or(i64::MAX));
            util.get_or_create(&l).set(f64::from(r.utilization_percent) / 100.0);
            temp.get_or_create(&l).set(i64::from(r.temperature_celsius));
        }
    }
    registry.register("supd_gpu_up", "1 while the GPU answers without a critical XID error", up);
    registry.register("supd_gpu_memory_used_bytes", "GPU memory in use, bytes", used);
    registry.register("supd_gpu_memory_total_bytes", "GPU memory, bytes", total);
    registry.register("supd_gpu_utilization_ratio", "GPU utilization over NVML's last sample period, 0 to 1", util);
    registry.register("supd_gpu_temperature_celsius", "GPU core temperature, degrees Celsius", temp);
}

/// A gauge set to `v` (saturating at `i64::MAX`).
fn int_gauge(v: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
    gauge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_buckets_are_prometheus_clients_exponential_ones() {
        let theirs: Vec<f64> = prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 14).collect();
        assert_eq!(probe_buckets().collect::<Vec<_>>(), theirs);
    }

    #[test]
    fn text_004_names_counter_families_with_total_and_drops_eof() {
        let om = "# HELP up Up.\n# TYPE up gauge\nup 1\n# HELP restarts Restarts.\n# TYPE restarts counter\n\
                  # UNIT restarts restarts\nrestarts_total{program=\"a\"} 2\n# EOF\n";
        assert_eq!(
            text_004(om),
            "# HELP up Up.\n# TYPE up gauge\nup 1\n# HELP restarts_total Restarts.\n# TYPE restarts_total counter\n\
             restarts_total{program=\"a\"} 2\n"
        );
    }

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(Format::from_accept(None), Format::Text004);
        assert_eq!(Format::from_accept(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")), Format::Text004);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    }
}
