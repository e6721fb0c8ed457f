"""What watching costs supd: its CPU with 200 programs while `supctl top` is open (one status
with CPU and memory a second, and the event feed), beside the same supd unwatched; and its
wake-ups once `top` has closed (nothing keeps running for it). supctl top runs in a real
terminal (tmux, 80x24). Writes bench/results-top.md. Run by bench/run.sh."""
import subprocess
import tempfile
import time

from common import bench_args, context_switches, cpu_share, sleepers, wait_until, write_table
from events import free_port, start

PROGRAMS = 200
SECONDS = 20



def main():
    args = bench_args()
    body = sleepers(PROGRAMS)
    with tempfile.TemporaryDirectory() as tmp:
        proc, pid = start(args.supd, tmp, free_port(), body)
        server = f"supd-bench-top-{pid}"
        try:
            time.sleep(2)  # every program up
            alone = cpu_share(pid, SECONDS)
            subprocess.run(["tmux", "-L", server, "new-session", "-d", "-x", "80", "-y", "24",
                            f"{args.supd}/supctl -s {tmp}/supd.sock top"], check=True)
            screen = lambda: subprocess.run(["tmux", "-L", server, "capture-pane", "-p"],
                                            capture_output=True, text=True).stdout
            wait_until("top's table", lambda: "p000" in screen() and "M " in screen(), timeout=10, poll=0.1)
            watched = cpu_share(pid, SECONDS)
            subprocess.run(["tmux", "-L", server, "kill-server"], check=True)
            time.sleep(2)
            before = context_switches(pid)
            time.sleep(10)
            after = context_switches(pid) - before
        finally:
            subprocess.run(["tmux", "-L", server, "kill-server"], stderr=subprocess.DEVNULL)
            proc.kill()
            proc.wait()
    write_table(args.out, ("measure", "supd"), [
        (f"supd CPU, {PROGRAMS} programs, nobody watching ({SECONDS} s)", f"{alone * 100:.2f}% of a core"),
        (f"supd CPU, {PROGRAMS} programs, `supctl top` open ({SECONDS} s)", f"{watched * 100:.2f}% of a core"),
        ("supd wake-ups in 10 s after `top` closed", str(after)),
    ])


if __name__ == "__main__":
    main()
