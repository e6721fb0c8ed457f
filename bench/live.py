"""Operating live with 200 programs: a reload that changes one program (supd's `supctl reload`
beside supervisord 4.3.0's `supervisorctl update`), and `GET /metrics` (supd only: supervisord
has none). Each supervisor runs 200 `sleep` programs; after the change the script counts how
many program pids changed. Writes bench/results-live.md."""
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

from common import bench_args, request, supd_status, wait_until, write_table

N = 200
ROUNDS = 5


def supd_config(path, sock, port, changed):
    with open(path, "w") as f:
        f.write(f'[supervisor]\nsocket = "{sock}"\nhttp = "127.0.0.1:{port}"\n')
        for i in range(N):
            arg = 2000 + changed if i == 0 else 1000
            f.write(f'[program.p{i:03}]\ncommand = "sleep {arg}"\nstartsecs = 0\n')


def bench_supd(bindir, tmp):
    sock, port, conf = f"{tmp}/supd.sock", 19000 + os.getpid() % 1000, f"{tmp}/supd.toml"
    supd_config(conf, sock, port, 0)
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", f"{bindir}/supd", "-c", conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("supd's programs", lambda: os.path.exists(sock) and all(
            p["state"] == "RUNNING" for p in supd_status(sock).values()) and len(supd_status(sock)) == N, poll=0.05)
        times, touched = [], []
        for r in range(1, ROUNDS + 1):
            before = {n: p["pid"] for n, p in supd_status(sock).items()}
            supd_config(conf, sock, port, r)
            t = time.perf_counter()
            answer = request(sock, b'{"cmd":"reload"}\n')
            times.append((time.perf_counter() - t) * 1000)
            assert b'"changed":["p000"]' in answer, answer
            wait_until("p000 to run again", lambda: supd_status(sock)["p000"]["state"] == "RUNNING", poll=0.05)
            after = {n: p["pid"] for n, p in supd_status(sock).items()}
            touched.append(sum(before[n] != after[n] for n in before))
        scrape = []
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(201):
            t = time.perf_counter()
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
            if i:  # the first scrape starts the sampler and waits for its first sample
                scrape.append((time.perf_counter() - t) * 1000)
        assert b"supd_program_up" in body
        return times, touched, scrape, len(body)
    finally:
        proc.kill()
        proc.wait()


def supervisord_config(path, tmp, changed):
    sock = f"{tmp}/supervisor.sock"
    with open(path, "w") as f:
        f.write(
            f"[unix_http_server]\nfile={sock}\n"
            f"[supervisord]\nnodaemon=true\nlogfile={tmp}/supervisord.log\npidfile={tmp}/supervisord.pid\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            f"[supervisorctl]\nserverurl=unix://{sock}\n")
        for i in range(N):
            arg = 2000 + changed if i == 0 else 1000
            f.write(f"[program:p{i:03}]\ncommand=sleep {arg}\nstartsecs=0\n")
    return sock


def bench_supervisord(tmp):
    from supervisor.xmlrpc import SupervisorTransport
    venv = os.path.dirname(sys.executable)
    conf = f"{tmp}/supervisord.conf"
    sock = supervisord_config(conf, tmp, 0)
    proc = subprocess.Popen([f"{venv}/supervisord", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pids():
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{sock}"))
        try:
            info = proxy.supervisor.getAllProcessInfo()
        except Exception:
            return None
        if len(info) == N and all(p["statename"] == "RUNNING" for p in info):
            return {p["name"]: p["pid"] for p in info}
        return None

    try:
        wait_until("supervisord's programs", pids, timeout=120, poll=0.05)
        times, touched = [], []
        for r in range(1, ROUNDS + 1):
            before = pids()
            supervisord_config(conf, tmp, r)
            t = time.perf_counter()
            subprocess.run([f"{venv}/supervisorctl", "-c", conf, "update"], check=True, stdout=subprocess.DEVNULL)
            times.append((time.perf_counter() - t) * 1000)
            after = wait_until("p000 to run again", pids, timeout=60, poll=0.05)
            touched.append(sum(before[n] != after.get(n) for n in before))
        return times, touched
    finally:
        proc.terminate()
        proc.wait()


def main():
    args = bench_args()
    with tempfile.TemporaryDirectory() as tmp:
        times, touched, scrape, size = bench_supd(args.supd, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        sv_times, sv_touched = bench_supervisord(tmp)
    med = statistics.median
    p99 = lambda xs: sorted(xs)[int(len(xs) * 0.99) - 1]
    rows = [
        ("reload, 200 programs, 1 changed (median of 5; target < 50 ms)",
         f"{med(times):.1f} ms (max {max(times):.1f})", f"{med(sv_times):.0f} ms (`supervisorctl update`)"),
        ("program pids changed by that reload (target 1)", f"{max(touched)}", f"{max(sv_touched)}"),
        ("GET /metrics, 200 programs (median / p99 of 200; target < 5 ms)",
         f"{med(scrape):.2f} / {p99(scrape):.2f} ms ({size // 1024} KiB)", "n/a (no metrics)"),
    ]
    write_table(args.out, ("", "supd", "supervisord 4.3.0"), rows)


if __name__ == "__main__":
    main()
