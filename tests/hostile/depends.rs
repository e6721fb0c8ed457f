//! Dependency graphs of 10,000 programs load, check and reload in linear time.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{SUPD, Supd, write_config};

/// `n` programs in a chain (`p0` needs `p1` needs `p2` …), a fan (everyone needs `p0`) or
/// diamonds (`p{i}` needs `p{2i+1}` and `p{2i+2}`: shared dependencies, many paths).
pub fn graph(shape: &str, n: usize, extra: &str) -> String {
    let mut out = String::with_capacity(n * 80);
    for i in 0..n {
        let deps: Vec<usize> = match shape {
            "chain" => (i + 1 < n).then_some(i + 1).into_iter().collect(),
            "fan" => (i > 0).then_some(0).into_iter().collect(),
            _ => [2 * i + 1, 2 * i + 2].into_iter().filter(|&d| d < n).collect(),
        };
        let deps: Vec<String> = deps.iter().map(|d| format!("\"p{d}\"")).collect();
        out += &format!("[program.p{i}]\ncommand = \"sleep 60\"\n{extra}depends_on = [{}]\n", deps.join(", "));
    }
    out
}

/// Before: a chain of 4,000 took over 60 s to check (cycle detection walked every path).
#[test]
fn ten_thousand_programs_in_chains_fans_and_diamonds_check_quickly() {
    let _heavy = crate::heavy();
    let dir = tempfile::tempdir().unwrap();
    for shape in ["chain", "fan", "diamond"] {
        let path = write_config(dir.path(), "supd.toml", &graph(shape, 10_000, ""));
        let t = Instant::now();
        let out = Command::new(SUPD).args(["check", "-c"]).arg(&path).output().unwrap();
        let took = t.elapsed();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        // A gross bound for a debug build; bench/hostile.py measures the release build.
        assert!(took < Duration::from_secs(5), "supd check of a {shape} of 10,000 took {took:?}");
    }
    let cyclic = graph("chain", 10_000, "").replace(
        "[program.p9999]\ncommand = \"sleep 60\"\ndepends_on = []",
        "[program.p9999]\ncommand = \"sleep 60\"\ndepends_on = [\"p0\"]",
    );
    let path = write_config(dir.path(), "supd.toml", &cyclic);
    let out = Command::new(SUPD).args(["check", "-c"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("program.p0.depends_on: dependency cycle: p0 -> p1 -> p2 -> p3 -> p4 -> … 9991 more … -> p9996 -> p9997 -> p9998 -> p9999 -> p0\n"),
        "{}",
        &err[..err.len().min(300)]
    );
}

#[test]
fn a_reload_of_ten_thousand_programs_is_quick() {
    let _heavy = crate::heavy();
    let supd = Supd::start(&graph("diamond", 10_000, "autostart = false\n"));
    supd.rewrite("", &graph("diamond", 10_000, "autostart = false\nstartsecs = 2\n"));
    let t = Instant::now();
    let (code, out, err) = supd.ctl(&["reload"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    assert!(took < Duration::from_secs(5), "reload of 10,000 took {took:?}");
}
