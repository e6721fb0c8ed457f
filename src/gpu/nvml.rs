//! The real backend: NVML through nvml-wrapper, which loads `libnvidia-ml.so.1` with dlopen,
//! so a machine without NVIDIA's driver runs the same binary and only gets a clear line.

use std::ffi::OsStr;

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::event::EventSet;

use super::{Backend, Device, Inventory, NoGpu, Poll, Reading};

/// The library's soname, as the NVIDIA container toolkit mounts it.
pub const LIBRARY: &str = "libnvidia-ml.so.1";

/// NVML, initialised once for supd's lifetime.
pub struct Nvml {
    nvml: &'static nvml_wrapper::Nvml,
    inventory: Inventory,
    /// Critical XID errors of every device, when the driver supports events.
    xids: Option<EventSet<'static>>,
}

impl Nvml {
    /// Loads and initialises NVML and lists the devices. Errors: one line, `no NVIDIA GPU:
    /// libnvidia-ml.so.1 not found` and the like.
    pub fn open() -> Result<Nvml, NoGpu> {
        let nvml = nvml_wrapper::Nvml::builder().lib_path(OsStr::new(LIBRARY)).init().map_err(|e| match e {
            NvmlError::LibloadingError(_) => NoGpu::LibraryMissing,
            NvmlError::DriverNotLoaded => NoGpu::DriverNotLoaded,
            e => NoGpu::Nvml(e.to_string()),
        })?;
        // The devices and the event set borrow NVML for as long as supd runs: one leaked
        // handle, made once, lets them live in this struct.
        let nvml: &'static nvml_wrapper::Nvml = Box::leak(Box::new(nvml));
        let err = |e: NvmlError| NoGpu::Nvml(e.to_string());
        let driver = nvml.sys_driver_version().map_err(err)?;
        let mut devices = Vec::new();
        let mut xids = nvml.create_event_set().ok();
        for index in 0..nvml.device_count().map_err(err)? {
            let d = nvml.device_by_index(index).map_err(err)?;
            devices.push(Device {
                index,
                name: d.name().map_err(err)?,
                uuid: d.uuid().map_err(err)?,
                memory_total_bytes: d.memory_info().map_err(err)?.total,
            });
            // A device without event support is read, not watched for XID errors.
            xids = xids.and_then(|set| d.register_events(EventTypes::CRITICAL_XID_ERROR, set).ok());
        }
        Ok(Nvml { nvml, inventory: Inventory { driver, devices }, xids })
    }

    fn read(&self, index: u32) -> Result<Reading, String> {
        let d = self.nvml.device_by_index(index).map_err(|e| e.to_string())?;
        Ok(Reading {
            memory_used_bytes: d.memory_info().map_err(|e| e.to_string())?.used,
            utilization_percent: d.utilization_rates().map_or(0, |u| u.gpu),
            temperature_celsius: d.temperature(TemperatureSensor::Gpu).unwrap_or(0),
        })
    }
}

impl Backend for Nvml {
    fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    fn poll(&mut self) -> Vec<Poll> {
        let mut xid = vec![None; self.inventory.devices.len()];
        if let Some(set) = &self.xids {
            // Drain what happened since the last poll; a zero timeout never waits.
            while let Ok(event) = set.wait(0) {
                let at =
                    event.device.index().ok().and_then(|i| self.inventory.devices.iter().position(|d| d.index == i));
                if let Some(at) = at {
                    xid[at] = Some(match event.event_data {
                        Some(XidError::Value(v)) => v,
                        _ => 0,
                    });
                }
            }
        }
        self.inventory.devices.iter().zip(xid).map(|(d, xid)| Poll { reading: self.read(d.index), xid }).collect()
    }
}
