//! The control protocol refuses what it does not know.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use crate::harness::Supd;

fn raw(supd: &Supd, line: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(&supd.socket).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// Before: `{"cmd":"pid","mames":[...]}` was taken for `{"cmd":"pid"}`.
#[test]
fn unknown_fields_and_wrong_types_are_bad_requests() {
    let supd = Supd::start("[program.a]\ncommand = \"sleep 60\"\nstartsecs = 0\n");
    for (line, names) in [
        (r#"{"cmd":"pid","mames":["a"]}"#, "mames"),
        (r#"{"cmd":"health","verbose":true}"#, "verbose"),
        (r#"{"cmd":"stop","names":"a"}"#, "invalid type"),
    ] {
        let v = raw(&supd, line);
        assert_eq!(v["type"], "error", "{line}: {v}");
        assert_eq!(v["kind"], "bad_request", "{line}: {v}");
        assert!(v["message"].as_str().unwrap_or("").contains(names), "{line}: {v}");
    }
    assert_eq!(supd.program("a")["state"], "RUNNING", "nothing was stopped");
}
