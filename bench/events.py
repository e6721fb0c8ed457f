"""The cost of supd's live feed (`GET /events`) during a restart storm: 50 programs that each
exit 50 ms after they start and are restarted at once, with no follower and with 10 followers
reading the stream; supd's CPU
per second of storm (from /proc), the events each follower got, and `GET /health`'s p99 while
it runs. Also: an idle supd with followers attached makes no wake-ups (the feed runs no
timer). Writes bench/results-events.md. Run by bench/run.sh."""
import argparse
import os
import subprocess
import socket
import statistics
import tempfile
import threading
import time

from common import context_switches, cpu_seconds, wait_until, write_table
from rpc import run_supd, supd_child

PROGRAMS = 50
STORM_SECONDS = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def follow(port, counts, i, stop):
    """Reads /events until `stop`, counting events into counts[i]."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            counts[i] = -counts[i] - 1  # dropped by supd: negative, and counted once
            break
        counts[i] += data.count(b"\nevent: ")
    s.close()


def health_times(port, stop, times):
    while not stop.is_set():
        t = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            while s.recv(65536):
                pass
        times.append(time.perf_counter() - t)
        time.sleep(0.05)


def start(bindir, tmp, port, body):
    """supd from `bindir` as PID 1 of a new namespace, its HTTP listener on `port`; (process,
    supd's pid) once the listener answers."""
    conf = f"{tmp}/supd.toml"
    with open(conf, "w") as f:
        f.write(f'[supervisor]\nsocket = "{tmp}/supd.sock"\nhttp = "127.0.0.1:{port}"\n{body}')
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", f"{bindir}/supd", "-c", conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = supd_child(proc)
    wait_until("supd's http listener", lambda: connects(port))
    return proc, pid


def connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def with_followers(port, n, work, health=True):
    """Runs `work()` while `n` clients follow /events and, with `health`, one asks /health every
    50 ms; (what `work` returned, the median of events each follower got, /health's p99 in
    seconds)."""
    stop = threading.Event()
    counts, times = [0] * n, []
    threads = [threading.Thread(target=follow, args=(port, counts, i, stop)) for i in range(n)]
    if health:
        threads.append(threading.Thread(target=health_times, args=(port, stop, times)))
    for t in threads:
        t.start()
    try:
        result = work()
    finally:
        stop.set()
        for t in threads:
            t.join()
    times.sort()
    p99 = times[max(0, len(times) * 99 // 100 - 1)] if times else float("nan")
    dropped = sum(1 for c in counts if c < 0)
    got = [c if c >= 0 else -c - 1 for c in counts]
    return result, ((statistics.median(got) if got else 0), dropped), p99


def storm(bindir, followers):
    """(supd's CPU share, events per follower a second, /health p99) during the storm."""
    port = free_port()
    body = "".join(
        f'[program.p{i:02}]\ncommand = ["sh", "-c", "sleep 0.05; exit 1"]\nstartsecs = 0\n'
        'autorestart = true\nbackoff_initial = "1ms"\nbackoff_max = "1ms"\n' for i in range(PROGRAMS))
    with tempfile.TemporaryDirectory() as tmp:
        proc, pid = start(bindir, tmp, port, body)
        try:
            time.sleep(1)  # the storm under way

            def measure():
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                time.sleep(STORM_SECONDS)
                return (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
            cpu, (events, dropped), p99 = with_followers(port, followers, measure)
            return cpu, events / STORM_SECONDS, dropped, p99
        finally:
            proc.kill()
            proc.wait()


def idle_wakeups(bindir, followers):
    """supd's context switches in 10 s, idle with 10 sleeping programs and `followers`."""
    port = free_port()
    body = "".join(f'[program.p{i}]\ncommand = "sleep 1000"\nstartsecs = 0\n' for i in range(10))
    with tempfile.TemporaryDirectory() as tmp:
        proc, pid = start(bindir, tmp, port, body)
        try:
            time.sleep(2)

            def measure():
                time.sleep(1)  # the followers connected
                before = context_switches(pid)
                time.sleep(10)
                return context_switches(pid) - before
            woke, _, _ = with_followers(port, followers, measure, health=False)
            return woke
        finally:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    for n in (0, 10):
        cpu, per, dropped, p99 = storm(args.supd, n)
        rows.append((f"restart storm ({PROGRAMS} programs exiting 50 ms after each start), {n} followers of /events",
                     f"{cpu * 100:.1f}% of a core", f"{per:.0f}/s ({dropped} of {n} dropped as too slow)" if n else "—", f"{p99 * 1000:.1f} ms"))
    for n in (0, 10):
        rows.append((f"idle, 10 programs, {n} followers: supd's wake-ups in 10 s", str(idle_wakeups(args.supd, n)),
                     "—", "—"))
    write_table(args.out, ("measure", "supd CPU", "events per follower", "GET /health p99"), rows)


if __name__ == "__main__":
    main()
