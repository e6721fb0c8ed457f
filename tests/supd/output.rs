//! Program output through supd's stdout and stderr.

use std::time::Duration;

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);

#[test]
fn lines_are_prefixed_per_stream_and_partial_lines_kept() {
    let supd = Supd::start(
        "[program.a]\ncommand = [\"sh\", \"-c\", \"echo out; echo err >&2; printf partial\"]\nstartsecs = 0\nautorestart = false\n\
         [program.longer-name]\ncommand = [\"sh\", \"-c\", \"echo merged >&2\"]\nredirect_stderr = true\nstartsecs = 0\nautorestart = false\n",
    );
    supd.wait_state("a", "EXITED", 5 * S);
    let out = wait_until("output", 5 * S, || {
        let out = std::fs::read_to_string(supd.path("stdout.log")).ok()?;
        (out.contains("partial") && out.contains("merged")).then_some(out)
    });
    assert!(out.contains("a           | out\n"), "padded to the longest name: {out}");
    assert!(out.contains("a           | partial\n"), "a last line without newline is kept: {out}");
    assert!(out.contains("longer-name | merged\n"), "redirect_stderr goes to stdout: {out}");
    let err = std::fs::read_to_string(supd.path("stderr.log")).unwrap();
    assert!(err.contains("a           | err\n"), "{err}");
}

#[test]
fn a_long_line_without_newline_is_passed_on_whole() {
    // 300 000 bytes with no newline: cut into 64 KiB pieces, nothing lost.
    let supd = Supd::start(
        "[program.big]\ncommand = [\"python3\", \"-c\", \"import sys; sys.stdout.write('x' * 300000); sys.stdout.flush()\"]\n\
         startsecs = 0\nautorestart = false\n",
    );
    supd.wait_state("big", "EXITED", 10 * S);
    let out = wait_until("the long line", 5 * S, || {
        let out = std::fs::read_to_string(supd.path("stdout.log")).ok()?;
        let xs: usize = out.lines().filter_map(|l| l.strip_prefix("big | ")).map(str::len).sum();
        (xs == 300_000).then_some(out)
    });
    let pieces: Vec<usize> = out.lines().filter_map(|l| l.strip_prefix("big | ")).map(str::len).collect();
    assert_eq!(pieces, [65536, 65536, 65536, 65536, 37856]);
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let supd = Supd::start_with("log_format = \"json\"", "[program.a]\ncommand = \"sleep 1000\"\nstartsecs = 0\n");
    supd.wait_state("a", "RUNNING", 5 * S);
    let err = wait_until("the spawn line", 5 * S, || {
        let err = std::fs::read_to_string(supd.path("stderr.log")).ok()?;
        err.contains("spawned: a").then_some(err)
    });
    for line in err.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string() && v["message"].is_string(), "{line}");
    }
}

#[test]
fn a_flood_is_passed_through_whole_and_in_order() {
    // 22 MB as fast as seq writes it: the stream moves off the event loop to a thread of its
    // own part way through (more than 8 MiB within a second), which must lose, double and reorder
    // nothing, nor break the line that was half read when it moved; its log file beside the
    // passthrough gets the same bytes.
    let supd = Supd::start(
        "[program.f]\ncommand = [\"sh\", \"-c\", \"seq 1 3000000; printf last\"]\nstartsecs = 0\nautorestart = false\n\
         stdout_logfile = \"@DIR@/f.log\"\nstdout_passthrough = true\n",
    );
    supd.wait_state("f", "EXITED", 20 * S);
    let out = wait_until("the last line", 10 * S, || {
        let out = std::fs::read_to_string(supd.path("stdout.log")).ok()?;
        out.contains("f | last\n").then_some(out)
    });
    let lines: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("f | ")).collect();
    assert_eq!(lines.len(), 3_000_001);
    for (i, line) in lines[..3_000_000].iter().enumerate() {
        assert_eq!(line.parse::<usize>().ok(), Some(i + 1), "line {}", i + 1);
    }
    let file = wait_until("the log file's last line", 10 * S, || {
        std::fs::read_to_string(supd.path("f.log")).ok().filter(|f| f.ends_with("last"))
    });
    let expected: String = (1..=3_000_000).map(|i| format!("{i}\n")).chain(["last".to_string()]).collect();
    assert!(file == expected, "the log file holds exactly what the program wrote");
}
