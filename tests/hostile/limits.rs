//! Config values at and past their documented maxima: refused with file:line:col and the key,
//! and a value at the maximum never aborts supd.

use std::process::Command;
use std::time::Duration;

use crate::harness::{SUPD, Supd, write_config};

#[test]
fn values_past_their_maximum_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "stopwaitsecs = 9223372036854775807",
            "3:16: program.a.stopwaitsecs: duration is too long",
            "at most one year",
        ),
        ("startsecs = \"400days\"", "3:13: program.a.startsecs: duration is too long", "at most one year"),
        ("backoff_max = 1e300", "3:15: program.a.backoff_max: duration is too long", "at most one year"),
        ("startretries = 4294967295", "3:16: program.a.startretries: 4294967295", "from 0 to 10000"),
        ("stdout_logfile_backups = 100000", "3:26: program.a.stdout_logfile_backups", "from 0 to 10000"),
    ];
    for (line, place, why) in cases {
        let path = write_config(dir.path(), "supd.toml", &format!("[program.a]\ncommand = \"x\"\n{line}\n"));
        let out = Command::new(SUPD).args(["check", "-c"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {err}");
        assert!(err.contains(&format!("supd.toml:{place}")) && err.contains(why), "{line}: {err}");
    }
}

/// Before: `stopwaitsecs = 9223372036854775807` passed `supd check`, and `supctl stop`
/// aborted PID 1 with "overflow when adding duration to instant".
#[test]
fn durations_at_the_maximum_never_abort_supd() {
    let supd = Supd::start(
        "[program.a]\ncommand = [\"sh\", \"-c\", \"trap '' TERM; while :; do sleep 1; done\"]\nstartsecs = 0\n\
         stopwaitsecs = \"365days\"\nbackoff_max = \"365days\"\nbackoff_reset = \"365days\"\n\
         [program.b]\ncommand = \"sleep 60\"\nstartsecs = \"365days\"\nstopwaitsecs = 31536000\n",
    );
    supd.wait_state("a", "RUNNING", Duration::from_secs(10));
    // Stop arms a deadline a year away; supd must keep answering.
    let stop = std::thread::spawn({
        let socket = supd.socket.clone();
        move || crate::harness::supctl(&socket, &["stop", "a", "b"])
    });
    supd.wait_state("a", "STOPPING", Duration::from_secs(10));
    assert_eq!(supd.ctl(&["pid"]).0, 0, "supd answers while a stop waits a year");
    assert_eq!(supd.ctl(&["signal", "KILL", "a"]).0, 0);
    supd.wait_state("a", "STOPPED", Duration::from_secs(10));
    let (code, out, err) = stop.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(supd.ctl(&["pid"]).0, 0, "supd is still alive");
}
