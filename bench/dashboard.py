"""The dashboard in headless Chromium (Debian's, driven by Playwright): the page's weight (every
byte the browser fetched to show it), its first contentful paint, and the time until the table
shows every program; then supd's CPU while the page stays open with 200 programs (it follows
/events and asks /status every 2 s), beside the same supd with no page open. Writes
bench/results-dashboard.md. Run by bench/run.sh."""
import statistics
import tempfile
import time

from playwright.sync_api import sync_playwright

from common import bench_args, cpu_share, sleepers, write_table
from events import free_port, start

PROGRAMS = 200
LOADS = 5
SECONDS = 20



def main():
    args = bench_args()
    body = sleepers(PROGRAMS)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        proc, pid = start(args.supd, tmp, port, body)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            time.sleep(2)
            paints, tables, weights = [], [], []
            for _ in range(LOADS):
                page = browser.new_context().new_page()
                fetched = []
                page.on("response", lambda r: fetched.append(r))
                t0 = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("#programs tr").nth(PROGRAMS - 1).wait_for()
                tables.append(time.perf_counter() - t0)
                paints.append(page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                # The page and /status (the stream of /events has no end).
                weights.append(sum(len(r.body()) for r in fetched if not r.url.endswith("/events")))
                page.context.close()
            alone = cpu_share(pid, SECONDS)
            page = browser.new_context().new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#programs tr").nth(PROGRAMS - 1).wait_for()
            watched = cpu_share(pid, SECONDS)
        finally:
            browser.close()
            proc.kill()
            proc.wait()
    with open(f"{args.supd}/../../src/api/dashboard/page.html", "rb") as f:
        page_bytes = len(f.read())
    write_table(args.out, ("measure", "supd"), [
        ("the page (HTML, CSS and script in one file, nothing else fetched)", f"{page_bytes / 1024:.1f} KiB"),
        (f"fetched until the table was full: the page and /status with {PROGRAMS} programs (median of {LOADS})",
         f"{statistics.median(weights) / 1024:.1f} KiB"),
        (f"first contentful paint in headless Chromium (median of {LOADS})", f"{statistics.median(paints):.0f} ms"),
        (f"navigation to all {PROGRAMS} rows shown (median of {LOADS})", f"{statistics.median(tables) * 1000:.0f} ms"),
        (f"supd CPU, {PROGRAMS} programs, no page open ({SECONDS} s)", f"{alone * 100:.2f}% of a core"),
        (f"supd CPU, {PROGRAMS} programs, the dashboard open ({SECONDS} s)", f"{watched * 100:.2f}% of a core"),
    ])


if __name__ == "__main__":
    main()
