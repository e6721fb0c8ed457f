//! Config errors (file:line:column and key, exit 2, nothing started) and `supd check`.

use std::process::Command;

use crate::harness::{SUPD, write_config};

fn check(dir: &std::path::Path, text: &str) -> (i32, String, String) {
    let path = write_config(dir, "supd.toml", text);
    let out = Command::new(SUPD).args(["check", "-c"]).arg(&path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn errors_name_file_line_column_and_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("supd.toml").display().to_string();
    let cases = [
        (
            "[program.a]\ncommand = \"x\"\nstartsecs = \"soon\"\n",
            "3:13: program.a.startsecs: invalid duration \"soon\"",
        ),
        ("[program.a]\ncommand = \"x\"\nbogus = 1\n", "3:1: program.a.bogus: unknown field `bogus`"),
        (
            "[program.a]\ncommand = \"x\"\nautostart = \"yes\"\n",
            "3:13: program.a.autostart: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[program.a]\ncommand = \"x\"\nuser = \"nobody-here\"\n",
            "3:8: program.a.user: no user named \"nobody-here\"",
        ),
        (
            "[group.g]\nprograms = [\"a\", \"b\"]\n[program.a]\ncommand = \"x\"\n",
            "2:18: group.g.programs: no program named \"b\"",
        ),
        (
            "[program.a]\ncommand = \"x\"\nstopsignal = \"TERMINATE\"\n",
            "3:14: program.a.stopsignal: unknown signal \"TERMINATE\"",
        ),
        ("[program.a]\ncommand = \"x\"\n[program.a]\ncommand = \"y\"\n", "3:10: program.a: duplicate key"),
        (
            "[program.a]\ncommand = \"x ${SUPD_TEST_UNSET}\"\n",
            "2:11: program.a.command: environment variable SUPD_TEST_UNSET is not set",
        ),
        ("[program.a]\n", "1:1: program.a: missing field `command`"),
        // Keys inside inline tables are named exactly, as are those of a program written inline.
        (
            "[program.a]\ncommand = \"x\"\nhealthcheck = { tcp = \"x:1\", interval = \"soon\" }\n",
            "3:41: program.a.healthcheck.interval: invalid duration \"soon\"",
        ),
        ("[program]\na = { command = \"x\", retries = 2 }\n", "2:22: program.a.retries: unknown field `retries`"),
    ];
    for (text, want) in cases {
        let (code, _, err) = check(dir.path(), text);
        assert_eq!(code, 2, "{text}");
        assert!(err.contains(&format!("{file}:{want}")), "for:\n{text}\nwant {want}\ngot {err}");
    }
}

#[test]
fn a_bad_config_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "supd.toml",
        "[program.toucher]\ncommand = \"touch @DIR@/ran\"\n[program.bad]\ncommand = \"x\"\nstartsecs = -1\n",
    );
    let out = Command::new(SUPD).arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("program.bad.startsecs: a duration cannot be negative"));
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn check_prints_resolved_programs_from_a_directory_with_includes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::create_dir(dir.path().join("main")).unwrap();
    write_config(
        &dir.path().join("main"),
        "10-base.toml",
        "[supervisor]\ninclude = [\"../conf.d/*.toml\"]\nuser = \"root\"\n",
    );
    write_config(
        &dir.path().join("main"),
        "20-web.toml",
        "[program.web]\ncommand = \"serve --port ${SUPD_TEST_PORT:-8080}\"\n",
    );
    write_config(
        &dir.path().join("conf.d"),
        "worker.toml",
        "[program.worker]\ncommand = [\"work\", \"a b\"]\npriority = 1\n",
    );
    let out = Command::new(SUPD).args(["check", "-c"]).arg(dir.path().join("main")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("config OK: 2 programs from"), "{text}");
    let worker = text.find("[worker]").unwrap();
    let web = text.find("[web]").unwrap();
    assert!(worker < web, "priority 1 first:\n{text}");
    assert!(text.contains("command       serve --port 8080"));
    assert!(text.contains("command       work 'a b'"));
    assert!(text.contains("user          root (0:0)"));
}

#[test]
fn duplicate_program_across_files_names_both_places() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "a.toml", "[program.x]\ncommand = \"x\"\n");
    write_config(dir.path(), "b.toml", "\n\n[program.x]\ncommand = \"y\"\n");
    let out = Command::new(SUPD).args(["check", "-c"]).arg(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    assert!(
        err.contains(&format!(
            "{}:3:10: program.x: program \"x\" is already defined at {}:1:10",
            b.display(),
            a.display()
        )),
        "{err}"
    );
}

#[test]
fn shipped_configs_pass_check() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (config, programs) in [("conf.d/supd.toml", 2), ("examples/demo/supd.toml", 3)] {
        let out = Command::new(SUPD)
            .args(["check", "-c"])
            .arg(format!("{root}/{config}"))
            .env("SUPD_DEMO_DIR", format!("{root}/examples/demo"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{config}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.starts_with(&format!("config OK: {programs} programs")), "{text}");
    }
}

#[test]
fn healthcheck_and_depends_on_errors_point_at_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("supd.toml").display().to_string();
    let p = "[program.a]\ncommand = \"x\"\n";
    let cases = [
        (format!("{p}[program.a.healthcheck]\nhttp = \"http://\"\n"), "4:8: program.a.healthcheck.http: not a URL"),
        (
            format!("{p}[program.a.healthcheck]\nhttp = \"https://x/\"\n"),
            "4:8: program.a.healthcheck.http: https probes are not supported",
        ),
        (
            format!("{p}[program.a.healthcheck]\ntcp = \"nohost\"\n"),
            "4:7: program.a.healthcheck.tcp: expected \"host:port\"",
        ),
        (
            format!("{p}[program.a.healthcheck]\ntcp = \"x:1\"\nexec = \"true\"\n"),
            "3:1: program.a.healthcheck: set exactly one of http, tcp or exec",
        ),
        (format!("{p}startsecs = \"healthy\"\n"), "3:13: program.a.startsecs: \"healthy\" needs a [healthcheck]"),
        (format!("{p}depends_on = [\"b\"]\n"), "3:15: program.a.depends_on: no program named \"b\""),
        (
            format!("{p}depends_on = {{ b = \"healthy\" }}\n[program.b]\ncommand = \"y\"\n"),
            "3:16: program.a.depends_on: \"b\" has no [program.b.healthcheck]",
        ),
        (
            format!("{p}depends_on = [\"b\"]\n[program.b]\ncommand = \"y\"\ndepends_on = [\"a\"]\n"),
            "program.a.depends_on: dependency cycle: a -> b -> a",
        ),
        (
            format!("{p}depends_on = {{ b = \"ready\" }}\n[program.b]\ncommand = \"y\"\n"),
            "3:20: program.a.depends_on: unknown variant `ready`, expected one of `started`, `healthy`, `completed_successfully`",
        ),
    ];
    for (text, want) in cases {
        let (code, _, err) = check(dir.path(), &text);
        assert_eq!(code, 2, "{text}");
        assert!(err.contains(want) && err.contains(&file), "for:\n{text}\nwant {want}\ngot {err}");
    }
}

#[test]
fn a_supervisord_conf_keeps_supds_own_settings_in_supd_keys() {
    use crate::harness::{Supd, free_port, http_get};
    const S: std::time::Duration = std::time::Duration::from_secs(1);
    let (port, app) = (free_port(), free_port());
    let supd = Supd::start_file(
        "supervisord.conf",
        &format!(
            "[unix_http_server]\nfile=@DIR@/supd.sock\n\n\
             [supd]\nhttp = 127.0.0.1:{port}\n\n\
             [program:db]\ncommand=/usr/bin/python3 -m http.server {app} --bind 127.0.0.1\nstartsecs=0\n\
             supd_healthcheck_http = http://127.0.0.1:{app}/\nsupd_healthcheck_interval = 1s\n\
             supd_healthcheck_start_period = 10s\nsupd_healthcheck_start_interval = 100ms\n\n\
             [program:api]\ncommand=sleep 1000\nstartsecs=0\nsupd_depends_on = db:healthy\nsupd_required = true\n"
        ),
    );
    let api = supd.wait_state("api", "RUNNING", 10 * S);
    let db = supd.program("db");
    assert_eq!(db["health"], "healthy", "api started only once db was healthy: {db}");
    assert!(api["pid"].as_i64().is_some());
    // `[supd] http` moved /health where the INI said.
    let (code, body) = http_get(port, "/health");
    assert_eq!(code, 200, "{body}");
    let out = Command::new(SUPD).args(["check", "-c"]).arg(supd.path("supervisord.conf")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("supd_"), "supd_ keys are carried, not warned of: {err}");
}

#[test]
fn public_image_configs_start_under_supd_as_they_are() {
    use crate::harness::{Supd, wait_until};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/fixtures");
    for name in ["agent", "sample", "nginx-php-fpm", "docker-docs", "django-celery"] {
        let dir = tempfile::tempdir().unwrap();
        let copy = Command::new("cp").arg("-r").arg(fixtures.join(name)).arg(dir.path().join("image")).status();
        assert!(copy.unwrap().success());
        let conf = dir.path().join("image/supervisord.conf");
        // The socket in the test's directory and no TCP listener, so that runs side by side
        // do not meet; everything else as the image has it.
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("\n[supd]\nsocket = \"{}/supd.sock\"\nhttp = \"\"\nrpc = \"\"\n", dir.path().display()));
        std::fs::write(&conf, text).unwrap();
        let supd = Supd::start_config(dir, &conf, &["MCP_PORT=7000"]);
        // Every autostart program is tried (the images' binaries are not here: their starts
        // fail), and supd itself keeps serving.
        let tried = wait_until(
            &format!("{name}: every autostart program tried"),
            15 * std::time::Duration::from_secs(1),
            || {
                let all = supd.status();
                all.iter()
                    .filter(|p| p["autostart"] == true)
                    .all(|p| p["spawns"].as_u64() > Some(0) || p["state"] != "STOPPED")
                    .then_some(all)
            },
        );
        assert!(!tried.is_empty(), "{name}: no programs");
        assert_eq!(supd.ctl(&["pid"]).0, 0, "{name}: supd answers");
    }
}
