//! Event listeners (`[eventlistener.NAME]`): supervisord's protocol with a listener of our own,
//! and superlance 2.0.0's listeners (from PyPI: crashmail, fatalmailbatch, httpok, memmon)
//! doing their jobs under supd unchanged.

use std::time::Duration;

use crate::harness::{Supd, free_port, wait_until};

const S: Duration = Duration::from_secs(1);
const VENV: &str = "/opt/supd-test-venv/bin";

/// A listener in the protocol's own words: READY, read the header and payload, log both to
/// FILE, answer FAIL to the first EXITED event it sees (which must then come again) and OK to
/// every other.
const LISTENER: &str = r#"
import sys
failed = False
out = open(sys.argv[1], "a", buffering=1)
while True:
    sys.stdout.write("READY\n"); sys.stdout.flush()
    header = sys.stdin.readline()
    fields = dict(f.split(":", 1) for f in header.split())
    payload = sys.stdin.read(int(fields["len"]))
    out.write(header.strip() + " | " + payload + "\n")
    if fields["eventname"] == "PROCESS_STATE_EXITED" and not failed:
        failed = True
        sys.stdout.write("RESULT 4\nFAIL"); sys.stdout.flush()
    else:
        sys.stdout.write("RESULT 2\nOK"); sys.stdout.flush()
"#;

#[test]
fn a_listener_gets_state_changes_by_supervisords_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), "listener.py", LISTENER);
    let supd = Supd::start(&format!(
        "[eventlistener.watch]\ncommand = [\"/usr/bin/python3\", \"{}\", \"@DIR@/events.log\"]\n\
         events = [\"PROCESS_STATE\"]\nstartsecs = 0\n\
         [program.job]\ncommand = [\"sh\", \"-c\", \"sleep 0.3; exit 3\"]\nstartsecs = 0\nautorestart = false\n\
         autostart = false\n",
        script.display()
    ));
    supd.wait_state("watch", "RUNNING", 5 * S);
    assert_eq!(supd.ctl(&["start", "job"]).0, 0);
    let log = supd.path("events.log");
    let text = wait_until("the EXITED event, failed once and sent again", 10 * S, || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches("eventname:PROCESS_STATE_EXITED").count() >= 2).then_some(text)
    });
    let lines: Vec<&str> = text.lines().collect();
    let header = lines[0];
    assert!(
        header.starts_with("ver:3.0 server:supervisor serial:") && header.contains(" pool:watch poolserial:1 "),
        "{text}"
    );
    let events: Vec<&str> = lines.iter().filter_map(|l| l.split(" eventname:").nth(1)?.split(' ').next()).collect();
    assert_eq!(
        events,
        ["PROCESS_STATE_STARTING", "PROCESS_STATE_RUNNING", "PROCESS_STATE_EXITED", "PROCESS_STATE_EXITED"],
        "{text}"
    );
    assert!(text.contains("| processname:job groupname:job from_state:STOPPED tries:0"), "{text}");
    assert!(text.contains("| processname:job groupname:job from_state:RUNNING expected:0 pid:"), "{text}");
    assert!(!text.contains("processname:watch"), "a listener is not told of itself: {text}");
}

#[test]
fn output_and_group_changes_are_events_for_who_asks() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), "listener.py", LISTENER);
    let listener = format!(
        "[eventlistener.watch]\ncommand = [\"/usr/bin/python3\", \"{}\", \"@DIR@/events.log\"]\n\
         events = [\"PROCESS_LOG\", \"PROCESS_GROUP\", \"REMOTE_COMMUNICATION\"]\nstartsecs = 0\n",
        script.display()
    );
    let talk = "[program.talk]\ncommand = [\"sh\", \"-c\", \"echo hello; echo oops >&2; sleep 60\"]\n\
                startsecs = 0\nautostart = false\nstdout_events_enabled = true\n\
                [program.quiet]\ncommand = [\"sh\", \"-c\", \"echo unseen; sleep 60\"]\nstartsecs = 0\n\
                autostart = false\n";
    let supd = Supd::start(&format!("{listener}{talk}"));
    supd.wait_state("watch", "RUNNING", 5 * S);
    assert_eq!(supd.ctl(&["start", "talk", "quiet"]).0, 0);
    let log = supd.path("events.log");
    let text = wait_until("talk's stdout as an event", 10 * S, || {
        std::fs::read_to_string(&log).ok().filter(|t| t.contains("hello"))
    });
    let pid = supd.program("talk")["pid"].clone();
    assert!(text.contains("eventname:PROCESS_LOG_STDOUT len:"), "{text}");
    assert!(text.contains(&format!("| processname:talk groupname:talk pid:{pid} channel:stdout\nhello")), "{text}");

    supd.rewrite("", &format!("{listener}{talk}[program.extra]\ncommand = \"sleep 60\"\n"));
    assert_eq!(supd.ctl(&["reload"]).0, 0);
    let text = wait_until("PROCESS_GROUP_ADDED", 10 * S, || {
        std::fs::read_to_string(&log).ok().filter(|t| t.contains("PROCESS_GROUP_ADDED"))
    });
    assert!(text.contains("eventname:PROCESS_GROUP_ADDED len:16 | groupname:extra\n"), "{text}");
    supd.rewrite("", &format!("{listener}{talk}"));
    assert_eq!(supd.ctl(&["reload"]).0, 0);
    let text = wait_until("PROCESS_GROUP_REMOVED", 10 * S, || {
        std::fs::read_to_string(&log).ok().filter(|t| t.contains("PROCESS_GROUP_REMOVED"))
    });
    assert!(text.contains("eventname:PROCESS_GROUP_REMOVED len:16 | groupname:extra\n"), "{text}");
    assert!(!text.contains("oops") && !text.contains("unseen"), "only the streams that ask send events: {text}");

    // supervisord's sendRemoteCommEvent, through XML-RPC.
    let call = format!(
        "import xmlrpc.client\nfrom supervisor.xmlrpc import SupervisorTransport\n\
         t = SupervisorTransport(None, None, 'unix://{}')\n\
         print(xmlrpc.client.ServerProxy('http://127.0.0.1', transport=t).supervisor.sendRemoteCommEvent('deploy', 'v2'))",
        supd.socket.display()
    );
    let out = std::process::Command::new(format!("{VENV}/python")).args(["-c", &call]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "True\n", "{}", String::from_utf8_lossy(&out.stderr));
    let text = wait_until("REMOTE_COMMUNICATION", 10 * S, || {
        std::fs::read_to_string(&log).ok().filter(|t| t.contains("REMOTE_COMMUNICATION"))
    });
    assert!(text.contains("eventname:REMOTE_COMMUNICATION len:14 | type:deploy\nv2\n"), "{text}");
}

/// Writes `text` to `dir/name`, for a program to run.
fn script(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A stand-in sendmail: what crashmail sends it lands in FILE.
fn sendmail(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("sendmail");
    std::fs::write(&path, format!("#!/bin/sh\ncat >> {}/mail.txt\n", dir.display())).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

#[test]
fn superlance_crashmail_mails_an_unexpected_exit() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = sendmail(dir.path());
    let supd = Supd::start(&format!(
        "[eventlistener.crashmail]\ncommand = [\"{VENV}/crashmail\", \"-a\", \"-m\", \"ops@example.com\", \"-s\", \"{}\"]\n\
         events = [\"PROCESS_STATE_EXITED\"]\nstartsecs = 0\n\
         [program.flaky]\ncommand = [\"sh\", \"-c\", \"sleep 0.5; exit 1\"]\nstartsecs = 0\nautorestart = false\n\
         depends_on = {{ crashmail = \"started\" }}\n",
        sendmail.display()
    ));
    let mail = dir.path().join("mail.txt");
    let text = wait_until("crashmail to send its mail", 15 * S, || {
        std::fs::read_to_string(&mail).ok().filter(|t| t.contains("flaky"))
    });
    assert!(text.contains("To: ops@example.com") && text.contains("flaky"), "{text}");
    drop(supd);
}

#[test]
fn superlance_httpok_restarts_a_program_whose_url_fails() {
    let port = free_port();
    // A server that answers until the file `@DIR@/down` exists, then hangs.
    let server = format!(
        "import http.server, os\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       if os.path.exists('{{dir}}/down'):\n\
         \x20           self.send_response(500); self.end_headers(); return\n\
         \x20       self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n\
         \x20   def log_message(self, *a): pass\n\
         http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    );
    let supd = Supd::start(&format!(
        "[program.web]\ncommand = [\"/usr/bin/python3\", \"-c\", {server:?}]\nstartsecs = 0\n\
         [eventlistener.httpok]\ncommand = [\"{VENV}/httpok\", \"-p\", \"web\", \"-t\", \"2\", \"http://127.0.0.1:{port}/\"]\n\
         events = [\"TICK_5\"]\nstartsecs = 0\n"
    ).replace("{dir}", "@DIR@"));
    let first = supd.wait_state("web", "RUNNING", 5 * S)["pid"].clone();
    std::fs::write(supd.path("down"), "").unwrap();
    let restarted = wait_until("httpok to restart web (a TICK_5 comes within 5 s)", 20 * S, || {
        let p = supd.program("web");
        (p["pid"] != first && p["state"] == "RUNNING").then_some(p)
    });
    assert_ne!(restarted["pid"], first);
}

#[test]
fn superlance_memmon_restarts_a_program_over_its_limit() {
    let supd = Supd::start(&format!(
        "[program.hog]\ncommand = [\"/usr/bin/python3\", \"-c\", \"x = bytearray(64 << 20); import time; time.sleep(1000)\"]\n\
         startsecs = 0\n\
         [eventlistener.memmon]\ncommand = [\"{VENV}/memmon\", \"-p\", \"hog=32MB\"]\nevents = [\"TICK_5\"]\nstartsecs = 0\n"
    ));
    let first = supd.wait_state("hog", "RUNNING", 5 * S)["pid"].clone();
    let restarted = wait_until("memmon to restart hog (a TICK_5 comes within 5 s)", 20 * S, || {
        let p = supd.program("hog");
        (p["pid"] != first && p["state"] == "RUNNING").then_some(p)
    });
    assert_ne!(restarted["pid"], first);
}

/// A stand-in SMTP server on PORT: each mail's text lands in FILE.
const SMTP: &str = r#"
import socketserver, sys
class Mail(socketserver.StreamRequestHandler):
    def handle(self):
        say = lambda s: self.wfile.write(s.encode() + b"\r\n")
        say("220 stand-in")
        body, out = False, open(sys.argv[2], "a", buffering=1)
        for line in self.rfile:
            text = line.decode(errors="replace").rstrip("\r\n")
            if body:
                if text == ".":
                    body = False
                    say("250 OK")
                else:
                    out.write(text + "\n")
                continue
            verb = text[:4].upper()
            if verb == "DATA":
                body = True
                say("354 go on")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 OK")
socketserver.TCPServer(("127.0.0.1", int(sys.argv[1])), Mail).serve_forever()
"#;

#[test]
fn superlance_fatalmailbatch_mails_a_fatal_program() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = script(dir.path(), "smtp.py", SMTP);
    let port = free_port();
    // A batch every 0.05 minutes (3 s), sent at a TICK_5.
    let supd = Supd::start(&format!(
        "[program.smtp]\ncommand = [\"/usr/bin/python3\", \"{}\", \"{port}\", \"@DIR@/mail.txt\"]\nstartsecs = 0\n\
         [program.smtp.healthcheck]\ntcp = \"127.0.0.1:{port}\"\ninterval = \"1s\"\nstart_period = \"5s\"\nstart_interval = \"100ms\"\n\
         [eventlistener.fatal]\ncommand = [\"{VENV}/fatalmailbatch\", \"-t\", \"ops@example.com\", \"-f\", \"supd@example.com\", \
         \"-H\", \"127.0.0.1:{port}\", \"-e\", \"TICK_5\", \"-i\", \"0.05\"]\n\
         events = [\"PROCESS_STATE\", \"TICK_5\"]\nstartsecs = 0\ndepends_on = {{ smtp = \"healthy\" }}\n\
         [program.doomed]\ncommand = [\"sh\", \"-c\", \"exit 1\"]\nstartretries = 0\n\
         depends_on = {{ fatal = \"started\" }}\n",
        smtp.display()
    ));
    supd.wait_state("doomed", "FATAL", 10 * S);
    let mail = supd.path("mail.txt");
    let text = wait_until("fatalmailbatch to send its batch (at a TICK_5 after 3 s)", 20 * S, || {
        std::fs::read_to_string(&mail).ok().filter(|t| t.contains("doomed"))
    });
    assert!(text.contains("To: ops@example.com") && text.contains("doomed"), "{text}");
}

/// Opens `GET /events` on supd's HTTP port; the stream, its head already read.
fn sse(port: u16) -> (std::net::TcpStream, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut head = String::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + 5 * S;
    while !head.contains("\r\n\r\n") && std::time::Instant::now() < deadline {
        if let Ok(n) = s.read(&mut buf) {
            head.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    (s, head)
}

/// Reads `stream` until `needle` has come (or panics after `timeout`); all read so far.
fn read_until(stream: &mut std::net::TcpStream, seen: &mut String, needle: &str, timeout: Duration) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        assert!(std::time::Instant::now() < deadline, "no {needle:?} in: {seen}");
        if let Ok(n) = stream.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

#[test]
fn events_stream_every_change_to_http_and_supctl_followers() {
    let port = free_port();
    let supd = Supd::start(&format!(
        "[program.job]\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nstartsecs = 0\nautorestart = false\nautostart = false\n\
         [program.flap]\ncommand = [\"sh\", \"-c\", \"sleep 0.1; exit 1\"]\nstartsecs = 0\nautostart = false\n\
         backoff_initial = \"50ms\"\n\
         [program.web]\ncommand = [\"/usr/bin/python3\", \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\n\
         startsecs = 0\nautostart = false\n\
         [program.web.healthcheck]\nhttp = \"http://127.0.0.1:{port}/\"\nstart_period = \"10s\"\nstart_interval = \"100ms\"\n"
    ));
    let (mut stream, head) = sse(supd.port);
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("content-type: text/event-stream"), "{head}");
    let mut ctl = std::process::Command::new(crate::harness::SUPCTL)
        .args(["-s", &supd.socket.display().to_string(), "events", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let (lines, stdout) = (std::sync::Arc::clone(&lines), ctl.stdout.take().unwrap());
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    // supctl's follower is in once a change reaches it: start job until one has.
    wait_until("supctl events to print a change", 10 * S, || {
        supd.ctl(&["start", "job"]); // it runs and exits at once: a few changes each time
        (!lines.lock().unwrap().is_empty()).then_some(())
    });
    assert_eq!(supd.ctl(&["start", "web"]).0, 0);
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"kind\":\"health\"", 10 * S);
    assert!(seen.contains("event: state\ndata: {\"time\":\""), "{seen}");
    assert!(
        seen.contains("\"program\":\"job\",\"group\":\"job\",\"kind\":\"state\",\"from\":\"RUNNING\",\"to\":\"EXITED\",\"reason\":\"exit status 3 (not expected)\"}"),
        "{seen}"
    );
    assert!(seen.contains("event: probe\ndata:") && seen.contains("\"to\":\"pass\""), "{seen}");
    assert!(seen.contains("\"kind\":\"health\",\"from\":\"starting\",\"to\":\"healthy\""), "{seen}");
    assert!(!seen.contains("python3"), "no command lines: {seen}");
    assert_eq!(supd.ctl(&["start", "flap"]).0, 0);
    read_until(
        &mut stream,
        &mut seen,
        "\"program\":\"flap\",\"group\":\"flap\",\"kind\":\"restart\",\"from\":\"0\",\"to\":\"1\"",
        10 * S,
    );
    let _ = ctl.kill();
    let _ = ctl.wait();
    reader.join().unwrap();
    let lines = lines.lock().unwrap().clone();
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!((first["program"].as_str(), first["kind"].as_str()), (Some("job"), Some("state")), "{lines:?}");
}

#[test]
fn events_followers_are_bounded_and_health_keeps_answering() {
    let supd = Supd::start("[program.a]\ncommand = \"sleep 1000\"\nstartsecs = 0\n");
    let streams: Vec<_> = (0..32).map(|_| sse(supd.port)).collect();
    assert!(streams.iter().all(|(_, head)| head.starts_with("HTTP/1.1 200")));
    let (_, head) = sse(supd.port);
    assert!(head.starts_with("HTTP/1.1 503"), "the 33rd follower is refused: {head}");
    assert_eq!(supd.http_get("/health").0, 200, "/health still answers");
    drop(streams);
    wait_until("room for a follower again", 5 * S, || sse(supd.port).1.starts_with("HTTP/1.1 200").then_some(()));
}

#[test]
fn a_follower_that_keeps_reading_survives_a_restart_storm() {
    // A follower that keeps reading is never dropped, even after a pause. (bench/events.py found
    // every follower dropped under load, when a full queue of 64 dropped at once; a follower now
    // has 2 s to make room. This test guards the behaviour; the bench showed the failure.)
    let storm: String = (0..30)
        .map(|i| {
            format!(
                "[program.p{i}]\ncommand = [\"sh\", \"-c\", \"sleep 0.05; exit 1\"]\nstartsecs = 0\nautorestart = true\n\
                 backoff_initial = \"1ms\"\nbackoff_max = \"1ms\"\n"
            )
        })
        .collect();
    let supd = Supd::start(&storm);
    let (mut stream, head) = sse(supd.port);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A small receive window and a pause of the reader, as a client busy elsewhere for a moment.
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::RcvBuf, &2048).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (mut seen, mut events) = (String::new(), 0);
    let deadline = std::time::Instant::now() + 3 * S;
    while std::time::Instant::now() < deadline {
        use std::io::Read;
        let mut buf = [0u8; 65536];
        match stream.read(&mut buf) {
            Ok(0) => panic!("dropped after {events} events"),
            Ok(n) => {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                events += seen.matches("\nevent: ").count();
                seen = seen.rsplit("\n\n").next().unwrap_or_default().to_string();
            }
            Err(_) => {}
        }
    }
    // The point is that it is not dropped (above); the count only shows the feed kept going,
    // a gross bound: under a loaded test run it fell to 296 once where 300 was asked.
    assert!(events > 100, "{events} events in 3 s of storm");
}
