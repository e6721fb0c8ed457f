//! Reload: SIGHUP and `supctl reload [--dry-run]` apply the config's difference and nothing
//! more, and an invalid config changes nothing.

use std::time::Duration;

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);

fn sleeper(name: &str, secs: u32) -> String {
    format!("[program.{name}]\ncommand = \"sleep {secs}\"\nstartsecs = 0\n")
}

fn pid(supd: &Supd, name: &str) -> i64 {
    supd.wait_state(name, "RUNNING", 5 * S)["pid"].as_i64().unwrap()
}

/// The programs supd has, sorted.
fn names(supd: &Supd) -> Vec<String> {
    let mut names: Vec<String> = supd.status().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

#[test]
fn reload_starts_added_restarts_changed_stops_removed_and_leaves_the_rest() {
    let before = [sleeper("keep", 1000), sleeper("change", 1000), sleeper("drop", 1000)].concat();
    let supd = Supd::start(&before);
    let (keep, change) = (pid(&supd, "keep"), pid(&supd, "change"));
    pid(&supd, "drop");
    supd.rewrite("", &[sleeper("keep", 1000), sleeper("change", 2000), sleeper("add", 1000)].concat());

    let (code, out, err) = supd.ctl(&["reload", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert!(out.contains("added: add (would start)"), "{out}");
    assert!(out.contains("changed: change (would restart)"), "{out}");
    assert!(out.contains("removed: drop (would stop)"), "{out}");
    assert!(out.contains("unchanged: 1 program(s)"), "{out}");
    assert_eq!(names(&supd), ["change", "drop", "keep"], "a dry run changes nothing");
    assert_eq!(pid(&supd, "change"), change);

    let (code, out, err) = supd.ctl(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("changed: change (restarted)"), "{out}");
    wait_until("change to run its new command", 5 * S, || {
        let p = supd.program("change");
        (p["state"] == "RUNNING" && p["pid"].as_i64() != Some(change)).then_some(())
    });
    pid(&supd, "add");
    wait_until("drop to be forgotten", 5 * S, || (names(&supd) == ["add", "change", "keep"]).then_some(()));
    assert_eq!(pid(&supd, "keep"), keep, "an unchanged program is not touched");
    // Status shows namespace pids and the host sees others, so processes are told by argv.
    let sleeping = |argv: &str| supd.ns_processes().iter().filter(|p| p.cmdline == argv && p.state != 'Z').count();
    wait_until("the removed and the old changed processes to be gone", 5 * S, || {
        (sleeping("sleep 1000") == 2 && sleeping("sleep 2000") == 1).then_some(())
    });
    supd.wait_output("reload: added add; changed change; removed drop; 1 unchanged", 5 * S);
}

#[test]
fn an_invalid_config_changes_nothing_and_reload_exits_1_with_its_place() {
    let supd = Supd::start(&sleeper("web", 1000));
    let web = pid(&supd, "web");
    supd.rewrite("", "[program.web]\ncommand = \"sleep 1000\"\nstartsecs = \"soon\"\n");
    let (code, out, err) = supd.ctl(&["reload"]);
    assert_eq!(code, 1, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("supd.toml:7:"), "file and line: {text}");
    assert!(text.contains("startsecs"), "the key: {text}");
    assert!(text.contains("nothing was changed"), "{text}");

    // SIGHUP with the same bad config: logged, and supd goes on with the old one.
    nix::sys::signal::kill(supd.host_pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    supd.wait_output("reload failed: config error:", 5 * S);
    assert_eq!(pid(&supd, "web"), web);
    assert_eq!(supd.ctl(&["status"]).0, 0, "still running everything");
}

#[test]
fn sighup_reloads_and_unchanged_programs_keep_their_pids() {
    let supd = Supd::start(&sleeper("a", 1000));
    let a = pid(&supd, "a");
    supd.rewrite("", &[sleeper("a", 1000), sleeper("b", 1000)].concat());
    nix::sys::signal::kill(supd.host_pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_until("b to be added and RUNNING", 5 * S, || {
        supd.status().iter().any(|p| p["name"] == "b" && p["state"] == "RUNNING").then_some(())
    });
    assert_eq!(pid(&supd, "a"), a);
}

#[test]
fn a_changed_program_finishes_its_stop_while_other_programs_take_commands() {
    // The old `slow` takes a second to stop; meanwhile `fast` is restarted by hand.
    let slow = "[program.slow]\ncommand = [\"sh\", \"-c\", \"trap 'sleep 1; exit 0' TERM; sleep 1000 & wait\"]\n\
                startsecs = 0\nstopwaitsecs = 10\n";
    let supd = Supd::start(&[slow, &sleeper("fast", 1000)].concat());
    let (old_slow, old_fast) = (pid(&supd, "slow"), pid(&supd, "fast"));
    let changed = slow.replace("sleep 1000 &", "sleep 2000 &");
    supd.rewrite("", &[changed.as_str(), &sleeper("fast", 1000)].concat());
    assert_eq!(supd.ctl(&["reload"]).0, 0);
    assert_eq!(supd.program("slow")["state"], "STOPPING", "the old process finishes its stop");
    let (code, out, _) = supd.ctl(&["restart", "fast"]);
    assert_eq!(code, 0, "{out}");
    assert_ne!(pid(&supd, "fast"), old_fast);
    let (code, out, _) = supd.ctl(&["start", "slow"]);
    assert_eq!(code, 1, "a program being replaced refuses commands until it has stopped: {out}");
    wait_until("slow to run again", 10 * S, || {
        let p = supd.program("slow");
        (p["state"] == "RUNNING" && p["pid"].as_i64() != Some(old_slow)).then_some(())
    });
    supd.wait_output("stopped: slow (exit status 0)", 5 * S);
}

#[test]
fn reread_and_update_speak_as_supervisorctl() {
    let supd = Supd::start(
        "[program.a]\ncommand = \"sleep 1000\"\nstartsecs = 0\n[program.b]\ncommand = \"sleep 1000\"\nstartsecs = 0\n",
    );
    supd.wait_state("a", "RUNNING", 5 * S);
    assert_eq!(supd.ctl(&["reread"]), (0, "No config updates to processes\n".into(), String::new()));
    supd.rewrite(
        "",
        "[program.a]\ncommand = \"sleep 1001\"\nstartsecs = 0\n[program.c]\ncommand = \"sleep 1000\"\nstartsecs = 0\n",
    );
    assert_eq!(supd.ctl(&["reread"]), (0, "a: changed\nb: disappeared\nc: available\n".into(), String::new()));
    assert_eq!(supd.program("b")["state"], "RUNNING", "reread changes nothing");
    assert_eq!(
        supd.ctl(&["update"]),
        (
            0,
            "b: stopped\nb: removed process group\na: stopped\na: updated process group\nc: added process group\n"
                .into(),
            String::new()
        )
    );
    supd.wait_state("c", "RUNNING", 5 * S);
    assert_eq!(supd.ctl(&["version"]).1, format!("{}\n", env!("CARGO_PKG_VERSION")));

    // Groups are named by their group, and `update GROUP` applies that group alone.
    let grouped = "[group.g]\nprograms = [\"x\", \"y\"]\n[program.x]\ncommand = \"sleep 1000\"\nstartsecs = 0\n\
                   [program.y]\ncommand = \"sleep 1000\"\nstartsecs = 0\n";
    supd.rewrite("", &format!("{grouped}[program.a]\ncommand = \"sleep 1001\"\nstartsecs = 0\n"));
    assert_eq!(supd.ctl(&["reread"]).1, "c: disappeared\ng: available\n");
    assert_eq!(
        supd.ctl(&["update", "g", "nope"]),
        (1, "ERROR: no such group: nope\ng: added process group\n".into(), String::new())
    );
    supd.wait_state("x", "RUNNING", 5 * S);
    assert_eq!(supd.program("c")["state"], "RUNNING", "update g leaves c alone");
    let x = supd.program("x")["pid"].clone();
    let changed = grouped.replacen("sleep 1000", "sleep 1002", 1);
    supd.rewrite("", &format!("{changed}[program.a]\ncommand = \"sleep 1001\"\nstartsecs = 0\n"));
    let (code, out, _) = supd.ctl(&["update", "g"]);
    assert_eq!((code, out.as_str()), (0, "g: stopped\ng: updated process group\n"));
    let x2 = supd.wait_state("x", "RUNNING", 5 * S)["pid"].clone();
    assert_ne!(x, x2, "x restarted under its new command");
    assert_eq!(supd.program("c")["state"], "RUNNING", "c is still not removed: update g alone");
}
