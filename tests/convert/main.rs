//! `supctl convert`: supervisord configs to supd TOML, checked against golden files, and the
//! output must pass `supd check`. `UPDATE_GOLDEN=1 cargo test --test convert` rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");
const SUPD: &str = env!("CARGO_BIN_EXE_supd");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/fixtures").join(name)
}

/// Converts fixture `name` with supctl into a temporary directory; compares the TOML and the
/// warnings (with the fixture's directory written `@HERE@`) with the golden files; then runs
/// `supd check` on the result.
fn golden(name: &str) {
    let dir = fixture(name);
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(SUPCTL)
        .arg("convert")
        .arg(dir.join("supervisord.conf"))
        .arg("-o")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let here = dir.display().to_string();
    let toml = std::fs::read_to_string(out.path().join("supd.toml")).unwrap().replace(&here, "@HERE@");
    let warnings: String = String::from_utf8_lossy(&run.stderr)
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .map(|l| format!("{}\n", l.replace(&here, "@HERE@")))
        .collect();
    for (file, got) in [("expected.toml", &toml), ("expected.warnings", &warnings)] {
        let path = dir.join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(got, &want, "{} differs from the golden file", path.display());
    }
    let check = Command::new(SUPD)
        .args(["check", "-c"])
        .arg(out.path().join("supd.toml"))
        .env("MCP_PORT", "7000")
        .output()
        .unwrap();
    assert!(check.status.success(), "supd check: {}", String::from_utf8_lossy(&check.stderr));
    // supd reads the supervisord.conf itself just the same: the same programs, the same notes.
    let native = Command::new(SUPD)
        .args(["check", "-c"])
        .arg(dir.join("supervisord.conf"))
        .env("MCP_PORT", "7000")
        .output()
        .unwrap();
    assert!(native.status.success(), "supd check (INI): {}", String::from_utf8_lossy(&native.stderr));
    let programs = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out).lines().filter(|l| l.starts_with('[')).map(str::to_string).collect()
    };
    assert_eq!(programs(&native.stdout), programs(&check.stdout), "the INI read natively runs what convert writes");
    let native_warnings: String = String::from_utf8_lossy(&native.stderr)
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .map(|l| format!("{}\n", l.replace(&here, "@HERE@")))
        .collect();
    assert_eq!(native_warnings, warnings, "supd check says what convert warns of");
}

#[test]
fn ini_and_toml_cannot_be_mixed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "[program.a]\ncommand = \"x\"\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "[program:b]\ncommand=y\n").unwrap();
    let run = Command::new(SUPD).args(["check", "-c"]).arg(dir.path()).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot be mixed with TOML"), "{run:?}");
}

#[test]
fn an_agent_image_config_converts_with_warnings_for_what_is_not_carried() {
    golden("agent");
}

#[test]
fn the_sample_from_supervisords_documentation_converts() {
    golden("sample");
}

#[test]
fn an_nginx_php_fpm_image_config_converts() {
    golden("nginx-php-fpm");
}

#[test]
fn dockers_documented_multi_process_config_converts() {
    golden("docker-docs");
}

#[test]
fn a_django_celery_image_config_converts() {
    golden("django-celery");
}

#[test]
fn an_event_listener_is_carried_and_a_tick_check_gets_healthcheck_advice() {
    let text = std::fs::read_to_string(fixture("agent").join("expected.warnings")).unwrap();
    let line = text.lines().find(|l| l.contains("[eventlistener:healthcheck]")).expect("a warning for the listener");
    assert!(line.contains("carried as [eventlistener.healthcheck]"), "{line}");
    assert!(
        line.contains("[program.NAME.healthcheck]")
            && line.contains("interval = \"5s\"")
            && line.contains("under 30 s"),
        "the advice meets a 30 s recovery: {line}"
    );
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let run = Command::new(SUPCTL).args(["convert", "/nonexistent/supervisord.conf"]).output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot read /nonexistent/supervisord.conf"));
}

#[test]
fn an_include_that_matches_nothing_is_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("supervisord.conf");
    std::fs::write(&conf, "[include]\nfiles = conf.d/*.conf\n\n[program:web]\ncommand=sleep 1\n").unwrap();
    let run = Command::new(SUPCTL).arg("convert").arg(&conf).output().unwrap();
    assert!(run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("[include] files: conf.d/*.conf matches no file"), "{err}");
}

#[test]
fn inet_http_server_becomes_the_rpc_listener() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("supervisord.conf");
    let convert = |ini: &str| {
        std::fs::write(&conf, format!("{ini}\n[program:web]\ncommand=sleep 1\n")).unwrap();
        let run = Command::new(SUPCTL).arg("convert").arg(&conf).output().unwrap();
        assert!(run.status.success());
        (String::from_utf8_lossy(&run.stdout).into_owned(), String::from_utf8_lossy(&run.stderr).into_owned())
    };
    let (toml, _) = convert(
        "[inet_http_server]\nport=*:9005\nusername=admin\npassword={SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4",
    );
    assert!(toml.contains("rpc = \"0.0.0.0:9005\"\nrpc_username = \"admin\"\nrpc_password = \"{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4\""), "{toml}");
    let (toml, warnings) = convert("[inet_http_server]\nport=*:9001");
    assert!(toml.contains("rpc = \"127.0.0.1:9001\"") && toml.contains("http = \"0.0.0.0:9002\""), "{toml}");
    assert!(
        warnings.contains("without username and password") && warnings.contains("move to 0.0.0.0:9002"),
        "{warnings}"
    );
    // And supd reads such a supervisord.conf as it is.
    let check = Command::new(SUPD).args(["check", "-c"]).arg(&conf).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
