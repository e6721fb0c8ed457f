//! A backend described by a JSON file, for tests on machines without a GPU: supd reads it at
//! start-up and again at every poll, so a test can take a device away or raise an XID error.
//!
//! ```json
//! {"driver": "550.54.15", "devices": [
//!   {"index": 0, "name": "Fake H100", "uuid": "GPU-fake-0", "memory_total_bytes": 85899345920,
//!    "memory_used_bytes": 1048576, "utilization_percent": 7, "temperature_celsius": 41,
//!    "lost": false, "xid": null}]}
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Backend, Device, Inventory, NoGpu, Poll, Reading};

/// The environment variable that names the file.
pub const ENV: &str = "SUPD_GPU_FAKE";

#[derive(Deserialize)]
struct File {
    driver: String,
    devices: Vec<FakeDevice>,
}

#[derive(Deserialize)]
struct FakeDevice {
    #[serde(flatten)]
    device: Device,
    #[serde(flatten)]
    reading: Reading,
    #[serde(default)]
    lost: bool,
    xid: Option<u64>,
}

/// See the module doc.
pub struct Fake {
    path: PathBuf,
    inventory: Inventory,
}

impl Fake {
    /// Reads `path`. Errors: it cannot be read or parsed.
    pub fn open(path: PathBuf) -> Result<Fake, NoGpu> {
        let file = read(&path)?;
        let devices = file.devices.into_iter().filter(|d| !d.lost).map(|d| d.device).collect();
        Ok(Fake { path, inventory: Inventory { driver: file.driver, devices } })
    }
}

fn read(path: &Path) -> Result<File, NoGpu> {
    let text = std::fs::read_to_string(path).map_err(|e| NoGpu::FakeFile(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| NoGpu::FakeFile(format!("{}: {e}", path.display())))
}

impl Backend for Fake {
    fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    fn poll(&mut self) -> Vec<Poll> {
        let file = read(&self.path);
        self.inventory
            .devices
            .iter()
            .map(|d| {
                let now = file.as_ref().ok().and_then(|f| f.devices.iter().find(|f| f.device.index == d.index));
                match now {
                    Some(f) if !f.lost => Poll { reading: Ok(f.reading), xid: f.xid },
                    _ => Poll { reading: Err("the device no longer answers".into()), xid: None },
                }
            })
            .collect()
    }
}
