//! `stdout_logfile=/dev/stdout`, as 5 of 7 popular images' supervisord.conf have it: the
//! prefixed passthrough, every line whole and once, whatever supd's stdout is.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Supd, wait_until};

const LINES: usize = 50_000;

fn programs(logfile: &str) -> String {
    format!(
        "[program.a]\ncommand = \"seq 1 {LINES}\"\nstartsecs = 0\nautorestart = false\nstdout_logfile = \"{logfile}\"\n\
         stdout_logfile_maxbytes = 0\n\
         [program.b]\ncommand = [\"sh\", \"-c\", \"seq 1 {LINES} >&2\"]\nstartsecs = 0\nautorestart = false\n\
         stderr_logfile = \"/proc/self/fd/1\"\n"
    )
}

/// Every line of `prefix` in `text`, as numbers; checks they are 1..=LINES in order, once.
fn check(text: &str, prefix: &str, how: &str) {
    let got: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(prefix)).collect();
    let torn = got.iter().filter(|l| l.parse::<usize>().is_err()).count();
    let numbers: Vec<usize> = got.iter().filter_map(|l| l.parse().ok()).collect();
    let want: Vec<usize> = (1..=LINES).collect();
    assert!(
        numbers == want,
        "{how}: {prefix:?}: {} lines, {torn} torn, first {:?}, last {:?}",
        numbers.len(),
        got.first(),
        got.last()
    );
}

fn collect(reader: std::io::PipeReader, slow: bool) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::spawn({
        let seen = Arc::clone(&seen);
        let mut reader = reader;
        move || {
            let mut buf = vec![0u8; if slow { 512 } else { 65536 }];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
                if slow {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    });
    seen
}

fn both_exited(supd: &Supd) {
    for name in ["a", "b"] {
        supd.wait_state(name, "EXITED", Duration::from_secs(20));
    }
}

/// Before: with supd's stdout a regular file the program's lines were lost (the file opened
/// again at offset 0 overwrote them); through a pipe, lines were torn.
#[test]
fn dev_stdout_is_the_passthrough_with_a_file_for_stdout() {
    for path in ["/dev/stdout", "/dev/fd/1"] {
        let supd = Supd::start(&programs(path));
        both_exited(&supd);
        let text = wait_until("every line", Duration::from_secs(20), || {
            let out = std::fs::read_to_string(supd.path("stdout.log")).unwrap_or_default();
            (out.contains(&format!("a | {LINES}\n")) && out.contains(&format!("b | {LINES}\n"))).then_some(out)
        });
        check(&text, "a | ", path);
        check(&text, "b | ", "stderr_logfile = /proc/self/fd/1");
    }
}

#[test]
fn dev_stdout_is_the_passthrough_with_a_pipe_and_a_slow_pipe() {
    for slow in [false, true] {
        let (reader, writer) = std::io::pipe().unwrap();
        let seen = collect(reader, slow);
        let supd = Supd::launch_to(&[], "", &programs("/dev/stdout"), Some(OwnedFd::from(writer)));
        supd.wait_ready();
        both_exited(&supd);
        let text = wait_until("every line", Duration::from_secs(30), || {
            let out = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
            (out.contains(&format!("a | {LINES}\n")) && out.contains(&format!("b | {LINES}\n"))).then_some(out)
        });
        let how = if slow { "slow pipe" } else { "pipe" };
        check(&text, "a | ", how);
        check(&text, "b | ", how);
    }
}
