//! Spawning: user, groups, HOME; environment; a clean signal state; no leaked descriptors.

use std::time::Duration;

use crate::harness::{Supd, wait_until};

const S: Duration = Duration::from_secs(1);

/// The lines `name` printed (from supd's prefixed passthrough), once it printed `END`.
fn printed(supd: &Supd, name: &str) -> Vec<String> {
    let prefix = format!("{name} | ");
    wait_until(&format!("{name} to print END"), 5 * S, || {
        let lines: Vec<String> =
            supd.output().lines().filter_map(|l| l.strip_prefix(&prefix)).map(|l| l.trim_end().to_string()).collect();
        lines.iter().any(|l| l == "END").then_some(lines)
    })
}

fn dev() -> nix::unistd::User {
    nix::unistd::User::from_name("dev")
        .ok()
        .flatten()
        .expect("the tests need the `dev` user: run scripts/setup-test-env as root")
}

#[test]
fn programs_run_as_the_user_with_groups_home_and_identity() {
    let dev = dev();
    let supd = Supd::start_with(
        "user = \"dev\"",
        "[program.who]\ncommand = [\"sh\", \"-c\", \"id -u; id -g; id -Gn; echo $HOME $USER $LOGNAME $SHELL; pwd; umask; \
         echo $SUPD_PROCESS_NAME $SUPD_GROUP_NAME; echo \\\"$GREETING\\\"; echo END\"]\n\
         directory = \"/tmp\"\numask = \"027\"\nstartsecs = 0\nautorestart = false\n\
         environment = { GREETING = \"hi ${NO_SUCH_VAR_X:-there}\" }\n",
    );
    let out = printed(&supd, "who");
    assert_eq!(out[0], dev.uid.to_string());
    assert_eq!(out[1], dev.gid.to_string());
    assert!(out[2].split(' ').any(|g| g == "supd-extra"), "supplementary groups from /etc/group: {}", out[2]);
    assert_eq!(out[3], format!("{} dev dev {}", dev.dir.display(), dev.shell.display()));
    assert_eq!((out[4].as_str(), out[5].as_str()), ("/tmp", "0027"));
    assert_eq!((out[6].as_str(), out[7].as_str()), ("who who", "hi there"));
}

#[test]
fn program_user_overrides_the_default_and_root_keeps_root() {
    let supd = Supd::start_with(
        "user = \"dev\"",
        "[program.asroot]\ncommand = \"sh -c 'id -u; echo $HOME; echo END'\"\nuser = \"root\"\nstartsecs = 0\nautorestart = false\n",
    );
    assert_eq!(printed(&supd, "asroot")[..2], ["0".to_string(), "/root".to_string()]);
}

#[test]
fn children_get_a_clean_signal_state_devnull_stdin_and_no_supd_fds() {
    let supd = Supd::start(
        "[program.probe]\ncommand = [\"sh\", \"-c\", \"grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd | tr '\\\\n' ' '; echo; \
         readlink /proc/self/fd/0; ps -o sid= -o pgid= -p $$; echo $$; echo END\"]\nstartsecs = 0\nautorestart = false\n",
    );
    let out = printed(&supd, "probe");
    assert_eq!(out[0], "SigBlk:\t0000000000000000");
    // Nothing ignored (SIGPIPE is back to default), whatever supd inherited. Signals 32 and 33
    // belong to glibc, which sets them up in every program it starts.
    let ignored = u64::from_str_radix(out[1].trim_start_matches("SigIgn:\t"), 16).unwrap();
    assert_eq!(ignored & !0x1_8000_0000, 0, "{}", out[1]);
    // 0, 1, 2, and 3 for the directory `ls` itself opens.
    assert_eq!(out[2].split_whitespace().collect::<Vec<_>>(), ["0", "1", "2", "3"], "no descriptor of supd leaks");
    assert_eq!(out[3], "/dev/null");
    let ids: Vec<&str> = out[4].split_whitespace().collect();
    assert_eq!(ids, [out[5].as_str(), out[5].as_str()], "own session and process group");
}

/// The value of one row of /proc/self/limits in `text` (the soft limit), e.g. "Max open files".
fn limit(text: &str, row: &str) -> String {
    let line = text.lines().find(|l| l.contains(row)).unwrap_or_else(|| panic!("no {row:?} in {text}"));
    let at = line.find(row).unwrap_or(0) + row.len();
    line[at..].split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn rlimits_are_set_before_exec_even_for_another_user() {
    let supd = Supd::start(
        "[program.limited]\ncommand = [\"sh\", \"-c\", \"cat /proc/self/limits; sleep 1000\"]\n\
         user = \"dev\"\nstartsecs = 0\nrlimit_nofile = 4096\nrlimit_nproc = 500\nrlimit_core = \"unlimited\"\n\
         rlimit_memlock = \"4MB\"\n",
    );
    let limited = supd.wait_output("Max locked memory", 5 * S);
    assert_eq!(limit(&limited, "Max open files"), "4096", "{limited}");
    assert_eq!(limit(&limited, "Max processes"), "500");
    assert_eq!(limit(&limited, "Max core file size"), "unlimited");
    assert_eq!(limit(&limited, "Max locked memory"), (4 << 20).to_string());
}

#[test]
fn an_rlimit_above_what_supd_may_raise_is_a_clear_spawn_error() {
    // Without CAP_SYS_RESOURCE (as here, and in many container runtimes) a hard limit cannot
    // go up: the program is refused before fork, saying so.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim).unwrap();
    if u64::from_str_radix(caps, 16).unwrap() >> 24 & 1 == 1 {
        eprintln!("this machine has CAP_SYS_RESOURCE: nothing to refuse");
        return;
    }
    let supd =
        Supd::start("[program.greedy]\ncommand = \"sleep 1000\"\nrlimit_memlock = 1099511627776\nstartretries = 0\n");
    let p = supd.wait_state("greedy", "FATAL", 5 * S);
    let description = p["description"].as_str().unwrap_or_default();
    assert!(description.contains("rlimit_memlock = 1099511627776 is above the hard limit"), "{description}");
}

#[test]
fn a_minfds_supd_cannot_reach_stops_it_at_start_saying_why() {
    // supervisord refuses to start below minfds; so does supd, before starting anything.
    let mut supd = Supd::launch(&[], "minfds = 1000000000000\n", "[program.a]\ncommand = \"sleep 1000\"\n");
    assert_eq!(supd.wait_exit(5 * S), 1);
    let out = supd.output();
    assert!(out.contains("minfds = 1000000000000: cannot raise the limit from"), "{out}");
}

#[test]
fn a_failure_between_fork_and_exec_is_a_spawn_error_with_the_step_and_errno() {
    // supd does not wait for a child's exec: what fails after the fork comes back with the
    // child's exit (127), as a failed start that says which step failed and why.
    let supd = Supd::start_with(
        "user = \"dev\"",
        "[program.interp]\ncommand = \"@DIR@/script\"\nautostart = false\nstartretries = 0\n\
         [program.quick]\ncommand = \"@DIR@/script\"\nautostart = false\nstartsecs = 0\nstartretries = 1\n\
         backoff_initial = \"50ms\"\n\
         [program.nodir]\ncommand = \"true\"\ndirectory = \"/root\"\nstartretries = 0\n",
    );
    let script = supd.path("script");
    std::fs::write(&script, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, out, _) = supd.ctl(&["start", "interp"]);
    assert_eq!((code, out.as_str()), (7, "interp: ERROR (spawn error)\n"), "as supervisorctl says it");
    let p = supd.wait_state("interp", "FATAL", 5 * S);
    let want = format!("spawn error: cannot execute {}: execve: No such file or directory", script.display());
    assert!(p["description"].as_str().unwrap().contains(&want), "{p}");
    supd.wait_output(&format!("interp: {want}"), 5 * S);
    // RUNNING at once under startsecs = 0, yet still a failed start: FATAL after its retry,
    // not restarted for ever.
    supd.ctl(&["start", "quick"]);
    let p = supd.wait_state("quick", "FATAL", 5 * S);
    assert!(p["description"].as_str().unwrap().contains("gave up after 2 failed starts"), "{p}");
    // chdir as `dev` into root's home.
    let p = supd.wait_state("nodir", "FATAL", 5 * S);
    assert!(p["description"].as_str().unwrap().contains("cannot execute true: chdir: Permission denied"), "{p}");
}
