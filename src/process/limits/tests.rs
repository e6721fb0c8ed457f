//! The limit files against directories that stand in for cgroupfs; the v1 path runs for real
//! in tests/supd/limits.rs.

use super::*;

fn all() -> CgroupLimits {
    CgroupLimits {
        memory_max: Some(512 << 20),
        memory_high: Some(400 << 20),
        memory_swap_max: Some(0),
        cpu_max_us: Some(50_000),
        cpu_weight: Some(200),
        pids_max: Some(64),
        io_weight: Some(50),
    }
}

fn files(settings: &[Setting]) -> Vec<(&str, &str)> {
    settings.iter().map(|s| (s.file, s.value.as_str())).collect()
}

#[test]
fn v2_files_carry_the_keys_names_and_units() {
    assert_eq!(
        files(&v2_settings(&all())),
        [
            ("memory.max", "536870912"),
            ("memory.high", "419430400"),
            ("memory.swap.max", "0"),
            ("cpu.max", "50000 100000"),
            ("cpu.weight", "200"),
            ("pids.max", "64"),
            ("io.weight", "default 50"),
        ]
    );
}

#[test]
fn v1_files_follow_systemds_conversions() {
    let (settings, cannot) = v1_settings(&all());
    assert_eq!(
        files(&settings),
        [
            ("memory.limit_in_bytes", "536870912"),
            ("memory.soft_limit_in_bytes", "419430400"),
            ("memory.memsw.limit_in_bytes", "536870912"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
            ("cpu.shares", "2048"),
            ("pids.max", "64"),
            ("blkio.weight", "250"),
        ]
    );
    assert!(cannot.is_empty());
    let swap_alone = CgroupLimits { memory_swap_max: Some(1 << 20), ..CgroupLimits::default() };
    assert_eq!(v1_settings(&swap_alone).1, ["memory_swap_max"]);
}

#[test]
fn v2_enables_the_offered_controllers_from_a_leaf_and_writes_the_program_files() {
    let base = tempfile::tempdir().unwrap();
    let b = base.path();
    std::fs::write(b.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    std::fs::write(b.join("cgroup.procs"), format!("{}\n", std::process::id())).unwrap();
    std::fs::write(b.join("cgroup.subtree_control"), "").unwrap();
    let limiter = Limiter::detect(Some(b)).unwrap();
    assert_eq!(std::fs::read_to_string(b.join("cgroup.subtree_control")).unwrap(), "+memory +cpu +pids +io");
    assert_eq!(std::fs::read_to_string(b.join("supd/cgroup.procs")).unwrap(), "0", "supd moved into a leaf");
    assert!(limiter.missing(&all()).is_empty());

    let program = b.join("program-web");
    std::fs::create_dir(&program).unwrap();
    std::fs::write(program.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
    let made = limiter.apply("web", &all(), Some(&program)).unwrap();
    assert_eq!(std::fs::read_to_string(program.join("cpu.max")).unwrap(), "50000 100000");
    assert_eq!(std::fs::read_to_string(program.join("memory.max")).unwrap(), "536870912");
    assert_eq!(made.oom_kills(), Some(1));
    assert!(made.procs_for_child().is_empty(), "under v2 the program's own cgroup is all it joins");
}

#[test]
fn v2_without_a_controller_names_the_keys_it_cannot_apply() {
    let limiter = Limiter::V2 { enabled: vec![Controller::Memory] };
    let l = CgroupLimits { memory_max: Some(1 << 30), cpu_max_us: Some(100_000), ..CgroupLimits::default() };
    assert_eq!(limiter.missing(&l), ["cpu_max"]);
}

#[test]
fn v1_dirs_are_found_below_supds_own_cgroup_in_each_hierarchy() {
    let root = tempfile::tempdir().unwrap();
    let mem = root.path().join("memory");
    std::fs::create_dir_all(mem.join("job/abc")).unwrap();
    let mountinfo = format!(
        "40 30 0:35 / {} rw - cgroup cgroup rw,memory\n41 30 0:36 / /nonexistent/cpu rw - cgroup cgroup rw,cpu\n",
        mem.display()
    );
    let dirs = v1_dirs(&mountinfo, "4:memory:/job/abc\n1:cpu:/\n0::/\n");
    assert_eq!(dirs.len(), 1, "the cpu hierarchy's directory cannot be made: {dirs:?}");
    assert_eq!(dirs[0].0, Controller::Memory);
    assert!(dirs[0].1.starts_with(mem.join("job/abc")) && dirs[0].1.is_dir(), "{:?}", dirs[0].1);
    // The kernel makes the files; here, all but memsw (no swap accounting).
    for file in ["memory.limit_in_bytes", "memory.soft_limit_in_bytes"] {
        std::fs::write(dirs[0].1.join(file), "").unwrap();
    }
    let limiter = Limiter::V1 { dirs };
    assert_eq!(limiter.missing(&all()), ["memory_swap_max", "cpu_max", "cpu_weight", "pids_max", "io_weight"]);
}
