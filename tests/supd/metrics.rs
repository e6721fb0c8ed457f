//! `GET /metrics`: Prometheus text that a parser reads, with values that follow the programs.

use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);

/// Scrapes `/metrics` and parses it.
fn scrape(supd: &Supd) -> Scrape {
    let (code, body) = supd.http_get("/metrics");
    assert_eq!(code, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("unparsable: {e}\n{body}"))
}

/// The value of `metric` for `program` (with `state` when given).
fn value(scrape: &Scrape, metric: &str, program: &str, state: Option<&str>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.get("program") == Some(program)
                && state.is_none_or(|st| s.labels.get("state") == Some(st))
        })
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn metrics_parse_and_follow_state_changes() {
    let supd = Supd::start(
        "[program.web]\ncommand = [\"sh\", \"-c\", \"sleep 1000 & exec sleep 1001\"]\nstartsecs = 0\n\
         [program.web.healthcheck]\nexec = [\"true\"]\ninterval = \"100ms\"\n\
         [program.bad]\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nstartretries = 0\n",
    );
    supd.wait_state("web", "RUNNING", 5 * S);
    supd.wait_state("bad", "FATAL", 5 * S);
    let m = wait_until("a probe to be counted", 5 * S, || {
        let m = scrape(&supd);
        value(&m, "supd_probe_duration_seconds", "web", None).is_some_and(|n| n >= 1.0).then_some(m)
    });
    assert_eq!(value(&m, "supd_program_up", "web", None), Some(1.0));
    assert_eq!(value(&m, "supd_program_up", "bad", None), Some(0.0));
    assert_eq!(value(&m, "supd_program_state", "web", Some("RUNNING")), Some(1.0));
    assert_eq!(value(&m, "supd_program_state", "web", Some("STOPPED")), Some(0.0));
    assert_eq!(value(&m, "supd_program_state", "bad", Some("FATAL")), Some(1.0));
    let one_hot: f64 =
        m.samples.iter().filter(|s| s.metric == "supd_program_state" && s.labels.get("program") == Some("web")).count()
            as f64;
    assert_eq!(one_hot, 7.0, "one series per supervisord state");
    assert_eq!(value(&m, "supd_program_healthy", "web", None), Some(1.0));
    assert_eq!(value(&m, "supd_program_exit_code", "bad", None), Some(3.0));
    assert_eq!(value(&m, "supd_program_restarts_total", "web", None), Some(0.0));
    let started = value(&m, "supd_program_start_time_seconds", "web", None).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - 30.0..=now + 1.0).contains(&started), "{started} vs {now}");
    // The tree holds sh's two sleeps: more than one process' worth of memory.
    let rss = value(&m, "supd_program_resident_memory_bytes", "web", None).unwrap();
    assert!(rss > 1e6, "{rss}");
    assert!(value(&m, "supd_program_cpu_seconds_total", "web", None).is_some());
    let own = m.samples.iter().find(|s| s.metric == "process_resident_memory_bytes").expect("process_* metrics");
    assert!(matches!(own.value, Value::Gauge(v) if v > 1e6), "{:?}", own.value);
    for s in &m.samples {
        let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        assert!(keys.iter().all(|k| ["program", "group", "state", "le", "gpu"].contains(k)), "{}: {keys:?}", s.metric);
    }

    // A kill -9 is a restart; a stop is STOPPED.
    assert_eq!(supd.ctl(&["signal", "KILL", "web"]).0, 0);
    wait_until("the restart to be counted", 5 * S, || {
        (value(&scrape(&supd), "supd_program_restarts_total", "web", None) == Some(1.0)).then_some(())
    });
    assert_eq!(supd.ctl(&["stop", "web"]).0, 0);
    let m = scrape(&supd);
    assert_eq!(value(&m, "supd_program_up", "web", None), Some(0.0));
    assert_eq!(value(&m, "supd_program_state", "web", Some("STOPPED")), Some(1.0));
    assert_eq!(value(&m, "supd_program_healthy", "web", None), Some(0.0));
    assert_eq!(value(&m, "supd_program_start_time_seconds", "web", None), None, "no process, no start time");
}

/// GET /metrics with an `Accept` header: (content type, body).
fn scrape_as(supd: &Supd, accept: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", supd.port)).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let ctype = head.lines().find_map(|l| l.strip_prefix("content-type: ")).unwrap_or_default();
    (ctype.to_string(), body.to_string())
}

/// Parses `body` with prometheus_client's parser for `format` ("text" or "openmetrics"); the
/// names of the counter families it found.
fn python_counters(body: &str, format: &str) -> String {
    let parser = match format {
        "text" => "from prometheus_client.parser import text_string_to_metric_families as parse",
        _ => "from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse",
    };
    let script = format!(
        "import sys\n{parser}\nprint(' '.join(sorted(f.name for f in parse(sys.stdin.read()) if f.type == 'counter' and f.samples)))"
    );
    let python = "/opt/supd-test-venv/bin/python";
    let mut child = std::process::Command::new(python)
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} (scripts/setup-test-env makes it): {e}"));
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client ({format}) cannot parse it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn metrics_are_prometheus_text_unless_openmetrics_is_asked_for() {
    let supd = Supd::start("[program.a]\ncommand = \"sleep 600\"\nstartsecs = 0\n");
    supd.wait_state("a", "RUNNING", 5 * S);
    for accept in [None, Some("text/plain;version=0.0.4;q=1,*/*;q=0.1")] {
        let (ctype, body) = scrape_as(&supd, accept);
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
        assert!(body.contains("# TYPE supd_program_restarts_total counter\n") && !body.contains("# EOF"), "{body}");
        let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        assert!(
            scrape
                .samples
                .iter()
                .any(|s| s.metric == "supd_program_restarts_total" && matches!(s.value, Value::Counter(v) if v == 0.0))
        );
        // prometheus_client's text parser sees the counters (with OpenMetrics it saw them empty).
        let counters = python_counters(&body, "text");
        assert!(counters.contains("supd_program_restarts"), "{counters}");
    }
    let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (ctype, body) = scrape_as(&supd, Some(prometheus));
    assert_eq!(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(body.ends_with("# EOF\n") && body.contains("# TYPE supd_program_restarts counter\n"), "{body}");
    let counters = python_counters(&body, "openmetrics");
    assert!(counters.contains("supd_program_restarts"), "{counters}");
}
