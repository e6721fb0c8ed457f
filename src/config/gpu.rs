//! The config's last resolution stage: which program gets which of this machine's GPUs,
//! decided from `gpu`, `gpus` and `gpu_count`, and the environment that tells each program.
//! It runs inside [`super::load`], so the [`super::Config`] that comes out is final.

use super::{GpuDevices, GpuMode, ProgramConfig};

/// What this machine offers programs, found before the config is resolved: the indices of
/// the GPUs NVML reported, or why there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// GPU indices (empty without a GPU).
    pub gpus: Vec<u32>,
    /// Why there is no GPU (`no NVIDIA GPU: libnvidia-ml.so.1 not found`), when there is none.
    pub no_gpu: String,
}

/// Gives each of `programs` its GPUs on `machine` (see [`assign`]): the GPUs it holds, why it
/// cannot run here (`gpu = "required"` and no GPU), and its GPU variables in its environment
/// before its own `environment`, which wins. Errors: the programs ask for GPUs that do not
/// exist (the message names them).
pub fn apply(programs: &mut [ProgramConfig], machine: &Machine) -> Result<(), String> {
    let assignments = assign(programs, &machine.gpus, &machine.no_gpu)?;
    for (p, a) in programs.iter_mut().zip(assignments) {
        let mut env = a.env();
        env.append(&mut p.environment);
        p.environment = env;
        p.gpu_unavailable = match &a {
            Assignment::NoGpu(why) if p.gpu == GpuMode::Required => Some(format!("gpu required: {why}")),
            _ => None,
        };
        p.gpus_held = a.gpus().map(<[u32]>::to_vec).unwrap_or_default();
    }
    Ok(())
}

/// What one program gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// `gpu = "none"`: no GPU variables are set.
    Untouched,
    /// These GPU indices.
    Gpus(Vec<u32>),
    /// It asked for a GPU and there is none: the reason (`no NVIDIA GPU: …`).
    NoGpu(String),
}

impl Assignment {
    /// Its GPUs, when it has some.
    pub fn gpus(&self) -> Option<&[u32]> {
        match self {
            Assignment::Gpus(g) => Some(g),
            _ => None,
        }
    }

    /// The variables a program gets: `CUDA_VISIBLE_DEVICES` and `NVIDIA_VISIBLE_DEVICES` with
    /// its indices, `USE_GPU=true` and `CUDA_DEVICE_ORDER=PCI_BUS_ID` (CUDA numbers devices
    /// fastest first by default; in PCI order its numbers are NVML's and `nvidia-smi`'s, the
    /// ones assigned here); without a GPU an empty `CUDA_VISIBLE_DEVICES`,
    /// `NVIDIA_VISIBLE_DEVICES=void` (the NVIDIA container toolkit's "none") and
    /// `USE_GPU=false`. A program's own `environment` is applied after these and wins.
    pub fn env(&self) -> Vec<(String, String)> {
        let (cuda, nvidia, use_gpu) = match self {
            Assignment::Untouched => return Vec::new(),
            Assignment::Gpus(g) => {
                let list = g.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
                (list.clone(), list, "true")
            }
            Assignment::NoGpu(_) => (String::new(), "void".into(), "false"),
        };
        let mut env = vec![
            ("CUDA_VISIBLE_DEVICES".into(), cuda),
            ("NVIDIA_VISIBLE_DEVICES".into(), nvidia),
            ("USE_GPU".into(), use_gpu.into()),
        ];
        if let Assignment::Gpus(_) = self {
            env.push(("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into()));
        }
        env
    }
}

/// Assigns `devices` (the GPU indices found; empty when there are none, `none_reason` says
/// why) to `programs`, in their order. `gpus = [...]` takes exactly those; `gpu_count = N`
/// takes N GPUs that no `gpus` list names and no earlier `gpu_count` took; neither shares
/// every GPU. Errors, naming the programs: an index that does not exist, or more GPUs asked
/// for than are free. With no GPU at all nothing is an error: every program that asked gets
/// [`Assignment::NoGpu`].
pub fn assign(programs: &[ProgramConfig], devices: &[u32], none_reason: &str) -> Result<Vec<Assignment>, String> {
    let asking = |p: &ProgramConfig| p.gpu != GpuMode::None;
    if devices.is_empty() {
        return Ok(programs
            .iter()
            .map(|p| if asking(p) { Assignment::NoGpu(none_reason.into()) } else { Assignment::Untouched })
            .collect());
    }
    let found = devices.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let mut named = Vec::new();
    for p in programs.iter().filter(|p| asking(p)) {
        if let GpuDevices::Indices(list) = &p.gpu_devices {
            if let Some(missing) = list.iter().find(|i| !devices.contains(i)) {
                return Err(format!(
                    "program {}: gpus names GPU {missing}, which does not exist (found: {found})",
                    p.name
                ));
            }
            named.extend(list);
        }
    }
    let mut free: Vec<u32> = devices.iter().copied().filter(|d| !named.contains(&d)).collect();
    let counted: Vec<&ProgramConfig> =
        programs.iter().filter(|p| asking(p) && matches!(p.gpu_devices, GpuDevices::Count(_))).collect();
    let wanted: u64 =
        counted.iter().map(|p| if let GpuDevices::Count(n) = p.gpu_devices { u64::from(n) } else { 0 }).sum();
    if wanted > free.len() as u64 {
        let names = counted.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(format!(
            "programs {names} ask for {wanted} GPU(s) of their own with gpu_count, but {} of the {} found \
             (GPU {found}) are free of gpus lists",
            free.len(),
            devices.len()
        ));
    }
    Ok(programs
        .iter()
        .map(|p| match (&p.gpu_devices, asking(p)) {
            (_, false) => Assignment::Untouched,
            (GpuDevices::All, true) => Assignment::Gpus(devices.to_vec()),
            (GpuDevices::Indices(list), true) => Assignment::Gpus(list.clone()),
            // Each drain fits: the counts together are at most `free.len()`.
            (GpuDevices::Count(n), true) => Assignment::Gpus(free.drain(..(*n as usize).min(free.len())).collect()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(spec: &[(&str, GpuMode, GpuDevices)]) -> Vec<ProgramConfig> {
        spec.iter()
            .map(|(name, mode, devices)| {
                let mut p = ProgramConfig::example(name);
                p.gpu = *mode;
                p.gpu_devices = devices.clone();
                p
            })
            .collect()
    }

    #[test]
    fn counts_get_distinct_gpus_lists_get_theirs_and_the_rest_share_all() {
        let ps = programs(&[
            ("plain", GpuMode::None, GpuDevices::All),
            ("pinned", GpuMode::Required, GpuDevices::Indices(vec![0])),
            ("worker-a", GpuMode::Optional, GpuDevices::Count(1)),
            ("worker-b", GpuMode::Optional, GpuDevices::Count(1)),
            ("any", GpuMode::Optional, GpuDevices::All),
        ]);
        let got = assign(&ps, &[0, 1, 2], "").unwrap();
        assert_eq!(
            got,
            vec![
                Assignment::Untouched,
                Assignment::Gpus(vec![0]),
                Assignment::Gpus(vec![1]),
                Assignment::Gpus(vec![2]),
                Assignment::Gpus(vec![0, 1, 2]),
            ]
        );
        assert!(got[0].env().is_empty());
        assert_eq!(got[3].env()[0], ("CUDA_VISIBLE_DEVICES".into(), "2".into()));
        assert_eq!(got[4].env()[1], ("NVIDIA_VISIBLE_DEVICES".into(), "0,1,2".into()));
    }

    #[test]
    fn asking_for_more_than_exists_names_the_programs() {
        let ps =
            programs(&[("a", GpuMode::Required, GpuDevices::Count(1)), ("b", GpuMode::Optional, GpuDevices::Count(1))]);
        let err = assign(&ps, &[0], "").unwrap_err();
        assert!(err.contains("programs a, b ask for 2 GPU(s)"), "{err}");
        let huge = programs(&[
            ("x", GpuMode::Optional, GpuDevices::Count(u32::MAX)),
            ("y", GpuMode::Optional, GpuDevices::Count(u32::MAX)),
        ]);
        assert!(assign(&huge, &[0], "").unwrap_err().contains("ask for 8589934590 GPU(s)"), "no overflow");
        let ps = programs(&[("c", GpuMode::Required, GpuDevices::Indices(vec![3]))]);
        assert!(assign(&ps, &[0, 1], "").unwrap_err().contains("program c: gpus names GPU 3"));
    }

    #[test]
    fn without_a_gpu_everyone_who_asked_falls_back() {
        let ps = programs(&[
            ("a", GpuMode::Required, GpuDevices::Count(2)),
            ("b", GpuMode::Optional, GpuDevices::All),
            ("c", GpuMode::None, GpuDevices::All),
        ]);
        let got = assign(&ps, &[], "no NVIDIA GPU: x").unwrap();
        assert_eq!(got[0], Assignment::NoGpu("no NVIDIA GPU: x".into()));
        let env = got[1].env();
        assert_eq!(env[0], ("CUDA_VISIBLE_DEVICES".into(), String::new()));
        assert_eq!(env[2], ("USE_GPU".into(), "false".into()));
        assert_eq!(got[2], Assignment::Untouched);
    }
}
