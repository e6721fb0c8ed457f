//! The web dashboard: served at `/` on both listeners, checked in a real browser
//! (tests/browser/dashboard.py: Debian's Chromium driven by Playwright from PyPI), and the
//! listener rules a browser cannot see: no output on the public listener unless asked for,
//! no POST from another site's page.

use std::process::Command;
use std::time::Duration;

use crate::harness::{SUPCTL, Supd, free_port, http_get, http_request};

const S: Duration = Duration::from_secs(1);
const PYTHON: &str = "/opt/supd-test-venv/bin/python";

fn programs(flag: &str) -> String {
    format!(
        "[program.web]\ncommand = [\"sh\", \"-c\", \"echo web says hello; exec sleep 1000\"]\nstartsecs = 0\n\
         [program.doomed]\ncommand = [\"sh\", \"-c\", \"test -e {flag} || exit 1; exec sleep 1000\"]\n\
         autostart = false\nstartretries = 0\nstartsecs = 1\n"
    )
}

#[test]
fn a_browser_sees_a_program_fail_and_restarts_it_with_a_button() {
    let rpc = free_port();
    let flag = format!("/tmp/supd-dashboard-{}-{}", std::process::id(), fastrand::u32(..));
    let supd = Supd::start_with(
        &format!("rpc = \"127.0.0.1:{rpc}\"\nrpc_username = \"admin\"\nrpc_password = \"s3cret\"\n"),
        &programs(&flag),
    );
    supd.wait_state("web", "RUNNING", 5 * S);
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let out = Command::new(PYTHON)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.py"))
        .args([&format!("http://127.0.0.1:{rpc}/"), &format!("http://127.0.0.1:{}/", supd.port), "admin", "s3cret"])
        .args([SUPCTL, &supd.socket.display().to_string(), &flag, &screenshot.display().to_string()])
        .output()
        .expect("python with playwright (scripts/setup-test-env installs it)");
    let _ = std::fs::remove_file(&flag);
    assert!(
        out.status.success(),
        "the browser's checks failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 1000, "a screenshot at {}", screenshot.display());
}

#[test]
fn the_public_listener_serves_the_page_and_figures_but_no_output() {
    let supd = Supd::start(&programs("/nonexistent"));
    supd.wait_state("web", "RUNNING", 5 * S);
    let (code, page) = http_get(supd.port, "/");
    assert_eq!(code, 200);
    assert!(page.contains("<title>supd</title>") && page.len() < 100 * 1024, "{} bytes", page.len());
    let (code, body) = http_get(supd.port, "/status");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status["controls"].as_bool(), status["tails"].as_bool()), (Some(false), Some(false)));
    let web = status["programs"].as_array().unwrap().iter().find(|p| p["name"] == "web").unwrap();
    assert!(web["resources"]["rss_bytes"].as_u64().unwrap() > 0, "{web}");
    assert!(status["supd"]["rss_bytes"].as_u64().unwrap() > 0, "{status}");
    let (code, body) = http_get(supd.port, "/logtail/web");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("http_tails"), "{body}");
    // Nothing on this listener changes anything.
    assert_eq!(http_request(supd.port, "POST", "/RPC2").0, 404);
}

#[test]
fn http_tails_serves_output_on_the_public_listener() {
    let supd = Supd::start_with("http_tails = true\n", &programs("/nonexistent"));
    supd.wait_state("web", "RUNNING", 5 * S);
    let body = crate::harness::wait_until("web's output over HTTP", 5 * S, || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", supd.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        std::io::Write::write_all(&mut s, b"GET /logtail/web HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
        let mut buf = vec![0; 4096];
        let mut got = String::new();
        while let Ok(n @ 1..) = std::io::Read::read(&mut s, &mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
            if got.contains("web says hello") {
                return Some(got);
            }
        }
        None
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}

#[test]
fn a_post_from_another_sites_page_is_refused() {
    let rpc = free_port();
    let supd = Supd::start_with(
        &format!("rpc = \"127.0.0.1:{rpc}\"\nrpc_username = \"admin\"\nrpc_password = \"s3cret\"\n"),
        &programs("/nonexistent"),
    );
    supd.wait_state("web", "RUNNING", 5 * S);
    let call = |origin: &str| {
        let body = "<?xml version=\"1.0\"?><methodCall><methodName>supervisor.stopProcess</methodName>\
                    <params><param><value><string>web</string></value></param></params></methodCall>";
        let mut s = std::net::TcpStream::connect(("127.0.0.1", rpc)).unwrap();
        let head = format!(
            "POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1:{rpc}\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n{origin}\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        std::io::Write::write_all(&mut s, head.as_bytes()).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        out
    };
    let refused = call("Origin: https://evil.example\r\n");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert_eq!(supd.program("web")["state"], "RUNNING");
    let done = call("");
    assert!(done.starts_with("HTTP/1.1 200") && !done.contains("<fault>"), "{done}");
    supd.wait_state("web", "STOPPED", 5 * S);
}
