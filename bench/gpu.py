#!/usr/bin/env python3
"""GPU benchmark for supd (run through bench/run.sh).

- Start-up cost of GPU detection on a machine without NVIDIA's libraries: supd times its own
  detection (the dlopen of libnvidia-ml.so.1 that fails, and the line it logs) and logs it at
  debug level; 20 starts, median and worst.
- Polling cost: supd's CPU share of one core over 30 s with `[gpu] interval = 1` and four
  devices from the fake backend, beside the same supd with polling off.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

from common import supd_status, wait_until, write_table

STARTS = 20
WINDOW = 30


def cpu_ns(pid):
    """Nanoseconds on CPU of every thread of `pid` (schedstat: finer than clock ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total


def config(tmp, interval, programs=10):
    sock = os.path.join(tmp, "supd.sock")
    path = os.path.join(tmp, "supd.toml")
    text = f'[supervisor]\nsocket = "{sock}"\nhttp = ""\nlog_level = "debug"\n[gpu]\ninterval = {interval}\n'
    for i in range(programs):
        text += f'[program.p{i}]\ncommand = ["sleep", "3600"]\nstartsecs = 0\ngpu = "optional"\n'
    with open(path, "w") as f:
        f.write(text)
    return path, sock


def wait_up(sock, n):
    def running():
        try:
            return sum(p["state"] == "RUNNING" for p in supd_status(sock).values()) == n
        except OSError:
            return False

    wait_until("supd", running, timeout=30, poll=0.01)


def detection_ms(bindir, tmp):
    path, sock = config(tmp, 0, programs=1)
    took = []
    for _ in range(STARTS):
        proc = subprocess.Popen([os.path.join(bindir, "supd"), "-c", path], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        wait_up(sock, 1)
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        took.append(float(re.search(r"GPU detection took ([0-9.]+) ms", err).group(1)))
        line = next(l for l in err.splitlines() if "no NVIDIA GPU" in l)
    return statistics.median(took), max(took), line.split("INFO ", 1)[-1]


def polling_share(bindir, tmp, interval):
    fake = os.path.join(tmp, "gpus.json")
    devices = [{"index": i, "name": "Fake H100", "uuid": f"GPU-fake-{i}", "memory_total_bytes": 85899345920,
                "memory_used_bytes": 1 << 30, "utilization_percent": 50, "temperature_celsius": 50} for i in range(4)]
    with open(fake, "w") as f:
        json.dump({"driver": "550.54.15", "devices": devices}, f)
    path, sock = config(tmp, interval)
    env = dict(os.environ, SUPD_GPU_FAKE=fake)
    proc = subprocess.Popen([os.path.join(bindir, "supd"), "-c", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        wait_up(sock, 10)
        time.sleep(1)
        cpu0, t0 = cpu_ns(proc.pid), time.time()
        time.sleep(WINDOW)
        return (cpu_ns(proc.pid) - cpu0) / 1e9 / (time.time() - t0) * 100
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="supd-bench-gpu-")
    median, worst, line = detection_ms(args.supd, tmp)
    polled = polling_share(args.supd, tmp, 1)
    idle = polling_share(args.supd, tmp, 0)
    rows = [
        ("GPU detection at start-up, no NVIDIA library (median / worst of 20)", "< 5 ms",
         f"{median:.2f} ms / {worst:.2f} ms"),
        ("what supd logs then", "one clear line", f"`{line}`"),
        (f"supd CPU, [gpu] interval = 1 s, 4 fake GPUs, 10 programs ({WINDOW} s)", "< 0.2% of one core", f"{polled:.3f}%"),
        ("same with polling off (interval = 0)", "", f"{idle:.3f}%"),
    ]
    write_table(args.out, ("measure", "target", "supd"), rows)


if __name__ == "__main__":
    main()
