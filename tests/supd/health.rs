//! Health probes: http, tcp and exec; starting -> healthy -> unhealthy -> restart; bad
//! endpoints; startsecs = "healthy"; /health and /health/NAME.

use std::time::{Duration, Instant};

use crate::harness::{Supd, free_port, wait_until};

const S: Duration = Duration::from_secs(1);

fn server(mode: &str, port: u16, extra: &str) -> String {
    format!(
        "command = [\"/usr/bin/python3\", \"{}/tests/fixtures/probe_server.py\", \"{port}\", \"{mode}\"{extra}]\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Fast probe timings for tests.
const FAST: &str =
    "interval = \"200ms\"\ntimeout = \"500ms\"\nstart_period = \"10s\"\nstart_interval = \"100ms\"\nretries = 2\n";

#[test]
fn http_probe_goes_healthy_then_unhealthy_restarts_with_a_new_pid() {
    let port = free_port();
    let supd = Supd::start(&format!(
        "[program.api]\n{}startsecs = 0\n[program.api.healthcheck]\nhttp = \"http://127.0.0.1:{port}/health\"\n{FAST}",
        server("sick-when-flagged", port, ", \"@DIR@/sick\"")
    ));
    let (code, body) = supd.http_get("/health");
    assert_eq!(code, 503, "no probe has passed yet: {body}");
    assert!(body.contains("api (RUNNING (starting))"), "{body}");
    let p = wait_until("api to be healthy", 30 * S, || {
        let p = supd.program("api");
        (p["health"] == "healthy").then_some(p)
    });
    let (_, out, _) = supd.ctl(&["status", "api"]);
    assert!(out.contains("RUNNING   pid ") && out.contains(", healthy; probe: HTTP 200 in "), "{out}");
    let pid = p["pid"].as_i64().unwrap().to_string();
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[3].trim_end_matches(','), pid, "awk '{{print $4}}' is the pid: {out}");
    assert_eq!(supd.http_get("/health").0, 200);
    assert_eq!(supd.http_get("/health/api").0, 200);
    assert_eq!(supd.http_get("/health/nope").0, 404);

    // Make it answer 500: two failed probes make it unhealthy, and it is restarted.
    let old_pid = p["pid"].clone();
    std::fs::write(supd.path("sick"), "").unwrap();
    supd.wait_output("api is unhealthy", 30 * S);
    let p = wait_until("api restarted and healthy again", 30 * S, || {
        let p = supd.program("api");
        (p["pid"] != old_pid && p["health"] == "healthy").then_some(p)
    });
    assert_eq!(p["restarts"], 1);
}

#[test]
fn bad_endpoints_give_clear_results_and_supd_stays_responsive() {
    let (hang, big, err) = (free_port(), free_port(), free_port());
    let mut config = format!(
        "[program.hang]\n{}startsecs = 0\n[program.big]\n{}startsecs = 0\n[program.err]\n{}startsecs = 0\n",
        server("hang", hang, ""),
        server("bigbody", big, ""),
        server("status500", err, "")
    );
    // 50 programs probing the endpoint that never answers, each probe timing out.
    for i in 0..50 {
        config += &format!(
            "[program.p{i}]\ncommand = \"sleep 1000\"\nstartsecs = 0\n[program.p{i}.healthcheck]\n\
             http = \"http://127.0.0.1:{hang}/\"\ninterval = \"100ms\"\ntimeout = \"1s\"\non_unhealthy = \"ignore\"\n"
        );
    }
    for (name, port) in [("refused", 1), ("slow", hang), ("bigger", big), ("five", err)] {
        config += &format!(
            "[program.{name}]\ncommand = \"sleep 1000\"\nstartsecs = 0\n[program.{name}.healthcheck]\n\
             http = \"http://127.0.0.1:{port}/\"\ninterval = \"100ms\"\ntimeout = \"300ms\"\non_unhealthy = \"ignore\"\nretries = 1\n"
        );
    }
    let supd = Supd::start(&config);
    // The servers start beside the probes, so wait for each expected result.
    let expect = |name: &str, want: &str| {
        wait_until(&format!("{name}'s probe to say {want:?}"), 30 * S, || {
            let m = supd.program(name)["last_probe"]["message"].as_str().map(str::to_string)?;
            m.starts_with(want).then_some(())
        })
    };
    expect("refused", "connect 127.0.0.1:1: Connection refused");
    expect("slow", "timed out after 300ms");
    expect("five", "HTTP 500");
    expect("bigger", "HTTP 200"); // a 10 MB body, not read
    assert_eq!(supd.program("five")["health"], "unhealthy");
    assert_eq!(supd.program("bigger")["health"], "healthy");
    // The 50 hung probes are in flight now; supctl still answers at once.
    wait_until("the hung probes to be in flight", 5 * S, || supd.program("p49")["spawns"].as_u64());
    std::thread::sleep(Duration::from_millis(300));
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            assert!([0, 3].contains(&supd.ctl(&["status", "refused"]).0));
            t.elapsed()
        })
        .collect();
    times.sort();
    assert!(times[2] < Duration::from_millis(50), "supctl status took {times:?}");
    let kib = supd.rss_kib();
    assert!(kib < 32 * 1024, "supd's memory stays small with a 10 MB body probed: {kib} KiB");
}

#[test]
fn exec_and_tcp_probes() {
    let port = free_port();
    let supd = Supd::start_with(
        "user = \"dev\"",
        &format!(
            "[program.web]\n{}startsecs = 0\n[program.web.healthcheck]\ntcp = \"127.0.0.1:{port}\"\n{FAST}\
             [program.job]\ncommand = \"sleep 1000\"\nstartsecs = 0\n[program.job.healthcheck]\n\
             exec = [\"sh\", \"-c\", \"test $(id -un) = dev && test -f /tmp/supd-probe-ok-{port}\"]\n{FAST}\
             [program.nocmd]\ncommand = \"sleep 1000\"\nstartsecs = 0\n[program.nocmd.healthcheck]\n\
             exec = \"/no/such/check\"\n{FAST}",
            server("ok", port, "")
        ),
    );
    wait_until("web healthy over tcp", 30 * S, || (supd.program("web")["health"] == "healthy").then_some(()));
    let job = wait_until("job's first probe", 30 * S, || {
        let job = supd.program("job");
        job["last_probe"]["message"].as_str().is_some().then_some(job)
    });
    assert_eq!(
        (job["health"].as_str(), job["last_probe"]["message"].as_str()),
        (Some("starting"), Some("exit status 1"))
    );
    std::fs::write(format!("/tmp/supd-probe-ok-{port}"), "").unwrap();
    wait_until("job healthy: the check ran as dev", 30 * S, || {
        (supd.program("job")["health"] == "healthy").then_some(())
    });
    std::fs::remove_file(format!("/tmp/supd-probe-ok-{port}")).ok();
    let msg = wait_until("nocmd's probe", 30 * S, || {
        supd.program("nocmd")["last_probe"]["message"].as_str().map(str::to_string)
    });
    assert_eq!(msg, "command not found: /no/such/check");
}

#[test]
fn startsecs_healthy_gates_running_and_start_waits_for_it() {
    let port = free_port();
    let supd = Supd::start(&format!(
        "[program.api]\ncommand = [\"sh\", \"-c\", \"sleep 0.5; exec python3 {}/tests/fixtures/probe_server.py {port} ok\"]\n\
         startsecs = \"healthy\"\nautostart = false\n[program.api.healthcheck]\nhttp = \"http://127.0.0.1:{port}/\"\n{FAST}",
        env!("CARGO_MANIFEST_DIR")
    ));
    let started = Instant::now();
    let (code, out, _) = supd.ctl(&["start", "api"]);
    assert_eq!((code, out.as_str()), (0, "api: started\n"));
    assert!(started.elapsed() >= Duration::from_millis(500), "start waited until the probe passed");
    let p = supd.program("api");
    assert_eq!((p["state"].as_str(), p["health"].as_str()), (Some("RUNNING"), Some("healthy")));
}

/// Regression: a server that answers and closes at once made the probe race its own
/// connection and report "connection closed before a response" for a 200.
#[test]
fn a_server_that_closes_right_after_answering_is_healthy() {
    let port = free_port();
    let supd = Supd::start(&format!(
        "[program.web]\n{}startsecs = 0\n[program.web.healthcheck]\nhttp = \"http://127.0.0.1:{port}/\"\n\
         interval = \"50ms\"\nstart_period = \"10s\"\nstart_interval = \"50ms\"\nretries = 1\non_unhealthy = \"ignore\"\n",
        server("close", port, "")
    ));
    wait_until("web healthy", 30 * S, || (supd.program("web")["health"] == "healthy").then_some(()));
    wait_until("30 probes of web", 30 * S, || (probes_done(&supd, "web") >= 30).then_some(()));
    let web = supd.program("web");
    assert_eq!((web["health"].as_str(), web["last_probe"]["message"].as_str()), (Some("healthy"), Some("HTTP 200")));
    assert!(!supd.output().contains("web is unhealthy"), "{}", supd.output());
}

/// How many probes of `program` have finished, from `/metrics`' probe duration histogram.
fn probes_done(supd: &Supd, program: &str) -> u64 {
    let (_, body) = supd.http_get("/metrics");
    let series = format!("supd_probe_duration_seconds_count{{program=\"{program}\",");
    body.lines()
        .find(|l| l.starts_with(&series))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}
