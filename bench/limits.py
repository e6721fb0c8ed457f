"""How fast an OOM kill at memory_max shows: a program under `memory_max = "64MB"` writes the
time and at once allocates 256 MiB; the kernel OOM-kills it in its cgroup (v1 or v2, whichever
this machine offers) and supd reports it. Measured from the program's timestamp to the moment
`supctl events` prints the `memory oom_kill` change, and to `supctl status` showing `OOM
killed`; median of 5 kills. Writes bench/results-limits.md. Run by bench/run.sh."""
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time

from common import bench_args, wait_until, write_table
from events import free_port, start

KILLS = 5


def main():
    args = bench_args()
    to_event, to_status = [], []
    with tempfile.TemporaryDirectory() as tmp:
        stamp = f"{tmp}/stamp"
        body = ('[program.hog]\ncommand = ["/usr/bin/python3", "-c", "import time, os; '
                f"open('{stamp}.tmp', 'w').write(repr(time.time())); os.rename('{stamp}.tmp', '{stamp}'); "
                "x = b'x' * (256 << 20); time.sleep(1000)\"]\n"
                'startsecs = 0\nautostart = false\nautorestart = false\nmemory_max = "64MB"\n')
        proc, _ = start(args.supd, tmp, free_port(), body)
        ctl = [f"{args.supd}/supctl", "-s", f"{tmp}/supd.sock"]
        try:
            for _ in range(KILLS):
                if os.path.exists(stamp):
                    os.unlink(stamp)
                follower = subprocess.Popen(ctl + ["events", "--json"], stdout=subprocess.PIPE, text=True)
                seen = {}

                def read():
                    for line in follower.stdout:
                        change = json.loads(line)
                        if change.get("kind") == "memory" and change.get("to") == "oom_kill":
                            seen["at"] = time.time()
                            return
                reader = threading.Thread(target=read)
                reader.start()
                time.sleep(0.3)  # the follower connected
                subprocess.run(ctl + ["start", "hog"], capture_output=True)

                def oom_in_status():
                    out = subprocess.run(ctl + ["status", "hog"], capture_output=True, text=True).stdout
                    return time.time() if "OOM killed" in out else None
                shown = wait_until("OOM in status", oom_in_status, timeout=30, poll=0.001)
                reader.join(timeout=10)
                follower.kill()
                began = float(open(stamp).read())
                to_event.append(seen["at"] - began)
                to_status.append(shown - began)
        finally:
            # A shutdown, not a kill: supd removes the cgroups it made.
            subprocess.run(ctl + ["shutdown"], capture_output=True)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    write_table(args.out, ("measure", "supd"), [
        (f"allocation over memory_max to the `memory oom_kill` event (median of {KILLS})",
         f"{statistics.median(to_event) * 1000:.0f} ms"),
        (f"allocation over memory_max to `supctl status` saying OOM killed (median of {KILLS})",
         f"{statistics.median(to_status) * 1000:.0f} ms"),
    ])


if __name__ == "__main__":
    main()
