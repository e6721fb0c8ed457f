#!/usr/bin/env python3
"""PID 1 under hostile conditions, side by side: supd, supd as it was before issue 14 (with
--before DIR, a release build of the earlier commit) and supervisord 4.3.0 where it applies.

- `supctl status` / `supctl health` / `GET /health` p99 (supervisorctl status for
  supervisord) while a client holds 1,000 idle and 1,000 byte-a-second connections open on
  each listener, reconnecting whatever is closed;
- status p99, restarts a second and peak RSS while 200 programs each exit every 100 ms;
- `supd check` of 10,000 programs in a dependency chain, a fan and diamonds;
- wake-ups (context switches) in 30 s after one scrape of /metrics;
- `restart` of a SIGSTOPped program (stopwaitsecs 10);
- status p99 during an orphan storm (100,000 orphans from tests/fixtures/orphans.c).

Latencies are wall time of the client command a user would run (supctl and supervisorctl are
processes of their own); memory and wake-ups are read from /proc. Run by bench/run.sh.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from common import context_switches, memory_mib, wait_until, write_table

STARTED = []


def kill_all():
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def p99(times):
    times = sorted(times)
    return times[max(0, -(-len(times) * 99 // 100) - 1)]


def ms(t):
    return "no answer in 30 s" if t == float("inf") else f"{t * 1000:.1f} ms"


class Supervised:
    """A supervisor run by this script, as `proc`."""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Supd(Supervised):
    def __init__(self, name, bindir, tmp, programs, supervisor_extra=""):
        self.name, self.bindir = name, bindir
        self.sock, self.port = os.path.join(tmp, "supd.sock"), free_port()
        self.conf = os.path.join(tmp, "supd.toml")
        with open(self.conf, "w") as f:
            f.write(f'[supervisor]\nsocket = "{self.sock}"\nhttp = "127.0.0.1:{self.port}"\nlog_level = "warn"\n')
            f.write(supervisor_extra + programs)
        self.proc = subprocess.Popen([os.path.join(bindir, "supd"), "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        STARTED.append(self.proc)
        wait_until("supd's socket", lambda: os.path.exists(self.sock), timeout=30, poll=0.01)
        # A supd that cannot answer under the load it starts with is measured as such.
        self.ctl("pid", timeout=30)

    def ctl(self, *args, timeout=60):
        argv = [os.path.join(self.bindir, "supctl"), "-s", self.sock, "--timeout", str(timeout), *args]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5)
            return out.returncode, out.stdout
        except subprocess.TimeoutExpired:
            return -1, ""

    def http(self, path, timeout=60):
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data


class Supervisord(Supervised):
    name = "supervisord 4.3.0"

    def __init__(self, tmp, programs):
        self.sock = os.path.join(tmp, "supervisor.sock")
        self.conf = os.path.join(tmp, "supervisord.conf")
        with open(self.conf, "w") as f:
            f.write(f"[unix_http_server]\nfile={self.sock}\n[supervisord]\nnodaemon=true\n"
                    f"logfile={tmp}/supervisord.log\npidfile={tmp}/supervisord.pid\nloglevel=warn\n"
                    "[rpcinterface:supervisor]\n"
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
                    f"[supervisorctl]\nserverurl=unix://{self.sock}\n" + programs)
        venv = os.path.dirname(sys.executable)
        self.venv = venv
        self.proc = subprocess.Popen([os.path.join(venv, "supervisord"), "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(self.proc)
        wait_until("supervisord to answer", lambda: self.ctl("pid", timeout=5)[0] == 0, timeout=30, poll=0.05)

    def ctl(self, *args, timeout=60):
        argv = [os.path.join(self.venv, "supervisorctl"), "-c", self.conf, *args]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
            return (0 if out.returncode in (0, 3) else out.returncode), out.stdout
        except subprocess.TimeoutExpired:
            return -1, ""


# ---- idle and slow connections ----------------------------------------------------------------

def attacker(targets, n, stop):
    """Holds n connections to each target open (half idle, half slowloris), reopening what is
    closed, until stop is set."""
    conns = []

    def open_one(target):
        try:
            s = socket.socket(socket.AF_UNIX if isinstance(target, str) else socket.AF_INET)
            s.connect(target)
            s.setblocking(False)
            return s
        except OSError:
            return None

    for target in targets:
        conns += [[target, open_one(target), i >= n // 2] for i in range(n)]
    last = time.time()
    while not stop.is_set():
        byte_due = time.time() - last >= 1
        for c in conns:
            target, s, slow = c
            closed = s is None
            if s is not None:
                try:
                    closed = s.recv(512) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
            if closed:
                if s is not None:
                    s.close()
                c[1] = s = open_one(target)
            if byte_due and slow and s is not None:
                try:
                    s.send(b"G" if not isinstance(target, str) else b"{")
                except OSError:
                    pass
        if byte_due:
            last = time.time()
        time.sleep(0.05)
    for c in conns:
        if c[1] is not None:
            c[1].close()


def timed(f, tries, budget):
    """Times `f` up to `tries` times within `budget` seconds; (p99, count, all succeeded)."""
    times, ok, start = [], True, time.time()
    for _ in range(tries):
        t = time.perf_counter()
        ok &= f()
        times.append(time.perf_counter() - t)
        if time.time() - start > budget:
            break
    return p99(times), len(times), ok


def connections(sup, targets, checks):
    stop = threading.Event()
    thread = threading.Thread(target=attacker, args=(targets, 1000, stop), daemon=True)
    thread.start()
    time.sleep(3)
    results = {name: timed(f, 100, 60) for name, f in checks}
    rss = memory_mib(sup.proc.pid)
    stop.set()
    thread.join()
    return results, rss


def figure(result):
    t, n, ok = result
    return ms(t) + ("" if ok and n >= 100 else f" ({n} tries{'' if ok else ', some failed'})")


# ---- the measures -----------------------------------------------------------------------------

def churners(n):
    return "".join(f'[program.c{i}]\ncommand = ["sleep", "0.1"]\nstartsecs = 0\nautorestart = true\n'
                   'backoff_reset = "50ms"\n' for i in range(n))


def churn(sup, restarts):
    time.sleep(2)
    first, t0 = restarts(), time.time()
    times = []
    while time.time() - t0 < 10:
        t = time.perf_counter()
        if sup.ctl("status", timeout=30)[0] < 0:
            times.append(float("inf"))
            break
        times.append(time.perf_counter() - t)
    last = restarts()
    rate = f"{(last - first) / (time.time() - t0):.0f}" if last else "no answer"
    return p99(times), rate, memory_mib(sup.proc.pid, "VmHWM")


def supd_restarts(sup):
    """Restarts so far, summed over supd's programs (0 when supd does not answer)."""
    code, out = sup.ctl("--json", "status", timeout=30)
    try:
        return sum(p["restarts"] for p in json.loads(out)["programs"])
    except (ValueError, KeyError):
        return 0


def graph_text(shape, n=10_000):
    """n programs in a chain (p0 needs p1 needs p2 …), a fan (all need p0) or diamonds (p{i}
    needs p{2i+1} and p{2i+2})."""
    out = []
    for i in range(n):
        deps = {"chain": [i + 1], "fan": [0] if i else [], "diamond": [2 * i + 1, 2 * i + 2]}[shape]
        names = ", ".join(f'"p{d}"' for d in deps if d < n)
        out.append(f'[program.p{i}]\ncommand = "sleep 60"\nautostart = false\ndepends_on = [{names}]\n')
    return "".join(out)


def graph_reload(bindir, shape):
    """`supctl reload` of 10,000 programs (none running) with one changed, as graph_check's."""
    tmp = tempfile.mkdtemp(prefix="supd-bench-reload-")
    sup = Supd("supd", bindir, tmp, graph_text(shape))
    try:
        with open(sup.conf) as f:
            text = f.read()
        with open(sup.conf, "w") as f:
            f.write(text.replace('[program.p5]\ncommand = "sleep 60"', '[program.p5]\ncommand = "sleep 61"'))
        t = time.perf_counter()
        code, _ = sup.ctl("reload", timeout=60)
        return ms(time.perf_counter() - t) if code == 0 else "failed"
    finally:
        sup.stop()


def graph_check(bindir, tmp, shape):
    """`supd check` of 10,000 programs in `shape` (see graph_text)."""
    path = os.path.join(tmp, f"{shape}.toml")
    with open(path, "w") as f:
        f.write(graph_text(shape))
    t = time.perf_counter()
    try:
        subprocess.run([os.path.join(bindir, "supd"), "check", "-c", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        return ms(time.perf_counter() - t)
    except subprocess.TimeoutExpired:
        return "> 60 s (stopped)"


def wakeups_after_scrape(sup):
    sup.http("/metrics")
    time.sleep(0.5)
    before = context_switches(sup.proc.pid)
    time.sleep(30)
    return str(context_switches(sup.proc.pid) - before)


def frozen_restart(sup, pid_of):
    pid = pid_of()
    os.kill(pid, signal.SIGSTOP)
    t = time.perf_counter()
    sup.ctl("restart", "frozen", timeout=60)
    return ms(time.perf_counter() - t)


def orphan_storm(sup, tmp):
    """supctl status p99 while 100,000 orphans are re-parented to supd and exit; zombies after."""
    helper = os.path.join(tmp, "orphans")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "orphans.c")
    subprocess.run(["gcc", "-O2", "-o", helper, src], check=True)
    subprocess.run([os.path.join(sup.bindir, "supctl"), "-s", sup.sock, "start", "storm"], capture_output=True)
    times = []
    while "EXITED" not in sup.ctl("status", "storm", timeout=30)[1]:
        t = time.perf_counter()
        sup.ctl("status", "calm", timeout=30)
        times.append(time.perf_counter() - t)
    time.sleep(1)
    zombies = 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            zombies += stat[0] == "Z" and int(stat[1]) == sup.proc.pid
        except (OSError, ValueError, IndexError):
            pass
    return f"{ms(p99(times))}, {zombies} zombies after"


def storm_programs(tmp):
    helper = os.path.join(tmp, "orphans")
    return (f'[program.storm]\ncommand = ["{helper}", "100000"]\nstartsecs = 0\nautorestart = false\n'
            'autostart = false\n[program.calm]\ncommand = "sleep 600"\nstartsecs = 0\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True, help="directory with supd and supctl")
    ap.add_argument("--before", help="directory with the supd and supctl of before issue 14")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    builds = [("supd", args.supd)] + ([("supd before", args.before)] if args.before else [])
    columns = {}

    def run(title, make, measure):
        tmp = tempfile.mkdtemp(prefix="supd-bench-hostile-")
        sup = make(tmp)
        try:
            return measure(sup, tmp)
        finally:
            sup.stop()

    one = '[program.a]\ncommand = "sleep 600"\nstartsecs = 0\n'
    frozen = '[program.frozen]\ncommand = "sleep 600"\nstartsecs = 0\n'
    for name, bindir in builds:
        col = columns.setdefault(name, {})
        (res, rss) = run(name, lambda tmp: Supd(name, bindir, tmp, one), lambda s, tmp: connections(
            s, [s.sock, ("127.0.0.1", s.port)],
            [("status", lambda: s.ctl("status", timeout=20)[0] == 0),
             ("health", lambda: s.ctl("health", timeout=20)[0] == 0),
             ("http", lambda: s.http("/health", timeout=20).startswith(b"HTTP/1.1 200"))]))
        col["status"], col["health"], col["http"] = (figure(res[k]) for k in ("status", "health", "http"))
        col["conn_rss"] = f"{rss:.1f} MiB"
        p, rate, hwm = run(name, lambda tmp: Supd(name, bindir, tmp, churners(200)),
                           lambda s, tmp: churn(s, lambda: supd_restarts(s)))
        col["churn_status"], col["churn_rate"], col["churn_rss"] = ms(p), rate, f"{hwm:.1f} MiB"
        for shape in ("chain", "fan", "diamond"):
            col[shape] = graph_check(bindir, tempfile.mkdtemp(prefix="supd-bench-graph-"), shape)
            col[shape + "_reload"] = graph_reload(bindir, shape) if "before" not in name else "not measured"
        col["wakeups"] = run(name, lambda tmp: Supd(name, bindir, tmp, one), lambda s, tmp: wakeups_after_scrape(s))

        def pid_of(s):
            return lambda: int(s.ctl("pid", "frozen")[1].strip())
        col["frozen"] = run(name, lambda tmp: Supd(name, bindir, tmp, frozen),
                            lambda s, tmp: frozen_restart(s, pid_of(s)))
        col["orphans"] = run(name, lambda tmp: Supd(name, bindir, tmp, storm_programs(tmp)), orphan_storm)
        kill_all()
        print(name, col, flush=True)

    col = columns.setdefault("supervisord 4.3.0", {})
    (res, rss) = run("supervisord", lambda tmp: Supervisord(tmp, "[program:a]\ncommand=sleep 600\nstartsecs=0\n"),
                     lambda s, tmp: connections(s, [s.sock], [("status", lambda: s.ctl("status", timeout=20)[0] == 0)]))
    col["status"], col["health"], col["http"], col["conn_rss"] = figure(res["status"]), "n/a", "n/a", f"{rss:.1f} MiB"
    sd_churn = "".join(f"[program:c{i}]\ncommand=sleep 0.1\nstartsecs=0\nautorestart=true\n" for i in range(200))
    # supervisord keeps no restart count, so its rate is not shown.
    p, _, hwm = run("supervisord", lambda tmp: Supervisord(tmp, sd_churn), lambda s, tmp: churn(s, lambda: 0))
    col["churn_status"], col["churn_rate"], col["churn_rss"] = ms(p), "n/a", f"{hwm:.1f} MiB"
    for key in ("chain", "fan", "diamond", "chain_reload", "fan_reload", "diamond_reload"):
        col[key] = "n/a (no dependencies)"
    col["wakeups"] = "n/a (no metrics)"
    col["orphans"] = "n/a (not PID 1 or a subreaper)"

    def sd_pid(s):
        return lambda: int(s.ctl("pid", "frozen")[1].strip())
    col["frozen"] = run("supervisord", lambda tmp: Supervisord(tmp, "[program:frozen]\ncommand=sleep 600\nstartsecs=0\n"),
                        lambda s, tmp: frozen_restart(s, sd_pid(s)))
    kill_all()

    rows = [
        ("status p99, 1,000 idle + 1,000 slow connections on each listener", "< 100 ms", "status"),
        ("`supctl health` p99, same", "< 100 ms", "health"),
        ("`GET /health` p99, same", "< 100 ms", "http"),
        ("RSS during that attack", "bounded", "conn_rss"),
        ("status p99, 200 programs each exiting every 100 ms", "< 200 ms", "churn_status"),
        ("restarts a second, same", "", "churn_rate"),
        ("peak RSS, same", "< 10 MiB", "churn_rss"),
        ("`supd check`, 10,000 programs in a dependency chain", "< 1 s", "chain"),
        ("`supd check`, 10,000 programs in a fan (all need one)", "< 1 s", "fan"),
        ("`supd check`, 10,000 programs in diamonds (binary tree)", "< 1 s", "diamond"),
        ("`supctl reload` of the chain, one program changed", "< 1 s", "chain_reload"),
        ("`supctl reload` of the fan, same", "< 1 s", "fan_reload"),
        ("`supctl reload` of the diamonds, same", "< 1 s", "diamond_reload"),
        ("wake-ups in 30 s after one scrape of /metrics", "0", "wakeups"),
        ("`restart` of a SIGSTOPped program (stopwaitsecs 10)", "", "frozen"),
        ("status p99 while 100,000 orphans exit, and zombies left", "< 50 ms, 0", "orphans"),
    ]
    names = list(columns)
    write_table(args.out, ["measure", "target", *names],
                [(label, target, *(columns[n].get(key, "") for n in names)) for label, target, key in rows])


if __name__ == "__main__":
    try:
        main()
    finally:
        kill_all()
