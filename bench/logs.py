#!/usr/bin/env python3
"""Log throughput for supd (run through bench/run.sh): 1 GiB of 100-byte lines through one
program's stdout into a log file, beside the same pipeline writing the file itself, beside
supervisord 4.3.0 and beside `dd bs=1M` reading the pipe (a plain large-buffer copier); and
1 GiB through supd's prefixed passthrough (to /dev/null), beside `sed 's/^/gen | /'` doing the
same prefixing and `cat` doing nothing (the most any reader of the pipe gets here). Records each
reader's CPU time per MiB and supd's peak memory (VmHWM), and, as the floor any writer of the
file pays, the kernel's CPU time per MiB for `dd bs=1M` writing 1 GiB of zeros into the same
directory. Each measure is the median of RUNS runs, as this machine's page cache makes single
runs noisy. A supervised run ends when its program signals through a FIFO that it has written
its last byte (and, for a file, when the file holds it all): nothing polls during the run."""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

from common import cpu_seconds, memory_mib, supd_status, wait_until, write_table

GIB = 1 << 30
LINE = "0" * 99  # `yes` adds the newline: 100-byte lines
PRODUCER = f"yes {LINE} | head -c {GIB}"
RUNS = 5


def supd_state(sock, name):
    try:
        return supd_status(sock).get(name, {}).get("state")
    except OSError:
        return None


def finished_producer(tmp):
    """The producer for a supervised program, and a function that blocks until it is done: it
    writes to a FIFO when it has written its last byte, so the run is timed without polling
    the supervisor (which would take CPU from the run on this 2-core machine)."""
    fifo = os.path.join(tmp, "done.fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)

    def done():
        with open(fifo) as f:
            f.read()

    return f"{PRODUCER}; echo > {fifo}", done


def direct(tmp):
    out = os.path.join(tmp, "direct.log")
    t = time.perf_counter()
    subprocess.run(["sh", "-c", f"{PRODUCER} > {out}"], check=True)
    took = time.perf_counter() - t
    os.remove(out)
    return took


def reader(tmp, argv, to_file):
    """The producer piped into `argv` (output to a file in `tmp`, or /dev/null): the wall time
    and the reader's own CPU seconds."""
    out = os.path.join(tmp, "reader.log") if to_file else os.devnull
    with open(out, "wb") as sink:
        t = time.perf_counter()
        producer = subprocess.Popen(["sh", "-c", PRODUCER], stdout=subprocess.PIPE)
        proc = subprocess.Popen(argv, stdin=producer.stdout, stdout=sink)
        producer.stdout.close()
        _, _, usage = os.wait4(proc.pid, 0)
        producer.wait()
        took = time.perf_counter() - t
    proc.returncode = 0  # reaped by wait4 above
    if to_file:
        os.remove(out)
    return took, usage.ru_utime + usage.ru_stime


def floor(tmp):
    """CPU seconds the kernel spends writing 1 GiB into the page cache here, in 1 MiB writes."""
    out = os.path.join(tmp, "floor.log")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["dd", "if=/dev/zero", f"of={out}", "bs=1M", "count=1024", "status=none"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.remove(out)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def settle():
    """Writes back and drops the page cache (root only) so one run's dirty gigabyte does not
    tax the next."""
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    except OSError:
        pass


def median_of(measure):
    """Runs `measure` RUNS times on a settled page cache; the median of each value it returns."""
    runs = []
    for _ in range(RUNS):
        settle()
        runs.append(measure())
    if isinstance(runs[0], tuple):
        return tuple(statistics.median(r[i] for r in runs) for i in range(len(runs[0])))
    return statistics.median(runs)


def supd(bindir, tmp, to_file):
    sock = os.path.join(tmp, "supd.sock")
    log = os.path.join(tmp, "supd-prog.log")
    target = f'stdout_logfile = "{log}"\nstdout_logfile_maxbytes = 0\n' if to_file else ""
    producer, produced = finished_producer(tmp)
    conf = os.path.join(tmp, "supd.toml")
    with open(conf, "w") as f:
        f.write(
            f'[supervisor]\nsocket = "{sock}"\nhttp = ""\nlog_level = "warn"\n'
            f'[program.gen]\ncommand = ["sh", "-c", "{producer}"]\nautostart = false\nstartsecs = 0\n'
            f"autorestart = false\n{target}"
        )
    proc = subprocess.Popen([os.path.join(bindir, "supd"), "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("supd", lambda: supd_state(sock, "gen") == "STOPPED")
        cpu0 = cpu_seconds(proc.pid)
        t = time.perf_counter()
        subprocess.run([os.path.join(bindir, "supctl"), "-s", sock, "start", "gen"], stdout=subprocess.DEVNULL, check=True)
        produced()
        wait_until("the program to finish", lambda: supd_state(sock, "gen") == "EXITED")
        if to_file:
            wait_until("the file", lambda: os.path.getsize(log) >= GIB, timeout=300)
        took = time.perf_counter() - t
        cpu = cpu_seconds(proc.pid) - cpu0
        return took, cpu, memory_mib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if to_file and os.path.exists(log):
            os.remove(log)


def supervisord(tmp):
    sock = os.path.join(tmp, "sv.sock")
    log = os.path.join(tmp, "sv-prog.log")
    conf = os.path.join(tmp, "supervisord.conf")
    producer, produced = finished_producer(tmp)
    with open(conf, "w") as f:
        f.write(
            f"[unix_http_server]\nfile={sock}\n[supervisord]\nnodaemon=true\nlogfile={tmp}/sv.log\npidfile={tmp}/sv.pid\n"
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            f"[program:gen]\ncommand=sh -c '{producer}'\nautostart=false\nstartsecs=0\nautorestart=false\n"
            f"stdout_logfile={log}\nstdout_logfile_maxbytes=0\n"
        )
    venv = os.path.dirname(sys.executable)
    proc = subprocess.Popen([os.path.join(venv, "supervisord"), "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rpc = lambda: xmlrpc.client.ServerProxy("http://x", transport=SupervisorTransport(None, None, f"unix://{sock}"))
    try:
        def up():
            try:
                return rpc().supervisor.getState()["statename"] == "RUNNING"
            except Exception:
                return False
        wait_until("supervisord", up)
        cpu0 = cpu_seconds(proc.pid)
        t = time.perf_counter()
        rpc().supervisor.startProcess("gen", False)
        produced()
        wait_until("the file", lambda: os.path.getsize(log) >= GIB, timeout=300)
        took = time.perf_counter() - t
        return took, cpu_seconds(proc.pid) - cpu0, memory_mib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if os.path.exists(log):
            os.remove(log)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supd", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="supd-bench-logs-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    base = median_of(lambda: direct(tmp))
    least = median_of(lambda: floor(tmp))
    f_took, f_cpu, f_peak = median_of(lambda: supd(args.supd, tmp, to_file=True))
    s_took, s_cpu, s_peak = median_of(lambda: supervisord(tmp))
    p_took, p_cpu, p_peak = median_of(lambda: supd(args.supd, tmp, to_file=False))
    d_took, d_cpu = median_of(lambda: reader(tmp, ["dd", "bs=1M", "iflag=fullblock", "status=none"], to_file=True))
    e_took, e_cpu = median_of(lambda: reader(tmp, ["sed", "s/^/gen | /"], to_file=False))
    c_took, c_cpu = median_of(lambda: reader(tmp, ["cat"], to_file=False))
    per_mib = lambda cpu: f"{cpu / 1024 * 1000:.3f} ms"
    rows = [
        ("1 GiB to a file: the producer writing it itself", "baseline", "", "", f"{base:.2f} s"),
        ("kernel CPU per MiB to write the page cache (dd bs=1M from /dev/zero): the floor", "", "", "",
         per_mib(least)),
        ("1 GiB through the program's stdout to its log file (plain tool: `dd bs=1M` reading the pipe)", "within 10% of baseline",
         f"{f_took:.2f} s ({(f_took / base - 1) * 100:+.0f}%)", f"{s_took:.2f} s ({(s_took / base - 1) * 100:+.0f}%)",
         f"{d_took:.2f} s ({(d_took / base - 1) * 100:+.0f}%)"),
        ("reader CPU per MiB, same", "< 0.3 ms", per_mib(f_cpu), per_mib(s_cpu), per_mib(d_cpu)),
        ("supervisor peak memory (VmHWM), same", "< 8 MiB", f"{f_peak:.1f} MiB", f"{s_peak:.1f} MiB", ""),
        ("1 GiB through the prefixed passthrough to /dev/null (plain tool: `sed` adding the same prefix)", ">= 1 GiB/s",
         f"{1 / p_took:.2f} GiB/s ({p_took:.2f} s)", "n/a", f"{1 / e_took:.2f} GiB/s ({e_took:.2f} s)"),
        ("reader CPU per MiB, same", "", per_mib(p_cpu), "", per_mib(e_cpu)),
        ("supd peak memory (VmHWM), same", "< 8 MiB", f"{p_peak:.1f} MiB", "", ""),
        ("the same 1 GiB read by `cat` to /dev/null: the most any reader gets here", "", "", "",
         f"{1 / c_took:.2f} GiB/s ({c_took:.2f} s), {per_mib(c_cpu)}"),
    ]
    write_table(args.out, ("measure", "target", "supd", "supervisord 4.3.0", "plain tools"), rows)


if __name__ == "__main__":
    main()
