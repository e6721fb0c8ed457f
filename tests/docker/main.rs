//! Tests in a real Docker engine: the image this repository's Dockerfile builds (its runtime
//! stage, with binaries built on the host and a base image made locally by debootstrap, since
//! no registry can be reached), run as users run it.
//!
//! Where no engine answers these tests fail, loudly, unless SUPD_SKIP_DOCKER=1 is set by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const IMAGE: &str = "supd-test:latest";
const BASE: &str = "supd-test-base:bookworm";
const S: Duration = Duration::from_secs(1);

fn sh(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn docker(args: &[&str]) -> (i32, String, String) {
    sh(Command::new("docker").args(args))
}

/// Builds the image once per test run; `false` when the tests are skipped by hand.
fn image() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if std::env::var("SUPD_SKIP_DOCKER").as_deref() == Ok("1") {
            eprintln!("\n*** SUPD_SKIP_DOCKER=1: the Docker tests are SKIPPED ***\n");
            return false;
        }
        let (code, _, err) = docker(&["info", "--format", "{{.ServerVersion}}"]);
        assert_eq!(
            code, 0,
            "no Docker engine answers ({err}); these tests need one. Set SUPD_SKIP_DOCKER=1 to skip them."
        );
        let (code, out, err) = sh(Command::new(format!("{ROOT}/scripts/make-base-image")).arg(BASE));
        assert_eq!(code, 0, "make-base-image failed: {out}\n{err}");
        let bins = Path::new(ROOT).join("target/docker");
        std::fs::create_dir_all(&bins).unwrap();
        for (name, path) in [("supd", env!("CARGO_BIN_EXE_supd")), ("supctl", env!("CARGO_BIN_EXE_supctl"))] {
            let dest = bins.join(name);
            // Stripped, to keep the build context small; a plain copy where strip is missing.
            if sh(Command::new("strip").arg("-o").arg(&dest).arg(path)).0 != 0 {
                std::fs::copy(path, &dest).unwrap();
            }
        }
        let (code, out, err) = docker(&[
            "build",
            "-q",
            "--build-arg",
            &format!("BUILDER={BASE}"),
            "--build-arg",
            &format!("BASE={BASE}"),
            "-t",
            IMAGE,
            ROOT,
        ]);
        assert_eq!(code, 0, "docker build failed: {out}\n{err}");
        true
    })
}

/// A container, removed on drop.
struct Container(String);

impl Container {
    /// `docker run -d` of the test image with `args` before the image name.
    fn run(args: &[&str]) -> Container {
        let name = format!("supd-test-{}-{}", std::process::id(), fastrand::u32(..));
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        all.push(IMAGE);
        let (code, _, err) = docker(&all);
        assert_eq!(code, 0, "docker run failed: {err}");
        Container(name)
    }

    fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.0]).1
    }

    fn health(&self) -> String {
        self.inspect("{{.State.Health.Status}}")
    }

    fn wait(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn exec(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["exec", &self.0];
        all.extend_from_slice(args);
        docker(&all)
    }

    fn logs(&self) -> String {
        let (_, out, err) = docker(&["logs", &self.0]);
        format!("{out}\n{err}")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

/// A config directory to mount on /etc/supd.
fn config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("supd.toml"), text).unwrap();
    let mount = format!("{}:/etc/supd:ro", dir.path().display());
    (dir, mount)
}

const GATEWAY: &str = "[supervisor]\nuser = \"dev\"\n\
    [program.web]\ncommand = \"python3 -u /opt/supd/demo/mcp_gateway.py\"\nstartsecs = 0\nstopwaitsecs = 3\n\
    [program.web.healthcheck]\nhttp = \"http://127.0.0.1:3002/health\"\ninterval = \"500ms\"\ntimeout = \"500ms\"\n\
    retries = 2\nstart_period = \"20s\"\nstart_interval = \"200ms\"\n";

#[test]
fn health_goes_healthy_and_recovers_from_a_hung_service_without_a_container_restart() {
    if !image() {
        return;
    }
    let (_dir, mount) = config(GATEWAY);
    let c =
        Container::run(&["-v", &mount, "--health-interval", "1s", "--health-retries", "2", "--health-timeout", "2s"]);
    assert_eq!(c.health(), "starting");
    c.wait("healthy", 60 * S, |c| c.health() == "healthy");
    let (_, pid, _) = c.exec(&["supctl", "pid", "web"]);
    // A hung service: it stops answering its probe, supd restarts it, health comes back.
    // (supd's stop sends SIGCONT after SIGTERM, so the frozen process goes at once, and the
    // whole recovery can take less than Docker's 2 x 1 s to notice: Docker may or may not
    // show `unhealthy` on the way.)
    assert_eq!(c.exec(&["kill", "-STOP", &pid]).0, 0);
    c.wait("supd to replace the hung process", 60 * S, |c| {
        let (_, now, _) = c.exec(&["supctl", "pid", "web"]);
        now != pid && now != "0"
    });
    c.wait("healthy again", 60 * S, |c| c.health() == "healthy");
    assert_eq!(c.inspect("{{.RestartCount}}"), "0", "the container itself was not restarted");
    assert!(c.logs().contains("web is unhealthy"));
}

#[test]
fn compose_starts_the_dependent_only_once_healthy() {
    if !image() {
        return;
    }
    let project = format!("supdtest{}", std::process::id());
    /// `docker-compose down` on drop.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            compose(&self.0, &["down", "-t", "1"]);
        }
    }
    let _down = Down(project.clone());
    let (code, out, err) = compose(&project, &["up", "-d", "--no-build"]);
    assert_eq!(code, 0, "compose up: {out}\n{err}");
    let client = format!("{project}_client_1");
    let deadline = Instant::now() + 60 * S;
    while docker(&["inspect", "-f", "{{.State.Status}}", &client]).1 != "exited" {
        assert!(Instant::now() < deadline, "the client never ran to completion");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, logs, _) = docker(&["logs", &client]);
    assert_eq!(logs, "stack /health: 200", "the client started after the stack was healthy");
    assert_eq!(docker(&["inspect", "-f", "{{.State.ExitCode}}", &client]).1, "0");
}

/// docker-compose on examples/compose with the test image.
fn compose(project: &str, args: &[&str]) -> (i32, String, String) {
    let file = format!("{ROOT}/examples/compose/docker-compose.yml");
    sh(Command::new("docker-compose").args(["-f", &file, "-p", project]).args(args).env("SUPD_IMAGE", IMAGE))
}

#[test]
fn docker_stop_exits_0_at_once_and_a_fatal_required_program_exits_1() {
    if !image() {
        return;
    }
    let c = Container::run(&["--health-interval", "1s"]);
    c.wait("healthy", 60 * S, |c| c.health() == "healthy");
    let started = Instant::now();
    assert_eq!(docker(&["stop", "-t", "10", &c.0]).0, 0);
    let took = started.elapsed();
    assert!(took < 5 * S, "docker stop took {took:?} of its 10 s grace");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let logs = c.logs();
    assert!(logs.contains("stopped: claude-flow") && logs.contains("stopped: mcp-gateway"), "{logs}");
    assert!(logs.contains("supd exiting with code 0"), "{logs}");

    let (_dir, mount) = config(
        "[program.db]\ncommand = \"sh -c 'exit 1'\"\nrequired = true\nstartretries = 0\n\
         [program.app]\ncommand = \"sleep 1000\"\nstartsecs = 0\n",
    );
    let c = Container::run(&["-v", &mount, "--restart", "on-failure:3"]);
    c.wait("a restart by Docker's policy", 60 * S, |c| c.inspect("{{.RestartCount}}").parse::<u32>().unwrap_or(0) >= 1);
    c.wait("the last attempt to end", 60 * S, |c| c.inspect("{{.State.Status}}") == "exited");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "1");
    assert!(c.logs().contains("db is required and FATAL"));
}

#[test]
fn supctl_works_as_root_and_as_dev_only_when_socket_group_allows() {
    if !image() {
        return;
    }
    let c = Container::run(&[]);
    c.wait("supd up", 60 * S, |c| c.exec(&["supctl", "pid"]).0 == 0);
    let (code, out, _) = c.exec(&["supctl", "status"]);
    assert!(code == 0 || code == 3, "{out}");
    assert!(out.contains("core:mcp-gateway"), "{out}");
    // The image links supctl as supervisorctl: the same table, with no Python in the image.
    let status = ["supervisorctl", "status", "core:mcp-gateway"];
    c.wait("supervisorctl status of a running gateway", 60 * S, |c| c.exec(&status).1.contains("RUNNING"));
    let (_, same, _) = c.exec(&status);
    assert!(same.starts_with("core:mcp-gateway                 RUNNING   pid "), "{same}");
    let (code, _, err) = docker(&["exec", "-u", "dev", &c.0, "supctl", "status"]);
    assert_eq!(code, 4);
    assert!(err.contains("permission denied (run as root, or set [supervisor] socket_group"), "{err}");

    let (_dir, mount) = config(
        "[supervisor]\nsocket_group = \"dev\"\nsocket_mode = \"0660\"\n[program.a]\ncommand = \"sleep 1000\"\nstartsecs = 0\n",
    );
    let c = Container::run(&["-v", &mount]);
    c.wait("supd up", 60 * S, |c| c.exec(&["supctl", "pid"]).0 == 0);
    let (code, out, err) = docker(&["exec", "-u", "dev", &c.0, "supctl", "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("a "), "{out}");
}

#[test]
fn orphaned_grandchildren_leave_no_zombie_in_docker_top() {
    if !image() {
        return;
    }
    let (_dir, mount) = config(
        "[program.orphaner]\ncommand = [\"sh\", \"-c\", \"while :; do ( sleep 0.05 & ); sleep 0.1; done\"]\nstartsecs = 0\n",
    );
    let c = Container::run(&["-v", &mount]);
    c.wait("the orphaner", 60 * S, |c| c.exec(&["supctl", "status"]).0 == 0);
    // A zombie may exist for the instant between an exit and its SIGCHLD; none may last.
    let zombies = || -> Vec<String> {
        let (_, top, _) = docker(&["top", &c.0, "-o", "pid,stat,cmd"]);
        top.lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(1).is_some_and(|s| s.contains('Z')))
            .map(str::to_string)
            .collect()
    };
    for _ in 0..10 {
        let seen = zombies();
        if seen.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
        let again = zombies();
        let lasting: Vec<&String> = seen
            .iter()
            .filter(|z| again.iter().any(|a| a.split_whitespace().next() == z.split_whitespace().next()))
            .collect();
        assert!(lasting.is_empty(), "zombies that were not reaped: {lasting:?}");
    }
}
