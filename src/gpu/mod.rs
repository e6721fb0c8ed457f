//! NVIDIA GPUs: what is there at start-up, and readings taken by a background task, so a
//! request never waits on NVML. Which program gets which GPU is the config's to say (see
//! [`crate::config::Machine`]): this module only finds them and watches them.
//!
//! The [`Backend`] trait keeps NVML behind one small seam: [`nvml`] is the only real backend
//! (it loads `libnvidia-ml.so.1` at run time, so supd has no link-time dependency on NVIDIA's
//! libraries), and `fake` (only in a build with the `fake-gpu` feature, never in a default
//! one) lets tests describe devices, their loss and XID errors in a file.

#[cfg(feature = "fake-gpu")]
pub mod fake;
pub mod nvml;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{Machine, ProgramConfig};

/// One GPU as found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// NVML's index, the number `CUDA_VISIBLE_DEVICES` uses.
    pub index: u32,
    /// E.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// E.g. `GPU-5c4b…`.
    pub uuid: String,
    /// Memory, bytes.
    pub memory_total_bytes: u64,
}

/// One reading of one GPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// GPU utilization over NVML's last sample period, percent.
    pub utilization_percent: u32,
    /// Core temperature, degrees Celsius.
    pub temperature_celsius: u32,
}

/// What one poll says of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// The reading, or why the device did not answer (it is lost).
    pub reading: Result<Reading, String>,
    /// A critical XID error reported since the last poll.
    pub xid: Option<u64>,
}

/// What supd found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The driver version, e.g. `550.54.15`.
    pub driver: String,
    /// The devices, by index.
    pub devices: Vec<Device>,
}

/// A source of GPU facts. Calls may block (NVML talks to the driver): supd makes them at
/// start-up and from a blocking thread, never on the event loop.
pub trait Backend: Send + 'static {
    /// The driver and the devices.
    fn inventory(&self) -> &Inventory;
    /// One [`Poll`] per device of the inventory, in its order.
    fn poll(&mut self) -> Vec<Poll>;
}

/// Why there is no GPU to use: detection found none, or could not ask. Every message starts
/// `no NVIDIA GPU:` and is one line, as `supctl gpu` and the log show it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoGpu {
    /// `libnvidia-ml.so.1` is not installed (no NVIDIA driver in the image).
    #[error("no NVIDIA GPU: {} not found", nvml::LIBRARY)]
    LibraryMissing,
    /// The library is there, the kernel driver is not.
    #[error("no NVIDIA GPU: the NVIDIA driver is not loaded")]
    DriverNotLoaded,
    /// NVML answered with an error.
    #[error("no NVIDIA GPU: NVML error: {0}")]
    Nvml(String),
    /// NVML works and lists no device.
    #[error("no NVIDIA GPU: NVML found no device")]
    NoDevice,
    /// The fake backend's file cannot be read or parsed (a `fake-gpu` build's tests).
    #[error("no NVIDIA GPU: {0}")]
    FakeFile(String),
}

/// Finds the backend: NVML (or, in a build with the `fake-gpu` feature, the fake one when
/// `SUPD_GPU_FAKE` names a file; a default build ignores that variable, so no environment can
/// fool a shipped supd). Errors: the one line saying why there is no GPU (`no NVIDIA GPU:
/// libnvidia-ml.so.1 not found`).
pub fn detect() -> Result<Box<dyn Backend>, NoGpu> {
    #[cfg(feature = "fake-gpu")]
    let fake = std::env::var_os(fake::ENV).map(|path| fake::Fake::open(path.into())).transpose()?;
    #[cfg(not(feature = "fake-gpu"))]
    let fake: Option<nvml::Nvml> = None;
    let backend: Box<dyn Backend> = match fake {
        Some(fake) => Box::new(fake),
        None => Box::new(nvml::Nvml::open()?),
    };
    if backend.inventory().devices.is_empty() {
        return Err(NoGpu::NoDevice);
    }
    Ok(backend)
}

/// The GPU state `supctl gpu` and `/health` show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuView {
    /// Whether any GPU was found.
    pub available: bool,
    /// Why not, when none was (`no NVIDIA GPU: …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The driver version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// ConfigDuration between readings (0: polling is off).
    pub interval_seconds: f64,
    /// Each device with its latest reading and holders.
    pub devices: Vec<DeviceView>,
}

/// One device in [`GpuView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// What it is.
    #[serde(flatten)]
    pub device: Device,
    /// The latest reading (none once it is lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<Reading>,
    /// Whether it answers.
    pub status: DeviceStatus,
    /// Why it is lost, or the last critical XID error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The programs given this GPU.
    pub programs: Vec<String>,
}

/// A device's condition. Once lost it stays lost, and an XID error stays until supd restarts:
/// both usually need a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// It answers.
    Ok,
    /// It stopped answering.
    Lost,
    /// It reported a critical XID error.
    Xid,
}

impl DeviceStatus {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Ok => "ok",
            DeviceStatus::Lost => "lost",
            DeviceStatus::Xid => "xid",
        }
    }
}

impl GpuView {
    /// No GPU, and why.
    pub fn none(reason: String) -> Self {
        GpuView { reason: Some(reason), ..GpuView::default() }
    }
}

/// A change in a GPU's fault, for the supervisor: the device index and the fault, `None` once
/// it clears.
pub type Fault = (u32, Option<String>);

/// Shared GPU state; cheap to clone.
pub type SharedGpuView = Arc<Mutex<GpuView>>;

/// Logs what was found, one line per GPU, and returns the view to share (holders are filled in
/// by [`Gpus::publish`]).
pub fn describe(backend: &Result<Box<dyn Backend>, NoGpu>, interval: Duration) -> SharedGpuView {
    let view = match backend {
        Err(reason) => {
            info!("{reason}; programs with gpu = \"optional\" run on the CPU");
            GpuView::none(reason.to_string())
        }
        Ok(b) => {
            let inv = b.inventory();
            info!("NVIDIA driver {}, {} GPU(s)", inv.driver, inv.devices.len());
            for d in &inv.devices {
                info!("GPU {}: {} ({}), {} MiB", d.index, d.name, d.uuid, d.memory_total_bytes >> 20);
            }
            GpuView {
                available: true,
                reason: None,
                driver: Some(inv.driver.clone()),
                interval_seconds: interval.as_secs_f64(),
                devices: inv
                    .devices
                    .iter()
                    .map(|d| DeviceView {
                        device: d.clone(),
                        reading: None,
                        status: DeviceStatus::Ok,
                        error: None,
                        programs: Vec::new(),
                    })
                    .collect(),
            }
        }
    };
    Arc::new(Mutex::new(view))
}

/// Reads every device once now and then every `interval` (never again when it is zero), on a
/// thread of its own so that a slow or hung driver call holds up nothing else. Updates `view`
/// and tells the supervisor when a device is lost or reports a critical XID error (see
/// [`DeviceStatus`] for how long a fault lasts). Errors: the thread could not be created.
pub fn poll(
    mut backend: Box<dyn Backend>,
    interval: Duration,
    view: SharedGpuView,
    faults: mpsc::Sender<Fault>,
) -> std::io::Result<()> {
    let mut reported: Vec<(u32, String)> = Vec::new();
    std::thread::Builder::new().name("supd-gpu".into()).stack_size(256 * 1024).spawn(move || {
        loop {
            let broken = apply(&view, &backend.poll());
            for (index, why) in &broken {
                if !reported.iter().any(|(i, w)| i == index && w == why)
                    && faults.blocking_send((*index, Some(why.clone()))).is_err()
                {
                    return; // supd is exiting
                }
            }
            for (index, _) in &reported {
                if !broken.iter().any(|(i, _)| i == index) && faults.blocking_send((*index, None)).is_err() {
                    return;
                }
            }
            reported = broken;
            if interval.is_zero() {
                return;
            }
            std::thread::sleep(interval);
        }
    })?;
    Ok(())
}

/// Records one round of polls; returns the broken devices: (index, what is wrong).
fn apply(view: &SharedGpuView, polls: &[Poll]) -> Vec<(u32, String)> {
    let Ok(mut view) = view.lock() else { return Vec::new() };
    let mut broken = Vec::new();
    for (d, p) in view.devices.iter_mut().zip(polls) {
        let index = d.device.index;
        match (&p.reading, d.status) {
            (_, DeviceStatus::Lost) => {}
            (Ok(r), _) => d.reading = Some(*r),
            (Err(e), _) => {
                warn!("GPU {index} lost: {e}");
                d.reading = None;
                d.status = DeviceStatus::Lost;
                d.error = Some(format!("GPU {index} lost: {e}"));
            }
        }
        if let Some(xid) = p.xid.filter(|_| d.status != DeviceStatus::Lost) {
            warn!("GPU {index}: critical XID error {xid}");
            d.status = DeviceStatus::Xid;
            d.error = Some(format!("GPU {index}: XID error {xid}"));
        }
        if d.status != DeviceStatus::Ok
            && let Some(e) = &d.error
        {
            broken.push((d.device.index, e.clone()));
        }
    }
    broken
}

/// The GPUs found at start-up: what programs may be given (at start-up and at each reload),
/// and what `supctl gpu` and `/health` show.
#[derive(Debug, Clone)]
pub struct Gpus {
    /// What the config's programs are given ([`crate::config::Machine`]).
    pub machine: Machine,
    /// What `supctl gpu` and `/health` show.
    pub view: SharedGpuView,
}

impl Gpus {
    /// Shows which of `programs` hold each GPU.
    pub fn publish(&self, programs: &[ProgramConfig]) {
        let Ok(mut view) = self.view.lock() else { return };
        for d in &mut view.devices {
            let index = d.device.index;
            d.programs = programs.iter().filter(|p| p.gpus_held.contains(&index)).map(|p| p.name.clone()).collect();
        }
    }
}

/// The GPU side of start-up: detection before the config is resolved, polling after.
pub struct Setup {
    backend: Result<Box<dyn Backend>, NoGpu>,
    /// How long detection took (logged once logging is up).
    took: Duration,
    /// What the config's programs may be given.
    pub machine: Machine,
}

impl Setup {
    /// Detects the GPUs (quietly: logging is not set up yet). Never fails: without a GPU,
    /// programs that asked for one fall back as `gpu = "optional"` and `"required"` say.
    pub fn detect() -> Setup {
        let started = std::time::Instant::now();
        let backend = detect();
        let took = started.elapsed();
        let machine = match &backend {
            Ok(b) => Machine { gpus: b.inventory().devices.iter().map(|d| d.index).collect(), no_gpu: String::new() },
            Err(why) => Machine { gpus: Vec::new(), no_gpu: why.to_string() },
        };
        Setup { backend, took, machine }
    }

    /// Logs what was found and makes what `supctl gpu` and `/health` show, with the GPUs
    /// `programs` hold.
    pub fn describe(&self, programs: &[ProgramConfig], interval: Duration) -> Gpus {
        tracing::debug!("GPU detection took {:.3} ms", self.took.as_secs_f64() * 1000.0);
        let gpus = Gpus { machine: self.machine.clone(), view: describe(&self.backend, interval) };
        gpus.publish(programs);
        gpus
    }

    /// Starts the poller, every `interval`, updating `view`, when there is a GPU; returns the
    /// faults it reports, for the supervisor.
    pub fn start_polling(self, interval: Duration, view: &SharedGpuView) -> mpsc::Receiver<Fault> {
        let (tx, rx) = mpsc::channel(16);
        if let Ok(backend) = self.backend
            && let Err(e) = poll(backend, interval, Arc::clone(view), tx)
        {
            warn!("cannot start the GPU poller: {e}; GPU readings stay as at start-up");
        }
        rx
    }
}

#[cfg(test)]
mod tests {
    /// A default build has no test seam: `SUPD_GPU_FAKE` cannot describe GPUs to it. (Run by
    /// `cargo test --lib` without features, as CI does.)
    #[cfg(not(feature = "fake-gpu"))]
    #[test]
    fn a_default_build_ignores_supd_gpu_fake() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gpus.json");
        std::fs::write(
            &file,
            r#"{"driver": "1", "devices": [{"index": 0, "name": "Fake", "uuid": "GPU-f",
            "memory_total_bytes": 1, "memory_used_bytes": 0, "utilization_percent": 0, "temperature_celsius": 1}]}"#,
        )
        .unwrap();
        // SAFETY: no other test of this binary reads or writes the environment.
        unsafe { std::env::set_var("SUPD_GPU_FAKE", &file) };
        let found = super::detect().map(|b| b.inventory().devices.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
        assert!(!matches!(&found, Ok(names) if names.iter().any(|n| n == "Fake")), "{:?}", found.err());
    }
}
