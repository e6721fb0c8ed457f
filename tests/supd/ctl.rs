//! Every supctl command and its exit code, and the /health endpoint.

use std::time::{Duration, Instant};

use crate::harness::{SUPCTL, Supd, http_request, supctl};

const S: Duration = Duration::from_secs(1);

const STACK: &str = "[group.core]\nprograms = [\"web\", \"worker\"]\n\
    [program.web]\ncommand = \"sleep 1000\"\nstartsecs = 0\n\
    [program.worker]\ncommand = \"sleep 1001\"\nstartsecs = \"200ms\"\n\
    [program.manual]\ncommand = \"sleep 1002\"\nautostart = false\nstartsecs = 0\n";

#[test]
fn status_lists_programs_and_exits_3_when_one_is_stopped() {
    let supd = Supd::start(STACK);
    supd.wait_state("worker", "RUNNING", 5 * S);
    let (code, out, _) = supd.ctl(&["status"]);
    assert_eq!(code, 3, "manual is STOPPED:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("core:web") && lines[0].contains("RUNNING   pid "), "{out}");
    assert!(lines[1].starts_with("core:worker"), "{out}");
    assert!(lines[2].starts_with("manual") && lines[2].contains("STOPPED   Not started"), "{out}");
    assert_eq!(supd.ctl(&["status", "core:*"]).0, 0);
    assert_eq!(supd.ctl(&["status", "web", "core:worker"]).0, 0);
    let (code, out, err) = supd.ctl(&["status", "nope"]);
    assert_eq!((code, out.as_str(), err.as_str()), (4, "nope: ERROR (no such process)\n", ""));
    let (code, out, _) = supd.ctl(&["status", "nope:*", "web"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.starts_with("nope: ERROR (no such group)\ncore:web "), "{out}");
    assert_eq!(supd.ctl(&["status", "nope", "manual"]).0, 3, "a stopped program's 3 wins, as in supervisorctl");
}

#[test]
fn start_stop_restart_wait_and_report() {
    let supd = Supd::start(STACK);
    supd.wait_state("worker", "RUNNING", 5 * S);
    assert_eq!(supd.ctl(&["start", "manual"]), (0, "manual: started\n".into(), String::new()));
    assert_eq!(supd.ctl(&["start", "manual"]).1, "manual: ERROR (already started)\n");
    assert_eq!(supd.ctl(&["start", "manual"]).0, 0, "reported, and exit 0 as supervisorctl");
    let before = supd.program("worker")["pid"].clone();
    let started = Instant::now();
    let (code, out, _) = supd.ctl(&["restart", "core:worker"]);
    assert_eq!((code, out.as_str()), (0, "core:worker: stopped\ncore:worker: started\n"));
    assert!(started.elapsed() >= Duration::from_millis(200), "restart waited for startsecs");
    let after = supd.program("worker");
    assert_eq!(after["state"], "RUNNING");
    assert_ne!(after["pid"], before);
    assert_eq!(supd.ctl(&["stop", "core:*"]), (0, "core:web: stopped\ncore:worker: stopped\n".into(), String::new()));
    assert_eq!(supd.ctl(&["stop", "web"]), (0, "core:web: ERROR (not running)\n".into(), String::new()));
    assert_eq!(supd.ctl(&["stop", "nope"]), (1, "nope: ERROR (no such process)\n".into(), String::new()));
    assert_eq!(
        supd.ctl(&["start", "nope", "web"]),
        (1, "core:web: started\nnope: ERROR (no such process)\n".into(), String::new()),
        "an unknown name does not hold the others back"
    );
    supd.ctl(&["stop", "web"]);
    let (code, out, _) = supd.ctl(&["start", "all"]);
    assert_eq!((code, out.as_str()), (0, "core:web: started\ncore:worker: started\n"), "manual runs: not named");
    assert_eq!(supd.program("web")["state"], "RUNNING");
    assert_eq!(supd.ctl(&["pid", "nope"]).0, 1, "supervisorctl: an unknown name to pid is 1");
}

#[test]
fn signal_pid_json_and_shutdown() {
    let mut supd = Supd::start(
        "[program.hup]\ncommand = [\"sh\", \"-c\", \"trap 'echo got-hup' HUP; while :; do sleep 0.05; done\"]\nstartsecs = 0\n",
    );
    let pid = supd.wait_state("hup", "RUNNING", 5 * S)["pid"].as_i64().unwrap();
    assert_eq!(supd.ctl(&["pid"]), (0, "1\n".into(), String::new()), "supd is PID 1");
    assert_eq!(supd.ctl(&["pid", "hup"]).1, format!("{pid}\n"));
    assert_eq!(supd.ctl(&["signal", "HUP", "hup"]), (0, "hup: signalled\n".into(), String::new()));
    crate::harness::wait_until("the program to see SIGHUP", 5 * S, || {
        supd.output().contains("hup | got-hup").then_some(())
    });
    assert_eq!(supd.ctl(&["signal", "NOPE", "hup"]).0, 1);
    let (code, out, _) = supd.ctl(&["--json", "pid", "hup"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["type"].as_str(), v["programs"][0]["pid"].as_i64()), (0, Some("pid"), Some(pid)));
    assert_eq!(supd.ctl(&["shutdown"]).0, 0);
    assert_eq!(supd.wait_exit(5 * S), 0);
}

#[test]
fn unreachable_supd_exits_4_and_says_why() {
    let (code, _, err) = supctl("/nonexistent/supd.sock".as_ref(), &["status"]);
    assert_eq!(code, 4);
    assert!(err.contains("cannot reach supd at /nonexistent/supd.sock: no such socket"), "{err}");
    let (code, _, _) = supctl("/nonexistent/supd.sock".as_ref(), &["health"]);
    assert_eq!(code, 1, "health is unhealthy when supd cannot be reached");
    let out = std::process::Command::new(SUPCTL).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "bad arguments exit 1");
}

#[test]
fn the_socket_is_root_only_unless_socket_group_allows() {
    let supd = Supd::start("[program.a]\ncommand = \"sleep 1000\"\nstartsecs = 0\n");
    let as_dev = |socket: &std::path::Path| {
        std::process::Command::new("setpriv")
            .args(["--reuid=dev", "--regid=dev", "--init-groups", SUPCTL, "-s"])
            .arg(socket)
            .arg("status")
            .output()
            .unwrap()
    };
    // The test dir must be traversable for dev to reach the socket at all.
    std::fs::set_permissions(supd.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = as_dev(&supd.socket);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("permission denied (run as root, or set [supervisor] socket_group")
    );

    let shared = Supd::start_with(
        "socket_group = \"supd-extra\"\nsocket_mode = \"0660\"",
        "[program.a]\ncommand = \"sleep 1000\"\n",
    );
    std::fs::set_permissions(shared.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = as_dev(&shared.socket);
    assert!(out.status.code() == Some(0) || out.status.code() == Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn health_is_200_when_all_autostart_programs_are_up_and_503_otherwise() {
    let supd = Supd::start(
        "[program.web]\ncommand = \"sleep 1000\"\nstartsecs = \"300ms\"\n\
         [program.once]\ncommand = \"true\"\nstartsecs = 0\nautorestart = false\n\
         [program.manual]\ncommand = \"sleep 1000\"\nautostart = false\n",
    );
    let (code, body) = supd.http_get("/health");
    assert_eq!(code, 503, "web is still STARTING: {body}");
    assert!(body.contains("\"not_ready\":[\"web (STARTING)\"]"), "{body}");
    assert_eq!(supd.ctl(&["health"]).0, 1);
    supd.wait_state("web", "RUNNING", 5 * S);
    supd.wait_state("once", "EXITED", 5 * S);
    let (code, body) = supd.http_get("/health");
    assert_eq!(code, 200, "an expected one-shot exit and a non-autostart program count as ready: {body}");
    assert!(body.starts_with("{\"status\":\"healthy\""), "{body}");
    assert_eq!(supd.ctl(&["health"]), (0, "healthy\n".into(), String::new()));
    supd.ctl(&["stop", "web"]);
    assert_eq!(supd.http_get("/health").0, 503);
    assert_eq!(supd.ctl(&["health"]), (1, "unhealthy: web (STOPPED)\n".into(), String::new()));
    assert_eq!(supd.http_get("/nope").0, 404);
    assert_eq!(http_request(supd.port, "POST", "/health").0, 405, "nothing on the HTTP listener changes anything");
}

#[test]
fn avail_add_remove_and_maintail_speak_as_supervisorctl() {
    let web = "[program.web]\ncommand = \"sleep 1000\"\nstartsecs = 0\n";
    let supd = Supd::start(web);
    supd.wait_state("web", "RUNNING", 5 * S);
    supd.rewrite("", &format!("{web}[program.x]\ncommand = \"sleep 1000\"\nstartsecs = 0\npriority = 5\n"));
    let line = |name: &str, used: &str, auto: &str, prio: &str| format!("{name:<32} {used:<9} {auto:<9} {prio}\n");
    let want = format!("{}{}", line("web", "in use", "auto", "999:999"), line("x", "avail", "auto", "5:5"));
    assert_eq!(supd.ctl(&["avail"]), (0, want, String::new()));

    assert_eq!(supd.ctl(&["add", "x"]).1, "x: added process group\n");
    supd.wait_state("x", "RUNNING", 5 * S);
    assert_eq!(supd.ctl(&["add", "x"]), (0, "ERROR: process group already active\n".into(), String::new()));
    assert_eq!(supd.ctl(&["add", "nosuch"]), (1, "ERROR: no such process/group: nosuch\n".into(), String::new()));
    assert_eq!(supd.ctl(&["remove", "x"]), (1, "ERROR: process/group still running: x\n".into(), String::new()));
    assert_eq!(supd.ctl(&["stop", "x"]).0, 0);
    assert_eq!(supd.ctl(&["remove", "x"]), (0, "x: removed process group\n".into(), String::new()));
    assert!(supd.status().iter().all(|p| p["name"] != "x"));

    let (code, out, _) = supd.ctl(&["maintail"]);
    assert!(code == 0 && out.contains("spawned: x with pid") && out.contains("stopped: x"), "{out}");
    assert!(out.len() <= 1600, "maintail shows the last 1600 bytes: {}", out.len());
}

#[test]
fn status_v_gives_each_trees_cpu_and_memory() {
    let supd = Supd::start(
        "[program.busy]\ncommand = [\"sh\", \"-c\", \"while :; do :; done\"]\nstartsecs = 0\n\
         [program.idle]\ncommand = \"sleep 1000\"\nstartsecs = 0\n[program.off]\ncommand = \"sleep 1\"\nautostart = false\n",
    );
    supd.wait_state("busy", "RUNNING", 5 * S);
    supd.wait_state("idle", "RUNNING", 5 * S);
    let (code, out, _) = supd.ctl(&["status", "-v"]);
    assert_eq!(code, 3, "off is stopped: {out}");
    let line = |name: &str| out.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert!(line("busy").contains("; cpu ") && line("busy").contains("%, rss "), "{out}");
    assert!(line("off").ends_with("Not started"), "no process, no figures: {out}");
    let (_, json, _) = supd.ctl(&["status", "-v", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let of =
        |name: &str| v["programs"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["resources"].clone();
    let (busy, idle) = (of("busy"), of("idle"));
    assert!(busy["cpu_percent"].as_f64().unwrap() > 40.0, "a busy loop takes most of a core: {busy}");
    assert!(idle["cpu_percent"].as_f64().unwrap() < 10.0, "{idle}");
    assert!(idle["rss_bytes"].as_u64().unwrap() > 0, "{idle}");
    assert!(of("off").is_null());
    // Plain status samples nothing.
    assert!(!supd.ctl(&["status"]).1.contains("rss"));
}
