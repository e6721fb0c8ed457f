//! supervisord's XML-RPC interface, driven by real clients from PyPI (scripts/setup-test-env
//! installs them): supervisor 4.3.0's own `supervisorctl`, and Python's `xmlrpc.client`
//! through supervisor's unix-socket transport, as superlance and deploy scripts use it.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);
const VENV: &str = "/opt/supd-test-venv/bin";

const PROGRAMS: &str = "[program.web]\ncommand = \"sleep 1000\"\nstartsecs = 0\n\
    [program.crash]\ncommand = [\"sh\", \"-c\", \"echo boom; exit 3\"]\nstartretries = 1\nautostart = false\n\
    [program.nocmd]\ncommand = \"/no/such/thing\"\nautostart = false\nstartretries = 0\n\
    [group.g]\nprograms = [\"a\", \"b\"]\n\
    [program.a]\ncommand = \"sleep 1000\"\nstartsecs = 0\n\
    [program.b]\ncommand = \"sleep 1000\"\nstartsecs = 0\n";

/// Runs the real supervisorctl against `supd`: (exit code, stdout).
fn supervisorctl(supd: &Supd, args: &[&str]) -> (i32, String) {
    let url = format!("unix://{}", supd.socket.display());
    let out = Command::new(format!("{VENV}/supervisorctl"))
        .args(["-s", &url])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{VENV}/supervisorctl (scripts/setup-test-env installs it): {e}"));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_real_supervisorctl_drives_supd() {
    let supd = Supd::start(PROGRAMS);
    for p in ["web", "a", "b"] {
        supd.wait_state(p, "RUNNING", 5 * S);
    }
    let (code, out) = supervisorctl(&supd, &["status"]);
    assert_eq!(code, 3, "crash and nocmd are STOPPED: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].starts_with("crash                            STOPPED   Not started"), "{out}");
    assert!(lines[1].starts_with("g:a                              RUNNING   pid "), "{out}");
    assert!(lines[4].contains("web") && lines[4].contains("uptime 0:00:0"), "{out}");

    assert_eq!(supervisorctl(&supd, &["version"]).1, "4.3.0+supd.0.1.0\n");
    assert_eq!(supervisorctl(&supd, &["start", "web"]), (0, "web: ERROR (already started)\n".into()));
    assert_eq!(supervisorctl(&supd, &["start", "crash"]), (7, "crash: ERROR (spawn error)\n".into()));
    assert_eq!(supervisorctl(&supd, &["start", "nocmd"]), (1, "nocmd: ERROR (no such file)\n".into()));
    assert_eq!(supervisorctl(&supd, &["stop", "nosuch"]), (1, "nosuch: ERROR (no such process)\n".into()));
    assert_eq!(supervisorctl(&supd, &["stop", "g:*"]), (0, "g:a: stopped\ng:b: stopped\n".into()));
    assert_eq!(supd.program("a")["state"], "STOPPED");
    let (code, out) = supervisorctl(&supd, &["start", "g:*"]);
    assert_eq!((code, out.as_str()), (0, "g:a: started\ng:b: started\n"));
    let pid = supd.program("web")["pid"].as_i64().unwrap();
    assert_eq!(supervisorctl(&supd, &["pid", "web"]), (0, format!("{pid}\n")));
    assert_eq!(supervisorctl(&supd, &["signal", "HUP", "web"]), (0, "web: signalled\n".into()));
    let (_, tail) = supervisorctl(&supd, &["tail", "crash"]);
    assert!(tail.contains("boom"), "tail reads the program's output: {tail}");
    assert_eq!(supervisorctl(&supd, &["shutdown"]), (0, "Shut down\n".into()));
    let mut supd = supd;
    assert_eq!(supd.wait_exit(10 * S), 0);
}

/// Runs `script` with supervisor's XML-RPC proxy bound to `supd` as `s` (its `supervisor`
/// namespace) and `rpc` (the whole server); returns what it prints.
fn python(supd: &Supd, script: &str) -> String {
    let prelude = format!(
        "import json, xmlrpc.client\nfrom supervisor.xmlrpc import SupervisorTransport\n\
         rpc = xmlrpc.client.ServerProxy('http://127.0.0.1', \
         transport=SupervisorTransport(None, None, 'unix://{}'))\ns = rpc.supervisor\n\
         def fault(f, *a):\n    try:\n        f(*a)\n        return None\n    except xmlrpc.client.Fault as e:\n        return [e.faultCode, e.faultString]\n",
        supd.socket.display()
    );
    let out = Command::new(format!("{VENV}/python")).args(["-c", &format!("{prelude}{script}")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn xmlrpc_client_gets_supervisords_values_and_faults() {
    let supd = Supd::start(PROGRAMS);
    supd.wait_state("web", "RUNNING", 5 * S);
    let out = python(
        &supd,
        "info = s.getProcessInfo('web')\n\
         print(json.dumps({\
           'api': s.getAPIVersion(), 'ident': s.getIdentification(), 'state': s.getState(),\
           'pid': s.getPID(), 'keys': sorted(info), 'web': [info['statename'], info['state'], info['group']],\
           'all': [(p['group'], p['name'], p['statename']) for p in s.getAllProcessInfo()],\
           'bad_name': fault(s.getProcessInfo, 'nosuch'), 'started': fault(s.startProcess, 'web'),\
           'not_running': fault(s.stopProcess, 'crash'), 'bad_signal': fault(s.signalProcess, 'web', 'NOPE'),\
           'unknown': fault(rpc.supervisor.noSuchMethod), 'args': fault(s.getProcessInfo),\
           'stop': s.stopProcess('web'), 'start_nowait': s.startProcess('web', False),\
           'methods': 'supervisor.startProcess' in rpc.system.listMethods(),\
           'multi': rpc.system.multicall([{'methodName': 'supervisor.getAPIVersion', 'params': []},\
                                          {'methodName': 'supervisor.getProcessInfo', 'params': ['nosuch']}]),\
           'group': s.stopProcessGroup('g'),\
         }))",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["api"], "3.0");
    assert_eq!(v["ident"], "supervisor");
    assert_eq!(v["state"], serde_json::json!({"statecode": 1, "statename": "RUNNING"}));
    assert!(v["pid"].as_i64().unwrap() > 0);
    let keys: Vec<&str> = v["keys"].as_array().unwrap().iter().filter_map(|k| k.as_str()).collect();
    for key in [
        "name",
        "group",
        "description",
        "start",
        "stop",
        "now",
        "state",
        "statename",
        "spawnerr",
        "exitstatus",
        "logfile",
        "stdout_logfile",
        "stderr_logfile",
        "pid",
    ] {
        assert!(keys.contains(&key), "getProcessInfo lacks {key}: {keys:?}");
    }
    assert_eq!(v["web"], serde_json::json!(["RUNNING", 20, "web"]));
    assert_eq!(v["all"][0], serde_json::json!(["crash", "crash", "STOPPED"]), "sorted by group, then name");
    assert_eq!(v["all"][1], serde_json::json!(["g", "a", "RUNNING"]));
    assert_eq!(v["bad_name"], serde_json::json!([10, "BAD_NAME: nosuch"]));
    assert_eq!(v["started"], serde_json::json!([60, "ALREADY_STARTED: web"]));
    assert_eq!(v["not_running"], serde_json::json!([70, "NOT_RUNNING: crash"]));
    assert_eq!(v["bad_signal"], serde_json::json!([11, "BAD_SIGNAL: NOPE"]));
    assert_eq!(v["unknown"], serde_json::json!([1, "UNKNOWN_METHOD"]));
    assert_eq!(v["args"], serde_json::json!([2, "INCORRECT_PARAMETERS"]));
    assert_eq!((v["stop"].as_bool(), v["start_nowait"].as_bool()), (Some(true), Some(true)));
    assert_eq!(v["methods"], true);
    assert_eq!(v["multi"][0], serde_json::json!(["3.0"]));
    assert_eq!(v["multi"][1], serde_json::json!({"faultCode": 10, "faultString": "BAD_NAME: nosuch"}));
    let group: Vec<(&str, i64)> = v["group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(group, [("a", 80), ("b", 80)], "SUCCESS for each");
    wait_until("web to run again (started without waiting)", 5 * S, || {
        (supd.program("web")["state"] == "RUNNING").then_some(())
    });
}

#[test]
fn a_malformed_call_gets_a_fault_and_supd_goes_on() {
    use std::io::{Read, Write};
    let supd = Supd::start("[program.web]\ncommand = \"sleep 1000\"\nstartsecs = 0\n");
    supd.wait_state("web", "RUNNING", 5 * S);
    for body in ["<methodCall><methodName>x", "not xml at all", "<methodCall></methodCall>"] {
        let mut sock = std::os::unix::net::UnixStream::connect(&supd.socket).unwrap();
        let request = format!(
            "POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("<fault>") && answer.contains("<int>3</int>") || answer.contains("<i4>3</i4>"),
            "{answer}"
        );
    }
    // A body over 1 MiB is refused before it is read.
    let mut sock = std::os::unix::net::UnixStream::connect(&supd.socket).unwrap();
    sock.write_all(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n").unwrap();
    let _ = sock.write_all(&vec![b'x'; 1 << 20]);
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(supd.ctl(&["status", "web"]).0, 0, "supctl's JSON still works on the same socket");
}

#[test]
fn xmlrpc_over_tcp_asks_for_credentials() {
    let port = crate::harness::free_port();
    // sha1("secret"), as supervisord's `password = {SHA}…` takes it.
    let supd = Supd::start_with(
        &format!(
            "rpc = \"127.0.0.1:{port}\"\nrpc_username = \"admin\"\n\
             rpc_password = \"{{SHA}}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4\""
        ),
        "[program.web]\ncommand = \"sleep 1000\"\nstartsecs = 0\n",
    );
    supd.wait_state("web", "RUNNING", 5 * S);
    let url = format!("http://127.0.0.1:{port}");
    let ctl = |args: &[&str]| {
        let out = Command::new(format!("{VENV}/supervisorctl")).args(["-s", &url]).args(args).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = ctl(&["-u", "admin", "-p", "secret", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("web                              RUNNING   pid "), "{out}");
    let (code, out) = ctl(&["-u", "admin", "-p", "wrong", "status"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Server requires authentication"), "{out}");
    let (status, body) = crate::harness::http_request(port, "POST", "/RPC2");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("web"), "nothing about programs without credentials: {body}");
}

#[test]
fn an_rpc_listener_reachable_from_outside_needs_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("rpc = \"0.0.0.0:9002\"\n", "supervisor.rpc: 0.0.0.0:9002 is reachable from outside"),
        ("rpc = \"127.0.0.1:9002\"\nrpc_username = \"a\"\n", "supervisor.rpc_username: needs rpc_password"),
        (
            "rpc = \"0.0.0.0:9002\"\nrpc_username = \"a\"\nrpc_password = \"{SHA}abc\"\n",
            "supervisor.rpc_password: {SHA} needs 40 hex digits",
        ),
    ];
    for (extra, want) in cases {
        let file = crate::harness::write_config(
            dir.path(),
            "supd.toml",
            &format!("[supervisor]\n{extra}[program.a]\ncommand = \"x\"\n"),
        );
        let out = Command::new(crate::harness::SUPD).args(["check", "-c"]).arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "want {want}, got {err}");
    }
}

#[test]
fn logs_read_and_tail_as_supervisord_reads_them() {
    let supd = Supd::start(
        "[program.logger]\ncommand = [\"sh\", \"-c\", \"echo hello; echo world; exec sleep 1000\"]\nstartsecs = 0\n\
         stdout_logfile = \"@DIR@/logger.log\"\n",
    );
    let log = supd.path("logger.log");
    wait_until("the log file to hold both lines", 5 * S, || {
        std::fs::read_to_string(&log).ok().filter(|t| t == "hello\nworld\n")
    });
    let out = python(
        &supd,
        "print(json.dumps([s.tailProcessStdoutLog('logger', 0, 6), s.readProcessStdoutLog('logger', -6, 0),\
           s.readProcessStdoutLog('logger', 0, 5), s.tailProcessStderrLog('logger', 0, 100),\
           s.tailProcessStdoutLog('logger', 12, 100), fault(s.readProcessStderrLog, 'logger', 0, 10),\
           s.readProcessLog('logger', -6, 0), s.clearProcessLog('logger'), s.readMainLog(-100, 0) != '']))",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v[0], serde_json::json!(["world\n", 12, true]), "overflow: the last 6 bytes");
    assert_eq!(v[1], "world\n", "a negative offset reads the end");
    assert_eq!(v[2], "hello");
    assert_eq!(v[3], serde_json::json!(["", 0, false]), "no stderr log file");
    assert_eq!(v[4], serde_json::json!(["", 12, false]), "nothing new since offset 12");
    assert_eq!(v[5], serde_json::json!([20, "NO_FILE"]));
    assert_eq!((&v[6], &v[7], &v[8]), (&"world\n".into(), &true.into(), &true.into()), "supervisord's aliases");
}

#[test]
fn supervisorctl_reread_update_avail_add_and_remove() {
    let supd = Supd::start(PROGRAMS);
    supd.wait_state("web", "RUNNING", 5 * S);
    let before = supd.program("web")["pid"].clone();
    // web changes, group g goes, fresh comes.
    supd.rewrite(
        "",
        "[program.web]\ncommand = \"sleep 1001\"\nstartsecs = 0\n\
         [program.crash]\ncommand = [\"sh\", \"-c\", \"echo boom; exit 3\"]\nstartretries = 1\nautostart = false\n\
         [program.nocmd]\ncommand = \"/no/such/thing\"\nautostart = false\nstartretries = 0\n\
         [program.fresh]\ncommand = \"sleep 1000\"\nstartsecs = 0\n",
    );
    assert_eq!(supervisorctl(&supd, &["reread"]), (0, "fresh: available\ng: disappeared\nweb: changed\n".into()));
    assert_eq!(supd.program("web")["pid"], before, "reread changes nothing");
    let (_, avail) = supervisorctl(&supd, &["avail"]);
    assert!(avail.lines().any(|l| l.starts_with("fresh") && l.contains("avail") && l.contains("auto")), "{avail}");
    assert!(avail.lines().any(|l| l.starts_with("nocmd") && l.contains("in use") && l.contains("manual")), "{avail}");
    let (code, out) = supervisorctl(&supd, &["update"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "g: stopped\ng: removed process group\nweb: stopped\nweb: updated process group\nfresh: added process group\n"
    );
    supd.wait_state("fresh", "RUNNING", 5 * S);
    let web = supd.wait_state("web", "RUNNING", 5 * S);
    assert_ne!(web["pid"], before, "web restarted under its new command");
    assert!(supd.status().iter().all(|p| p["group"] != "g"), "g is gone");
    assert_eq!(supervisorctl(&supd, &["remove", "web"]).1, "ERROR: process/group still running: web\n");
    supervisorctl(&supd, &["stop", "web"]);
    assert_eq!(supervisorctl(&supd, &["remove", "web"]).1, "web: removed process group\n");
    assert!(supd.status().iter().all(|p| p["name"] != "web"));
    assert_eq!(supervisorctl(&supd, &["add", "web"]).1, "web: added process group\n");
    supd.wait_state("web", "RUNNING", 5 * S);
    assert_eq!(supervisorctl(&supd, &["add", "web"]).1, "ERROR: process group already active\n");
}

#[test]
fn supd_runs_a_supervisord_conf_as_it_is_and_supervisorctl_reads_it_too() {
    let supd = Supd::start_file(
        "supervisord.conf",
        "[unix_http_server]\nfile=@DIR@/supd.sock\n\n\
         [supervisord]\nnodaemon=true\npidfile=/tmp/supervisord.pid\n\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
         [supervisorctl]\nserverurl=unix://@DIR@/supd.sock\n\n\
         [program:web]\ncommand=sleep 1000\nstartsecs=0\n\n\
         [program:worker]\ncommand=/bin/sh -c \"echo %(program_name)s up; exec sleep 1000\"\nstartsecs=0\nautorestart=true\n",
    );
    supd.wait_state("web", "RUNNING", 5 * S);
    supd.wait_state("worker", "RUNNING", 5 * S);
    supd.wait_output("worker up", 5 * S);
    assert!(supd.output().contains("supervisord config: "), "what is not carried is said once: {}", supd.output());
    // supervisorctl -c supervisord.conf finds supd through the same file's serverurl.
    let conf = supd.path("supervisord.conf");
    let out = Command::new(format!("{VENV}/supervisorctl")).arg("-c").arg(&conf).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("web                              RUNNING") && text.contains("worker"), "{text}");
    let check = Command::new(crate::harness::SUPD).args(["check", "-c"]).arg(&conf).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stderr).contains("warning: "), "supd check says what is not carried");
}

#[test]
fn supervisorctl_tail_f_follows_the_output() {
    use std::io::Read;
    let supd = Supd::start(
        "[program.ticker]\ncommand = [\"sh\", \"-c\", \"i=0; while sleep 0.1; do i=$((i+1)); echo tick $i; done\"]\n\
         startsecs = 0\n",
    );
    supd.wait_output("tick 1\n", 5 * S);
    let url = format!("unix://{}", supd.socket.display());
    let mut child = Command::new(format!("{VENV}/supervisorctl"))
        .args(["-s", &url, "tail", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The last tick written when tail -f began: it must show ticks written after that.
    let (_, now, _) = supd.ctl(&["tail", "-n", "1", "ticker"]);
    let last: u32 = now.trim().trim_start_matches("tick ").parse().unwrap_or(0);
    let want = format!("tick {}\n", last + 3);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut seen, mut buf) = (String::new(), [0u8; 256]);
        while !seen.contains(&want) {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    });
    wait_until("tail -f to show later ticks", 10 * S, || reader.is_finished().then_some(()));
    let _ = child.kill();
    let _ = child.wait();
    let text = reader.join().unwrap();
    assert!(text.contains(&format!("tick {}\n", last + 3)), "{text}");
}

#[test]
fn supervisorctl_maintail_follows_supds_own_log_and_reload_restarts_everything() {
    use std::io::Read;
    let supd = Supd::start(PROGRAMS);
    let first = supd.wait_state("web", "RUNNING", 5 * S)["pid"].clone();
    let (code, out) = supervisorctl(&supd, &["maintail"]);
    assert!(code == 0 && out.contains("spawned: web with pid"), "{code} {out}");

    let url = format!("unix://{}", supd.socket.display());
    let mut follow = Command::new(format!("{VENV}/supervisorctl"))
        .args(["-s", &url, "maintail", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut seen, mut buf) = (String::new(), [0u8; 256]);
        while !seen.contains("stopped: g:a") && !seen.contains("stopped: a") {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    });
    // Stops until maintail -f has connected and shows the line of a stop made after it began.
    wait_until("maintail -f to show a stop made after it began", 10 * S, || {
        supervisorctl(&supd, &["stop", "a"]);
        supervisorctl(&supd, &["start", "a"]);
        reader.is_finished().then_some(())
    });
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(reader.join().unwrap().contains("stopped"));

    // `reload` (supervisor.restart): every program stops and starts again under the config
    // read again, which here adds one.
    supd.rewrite("", &format!("{PROGRAMS}[program.new]\ncommand = \"sleep 1000\"\nstartsecs = 0\n"));
    assert_eq!(supervisorctl(&supd, &["reload"]), (0, "Restarted supervisord\n".into()));
    let restarted = wait_until("web to run again with a new pid", 10 * S, || {
        let p = supd.program("web");
        (p["state"] == "RUNNING" && p["pid"] != first).then_some(p)
    });
    assert_ne!(restarted["pid"], first);
    supd.wait_state("new", "RUNNING", 5 * S);
    assert_eq!(supd.program("crash")["state"], "STOPPED", "autostart = false stays stopped");

    let out = python(
        &supd,
        "print(json.dumps([s.clearLog(), 'spawned: web' in s.readLog(-65536, 0), fault(s.readLog, 0, 100)]))",
    );
    assert_eq!(out, "[true, false, [20, \"NO_FILE\"]]");
}

#[test]
fn fg_and_send_process_stdin_write_to_a_programs_stdin() {
    let supd = Supd::start(
        "[program.echoer]\ncommand = [\"sh\", \"-c\", \"while read l; do echo \\\"got $l\\\"; done\"]\nstartsecs = 0\n\
         stdin_pipe = true\n\
         [program.deaf]\ncommand = \"sleep 1000\"\nstartsecs = 0\n\
         [program.off]\ncommand = \"sleep 1000\"\nautostart = false\nstdin_pipe = true\n",
    );
    supd.wait_state("echoer", "RUNNING", 5 * S);
    supd.wait_state("deaf", "RUNNING", 5 * S);
    let out = python(
        &supd,
        "print(json.dumps([s.sendProcessStdin('echoer', 'one\\n'), fault(s.sendProcessStdin, 'deaf', 'x'), \
         fault(s.sendProcessStdin, 'off', 'x'), fault(s.sendProcessStdin, 'nosuch', 'x')]))",
    );
    assert_eq!(out, r#"[true, [20, "NO_FILE: deaf"], [70, "NOT_RUNNING: off"], [10, "BAD_NAME: nosuch"]]"#);
    supd.wait_output("got one", 5 * S);

    // The real supervisorctl's fg: each line typed goes to the program. (Its output thread ends
    // only at the next output or its 30 s select timeout, so the test ends it itself.)
    let url = format!("unix://{}", supd.socket.display());
    let start = |program: &str, args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child
    };
    let fg = |program: &str, args: &[&str], input: &str| start(program, args, input).wait().unwrap().code();
    let mut real = start(&format!("{VENV}/supervisorctl"), &["-s", &url, "fg", "echoer"], "two\n");
    supd.wait_output("got two", 5 * S);
    let _ = real.kill();
    let _ = real.wait();
    // supctl's fg, the same way.
    let socket = supd.socket.display().to_string();
    assert_eq!(fg(crate::harness::SUPCTL, &["-s", &socket, "fg", "echoer"], "three\n"), Some(0));
    supd.wait_output("got three", 5 * S);
    assert_eq!(supd.program("echoer")["state"], "RUNNING", "fg leaves it running");
    let code = fg(crate::harness::SUPCTL, &["-s", &socket, "fg", "deaf"], "x\n");
    assert_eq!(code, Some(1), "a program without stdin_pipe cannot be attached to");
}
