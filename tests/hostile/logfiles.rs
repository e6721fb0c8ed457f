//! Log files are checked when the config loads and opened when the program starts, so a
//! program that writes nothing still gets its file, or its error.

use std::process::Command;
use std::time::Duration;

use crate::harness::{SUPD, Supd, wait_until, write_config};

#[test]
fn a_log_file_in_a_missing_directory_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    for (key, col) in [("stdout_logfile", 18), ("stderr_logfile", 18)] {
        let text = format!("[program.a]\ncommand = \"x\"\n{key} = \"/nonexistent-supd-dir/a.log\"\n");
        let path = write_config(dir.path(), "supd.toml", &text);
        let out = Command::new(SUPD).args(["check", "-c"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let want = format!("supd.toml:3:{col}: program.a.{key}: directory /nonexistent-supd-dir does not exist");
        assert!(err.contains(&want), "want {want}\ngot {err}");
    }
    let text = "[supervisor]\nlogfile = \"/nonexistent-supd-dir/supd.log\"\n";
    let path = write_config(dir.path(), "supd.toml", text);
    let out = Command::new(SUPD).args(["check", "-c"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("supd.toml:2:11: supervisor.logfile: directory"));
}

/// Before: the file was opened at the program's first write, so a silent program had no file
/// and a bad one no error anywhere.
#[test]
fn log_files_are_opened_when_the_program_starts() {
    let supd = Supd::start(
        "[program.quiet]\ncommand = \"sleep 600\"\nstartsecs = 0\nstdout_logfile = \"@DIR@/quiet.log\"\n\
         stderr_logfile = \"@DIR@/quiet.err\"\n\
         [program.bad]\ncommand = \"sleep 600\"\nstartsecs = 0\nstdout_logfile = \"@DIR@\"\n",
    );
    supd.wait_state("quiet", "RUNNING", Duration::from_secs(10));
    wait_until("quiet's log files to exist", Duration::from_secs(5), || {
        (supd.path("quiet.log").is_file() && supd.path("quiet.err").is_file()).then_some(())
    });
    let bad = wait_until("bad's log error in status", Duration::from_secs(5), || {
        let p = supd.program("bad");
        (!p["log_errors"].as_array().is_none_or(Vec::is_empty)).then_some(p)
    });
    let dir = supd.dir.path().display().to_string();
    assert!(bad["log_errors"][0].as_str().unwrap().contains(&format!("{dir}: cannot open")), "{bad}");
    let (_, text, _) = supd.ctl(&["status", "bad"]);
    assert!(text.contains("log: ") && text.contains("cannot open"), "{text}");
    supd.wait_output(&format!("log file {dir}: cannot open"), Duration::from_secs(5));
}
