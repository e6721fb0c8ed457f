#!/usr/bin/env python3
"""Health-probe benchmark for supd (run through bench/run.sh).

- 20 programs, each probed over HTTP every second (all against one local server run by this
  script, so only supd's side is measured): supd's CPU share of one core and its memory.
- Probe failure to restart decision: a probed endpoint starts failing; time until supd has
  decided to restart the program (interval 1 s, retries 1), five times.
- /health throughput and p99 latency under wrk on loopback; `supctl health` latency.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import cpu_seconds, memory_mib, supd_status as status, write_table

# The probed endpoints: an asyncio server in a process of its own (so this script's polling
# cannot starve it), answering GET /pN with 500 while the file FAILDIR/pN exists, else 200.
BACKEND = """
import asyncio, os, sys
port, faildir = int(sys.argv[1]), sys.argv[2]
async def handle(reader, writer):
    try:
        line = await reader.readline()
        while (await reader.readline()) not in (b"\\r\\n", b""):
            pass
        name = line.split()[1].decode().lstrip("/")
        code = b"500 Sick" if os.path.exists(os.path.join(faildir, name)) else b"200 OK"
        writer.write(b"HTTP/1.1 " + code + b"\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
        await writer.drain()
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()
asyncio.run(main())
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()

    backend = free_port()
    tmp = tempfile.mkdtemp(prefix="supd-bench-health-")
    server = subprocess.Popen([sys.executable, "-c", BACKEND, str(backend), tmp])
    sock, http_port = os.path.join(tmp, "supd.sock"), free_port()
    with open(os.path.join(tmp, "supd.toml"), "w") as f:
        f.write(f'[supervisor]\nsocket = "{sock}"\nhttp = "127.0.0.1:{http_port}"\nlog_level = "warn"\n')
        for i in range(20):
            f.write(
                f'[program.p{i}]\ncommand = "sleep infinity"\nstartsecs = 0\n'
                f'[program.p{i}.healthcheck]\nhttp = "http://127.0.0.1:{backend}/p{i}"\ninterval = 1\n'
                f'retries = 1\nstart_period = 5\nstart_interval = "200ms"\n'
            )
    proc = subprocess.Popen(
        [os.path.join(args.supd, "supd"), "-c", os.path.join(tmp, "supd.toml")],
        stdout=subprocess.DEVNULL,
    )
    rows = []
    try:
        deadline = time.time() + 30
        while True:
            try:
                if all(p["health"] == "healthy" for p in status(sock).values()):
                    break
            except OSError:
                pass
            assert time.time() < deadline, "programs never turned healthy"
            time.sleep(0.05)

        time.sleep(2)
        cpu0, t0 = cpu_seconds(proc.pid), time.time()
        time.sleep(args.seconds)
        share = (cpu_seconds(proc.pid) - cpu0) / (time.time() - t0) * 100
        rows.append((f"supd CPU, 20 programs probed over HTTP every 1 s ({args.seconds:.0f} s)", "< 1% of a core", f"{share:.2f}%"))
        rows.append(("supd memory, same", "< 6 MiB", f"{memory_mib(proc.pid):.1f} MiB"))

        decisions = []
        for i in range(5):
            name = f"p{i}"
            before = status(sock)[name]["restarts"]
            flag = os.path.join(tmp, name)
            open(flag, "w").close()
            started = time.time()
            while status(sock)[name]["restarts"] == before:
                time.sleep(0.005)
            decisions.append(time.time() - started)
            os.remove(flag)
        rows.append(
            (
                "probe failure to restart decision (interval 1 s, retries 1; worst of 5)",
                "within one interval",
                f"{max(decisions) * 1000:.0f} ms (median {statistics.median(decisions) * 1000:.0f} ms)",
            )
        )

        wrk = subprocess.run(
            # One wrk thread: on a 2-core machine a second one takes supd's core, and p99 then
            # measures the scheduler's time slice rather than supd.
            ["wrk", "-t1", "-c32", "-d10s", "--latency", f"http://127.0.0.1:{http_port}/health"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", wrk)
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        rows.append(("GET /health throughput (wrk, 1 thread, 32 connections)", ">= 20,000 req/s", f"{rps:,.0f} req/s"))
        rows.append(("GET /health p99 latency, same", "< 2 ms", f"{p99_ms:.2f} ms"))

        times = []
        for _ in range(20):
            t = time.perf_counter()
            subprocess.run([os.path.join(args.supd, "supctl"), "-s", sock, "health"], stdout=subprocess.DEVNULL)
            times.append((time.perf_counter() - t) * 1000)
        rows.append(("`supctl health` (median of 20)", "< 5 ms", f"{statistics.median(times):.1f} ms"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.kill()

    write_table(args.out, ("measure", "target", "supd"), rows)


if __name__ == "__main__":
    main()
