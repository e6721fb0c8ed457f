"""supervisord's XML-RPC interface, served by supd and by supervisord 4.3.0 side by side, with
the same Python client: `supervisorctl status` (a process of its own, as users run it) and a
`supervisor.getAllProcessInfo` round trip (one client, connection reused), with 10 and 200
`sleep` programs. Writes bench/results-rpc.md."""
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

from common import bench_args, supd_status, wait_until, write_table

CTL_ROUNDS = 10
RPC_ROUNDS = 200


def proxy(sock):
    from supervisor.xmlrpc import SupervisorTransport
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{sock}"))


def measure(sock, n):
    """(median supervisorctl status ms, median and p99 getAllProcessInfo ms)."""
    venv = os.path.dirname(sys.executable)
    ctl = []
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


def bench_supd(bindir, tmp, n):
    sock, conf = f"{tmp}/supd.sock", f"{tmp}/supd.toml"
    with open(conf, "w") as f:
        f.write(f'[supervisor]\nsocket = "{sock}"\nhttp = ""\n')
        for i in range(n):
            f.write(f'[program.p{i:03}]\ncommand = "sleep 1000"\nstartsecs = 0\n')
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", f"{bindir}/supd", "-c", conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("supd's programs", lambda: os.path.exists(sock) and len(supd_status(sock)) == n and all(
            p["state"] == "RUNNING" for p in supd_status(sock).values()), poll=0.05)
        return measure(sock, n)
    finally:
        proc.kill()
        proc.wait()


def bench_supervisord(tmp, n):
    venv = os.path.dirname(sys.executable)
    sock, conf = f"{tmp}/supervisor.sock", f"{tmp}/supervisord.conf"
    with open(conf, "w") as f:
        f.write(f"[unix_http_server]\nfile={sock}\n"
                f"[supervisord]\nnodaemon=true\nlogfile={tmp}/supervisord.log\npidfile={tmp}/supervisord.pid\n"
                "[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n")
        for i in range(n):
            f.write(f"[program:p{i:03}]\ncommand=sleep 1000\nstartsecs=0\n")
    proc = subprocess.Popen([f"{venv}/supervisord", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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
    args = bench_args()
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
    write_table(args.out, ("measure", "supd", "supervisord 4.3.0"), rows)


if __name__ == "__main__":
    main()
