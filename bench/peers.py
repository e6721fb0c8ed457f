"""supd beside every peer, each as PID 1 of its own PID namespace, every figure read from
outside (/proc and the namespace emptying; no tool is asked anything, so no tool's poll loop
is woken by the measure): supervisord 4.3.0 (PyPI), s6 and runit (Debian), horust
(`cargo install horust`), tini (Debian) and dumb-init (PyPI). Programs are `sleep 1000`; N = 1,
10 and 200 (tini and dumb-init run one program).

Measures: launch to all N programs spawned; kill -9 of one program to its replacement (median
of 3); SIGTERM to the namespace empty (runit: SIGHUP, the signal on which runsvdir stops its
services; on SIGTERM it exits and leaves them); resident and private memory summed over the
tool's own processes (s6-supervise and runsv, one per program, count as the tool's); idle
wake-ups over 10 s summed over all their threads; the tool's own status command for one
program (the client's start included; the one figure taken through the tool's interface, which
is what it measures; horust 0.1.14, tini and dumb-init have none); binary size. SUPD_EXTRA adds
lines to supd's [supervisor] table (`SUPD_EXTRA='cgroup = "off"'`). Fairness: s6-supervise waits
1 s before restarting a program that ran less than 1 s (not the case here); the scan of /proc
each poll bounds the timing resolution (a few ms with 200 programs); each kill hits a program
that has not died before (at N = 1, one kill), since a program that dies again within a minute
is a crash loop that supd's backoff holds back on purpose.
Writes bench/results-peers.md."""
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from common import bench_args, write_table

SLEEP = "sleep 1000"
KILLS = 3
IDLE = 10


def ns_processes(init):
    """(pid, cmdline) of every process in the PID namespace of host pid `init`."""
    try:
        ns = os.readlink(f"/proc/{init}/ns/pid")
    except OSError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                out.append((int(entry), f.read().replace(b"\0", b" ").decode().strip()))
        except OSError:
            continue
    return out


def is_program(cmd):
    """`sleep 1000`, by whatever path the tool ran it."""
    argv = cmd.split()
    return len(argv) == 2 and os.path.basename(argv[0]) == "sleep" and argv[1] == "1000"


def programs(init):
    return [pid for pid, cmd in ns_processes(init) if is_program(cmd)]


def own(init):
    return [pid for pid, cmd in ns_processes(init) if cmd and not is_program(cmd)]


def field(pid, path, key):
    try:
        with open(path.format(pid=pid)) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_kib(pids):
    rss = sum(field(p, "/proc/{pid}/status", "VmRSS:") for p in pids)
    private = sum(field(p, "/proc/{pid}/smaps_rollup", "Private_Clean:")
                  + field(p, "/proc/{pid}/smaps_rollup", "Private_Dirty:") for p in pids)
    return rss, private


def switches(pids):
    total = 0
    for p in pids:
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                total += field(t, f"/proc/{p}/task/{{pid}}/status", "voluntary_ctxt_switches:")
                total += field(t, f"/proc/{p}/task/{{pid}}/status", "nonvoluntary_ctxt_switches:")
        except OSError:
            continue
    return total


def wait(check, timeout=30.0):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if check():
            return time.perf_counter()
        # Each look walks /proc (hundreds of processes at N = 200): a tighter loop would take
        # the CPU the tool under test needs on this 2-core machine.
        time.sleep(0.002)
    return None


def service_dirs(tmp, n):
    """n runit/s6 service directories under tmp/svc, each running `sleep 1000`."""
    root = f"{tmp}/svc"
    for i in range(n):
        os.makedirs(f"{root}/p{i:03}")
        with open(f"{root}/p{i:03}/run", "w") as f:
            f.write(f"#!/bin/sh\nexec {SLEEP}\n")
        os.chmod(f"{root}/p{i:03}/run", 0o755)
    return root


def command(tool, tmp, n, bins):
    """The argv of `tool` supervising n programs, and the signal that stops it."""
    if tool == "supd":
        extra = os.environ.get("SUPD_EXTRA", "") + "\n"
        with open(f"{tmp}/supd.toml", "w") as f:
            f.write(f'[supervisor]\nsocket = "{tmp}/supd.sock"\nhttp = ""\n' + extra)
            f.write("".join(f'[program.p{i:03}]\ncommand = "{SLEEP}"\nstartsecs = 0\n' for i in range(n)))
        return [f"{bins['supd']}/supd", "-c", f"{tmp}/supd.toml"], signal.SIGTERM
    if tool == "supervisord":
        with open(f"{tmp}/supervisord.conf", "w") as f:
            f.write(f"[supervisord]\nnodaemon=true\nlogfile={tmp}/sd.log\npidfile={tmp}/sd.pid\n")
            f.write(f"[unix_http_server]\nfile={tmp}/sd.sock\n")
            f.write("[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                    "supervisor.rpcinterface:make_main_rpcinterface\n")
            f.write("".join(f"[program:p{i:03}]\ncommand={SLEEP}\nstartsecs=0\nautorestart=true\n"
                            for i in range(n)))
        return [bins["supervisord"], "-c", f"{tmp}/supervisord.conf"], signal.SIGTERM
    if tool == "s6":
        return ["s6-svscan", service_dirs(tmp, n)], signal.SIGTERM
    if tool == "runit":
        return ["runsvdir", service_dirs(tmp, n)], signal.SIGHUP
    if tool == "horust":
        os.makedirs(f"{tmp}/horust")
        for i in range(n):
            with open(f"{tmp}/horust/p{i:03}.toml", "w") as f:
                f.write(f'command = "/bin/{SLEEP}"\n[restart]\nstrategy = "always"\n')
        return [bins["horust"], "--services-path", f"{tmp}/horust"], signal.SIGTERM
    if tool == "tini":
        return ["tini", "--", *SLEEP.split()], signal.SIGTERM
    return [bins["dumb-init"], *SLEEP.split()], signal.SIGTERM


def measure(tool, n, bins):
    with tempfile.TemporaryDirectory() as tmp:
        argv, stop = command(tool, tmp, n, bins)
        t0 = time.perf_counter()
        proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        init = None

        def up():
            nonlocal init
            if init is None:
                try:
                    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                        kids = f.read().split()
                    init = int(kids[0]) if kids else None
                except OSError:
                    return False
            return init is not None and len(programs(init)) >= n
        at = wait(up)
        if at is None:
            proc.kill()
            proc.wait()
            return None
        launch = at - t0
        time.sleep(1.5)  # past s6's 1 s restart pause, settled
        restarts = []
        # Each kill hits a program that has not died before: a program that dies again soon
        # is a crash loop, which supd (backoff_reset) and s6 hold back on purpose.
        originals = programs(init)
        for victim in originals[:KILLS] if tool not in ("tini", "dumb-init") else []:
            t = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            back = wait(lambda: victim not in (found := programs(init)) and len(found) >= n, timeout=10)
            restarts.append(back - t if back else float("nan"))
            time.sleep(1.2)
        mine = own(init)
        rss, private = memory_kib(mine)
        before = switches(mine)
        time.sleep(IDLE)
        woke = switches(own(init)) - before
        status = status_seconds(tool, tmp, bins)
        t = time.perf_counter()
        os.kill(init, stop)
        try:
            proc.wait(timeout=30)
            stopped = time.perf_counter() - t
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            stopped = float("nan")
        return launch, (statistics.median(restarts) if restarts else None), stopped, rss, private, woke, status


def status_argv(tool, tmp, bins):
    """The tool's own command for one program's status (the client's start included), or None."""
    return {
        "supd": [f"{bins['supd']}/supctl", "-s", f"{tmp}/supd.sock", "status", "p000"],
        "supervisord": [f"{os.path.dirname(bins['supervisord'])}/supervisorctl", "-c", f"{tmp}/supervisord.conf",
                        "status", "p000"],
        "s6": ["s6-svstat", f"{tmp}/svc/p000"],
        "runit": ["sv", "status", f"{tmp}/svc/p000"],
    }.get(tool)


def status_seconds(tool, tmp, bins, runs=5):
    """Median wall time of the status command, in seconds; None where the tool has none. This
    one figure goes through the tool's control interface on purpose: it measures that."""
    argv = status_argv(tool, tmp, bins)
    if argv is None:
        return None
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def size(paths):
    return sum(os.path.getsize(shutil.which(p) or p) for p in paths)


def main():
    args = bench_args()
    venv = os.path.dirname(os.path.abspath(__file__)) + "/.venv/bin"
    bins = {"supd": args.supd, "supervisord": f"{venv}/supervisord", "dumb-init": f"{venv}/dumb-init",
            "horust": shutil.which("horust") or os.path.expanduser("~/.cargo/bin/horust")}
    sizes = {"supd": size([f"{args.supd}/supd"]), "supervisord": None, "s6": size(["s6-svscan", "s6-supervise"]),
             "runit": size(["runsvdir", "runsv"]), "horust": size([bins["horust"]]), "tini": size(["tini"]),
             "dumb-init": size([bins["dumb-init"]])}
    rows = []
    for n in (1, 10, 200):
        for tool in ("supd", "supervisord", "s6", "runit", "horust", "tini", "dumb-init"):
            if n > 1 and tool in ("tini", "dumb-init"):
                continue
            got = measure(tool, n, bins)
            if got is None:
                rows.append((str(n), tool, "did not start them all", "", "", "", "", "", "", ""))
                continue
            launch, restart, stopped, rss, private, woke, status = got
            ms = lambda s: "n/a" if s is None else f"{s * 1000:.1f} ms"
            size_text = "n/a (Python)" if sizes[tool] is None else f"{sizes[tool] / 1e6:.2f} MB"
            rows.append((str(n), tool, ms(launch), ms(restart), ms(stopped), f"{rss / 1024:.1f} MiB",
                         f"{private / 1024:.2f} MiB", str(woke), ms(status), size_text))
            print(rows[-1], flush=True)
    write_table(args.out, ("N", "tool", "launch to all spawned", "kill -9 to replacement", "SIGTERM to empty",
                           "RSS", "private", f"wake-ups in {IDLE} s", "status of one program", "binary"), rows)


if __name__ == "__main__":
    main()
