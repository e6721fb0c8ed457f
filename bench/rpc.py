"""supervisord's ecosystem, served by supd and by supervisord 4.3.0 side by side, with the same
Python clients: `supervisorctl status` (a process of its own, as users run it) and a
`supervisor.getAllProcessInfo` round trip (one client, connection reused), with 10 and 200
`sleep` programs; the delay from a program's death (kill -9) to an event listener reading its
PROCESS_STATE_EXITED event; and, with --before DIR (a release build from before issue 16), the
binary size and the resident memory this interface and the event listeners add to supd.
Writes bench/results-rpc.md."""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

from common import memory_mib, supd_status, wait_until, write_table

CTL_ROUNDS = 10
RPC_ROUNDS = 200
EVENT_ROUNDS = 30

# An event listener in supervisord's protocol, stdlib only: each event's arrival time
# (CLOCK_MONOTONIC, which every process here shares) and name go to the file argv[1].
LISTENER = r"""
import sys, time
out = open(sys.argv[1], "a", buffering=1)
while True:
    sys.stdout.write("READY\n"); sys.stdout.flush()
    header = dict(f.split(":", 1) for f in sys.stdin.readline().split())
    sys.stdin.read(int(header["len"]))
    out.write(f"{time.monotonic_ns()} {header['eventname']}\n")
    sys.stdout.write("RESULT 2\nOK"); sys.stdout.flush()
"""


def proxy(sock):
    from supervisor.xmlrpc import SupervisorTransport
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{sock}"))


def measure(sock, n):
    """(median supervisorctl status ms, median and p99 getAllProcessInfo ms)."""
    venv = os.path.dirname(sys.executable)
    ctl = []
    # One untimed run first: Python compiles supervisor's modules on the first import.
    subprocess.run([f"{venv}/supervisorctl", "-s", f"unix://{sock}", "status"], stdout=subprocess.DEVNULL)
    for _ in range(CTL_ROUNDS):
        t = time.perf_counter()
        subprocess.run([f"{venv}/supervisorctl", "-s", f"unix://{sock}", "status"], stdout=subprocess.DEVNULL)
        ctl.append((time.perf_counter() - t) * 1000)
    p = proxy(sock)
    rpc = []
    for _ in range(RPC_ROUNDS):
        t = time.perf_counter()
        info = p.supervisor.getAllProcessInfo()
        rpc.append((time.perf_counter() - t) * 1000)
    assert len(info) == n, len(info)
    rpc.sort()
    return statistics.median(ctl), statistics.median(rpc), rpc[int(len(rpc) * 0.99) - 1]


def exited(events):
    """The lines the listener wrote for EXITED events so far."""
    if not os.path.exists(events):
        return []
    with open(events) as f:
        return [line for line in f.read().splitlines() if line.endswith("PROCESS_STATE_EXITED")]


def host_pid(parent, ns_pid):
    """The pid on this host of the child of `parent` whose pid in its namespace is `ns_pid`."""
    with open(f"/proc/{parent}/task/{parent}/children") as f:
        children = f.read().split()
    for child in children:
        with open(f"/proc/{child}/status") as f:
            for line in f:
                if line.startswith("NSpid:") and line.split()[-1] == str(ns_pid):
                    return int(child)
    raise LookupError(f"no child of {parent} is pid {ns_pid} in its namespace")


def event_latency(sock, events, to_host=lambda pid: pid):
    """Median and p99 ms from a kill -9 of `victim` to the listener's reading of its EXITED
    event, over EVENT_ROUNDS kills; `to_host` turns the pid supd reports into this host's."""
    p = proxy(sock)
    delays, last = [], None
    for _ in range(EVENT_ROUNDS):
        def running():
            info = p.supervisor.getProcessInfo("victim")
            return info["statename"] == "RUNNING" and info["pid"] != last and info["pid"]
        last = wait_until("victim running again", running, timeout=30, poll=0.01)
        seen = len(exited(events))
        t0 = time.monotonic_ns()
        os.kill(to_host(last), signal.SIGKILL)

        def arrived():
            lines = exited(events)
            return len(lines) > seen and int(lines[-1].split()[0])
        delays.append((wait_until("the EXITED event", arrived, timeout=30, poll=0.001) - t0) / 1e6)
    delays.sort()
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1]


def supd_child(proc):
    """supd's pid: the child of `unshare`."""
    def child():
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            return f.read().split()
    return int(wait_until("supd under unshare", child)[0])


def run_supd(bindir, tmp, body):
    """supd from `bindir` as PID 1 of a new namespace with config `body` (its socket added)."""
    sock, conf = f"{tmp}/supd.sock", f"{tmp}/supd.toml"
    with open(conf, "w") as f:
        f.write(f'[supervisor]\nsocket = "{sock}"\nhttp = ""\n{body}')
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", f"{bindir}/supd", "-c", conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until("supd's socket", lambda: os.path.exists(sock))
    return proc, sock


def supd_events(bindir, tmp):
    """Event delivery latency under supd."""
    with open(f"{tmp}/listener.py", "w") as f:
        f.write(LISTENER)
    proc, sock = run_supd(bindir, tmp, (
        f'[eventlistener.watch]\ncommand = ["/usr/bin/python3", "{tmp}/listener.py", "{tmp}/events"]\n'
        'events = ["PROCESS_STATE_EXITED"]\nstartsecs = 0\npriority = 1\n'
        '[program.victim]\ncommand = "sleep 1000"\nstartsecs = 0\nautorestart = true\n'
        'backoff_initial = "10ms"\nbackoff_max = "10ms"\ndepends_on = { watch = "started" }\n'))
    try:
        supd = supd_child(proc)
        return event_latency(sock, f"{tmp}/events", lambda pid: host_pid(supd, pid))
    finally:
        proc.kill()
        proc.wait()


def supervisord_events(tmp):
    """Event delivery latency under supervisord."""
    with open(f"{tmp}/listener.py", "w") as f:
        f.write(LISTENER)
    proc, sock = run_supervisord(tmp, (
        f"[eventlistener:watch]\ncommand=/usr/bin/python3 {tmp}/listener.py {tmp}/events\n"
        "events=PROCESS_STATE_EXITED\nstartsecs=0\n"
        "[program:victim]\ncommand=sleep 1000\nstartsecs=0\nautorestart=true\n"))
    try:
        wait_until("supervisord's socket", lambda: os.path.exists(sock), timeout=30)
        return event_latency(sock, f"{tmp}/events")
    finally:
        proc.terminate()
        proc.wait()


def anonymous_mib(pid):
    """The anonymous (heap, stacks: private) part of `pid`'s RSS, in MiB; the rest is mapped
    files, mostly supd's own binary."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
    return 0.0


def footprint(bindir, tmp, listener):
    """(binary bytes, settled RSS MiB, its anonymous part) of supd from `bindir` running 10
    `sleep` programs, and with `listener` an event listener too."""
    body = "".join(f'[program.p{i}]\ncommand = "sleep 1000"\nstartsecs = 0\n' for i in range(10))
    if listener:
        with open(f"{tmp}/listener.py", "w") as f:
            f.write(LISTENER)
        body += (f'[eventlistener.watch]\ncommand = ["/usr/bin/python3", "{tmp}/listener.py", "{tmp}/events"]\n'
                 'events = ["PROCESS_STATE", "TICK_5"]\nstartsecs = 0\n')
    proc, sock = run_supd(bindir, tmp, body)
    try:
        wait_until("supd's programs", lambda: sum(p["state"] == "RUNNING" for p in supd_status(sock).values())
                   == 10 + listener, poll=0.05)
        supd_status(sock)  # one request served, as in use
        time.sleep(1)
        pid = supd_child(proc)
        return os.path.getsize(f"{bindir}/supd"), memory_mib(pid), anonymous_mib(pid)
    finally:
        proc.kill()
        proc.wait()


def bench_supd(bindir, tmp, n):
    body = "".join(f'[program.p{i:03}]\ncommand = "sleep 1000"\nstartsecs = 0\n' for i in range(n))
    proc, sock = run_supd(bindir, tmp, body)
    try:
        wait_until("supd's programs", lambda: len(supd_status(sock)) == n and all(
            p["state"] == "RUNNING" for p in supd_status(sock).values()), poll=0.05)
        return measure(sock, n)
    finally:
        proc.kill()
        proc.wait()


def run_supervisord(tmp, body):
    """supervisord 4.3.0 with `body` after its own sections; (process, socket)."""
    venv = os.path.dirname(sys.executable)
    sock, conf = f"{tmp}/supervisor.sock", f"{tmp}/supervisord.conf"
    with open(conf, "w") as f:
        f.write(f"[unix_http_server]\nfile={sock}\n"
                f"[supervisord]\nnodaemon=true\nlogfile={tmp}/supervisord.log\npidfile={tmp}/supervisord.pid\n"
                "[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n" + body)
    proc = subprocess.Popen([f"{venv}/supervisord", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, sock


def bench_supervisord(tmp, n):
    proc, sock = run_supervisord(tmp, "".join(f"[program:p{i:03}]\ncommand=sleep 1000\nstartsecs=0\n" for i in range(n)))

    def ready():
        try:
            info = proxy(sock).supervisor.getAllProcessInfo()
        except Exception:
            return None
        return len(info) == n and all(p["statename"] == "RUNNING" for p in info) or None

    try:
        wait_until("supervisord's programs", ready, timeout=120, poll=0.05)
        return measure(sock, n)
    finally:
        proc.terminate()
        proc.wait()


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True, help="directory with supd and supctl")
    ap.add_argument("--before", help="directory with a release supd from before issue 16")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    for n in (10, 200):
        with tempfile.TemporaryDirectory() as tmp:
            s_ctl, s_rpc, s_p99 = bench_supd(args.supd, tmp, n)
        with tempfile.TemporaryDirectory() as tmp:
            v_ctl, v_rpc, v_p99 = bench_supervisord(tmp, n)
        rows.append((f"`supervisorctl status`, {n} programs (median of {CTL_ROUNDS})",
                     f"{s_ctl:.1f} ms", f"{v_ctl:.1f} ms"))
        rows.append((f"`getAllProcessInfo` round trip, {n} programs (median / p99 of {RPC_ROUNDS})",
                     f"{s_rpc:.2f} / {s_p99:.2f} ms", f"{v_rpc:.2f} / {v_p99:.2f} ms"))
    with tempfile.TemporaryDirectory() as tmp:
        s_med, s_p99 = supd_events(args.supd, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        v_med, v_p99 = supervisord_events(tmp)
    rows.append((f"kill -9 to the listener reading PROCESS_STATE_EXITED (median / p99 of {EVENT_ROUNDS})",
                 f"{s_med:.2f} / {s_p99:.2f} ms", f"{v_med:.2f} / {v_p99:.2f} ms"))
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            size_before, rss_before, anon_before = footprint(args.before, tmp, False)
        with tempfile.TemporaryDirectory() as tmp:
            size_now, rss_now, anon_now = footprint(args.supd, tmp, False)
        with tempfile.TemporaryDirectory() as tmp:
            _, rss_listener, anon_listener = footprint(args.supd, tmp, True)
        rows.append(("supd binary: before issue 16 → now (added)",
                     f"{size_before:,} → {size_now:,} B (+{(size_now - size_before) / 1000:.0f} KB)", "—"))
        rows.append(("supd RSS, 10 programs: before issue 16 → now (added)",
                     f"{rss_before:.2f} → {rss_now:.2f} MiB ({rss_now - rss_before:+.2f})", "—"))
        rows.append(("  of it anonymous (heap, stacks; the rest is the binary's pages)",
                     f"{anon_before:.2f} → {anon_now:.2f} MiB ({anon_now - anon_before:+.2f})", "—"))
        rows.append(("supd RSS, 10 programs and an event listener on PROCESS_STATE and TICK_5 (anonymous)",
                     f"{rss_listener:.2f} MiB ({anon_listener:.2f}; {anon_listener - anon_before:+.2f} on before)", "—"))
    write_table(args.out, ("measure", "supd", "supervisord 4.3.0"), rows)


if __name__ == "__main__":
    main()
