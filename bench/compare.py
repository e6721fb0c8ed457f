#!/usr/bin/env python3
"""supd, supervisord 4.3.0 and tini side by side: start, restart, memory, idle wake-ups, stop,
and the status command. Run through bench/run.sh, which installs the peers.

Each supervisor runs as a child of this script (supd then makes itself a child subreaper),
supervising `sleep` programs with startsecs=0. States are polled in-process over each one's
own API (supd: JSON on its unix socket; supervisord: XML-RPC on its unix socket) every 0.2 ms,
so the figures carry at most that much polling error.
"""
import argparse
import atexit
import datetime
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

from common import wait_until

POLL = 0.0002
STARTED = []  # every supervisor started, killed at exit even when a measurement fails


@atexit.register
def _kill_leftovers():
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def context_switches(pid):
    """Voluntary + involuntary context switches over every thread: each one is a wake-up."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
    return total


class Supd:
    name = "supd"

    def __init__(self, bindir, tmp, n):
        self.bindir, self.sock = bindir, os.path.join(tmp, "supd.sock")
        conf = os.path.join(tmp, "supd.toml")
        with open(conf, "w") as f:
            f.write(f'[supervisor]\nsocket = "{self.sock}"\nhttp = ""\nlog_level = "warn"\n')
            for i in range(n):
                f.write(f'[program.p{i}]\ncommand = "sleep infinity"\nstartsecs = 0\n')
        self.argv = [os.path.join(bindir, "supd"), "-c", conf]
        self.ctl = [os.path.join(bindir, "supctl"), "-s", self.sock, "status"]

    def states(self):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(self.sock)
                s.sendall(b'{"cmd":"status"}\n')
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            return {p["name"]: (p["state"], p["pid"]) for p in json.loads(data)["programs"]}
        except (OSError, ValueError):
            return None


class Supervisord:
    name = "supervisord 4.3.0"

    def __init__(self, bindir, tmp, n):
        self.sock = os.path.join(tmp, "supervisor.sock")
        conf = os.path.join(tmp, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(
                f"[unix_http_server]\nfile={self.sock}\n"
                f"[supervisord]\nnodaemon=true\nlogfile={tmp}/supervisord.log\npidfile={tmp}/supervisord.pid\n"
                "[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
                f"[supervisorctl]\nserverurl=unix://{self.sock}\n"
            )
            for i in range(n):
                f.write(f"[program:p{i}]\ncommand=sleep infinity\nstartsecs=0\nautorestart=true\n")
        venv = os.path.dirname(sys.executable)
        self.argv = [os.path.join(venv, "supervisord"), "-c", conf]
        self.ctl = [os.path.join(venv, "supervisorctl"), "-c", conf, "status"]

    def states(self):
        # A fresh transport each time: supervisor's keeps one connection that wedges after an error.
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{self.sock}"))
        try:
            return {p["name"]: (p["statename"], p["pid"]) for p in proxy.supervisor.getAllProcessInfo()}
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError, http.client.HTTPException):
            return None


class Tini:
    """tini supervises one command and restarts nothing; measured where that makes sense."""

    name = "tini"
    ctl = None

    def __init__(self, bindir, tmp, n):
        self.argv = ["tini", "-s", "--", "sleep", "infinity"]

    def states(self):
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        return {"p0": ("RUNNING", int(kids[0]))} if kids else None


def start(kind, bindir, n):
    tmp = tempfile.mkdtemp(prefix="supd-bench-")
    sup = kind(bindir, tmp, n)
    want = 1 if kind is Tini else n
    t0 = time.perf_counter()
    sup.proc = subprocess.Popen(sup.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(sup.proc)
    wait_until(
        f"{sup.name}: {want} programs RUNNING",
        lambda: (s := sup.states()) and sum(1 for st, _ in s.values() if st == "RUNNING") == want,
        timeout=30,
        poll=POLL,
    )
    sup.launch_ms = (time.perf_counter() - t0) * 1000
    return sup


def stop(sup):
    t0 = time.perf_counter()
    sup.proc.send_signal(signal.SIGTERM)
    sup.proc.wait(timeout=30)
    return (time.perf_counter() - t0) * 1000


def restart_ms(sup, trials=5):
    """kill -9 of a RUNNING program until its replacement is RUNNING; a fresh program each
    trial, so each restart is the first after a stable run."""
    times = []
    for i in range(trials):
        name = f"p{i}"
        _, old = sup.states()[name]
        t0 = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        restarted = lambda: (s := sup.states()) and s[name][0] == "RUNNING" and s[name][1] != old
        wait_until(f"{sup.name}: {name} restarted", restarted, timeout=30, poll=POLL)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def ctl_ms(sup, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(sup.ctl, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True, help="directory with supd and supctl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle to count wake-ups over")
    args = ap.parse_args()
    kinds = [Supd, Supervisord, Tini]
    r = {k.name: {} for k in kinds}

    # 10 programs: launch, restart, memory, idle wake-ups, status command, stop. The three run
    # side by side so the idle window is shared.
    sups = [start(k, args.supd, 10) for k in kinds]
    for s in sups:
        r[s.name]["launch"] = f"{s.launch_ms:.1f} ms" + (" (1 program)" if s.name == "tini" else "")
    time.sleep(1.0)
    for s in sups:
        r[s.name]["rss10"] = f"{rss_kib(s.proc.pid) / 1024:.1f} MiB" + (" (1 program)" if s.name == "tini" else "")
    before = {s.name: context_switches(s.proc.pid) for s in sups}
    time.sleep(args.idle)
    for s in sups:
        r[s.name]["idle"] = str(context_switches(s.proc.pid) - before[s.name])
    for s in sups:
        if s.name != "tini":
            r[s.name]["restart"] = f"{restart_ms(s):.1f} ms"
            r[s.name]["ctl"] = f"{ctl_ms(s, 20 if s.name == 'supd' else 5):.1f} ms"
    time.sleep(0.5)
    for s in sups:
        r[s.name]["stop"] = f"{stop(s):.1f} ms" + (" (1 program)" if s.name == "tini" else "")

    # 200 programs: memory.
    for k in (Supd, Supervisord):
        s = start(k, args.supd, 200)
        time.sleep(1.0)
        r[s.name]["rss200"] = f"{rss_kib(s.proc.pid) / 1024:.1f} MiB"
        r[s.name]["launch200"] = f"{s.launch_ms:.1f} ms"
        stop(s)

    rows = [
        ("launch to all 10 programs RUNNING (startsecs=0)", "≤ 15 ms", "launch"),
        ("launch to all 200 programs RUNNING", "", "launch200"),
        ("kill -9 to replacement RUNNING (median of 5)", "≤ 5 ms", "restart"),
        ("resident memory, 10 programs", "≤ 4 MiB", "rss10"),
        ("resident memory, 200 programs", "≤ 6 MiB", "rss200"),
        (f"wake-ups while idle for {args.idle:.0f} s (context switches)", "0", "idle"),
        ("SIGTERM to exit, cooperative programs", "≤ 10 ms", "stop"),
        ("`status` command (supctl / supervisorctl, median)", "≤ 5 ms", "ctl"),
    ]
    head = "| measure | target | " + " | ".join(k.name for k in kinds) + " |"
    lines = [head, "|" + "---|" * (len(kinds) + 2)]
    for label, target, key in rows:
        lines.append(f"| {label} | {target} | " + " | ".join(r[k.name].get(key, "n/a") for k in kinds) + " |")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    machine = f"{os.cpu_count()} cores, Linux {platform.release()}, {when}"
    text = f"Measured by bench/run.sh on {machine}.\n\n" + "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
