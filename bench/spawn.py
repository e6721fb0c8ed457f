"""How fast supd spawns, beside the floor of this machine.

supd: N `sleep 1000` programs (startsecs = 0), from its "starting N programs" log line to its
"spawned: pNNN" line for the last one (its own timestamps, written by its log thread; supd is not
asked anything). The floor: glibc's posix_spawn (vfork: it returns once the child has reached
exec) of the same `sleep 1000`, N times from a loop that does nothing else, with no pipes and no
cgroups; and the time until every child has finished its exec (its /proc cmdline says sleep).
N = 10 and 200, five runs each, alternating; medians. --before DIR adds a column for an earlier
build. Writes the table to --out."""
import argparse
import datetime
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time

from common import write_table

RUNS = 5


def supd_spawn_ms(supd, n):
    """Milliseconds from supd's "starting" line to its last program's "spawned" line."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/supd.toml", "w") as f:
            f.write(f'[supervisor]\nsocket = "{tmp}/supd.sock"\nhttp = ""\n')
            f.write("".join(f'[program.p{i:03}]\ncommand = "sleep 1000"\nstartsecs = 0\n' for i in range(n)))
        proc = subprocess.Popen([f"{supd}/supd", "-c", f"{tmp}/supd.toml"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        last = f"spawned: p{n - 1:03} "
        stamps = []
        for line in proc.stdout:
            if re.search(r"starting \d+ programs", line) or last in line:
                stamps.append(datetime.datetime.fromisoformat(line.split()[0].rstrip("Z")))
            if last in line:
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    return (stamps[-1] - stamps[0]).total_seconds() * 1000


def floor_ms(n):
    """(the posix_spawn loop, until every child has exec'd), in milliseconds."""
    t0 = time.perf_counter()
    pids = [os.posix_spawn("/usr/bin/sleep", ["sleep", "1000"], os.environ) for _ in range(n)]
    t1 = time.perf_counter()

    def execd(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().startswith(b"sleep")
        except OSError:
            return False
    while not all(execd(p) for p in pids):
        pass
    t2 = time.perf_counter()
    for p in pids:
        os.kill(p, signal.SIGKILL)
        os.waitpid(p, 0)
    return (t1 - t0) * 1000, (t2 - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True, help="directory with supd")
    ap.add_argument("--before", help="directory with an earlier supd, for a column beside")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    builds = [("before", args.before)] if args.before else []
    builds.append(("supd", args.supd))
    rows = []
    for n in (10, 200):
        got = {name: [] for name, _ in builds}
        loop, execd = [], []
        for _ in range(RUNS):
            for name, path in builds:
                got[name].append(supd_spawn_ms(path, n))
            a, b = floor_ms(n)
            loop.append(a)
            execd.append(b)
        med = lambda v: f"{statistics.median(v):.1f} ms ({min(v):.1f}-{max(v):.1f})"
        row = [str(n)] + [med(got[name]) for name, _ in builds] + [med(loop), med(execd)]
        rows.append(tuple(row))
        print(rows[-1], flush=True)
    head = ["N"] + [("supd before" if name == "before" else "supd") + ": start to last spawn" for name, _ in builds]
    head += ["posix_spawn loop (the floor)", "posix_spawn loop to all exec'd"]
    write_table(args.out, tuple(head), rows)


if __name__ == "__main__":
    main()
