//! Runs supd as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`) with a
//! private socket, port and directory, and looks at it the way a user would: supctl, HTTP, the
//! log, and the processes in its namespace.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SUPD: &str = env!("CARGO_BIN_EXE_supd");
pub const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");

/// A supd running as PID 1; killed with its whole namespace on drop.
pub struct Supd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub port: u16,
    exit: Option<i32>,
}

fn config_text(socket: &Path, port: u16, supervisor_extra: &str, programs: &str) -> String {
    format!(
        "[supervisor]\nsocket = \"{}\"\nhttp = \"127.0.0.1:{port}\"\n{supervisor_extra}\n{programs}",
        socket.display()
    )
}

/// Writes `text` (with `@DIR@` replaced by `dir`) to `dir/name`.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text.replace("@DIR@", &dir.display().to_string())).expect("write config");
    path
}

impl Supd {
    /// supd with `programs` (TOML; `@DIR@` is the test's directory).
    pub fn start(programs: &str) -> Supd {
        Self::start_with("", programs)
    }

    /// Like [`Supd::start`] with extra `[supervisor]` keys.
    pub fn start_with(supervisor_extra: &str, programs: &str) -> Supd {
        let supd = Self::launch(&[], supervisor_extra, programs);
        supd.wait_ready();
        supd
    }

    /// Starts supd with `env` added to its environment and does not wait for it (it may exit
    /// at once); `programs` may use `@DIR@`, and so may `env`'s values.
    pub fn launch(env: &[(&str, &str)], supervisor_extra: &str, programs: &str) -> Supd {
        Self::launch_to(env, supervisor_extra, programs, None)
    }

    /// [`Supd::launch`] with supd's stdout and stderr both going to `output` (a pipe, say)
    /// instead of `stdout.log` and `stderr.log`.
    pub fn launch_to(
        env: &[(&str, &str)],
        supervisor_extra: &str,
        programs: &str,
        output: Option<std::os::fd::OwnedFd>,
    ) -> Supd {
        Self::launch_behind(&[], env, supervisor_extra, programs, output)
    }

    /// supd with `programs` in a private cgroup2 hierarchy: the namespace mounts one over
    /// `/sys/fs/cgroup` and moves itself into a cgroup of its own (`supd-tests/NAME`, NAME unique)
    /// before it execs supd, which then finds that cgroup writable.
    #[allow(dead_code)] // tests/hostile uses it
    pub fn start_in_cgroup2(programs: &str) -> Supd {
        let unique = format!("t{}-{}", std::process::id(), free_port());
        let script = format!(
            "mount -t cgroup2 none /sys/fs/cgroup && rmdir /sys/fs/cgroup/supd-tests/*/* /sys/fs/cgroup/supd-tests/* 2>/dev/null; \
             mkdir -p /sys/fs/cgroup/supd-tests/{unique} && \
             echo $$ > /sys/fs/cgroup/supd-tests/{unique}/cgroup.procs && exec \"$@\""
        );
        let supd = Self::launch_behind(&["sh", "-c", &script, "sh"], &[], "", programs, None);
        supd.wait_ready();
        supd
    }

    fn launch_behind(
        prefix: &[&str],
        env: &[(&str, &str)],
        supervisor_extra: &str,
        programs: &str,
        output: Option<std::os::fd::OwnedFd>,
    ) -> Supd {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let socket = dir.path().join("supd.sock");
        let config = write_config(dir.path(), "supd.toml", &config_text(&socket, port, supervisor_extra, programs));
        let env: Vec<String> =
            env.iter().map(|(k, v)| format!("{k}={}", v.replace("@DIR@", &dir.path().display().to_string()))).collect();
        // `env` (and any prefix) execs supd, which so stays PID 1.
        let mut argv: Vec<&std::ffi::OsStr> = prefix.iter().map(std::ffi::OsStr::new).collect();
        argv.push("env".as_ref());
        argv.extend(env.iter().map(std::ffi::OsStr::new));
        argv.extend([SUPD.as_ref(), "-c".as_ref(), config.as_os_str()]);
        let child = match output {
            Some(fd) => spawn_pid1_to(&argv, Stdio::from(fd.try_clone().expect("dup")), Stdio::from(fd)),
            None => spawn_pid1(dir.path(), &argv),
        };
        Supd { child, dir, socket, port, exit: None }
    }

    /// supd reading `text` as the config file `name` (`@DIR@` is the test's directory), which
    /// must put the control socket at `@DIR@/supd.sock`; waits for it to answer.
    #[allow(dead_code)] // tests/hostile does not use it
    pub fn start_file(name: &str, text: &str) -> Supd {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("supd.sock");
        let config = write_config(dir.path(), name, text);
        let argv: Vec<&std::ffi::OsStr> = vec![SUPD.as_ref(), "-c".as_ref(), config.as_os_str()];
        let child = spawn_pid1(dir.path(), &argv);
        let supd = Supd { child, dir, socket, port: 0, exit: None };
        supd.wait_ready();
        supd
    }

    /// supd reading `config` in `dir` with `env` added, its control socket at `dir/supd.sock`
    /// (the config must put it there); waits for it to answer.
    #[allow(dead_code)] // tests/hostile does not use it
    pub fn start_config(dir: tempfile::TempDir, config: &Path, env: &[&str]) -> Supd {
        let socket = dir.path().join("supd.sock");
        let mut argv: Vec<&std::ffi::OsStr> = vec!["env".as_ref()];
        argv.extend(env.iter().map(std::ffi::OsStr::new));
        argv.extend([SUPD.as_ref(), "-c".as_ref(), config.as_os_str()]);
        let child = spawn_pid1(dir.path(), &argv);
        let supd = Supd { child, dir, socket, port: 0, exit: None };
        supd.wait_ready();
        supd
    }

    /// Rewrites supd's config file with the same socket and port (for reload tests).
    pub fn rewrite(&self, supervisor_extra: &str, programs: &str) {
        write_config(self.dir.path(), "supd.toml", &config_text(&self.socket, self.port, supervisor_extra, programs));
    }

    /// Waits until the control socket answers.
    pub fn wait_ready(&self) {
        wait_until("supd's control socket to answer", Duration::from_secs(10), || {
            (self.socket.exists() && self.ctl(&["pid"]).0 == 0).then_some(())
        });
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs supctl against this supd: (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        supctl(&self.socket, args)
    }

    /// `supctl --json status`'s programs.
    pub fn status(&self) -> Vec<Value> {
        let (_, out, err) = self.ctl(&["--json", "status"]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("status json: {e}: {out} {err}"));
        v["programs"].as_array().cloned().unwrap_or_default()
    }

    pub fn program(&self, name: &str) -> Value {
        self.status().into_iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no program {name}"))
    }

    /// Waits until `name` is in `state`; returns its status.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Value {
        wait_until(&format!("{name} to be {state}"), timeout, || {
            let p = self.program(name);
            (p["state"] == state).then_some(p)
        })
    }

    /// supd's stdout and stderr so far (programs' lines and supd's log).
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(self.path("stdout.log")).unwrap_or_default();
        let err = std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default();
        format!("{out}{err}")
    }

    /// Waits until supd's output contains `needle`; returns the output.
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> String {
        wait_until(&format!("{needle:?} in supd's output"), timeout, || {
            let out = self.output();
            out.contains(needle).then_some(out)
        })
    }

    /// Waits for supd (PID 1) to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        if let Some(code) = self.exit {
            return code;
        }
        let child = &mut self.child;
        let code = wait_until("supd to exit", timeout, || child.try_wait().ok().flatten()).code().unwrap_or(-1);
        self.exit = Some(code);
        code
    }

    /// GET `path` on the HTTP listener: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }

    /// supd's pid as the host sees it (inside its namespace it is 1).
    pub fn host_pid(&self) -> nix::unistd::Pid {
        let id = self.child.id();
        let kids = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
        nix::unistd::Pid::from_raw(kids.split_whitespace().next().and_then(|p| p.parse().ok()).expect("supd's pid"))
    }

    /// supd's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.host_pid())).expect("supd's status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of KiB")
    }

    /// Every process in supd's PID namespace, supd included.
    pub fn ns_processes(&self) -> Vec<Proc> {
        ns_processes(self.child.id())
    }
}

impl Drop for Supd {
    fn drop(&mut self) {
        // --kill-child makes unshare's death SIGKILL supd, and PID 1's death ends the namespace.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `argv` as PID 1 of a new PID namespace, output to `dir/stdout.log` and `stderr.log`.
pub fn spawn_pid1(dir: &Path, argv: &[&std::ffi::OsStr]) -> Child {
    let out = std::fs::File::create(dir.join("stdout.log")).expect("log");
    let err = std::fs::File::create(dir.join("stderr.log")).expect("log");
    spawn_pid1_to(argv, Stdio::from(out), Stdio::from(err))
}

/// Starts `argv` as PID 1 of a new PID namespace with these stdout and stderr.
pub fn spawn_pid1_to(argv: &[&std::ffi::OsStr], out: Stdio, err: Stdio) -> Child {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("unshare (util-linux) must be installed and the tests run as root")
}

pub fn supctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SUPCTL).arg("-s").arg(socket).args(args).output().expect("supctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` every 10 ms until it gives a value; panics after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_request(port, "GET", path)
}

pub fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the http listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let code = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// A process seen from the host.
#[derive(Debug)]
pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub cmdline: String,
}

/// Every process in the PID namespace whose PID 1 is the child of `unshare_pid`.
pub fn ns_processes(unshare_pid: u32) -> Vec<Proc> {
    let children =
        std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children")).unwrap_or_default();
    let Some(init) = children.split_whitespace().next() else { return Vec::new() };
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).unwrap_or('?');
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_string();
        out.push(Proc { pid, state, cmdline });
    }
    out
}
