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
