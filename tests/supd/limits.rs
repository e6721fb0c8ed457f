//! Bounding a program: `max_rss` restarts one whose tree stays over its limit (superlance
//! memmon's job, built in), and leaves alone one that stays under it.

use std::time::Duration;

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);

/// A program that holds `mib` MiB, written so that it is resident.
fn holder(name: &str, mib: u32, limit: &str) -> String {
    format!(
        "[program.{name}]\ncommand = [\"/usr/bin/python3\", \"-c\", \"import time; x = b'x' * ({mib} << 20); \
         print('holding', flush=True); time.sleep(1000)\"]\nstartsecs = 0\n\
         max_rss = \"{limit}\"\nmax_rss_for = \"300ms\"\nmax_rss_interval = \"100ms\"\n"
    )
}

#[test]
fn a_tree_over_max_rss_is_restarted_and_counted_and_one_under_it_is_not() {
    let supd = Supd::start(&format!("{}{}", holder("hog", 64, "32MB"), holder("modest", 8, "256MB")));
    let first = supd.wait_state("hog", "RUNNING", 5 * S)["pid"].clone();
    let mut follower = std::process::Command::new(crate::harness::SUPCTL)
        .args(["-s", &supd.socket.display().to_string(), "events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let hog = wait_until("hog restarted for max_rss", 15 * S, || {
        let p = supd.program("hog");
        (p["max_rss_restarts"].as_u64() >= Some(1) && p["state"] == "RUNNING").then_some(p)
    });
    assert_ne!(hog["pid"], first, "a new process");
    assert!(hog["restarts"].as_u64() >= Some(1), "{hog}");
    assert!(hog["description"].as_str().unwrap().contains("for max_rss"), "{hog}");
    let modest = supd.program("modest");
    assert_eq!((modest["restarts"].as_u64(), modest.get("max_rss_restarts")), (Some(0), None), "{modest}");

    // supd's log and its feed say why.
    let log = supd.wait_output("over max_rss 32.0 MiB for 300ms; restarting it", 5 * S);
    assert!(log.contains("hog: tree RSS "), "{log}");
    use std::io::BufRead;
    // The hog keeps growing past its limit after each restart, so another event comes.
    let lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let said = lines.map_while(Result::ok).find(|l| l.contains(" memory ")).unwrap_or_default();
    let _ = follower.kill();
    assert!(said.contains("hog memory") && said.contains("over max_rss"), "{said}");
    let _ = follower.wait();

    let (_, metrics) = supd.http_get("/metrics");
    let counted = metrics.lines().find(|l| l.starts_with("supd_program_max_rss_restarts_total{") && l.contains("hog"));
    assert!(counted.is_some_and(|l| !l.ends_with(" 0")), "{metrics}");
}

/// The cgroup v1 directory, in `controller`'s hierarchy, of the process of supd's namespace
/// whose command line is `cmdline`, as /proc shows it (once it has exec'd: under
/// `startsecs = 0` a program is RUNNING as soon as it is forked).
fn v1_dir(supd: &Supd, cmdline: &str, controller: &str) -> std::path::PathBuf {
    let host = wait_until(&format!("{cmdline} to run"), 5 * S, || {
        supd.ns_processes().into_iter().find(|p| p.cmdline == cmdline).map(|p| p.pid)
    });
    let text = std::fs::read_to_string(format!("/proc/{host}/cgroup")).unwrap();
    let path = text.lines().find_map(|l| l.splitn(3, ':').nth(2).filter(|_| l.split(':').nth(1) == Some(controller)));
    std::path::Path::new("/sys/fs/cgroup").join(controller).join(path.unwrap().trim_start_matches('/'))
}

#[test]
fn memory_max_ooms_a_program_in_its_cgroup_and_status_says_so() {
    // This machine's kernel binds every controller to cgroup v1: the v1 path, for real.
    let supd = Supd::start(&format!(
        "{}[program.hog]\ncommand = [\"/usr/bin/python3\", \"-c\", \"import time; print('start', flush=True); \
         time.sleep(0.5); x = b'x' * (256 << 20); time.sleep(1000)\"]\nstartsecs = 0\nautorestart = false\n\
         memory_max = \"64MB\"\n",
        "[program.capped]\ncommand = [\"sleep\", \"1000\"]\nstartsecs = 0\ncpu_max = \"50%\"\ncpu_weight = 200\n\
         pids_max = 32\nmemory_max = \"1GB\"\n"
    ));
    supd.wait_state("capped", "RUNNING", 5 * S);
    let read = |controller: &str, file: &str| {
        std::fs::read_to_string(v1_dir(&supd, "sleep 1000", controller).join(file)).unwrap().trim().to_string()
    };
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.shares"), "2048");
    assert_eq!(read("pids", "pids.max"), "32");
    assert_eq!(read("memory", "memory.limit_in_bytes"), (1u64 << 30).to_string());

    let hog = supd.wait_state("hog", "EXITED", 15 * S);
    let description = hog["description"].as_str().unwrap();
    assert!(description.contains("OOM killed at memory_max 64.0 MiB") && description.contains("SIGKILL"), "{hog}");
    assert_eq!(hog["oom_kills"], 1, "{hog}");
    let (_, metrics) = supd.http_get("/metrics");
    assert!(metrics.contains("supd_program_oom_kills_total{program=\"hog\",group=\"hog\"} 1"), "{metrics}");

    // At exit supd removes the cgroups it made.
    let dir = v1_dir(&supd, "sleep 1000", "pids");
    let mut supd = supd;
    assert_eq!(supd.ctl(&["shutdown"]).0, 0);
    supd.wait_exit(10 * S);
    assert!(!dir.exists() && !dir.parent().unwrap().exists(), "{} is left", dir.display());
}

#[test]
fn limits_that_cannot_apply_refuse_the_program_unless_best_effort() {
    let supd = Supd::start_with(
        "cgroup = \"off\"\n",
        "[program.strict]\ncommand = [\"sleep\", \"1000\"]\nstartsecs = 0\nio_weight = 500\n\
         [program.lenient]\ncommand = [\"sleep\", \"1000\"]\nstartsecs = 0\nio_weight = 500\nlimits = \"best_effort\"\n",
    );
    let strict = supd.wait_state("strict", "FATAL", 5 * S);
    let why = strict["description"].as_str().unwrap();
    assert!(
        why.contains("cgroup limits cannot apply: [supervisor] cgroup = \"off\"") && why.contains("best_effort"),
        "{strict}"
    );
    supd.wait_state("lenient", "RUNNING", 5 * S);
    supd.wait_output("lenient: its cgroup limits cannot apply", 5 * S);
}
