//! `supctl top` in a real terminal: tmux runs it at 80x24, the tests send keys and read the
//! screen with `capture-pane`.

use std::process::Command;
use std::time::Duration;

use crate::harness::{SUPCTL, Supd, wait_until};

const S: Duration = Duration::from_secs(1);

const PROGRAMS: &str = "[program.web]\ncommand = [\"sh\", \"-c\", \"echo web says hello; exec sleep 1000\"]\n\
    startsecs = 0\n\
    [program.doomed]\ncommand = [\"sh\", \"-c\", \"exit 1\"]\nautostart = false\nstartretries = 0\nstartsecs = 1\n";

/// A tmux server of the test's own, with one 80x24 window running a command.
struct Tmux {
    server: String,
}

impl Tmux {
    fn run(command: &str) -> Tmux {
        let server = format!("supd-top-{}-{}", std::process::id(), fastrand::u32(..));
        let status = Command::new("tmux")
            .args(["-L", &server, "new-session", "-d", "-x", "80", "-y", "24", command])
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux (apt install tmux; scripts/setup-test-env does)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { server }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["-L", &self.server, "capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-L", &self.server, "send-keys"];
        args.extend(keys);
        assert!(Command::new("tmux").args(args).status().unwrap().success());
    }

    /// Waits until a line of the screen satisfies `check`; that line.
    fn wait_line(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(what, 10 * S, || {
                last = self.screen();
                last.lines().find(|l| check(l)).map(str::to_string)
            })
        }));
        found.unwrap_or_else(|_| panic!("{what}; the screen:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.server, "kill-server"]).status();
    }
}

fn top(supd: &Supd) -> Tmux {
    Tmux::run(&format!("{SUPCTL} -s {} top", supd.socket.display()))
}

fn pid_of(supd: &Supd, name: &str) -> String {
    supd.program(name)["pid"].to_string()
}

#[test]
fn a_row_turns_fatal_and_the_restart_key_restarts_the_selected_program() {
    let supd = Supd::start(PROGRAMS);
    supd.wait_state("web", "RUNNING", 5 * S);
    let tmux = top(&supd);
    let old = pid_of(&supd, "web");
    tmux.wait_line("web's row, running", |l| l.contains("web") && l.contains("RUNNING") && l.contains(&old));
    // The header: supd's own figures and the container's memory.
    tmux.wait_line("the header", |l| l.starts_with("supd pid ") && l.contains(" rss ") && l.contains("memory"));
    // Within 80 columns, the keys' line is whole.
    tmux.wait_line("the keys", |l| l.starts_with("q:quit") && l.trim_end().ends_with("e:stderr"));

    assert_eq!(supd.ctl(&["start", "doomed"]).0, 7);
    tmux.wait_line("doomed's row, FATAL", |l| l.contains("doomed") && l.contains("FATAL"));

    // Start order is doomed, web: the first row is selected; one down is web, whose output
    // the log pane follows.
    tmux.wait_line("doomed selected", |l| l.starts_with(">doomed"));
    tmux.keys(&["Down"]);
    tmux.wait_line("web selected", |l| l.starts_with(">web"));
    tmux.wait_line("web's output in the log pane", |l| l.contains("web says hello"));

    tmux.keys(&["r"]);
    tmux.wait_line("the confirmation", |l| l.starts_with("restart web? y/N"));
    tmux.keys(&["y"]);
    let new = wait_until("a new pid for web", 10 * S, || {
        let pid = pid_of(&supd, "web");
        (pid != old && pid != "null").then_some(pid)
    });
    tmux.wait_line("web's new pid on screen", |l| l.starts_with(">web") && l.contains(&new));
}

#[test]
fn a_key_not_confirmed_does_nothing() {
    let supd = Supd::start(PROGRAMS);
    supd.wait_state("web", "RUNNING", 5 * S);
    let tmux = top(&supd);
    tmux.wait_line("doomed selected", |l| l.starts_with(">doomed"));
    tmux.keys(&["Down", "x"]);
    tmux.wait_line("the confirmation", |l| l.starts_with("stop web? y/N"));
    tmux.keys(&["n"]);
    tmux.wait_line("cancelled", |l| l.starts_with("cancelled"));
    assert_eq!(supd.program("web")["state"], "RUNNING");
    // The filter hides what does not match.
    tmux.keys(&["/", "d", "o", "o", "Enter"]);
    tmux.wait_line("filtered", |l| l.contains("filter: doo"));
    assert!(!tmux.screen().lines().any(|l| l.contains("web ")), "{}", tmux.screen());
}

#[test]
fn top_once_prints_the_table_as_text_when_stdout_is_not_a_terminal() {
    let supd = Supd::start(PROGRAMS);
    supd.wait_state("web", "RUNNING", 5 * S);
    let pid = pid_of(&supd, "web");
    for args in [&["top"][..], &["top", "--once"]] {
        let (code, out, err) = supd.ctl(args);
        assert_eq!(code, 0, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("supd pid "), "{out}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "STATE", "HEALTH", "PID", "UPTIME", "RST", "CPU%", "RSS", "GPU"]
        );
        let web: Vec<&str> = lines.iter().find(|l| l.starts_with("web ")).unwrap().split_whitespace().collect();
        assert_eq!((web[1], web[3]), ("RUNNING", pid.as_str()), "{out}");
        assert!(web[7].ends_with('K') || web[7].ends_with('M'), "an RSS: {out}");
        assert!(lines.iter().any(|l| l.starts_with("doomed ") && l.contains("STOPPED")), "{out}");
    }
}
