//! NVIDIA GPUs through the fake backend (`SUPD_GPU_FAKE`, in a `--features fake-gpu` build), and through the real NVML path on a
//! machine without NVIDIA's libraries: variables, distinct assignment, over-subscription,
//! `required` without a GPU, GPU loss and XID errors, `supctl gpu` and `/health`.

use std::time::Duration;

use crate::harness::Supd;

const S: Duration = Duration::from_secs(1);

/// Three fake GPUs; `lost` and `xid` apply to GPU 0.
fn fake_gpus(lost: bool, xid: Option<u64>) -> String {
    let xid = xid.map_or("null".to_string(), |x| x.to_string());
    format!(
        r#"{{"driver": "550.54.15", "devices": [
  {{"index": 0, "name": "Fake H100", "uuid": "GPU-fake-0", "memory_total_bytes": 85899345920,
   "memory_used_bytes": 1048576000, "utilization_percent": 7, "temperature_celsius": 41, "lost": {lost}, "xid": {xid}}},
  {{"index": 1, "name": "Fake L4", "uuid": "GPU-fake-1", "memory_total_bytes": 24159191040,
   "memory_used_bytes": 0, "utilization_percent": 0, "temperature_celsius": 35}},
  {{"index": 2, "name": "Fake L4", "uuid": "GPU-fake-2", "memory_total_bytes": 24159191040,
   "memory_used_bytes": 0, "utilization_percent": 0, "temperature_celsius": 36}}]}}"#
    )
}

/// A program that prints its GPU variables, then sleeps.
fn program(name: &str, keys: &str) -> String {
    format!(
        "[program.{name}]\ncommand = [\"sh\", \"-c\", \"echo vars: CUDA=[$CUDA_VISIBLE_DEVICES] NVIDIA=[$NVIDIA_VISIBLE_DEVICES] \
         USE=[$USE_GPU] ORDER=[$CUDA_DEVICE_ORDER]; exec sleep 300\"]\nstartsecs = 0\n{keys}\n"
    )
}

#[test]
#[cfg_attr(not(feature = "fake-gpu"), ignore = "needs the fake backend: cargo test --features fake-gpu")]
fn programs_get_their_gpus_in_their_environment() {
    let programs = [
        program("plain", ""),
        program("opt", "gpu = \"optional\""),
        program("worker-a", "gpu = \"required\"\ngpu_count = 1"),
        program("worker-b", "gpu = \"required\"\ngpu_count = 1"),
        program("pinned", "gpu = \"optional\"\ngpus = [2]\n[program.pinned.environment]\nUSE_GPU = \"mine\""),
    ]
    .concat();
    let (supd, _, _dir) = start_over_fake(&programs);
    let out = crate::harness::wait_until("every program's variables", 10 * S, || {
        let out = supd.output();
        (out.matches("vars:").count() == 5).then_some(out)
    });
    let vars = |name: &str| {
        out.lines().find(|l| l.starts_with(&format!("{name} ")) && l.contains("vars:")).unwrap_or_default().to_string()
    };
    let plain = vars("plain");
    assert!(plain.ends_with("vars: CUDA=[] NVIDIA=[] USE=[] ORDER=[]"), "gpu = none sets nothing: {plain}");
    // PCI order makes CUDA's device numbers NVML's, the ones supd assigned.
    let pci = "ORDER=[PCI_BUS_ID]";
    assert!(vars("opt").ends_with(&format!("CUDA=[0,1,2] NVIDIA=[0,1,2] USE=[true] {pci}")), "{}", vars("opt"));
    assert!(vars("worker-a").ends_with(&format!("CUDA=[0] NVIDIA=[0] USE=[true] {pci}")), "{}", vars("worker-a"));
    let worker_b = vars("worker-b");
    assert!(worker_b.ends_with(&format!("CUDA=[1] NVIDIA=[1] USE=[true] {pci}")), "distinct GPUs: {worker_b}");
    let pinned = vars("pinned");
    assert!(pinned.ends_with(&format!("CUDA=[2] NVIDIA=[2] USE=[mine] {pci}")), "own environment wins: {pinned}");
    assert!(out.contains("GPU 0: Fake H100 (GPU-fake-0), 81920 MiB"), "one line per GPU: {out}");

    let (code, table, _) = supd.ctl(&["gpu"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("driver 550.54.15\n"), "{table}");
    let row0 = table.lines().find(|l| l.starts_with("0 ")).unwrap();
    assert!(row0.contains("Fake H100") && row0.contains("1000 / 81920") && row0.contains("7%") && row0.contains("41C"));
    assert!(row0.ends_with("ok     opt, worker-a"), "{row0}");
    let json: serde_json::Value = serde_json::from_str(&supd.ctl(&["--json", "gpu"]).1).unwrap();
    assert_eq!(json["devices"][1]["programs"], serde_json::json!(["opt", "worker-b"]));
    let (code, body) = supd.http_get("/health");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, body["gpu"]["devices"][0]["uuid"].as_str()), (200, Some("GPU-fake-0")));
}

/// supd over three fake GPUs, polled every 100 ms, from a file written before it starts (and
/// kept with the returned directory: supd reads it again at every poll).
fn launch_over_fake(programs: &str) -> (Supd, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gpus.json");
    std::fs::write(&file, fake_gpus(false, None)).unwrap();
    let name = file.display().to_string();
    let supd = Supd::launch(&[("SUPD_GPU_FAKE", &name)], "", &format!("[gpu]\ninterval = 0.1\n{programs}"));
    (supd, file, dir)
}

fn start_over_fake(programs: &str) -> (Supd, std::path::PathBuf, tempfile::TempDir) {
    let started = launch_over_fake(programs);
    started.0.wait_ready();
    started
}

#[test]
#[cfg_attr(not(feature = "fake-gpu"), ignore = "needs the fake backend: cargo test --features fake-gpu")]
fn asking_for_more_gpus_than_exist_starts_nothing_and_names_the_programs() {
    let programs =
        [program("a", "gpu = \"required\"\ngpu_count = 3"), program("b", "gpu = \"optional\"\ngpu_count = 1")].concat();
    let (mut supd, _, _dir) = launch_over_fake(&programs);
    assert_eq!(supd.wait_exit(10 * S), 2, "a config error");
    let out = supd.output();
    assert!(out.contains("programs a, b ask for 4 GPU(s)"), "{out}");
    assert!(!out.contains("spawned"), "nothing started: {out}");
}

#[test]
fn without_nvidia_libraries_supd_runs_and_required_programs_are_fatal() {
    // This machine has no libnvidia-ml.so.1: the real NVML path says so and supd carries on.
    let programs = [program("cpu", "gpu = \"optional\""), program("gpu-only", "gpu = \"required\"")].concat();
    let supd = Supd::start(&programs);
    let out = supd.wait_output("| vars", 10 * S);
    assert!(out.contains("no NVIDIA GPU: libnvidia-ml.so.1 not found"), "{out}");
    assert!(out.contains("| vars: CUDA=[] NVIDIA=[void] USE=[false]"), "{out}");
    let p = supd.wait_state("gpu-only", "FATAL", 10 * S);
    assert_eq!(p["spawns"], 0, "no crash loop: never spawned");
    let (_, status, _) = supd.ctl(&["status", "gpu-only"]);
    assert!(status.contains("gpu required: no NVIDIA GPU: libnvidia-ml.so.1 not found"), "{status}");
    assert_eq!(supd.ctl(&["gpu"]), (0, "no NVIDIA GPU: libnvidia-ml.so.1 not found\n".into(), String::new()));
    let body: serde_json::Value = serde_json::from_str(&supd.http_get("/health").1).unwrap();
    assert_eq!(body["gpu"]["available"], false);
}

#[test]
#[cfg_attr(not(feature = "fake-gpu"), ignore = "needs the fake backend: cargo test --features fake-gpu")]
fn a_lost_gpu_or_an_xid_error_makes_the_required_program_holding_it_unhealthy() {
    let programs = [
        program("needs-0", "gpu = \"required\"\ngpus = [0]"),
        program("likes-0", "gpu = \"optional\"\ngpus = [0]"),
        program("needs-1", "gpu = \"required\"\ngpus = [1]"),
    ]
    .concat();
    for (lost, xid, why) in [(true, None, "GPU 0 lost"), (false, Some(79), "GPU 0: XID error 79")] {
        let (supd, fake, _dir) = start_over_fake(&programs);
        supd.wait_state("needs-0", "RUNNING", 10 * S);
        assert_eq!(supd.http_get("/health").0, 200);
        std::fs::write(&fake, fake_gpus(lost, xid)).unwrap();
        let p = crate::harness::wait_until("needs-0 to be unhealthy", 10 * S, || {
            let p = supd.program("needs-0");
            (p["health"] == "unhealthy").then_some(p)
        });
        assert!(p["description"].as_str().unwrap().contains(why), "{p}");
        assert_eq!(supd.program("likes-0")["health"], serde_json::Value::Null, "optional programs are not affected");
        assert_eq!(supd.program("needs-1")["health"], serde_json::Value::Null, "nor programs on other GPUs");
        let (code, body) = supd.http_get("/health");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(code, 503);
        assert!(body["not_ready"][0].as_str().unwrap().starts_with("needs-0"), "{body}");
        assert!(supd.ctl(&["gpu"]).1.contains(why));
        // The fault lasts: polls after the first (every 100 ms) keep it.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(supd.program("needs-0")["health"], "unhealthy", "the fault lasts");
    }
}
