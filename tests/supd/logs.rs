//! Program log files: rotation without a byte lost or doubled, backups, non-seekable targets,
//! tail and tail -f, reopen after mv, clear, a full disk, long lines, prefixes and JSON.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{SUPCTL, Supd, wait_until};

const S: Duration = Duration::from_secs(1);

/// PATH.N … PATH.1, then PATH: everything written, oldest first.
fn rotated(path: &Path, backups: u32) -> Vec<u8> {
    let mut all = Vec::new();
    for i in (1..=backups).rev() {
        all.extend(std::fs::read(format!("{}.{i}", path.display())).unwrap_or_default());
    }
    all.extend(std::fs::read(path).unwrap_or_default());
    all
}

#[test]
fn rotation_loses_and_doubles_no_byte_over_200_mb() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("source");
    let mut rng = fastrand::Rng::with_seed(42);
    let mut data = vec![0u8; 200 << 20];
    rng.fill(&mut data);
    std::fs::write(&src, &data).unwrap();
    let supd = Supd::start(&format!(
        "[program.cat]\ncommand = [\"cat\", \"{}\"]\nstartsecs = 0\nautorestart = false\n\
         stdout_logfile = \"@DIR@/cat.log\"\nstdout_logfile_maxbytes = \"10MB\"\nstdout_logfile_backups = 25\n",
        src.display()
    ));
    supd.wait_state("cat", "EXITED", 120 * S);
    let log = supd.path("cat.log");
    let all = wait_until("the file writer to catch up", 60 * S, || {
        let all = rotated(&log, 25);
        (all.len() >= data.len()).then_some(all)
    });
    assert!(all == data, "the concatenated files differ from what the program wrote");
    for i in 1..=19 {
        let len = std::fs::metadata(format!("{}.{i}", log.display())).unwrap().len();
        assert_eq!(len, 10 << 20, "{}.{i} holds exactly maxbytes", log.display());
    }
    assert!(!Path::new(&format!("{}.20", log.display())).exists(), "200 MB is 20 files: PATH and 19 backups");
}

#[test]
fn backups_beyond_the_count_are_dropped() {
    let supd = Supd::start(
        "[program.w]\ncommand = [\"sh\", \"-c\", \"for i in $(seq 100); do echo line-$i-padding-padding-padding; done\"]\n\
         startsecs = 0\nautorestart = false\nstdout_logfile = \"@DIR@/w.log\"\nstdout_logfile_maxbytes = 1000\n\
         stdout_logfile_backups = 2\n",
    );
    supd.wait_state("w", "EXITED", 10 * S);
    let log = supd.path("w.log");
    wait_until("the last line in the file", 10 * S, || {
        String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).contains("line-100-").then_some(())
    });
    assert!(Path::new(&format!("{}.2", log.display())).exists());
    assert!(!Path::new(&format!("{}.3", log.display())).exists(), "backups = 2 keeps two");
    let kept = rotated(&log, 2);
    assert!(kept.len() <= 3000 && kept.ends_with(b"line-100-padding-padding-padding\n"));
}

#[test]
fn a_non_seekable_target_is_written_and_never_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(std::fs::File::open(&fifo).unwrap()).lines() {
                let _ = lines_tx.send(line.unwrap());
            }
        });
    }
    let supd = Supd::start(&format!(
        "[program.p]\ncommand = [\"sh\", \"-c\", \"for i in $(seq 200); do echo fifo-line-$i; done\"]\nstartsecs = 0\n\
         autorestart = false\nstdout_logfile = \"{}\"\nstdout_logfile_maxbytes = 100\n",
        fifo.display()
    ));
    supd.wait_state("p", "EXITED", 10 * S);
    let got: Vec<String> = (0..200).map(|_| lines_rx.recv_timeout(10 * S).expect("a line through the FIFO")).collect();
    assert_eq!(got.last().map(String::as_str), Some("fifo-line-200"));
    assert!(!Path::new(&format!("{}.1", fifo.display())).exists(), "never rotated");
    assert_eq!(supd.program("p")["log_errors"], serde_json::json!([]));
}

#[test]
fn tail_and_tail_follow_through_supctl() {
    let supd = Supd::start(
        "[program.talker]\ncommand = [\"sh\", \"-c\", \"for i in $(seq 50); do echo out-$i; done; echo err-1 >&2; \
         i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.1; done\"]\nstartsecs = 0\n\
         stdout_logfile = \"@DIR@/talker.log\"\n",
    );
    wait_until("ticks", 10 * S, || supd.ctl(&["tail", "-n", "1", "talker"]).1.contains("tick-").then_some(()));
    let (code, out, _) = supd.ctl(&["tail", "-n", "3", "talker"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(supd.ctl(&["tail", "talker", "stderr"]).1, "err-1\n");
    assert!(!supd.output().contains("tick-"), "a stream with only a log file is not passed through");
    assert_eq!(supd.ctl(&["tail", "nope"]).0, 4);

    assert_follow_streams_every_line(&supd, "talker", "tick-");
}

/// `supctl tail -f NAME` prints lines PREFIX-N, PREFIX-N+1 … with none missing.
fn assert_follow_streams_every_line(supd: &Supd, name: &str, prefix: &str) {
    let mut follow = Command::new(SUPCTL)
        .arg("-s")
        .arg(&supd.socket)
        .args(["tail", "-f", "-n", "1", name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut next = || -> u32 { lines.next().unwrap().unwrap().trim_start_matches(prefix).parse().unwrap() };
    let first = next();
    let later: Vec<u32> = (0..5).map(|_| next()).collect();
    assert_eq!(later, (first + 1..=first + 5).collect::<Vec<_>>(), "-f streams every new line in order");
    follow.kill().ok();
    follow.wait().ok();
}

/// Moves `log` aside, asks for a reopen, and checks the new file goes on with the next line.
fn assert_reopen_continues(supd: &Supd, log: &Path, prefix: &str) {
    let moved = log.with_extension("old");
    std::fs::rename(log, &moved).unwrap();
    assert_eq!(supd.ctl(&["reopen"]), (0, "reopened every log file\n".into(), String::new()));
    wait_until("a new file after reopen", 10 * S, || {
        (std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) > 0).then_some(())
    });
    let number = |line: Option<&str>| -> u32 { line.unwrap().trim_start_matches(prefix).parse().unwrap() };
    let last_old = number(std::fs::read_to_string(&moved).unwrap().lines().last());
    let first_new = number(std::fs::read_to_string(log).unwrap().lines().next());
    assert_eq!(first_new, last_old + 1, "no line lost or doubled across the reopen");
}

#[test]
fn a_file_only_stream_keeps_its_tail_and_follows_reopen_and_truncation() {
    // No passthrough: the stream takes the splice path, and the tail is read back from the file.
    let supd = Supd::start(
        "[program.f]\ncommand = [\"sh\", \"-c\", \"i=0; while :; do i=$((i+1)); echo f-$i; sleep 0.02; done\"]\n\
         startsecs = 0\nstdout_logfile = \"@DIR@/f.log\"\n",
    );
    wait_until("lines in the tail", 10 * S, || supd.ctl(&["tail", "-n", "3", "f"]).1.contains("f-3\n").then_some(()));
    let tail = supd.ctl(&["tail", "-n", "3", "f"]).1;
    let numbers: Vec<u32> = tail.lines().map(|l| l.trim_start_matches("f-").parse().unwrap()).collect();
    assert_eq!(numbers.len(), 3, "{tail}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "the tail holds consecutive lines: {tail}");
    assert!(!supd.output().contains("f-1"), "a file-only stream has no passthrough");
    assert_follow_streams_every_line(&supd, "f", "f-");
    let log = supd.path("f.log");
    assert_reopen_continues(&supd, &log, "f-");

    // logrotate's copytruncate: the next lines start the file again, behind no hole.
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    let text = wait_until("lines after the truncation", 10 * S, || {
        let text = std::fs::read(&log).unwrap();
        text.ends_with(b"\n").then_some(text)
    });
    assert!(text.starts_with(b"f-"), "the file restarts at offset 0: {:?}", &text[..text.len().min(16)]);
}

#[test]
fn reopen_after_mv_and_clear() {
    let supd = Supd::start(
        "[program.w]\ncommand = [\"sh\", \"-c\", \"i=0; while :; do i=$((i+1)); echo w-$i; sleep 0.02; done\"]\nstartsecs = 0\n\
         stdout_logfile = \"@DIR@/w.log\"\nstdout_passthrough = true\n",
    );
    let log = supd.path("w.log");
    let moved = supd.path("w.old");
    wait_until("lines in the file", 10 * S, || {
        (std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) > 0).then_some(())
    });
    assert!(supd.wait_output("w | w-", 5 * S).contains("w | w-1\n"), "stdout_passthrough keeps the prefixed lines");
    assert_reopen_continues(&supd, &log, "w-");

    // SIGUSR2 does the same.
    std::fs::rename(&log, &moved).unwrap();
    nix::sys::signal::kill(supd.host_pid(), nix::sys::signal::Signal::SIGUSR2).unwrap();
    wait_until("a new file after SIGUSR2", 10 * S, || {
        (std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) > 0).then_some(())
    });

    std::thread::sleep(Duration::from_millis(200));
    let before = std::fs::metadata(&log).unwrap().len();
    assert_eq!(supd.ctl(&["clear", "w"]), (0, "w: cleared\n".into(), String::new()));
    let after = std::fs::metadata(&log).unwrap().len();
    assert!(after < before, "clear truncated the file ({before} -> {after} bytes)");
    assert!(supd.ctl(&["tail", "-n", "100", "w"]).1.lines().count() < 20, "and forgot the tail");
}

#[test]
fn a_full_disk_is_reported_and_writing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&disk).status().unwrap();
    assert!(mounted.success(), "mounting a tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(disk.clone());
    let filler = disk.join("filler");
    std::fs::File::create(&filler).unwrap().write_all(&vec![0u8; 250 << 10]).ok();
    let supd = Supd::start(&format!(
        "[program.w]\ncommand = [\"sh\", \"-c\", \"i=0; while :; do i=$((i+1)); echo disk-line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; sleep 0.01; done\"]\n\
         startsecs = 0\nstdout_logfile = \"{}/w.log\"\n",
        disk.display()
    ));
    let err = wait_until("the fault in status", 20 * S, || {
        let p = supd.program("w");
        p["log_errors"][0].as_str().map(str::to_string)
    });
    assert!(err.contains("No space left on device"), "{err}");
    let (_, status, _) = supd.ctl(&["status", "w"]);
    assert!(status.contains("RUNNING") && status.contains("log: "), "the program keeps running: {status}");
    supd.wait_output("these lines are not saved", 5 * S);
    std::fs::remove_file(&filler).unwrap();
    wait_until("writing to resume", 20 * S, || {
        supd.program("w")["log_errors"].as_array().filter(|a| a.is_empty()).map(|_| ())
    });
    supd.wait_output("writing again", 5 * S);
    let pid = supd.program("w")["pid"].clone();
    assert_eq!(supd.program("w")["restarts"], 0, "pid {pid} ran throughout");
}

#[test]
fn a_10_mb_line_without_newline_reaches_the_file_whole() {
    let supd = Supd::start(
        "[program.big]\ncommand = [\"python3\", \"-c\", \"import sys; sys.stdout.write('y' * 10_000_000); sys.stdout.flush()\"]\n\
         startsecs = 0\nautorestart = false\nstdout_logfile = \"@DIR@/big.log\"\n",
    );
    supd.wait_state("big", "EXITED", 30 * S);
    let log = supd.path("big.log");
    wait_until("10 MB in the file", 30 * S, || {
        (std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) == 10_000_000).then_some(())
    });
    let kib = supd.rss_kib();
    assert!(kib < 32 * 1024, "supd's memory stays bounded: {kib} KiB");
}

#[test]
fn prefix_templates_json_lines_and_supds_own_logfile() {
    let supd = Supd::start_with(
        "log_format = \"json\"\nlogfile = \"@DIR@/supd.log\"\nlogfile_maxbytes = \"1MB\"",
        "[program.j]\ncommand = \"sh -c 'echo hello json'\"\nstartsecs = 0\nautorestart = false\n",
    );
    let out = wait_until("the JSON line", 10 * S, || {
        let out = std::fs::read_to_string(supd.path("stdout.log")).ok()?;
        out.contains("hello json").then_some(out)
    });
    let v: serde_json::Value = serde_json::from_str(out.lines().find(|l| l.contains("hello")).unwrap()).unwrap();
    assert_eq!(
        (v["program"].as_str(), v["stream"].as_str(), v["line"].as_str()),
        (Some("j"), Some("stdout"), Some("hello json"))
    );
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    let own = wait_until("supd's own log in its file", 10 * S, || {
        let own = std::fs::read_to_string(supd.path("supd.log")).ok()?;
        own.contains("spawned: j").then_some(own)
    });
    assert!(own.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{own}");
    assert!(!std::fs::read_to_string(supd.path("stderr.log")).unwrap_or_default().contains("spawned: j"));

    let supd = Supd::start_with(
        "log_prefix = \"[{stream}] {name}: \"",
        "[program.t]\ncommand = \"sh -c 'echo to-out; echo to-err >&2'\"\nstartsecs = 0\nautorestart = false\n",
    );
    supd.wait_output("[stderr] t: to-err\n", 10 * S);
    supd.wait_output("[stdout] t: to-out\n", 10 * S);
}

/// Regression: an abandoned `tail -f` of a silent program held its connection slot until the
/// program next wrote something.
#[test]
fn an_abandoned_follower_frees_its_connection() {
    let supd = Supd::start("[program.quiet]\ncommand = \"sleep 1000\"\nstartsecs = 0\n");
    supd.wait_state("quiet", "RUNNING", 5 * S);
    for _ in 0..140 {
        let mut follow = Command::new(SUPCTL)
            .arg("-s")
            .arg(&supd.socket)
            .args(["tail", "-f", "quiet"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        follow.kill().ok();
        follow.wait().ok();
    }
    // More followers came and went than there are connection slots (128); supctl still answers.
    let started = std::time::Instant::now();
    assert_eq!(supd.ctl(&["--timeout", "2", "status", "quiet"]).0, 0, "supctl got no answer: no free connection slot");
    assert!(started.elapsed() < 2 * S, "status waited for a free slot");
}

/// `*_logfile = "NONE"` (without passthrough) sends the stream to /dev/null: no pipe in the
/// program, none for supd to hold or read.
#[test]
fn a_discarded_stream_goes_straight_to_dev_null() {
    let supd = crate::harness::Supd::start(
        "[program.quiet]\ncommand = [\"sh\", \"-c\", \"echo lost; exec sleep 601\"]\nstartsecs = 0\n\
         stdout_logfile = \"NONE\"\nstderr_logfile = \"NONE\"\n\
         [program.half]\ncommand = [\"sh\", \"-c\", \"exec sleep 602\"]\nstartsecs = 0\nstdout_logfile = \"NONE\"\n\
         [program.merged]\ncommand = [\"sh\", \"-c\", \"exec sleep 603\"]\nstartsecs = 0\nstdout_logfile = \"NONE\"\n\
         redirect_stderr = true\n",
    );
    let fds = |cmd: &str| {
        let p = crate::harness::wait_until(cmd, std::time::Duration::from_secs(10), || {
            supd.ns_processes().into_iter().find(|p| p.cmdline == cmd)
        });
        let link = |fd: u32| std::fs::read_link(format!("/proc/{}/fd/{fd}", p.pid)).unwrap().display().to_string();
        (link(1), link(2))
    };
    assert_eq!(fds("sleep 601"), ("/dev/null".to_string(), "/dev/null".to_string()));
    let (out, err) = fds("sleep 602");
    assert_eq!(out, "/dev/null");
    assert!(err.starts_with("pipe:"), "stderr still passes through: {err}");
    assert_eq!(fds("sleep 603"), ("/dev/null".to_string(), "/dev/null".to_string()));
    assert!(!supd.output().contains("lost"));
}

#[test]
fn log_files_take_no_thread_per_stream() {
    // Before, each file-only stream had a splice thread: 40 programs with two log files were
    // 80 threads more. Now the event loop waits for the pipes.
    let programs: String = (0..40)
        .map(|i| {
            format!(
                "[program.p{i}]\ncommand = [\"sh\", \"-c\", \"echo out-{i}; echo err-{i} >&2; exec sleep 1000\"]\n\
                 startsecs = 0\nstdout_logfile = \"@DIR@/p{i}.out\"\nstderr_logfile = \"@DIR@/p{i}.err\"\n"
            )
        })
        .collect();
    let supd = Supd::start(&programs);
    wait_until("every line in its file", 10 * S, || {
        (0..40)
            .all(|i| {
                let read = |ext: &str| std::fs::read_to_string(supd.path(&format!("p{i}.{ext}"))).unwrap_or_default();
                read("out") == format!("out-{i}\n") && read("err") == format!("err-{i}\n")
            })
            .then_some(())
    });
    let threads = std::fs::read_dir(format!("/proc/{}/task", supd.host_pid())).unwrap().count();
    // supd's own two, and at most the 16 of the shared pool while it winds down.
    assert!(threads <= 20, "supd runs {threads} threads for 80 quiet streams");
}
