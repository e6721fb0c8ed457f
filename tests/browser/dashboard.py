"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): the page served
by the authenticated rpc listener sees a program go FATAL and come back, restarts it with its
button and shows the new pid; the public listener's page has no buttons and no output. Run by
tests/supd/dashboard.rs, which starts supd; a failed expectation exits non-zero.

Arguments: RPC_URL HTTP_URL USER PASSWORD SUPCTL SOCKET FLAG SCREENSHOT."""
import subprocess
import sys

from playwright.sync_api import expect, sync_playwright

rpc_url, http_url, user, password, supctl, sock, flag, screenshot = sys.argv[1:9]
WAIT = 10_000  # ms


def row(page, name):
    return page.locator(f'tr[data-name="{name}"]')


def ctl(*args):
    return subprocess.run([supctl, "-s", sock, *args], capture_output=True, text=True)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_context(http_credentials={"username": user, "password": password},
                               viewport={"width": 1000, "height": 640}).new_page()
    page.on("dialog", lambda d: d.accept())  # the confirmation of each button
    page.goto(rpc_url)
    expect(row(page, "web").locator(".state")).to_have_text("RUNNING", timeout=WAIT)
    # A click on a row follows its output.
    row(page, "web").click()
    expect(page.locator("#log")).to_contain_text("web says hello", timeout=WAIT)

    assert ctl("start", "doomed").returncode == 7
    expect(row(page, "doomed").locator(".state")).to_have_text("FATAL", timeout=WAIT)
    open(flag, "w").close()  # now it can run
    row(page, "doomed").locator('button[data-act="restart"]').click()
    expect(row(page, "doomed").locator(".state")).to_have_text("RUNNING", timeout=WAIT)
    pid = ctl("pid", "doomed").stdout.strip()
    assert pid.isdigit() and pid != "0", pid
    expect(row(page, "doomed").locator(".pid")).to_have_text(pid, timeout=WAIT)
    expect(page.locator("#message")).to_contain_text("doomed", timeout=WAIT)
    expect(page.locator("#log")).to_contain_text("web says hello")
    page.screenshot(path=screenshot)

    # The public listener: the same table, read-only, and no output.
    public = browser.new_context().new_page()
    public.goto(http_url)
    expect(row(public, "doomed").locator(".state")).to_have_text("RUNNING", timeout=WAIT)
    expect(row(public, "doomed").locator(".pid")).to_have_text(pid, timeout=WAIT)
    expect(public.locator("button[data-act]")).to_have_count(0)
    expect(public.locator("#log")).to_contain_text("not served", timeout=WAIT)
    # A phone's width: the table still fits without the wide columns.
    public.set_viewport_size({"width": 390, "height": 700})
    assert public.evaluate("document.documentElement.scrollWidth") <= 390
    browser.close()
print("dashboard: ok")
