"""Helpers shared by the benchmark scripts: a process's CPU time and memory, and supd's status
over its control socket."""
import json
import os
import socket
import time


def cpu_seconds(pid):
    """User + system CPU seconds of `pid` so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid, seconds):
    """The share of one core `pid` used over the next `seconds` (0.01 is 1%)."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)


def sleepers(n):
    """The TOML of `n` programs that sleep: p000, p001, ..."""
    return "".join(f'[program.p{i:03}]\ncommand = "sleep 1000"\nstartsecs = 0\n' for i in range(n))


def context_switches(pid):
    """Voluntary + involuntary context switches of all of `pid`'s threads so far: its wake-ups."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def memory_mib(pid, field="VmRSS"):
    """A /proc/PID/status memory field in MiB: VmRSS (now) or VmHWM (peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(sock, line):
    """One request line on supd's control socket; the answer line (bytes)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(line)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    return data


def supd_status(sock):
    """supd's programs by name, as its control socket reports them."""
    return {p["name"]: p for p in json.loads(request(sock, b'{"cmd":"status"}\n'))["programs"]}


def wait_until(what, check, timeout=60, poll=0.005):
    """Calls `check` every `poll` seconds until it returns something true, and returns that;
    raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(what)


def write_table(path, header, rows):
    """Writes `rows` (tuples) under `header` (column names) as a markdown table to `path`,
    and prints it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text)


def bench_args():
    """The arguments every side-by-side script takes: --supd DIR (supd and supctl) and --out FILE."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True, help="directory with supd and supctl")
    ap.add_argument("--out", required=True)
    return ap.parse_args()
