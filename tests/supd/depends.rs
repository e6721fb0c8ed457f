//! depends_on: start order by condition, waiting descriptions, failed dependencies, reverse
//! dependency order at shutdown.

use std::time::Duration;

use crate::harness::{Supd, free_port, wait_until};

const S: Duration = Duration::from_secs(1);

fn stamp(name: &str) -> String {
    format!(
        "[\"sh\", \"-c\", \"echo {name} >> @DIR@/order; trap 'echo stop-{name} >> @DIR@/order; exit 0' TERM; while :; do sleep 0.05; done\"]"
    )
}

#[test]
fn programs_wait_for_healthy_and_completed_dependencies_then_stop_in_reverse() {
    let port = free_port();
    let mut supd = Supd::start(&format!(
        "[program.app]\ncommand = {}\nstartsecs = 0\ndepends_on = {{ db = \"healthy\", migrate = \"completed_successfully\" }}\n\
         [program.migrate]\ncommand = [\"sh\", \"-c\", \"sleep 0.3; echo migrate >> @DIR@/order\"]\nstartsecs = 0\n\
         autorestart = false\ndepends_on = [\"db\"]\n\
         [program.db]\ncommand = [\"sh\", \"-c\", \"echo db >> @DIR@/order; exec python3 {}/tests/fixtures/probe_server.py {port} ok\"]\n\
         startsecs = 0\n[program.db.healthcheck]\nhttp = \"http://127.0.0.1:{port}/\"\nstart_period = \"10s\"\nstart_interval = \"100ms\"\n\
         [program.cache]\ncommand = {}\nstartsecs = 0\n",
        stamp("app"),
        env!("CARGO_MANIFEST_DIR"),
        stamp("cache"),
    ));
    let app = supd.program("app");
    assert_eq!(app["state"], "STARTING");
    assert!(app["description"].as_str().unwrap().starts_with("waiting for db (healthy)"), "{app}");
    assert_eq!(supd.program("cache")["state"], "RUNNING", "independent programs start at once");
    supd.wait_state("app", "RUNNING", 30 * S);
    let order = std::fs::read_to_string(supd.path("order")).unwrap();
    let lines: Vec<&str> = order.lines().filter(|l| *l != "cache").collect();
    assert_eq!(lines, ["db", "migrate", "app"]);
    assert_eq!(supd.ctl(&["shutdown"]).0, 0);
    assert_eq!(supd.wait_exit(30 * S), 0);
    let order = std::fs::read_to_string(supd.path("order")).unwrap();
    let app_stop = order.find("stop-app").unwrap();
    assert!(supd.output().contains("stopped: db"), "{}", supd.output());
    // db stops after app (it has no TERM trap, so its stop leaves no line; check the log order).
    let log = supd.output();
    let db_stopped = log.find("stopped: db").unwrap();
    let app_stopped = log.find("stopped: app").or_else(|| log.find("exited: app")).unwrap();
    assert!(app_stopped < db_stopped, "app stops before the db it depends on:\n{log}");
    assert!(app_stop > 0);
}

#[test]
fn a_fatal_dependency_makes_the_dependent_fatal_with_the_reason() {
    let supd = Supd::start(
        "[program.db]\ncommand = \"sh -c 'exit 1'\"\nstartretries = 0\n\
         [program.app]\ncommand = \"sleep 1000\"\ndepends_on = [\"db\"]\n",
    );
    let app = supd.wait_state("app", "FATAL", 30 * S);
    assert_eq!(app["description"], "dependency db is FATAL");
    assert_eq!(app["spawns"], 0, "never started");
    wait_until("db FATAL", S, || (supd.program("db")["state"] == "FATAL").then_some(()));
}
