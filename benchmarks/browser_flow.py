"""Browser-flow benchmark: the demo shop's checkout bought in headless Chromium by the
``browser_flow`` kind, next to the same clicks in a bare Playwright script, one run.

    python benchmarks/browser_flow.py [--runs 10]

What it does, all on this machine:

1. **Target**: the demo shop (``shopwatch.demo.shop``) under uvicorn on loopback, in a
   process of its own, tracking nothing.
2. **Shopwatch**: ``--runs`` runs, one after another, of ``shopwatch/demo/monitors-
   browser.yml`` (six steps: home, product, add to cart, checkout, shipping, pay) by
   :class:`~shopwatch.checks.browser_flow.BrowserFlowKind`, as the server runs it: a
   child process per run, Chromium behind the guarded proxy (loopback allow-listed),
   Web Vitals read before every action, console and request listeners on.
3. **Baseline**: the same six steps as a plain Playwright for Python script (no proxy,
   no vitals, no listeners), also a fresh process and browser per run: what any tool
   that runs a Playwright script per check pays at least.

For each it prints the wall time of a run (median, max) and the CPU seconds per run of
everything it started (``getrusage(RUSAGE_CHILDREN)``: the child, Playwright's driver
and Chromium, which are all waited for). Every Shopwatch run must pass.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shopwatch.checks.browser_flow import BrowserFlowKind, find_chromium  # noqa: E402
from shopwatch.checks.http import Context  # noqa: E402
from shopwatch.checks.monitor import load_monitors  # noqa: E402
from shopwatch.checks.safety import AddressPolicy  # noqa: E402
from shopwatch.demo.runner import BROWSER_MONITORS_FILE  # noqa: E402

SHOP = """
import uvicorn
from shopwatch.demo.incidents import ShopFaults
from shopwatch.demo.shop import create_shop

class Discard:  # a Tracker that keeps nothing (monitor requests are not tracked anyway)
    def send(self, event):
        return str(event["id"])

uvicorn.run(create_shop(Discard(), faults=ShopFaults(), seed=0), host="127.0.0.1",
            port={port}, log_level="warning")
"""

BARE = """
import sys
from playwright.sync_api import sync_playwright
base = sys.argv[1]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=sys.argv[2], args=["--no-sandbox",
                                "--disable-gpu", "--disable-dev-shm-usage"])
    page = browser.new_context(viewport={{"width": 1366, "height": 768}},
                               extra_http_headers={{"X-Shopwatch-Check": "1"}}).new_page()
    page.goto(base + "/"); page.get_by_text("Bean & Leaf").first.wait_for()
    page.goto(base + "/p/kenya-aa"); page.wait_for_selector("form[action='/cart/add'] button")
    page.click("form[action='/cart/add'] button"); page.wait_for_url("**/cart")
    page.click("a[href='/checkout']"); page.wait_for_selector("input[name=name]")
    for name, value in (("name", "Synthetic Shopper"), ("address", "1 Monitor Way"),
                        ("city", "Lyon"), ("country", "FR")):
        page.fill(f"input[name={{name}}]", value)
    page.click("form[action='/checkout/shipping'] button")
    page.wait_for_selector("input[name=card_number]")
    page.fill("input[name=card_number]", "4000 0000 0000 0077")
    page.click("form[action='/checkout/payment'] button"); page.wait_for_url("**/order/*")
    assert "Thank you for your order" in page.inner_text("body")
    browser.close()
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(label: str, runs: int, one: Callable[[], None]) -> None:
    walls, cpus = [], []
    for _ in range(runs):
        cpu0, t0 = children_cpu(), time.perf_counter()
        one()
        walls.append(time.perf_counter() - t0)
        cpus.append(children_cpu() - cpu0)
    print(f"{label:<34} wall median {statistics.median(walls):5.2f} s, max {max(walls):5.2f} s;"
          f" CPU {statistics.mean(cpus):5.2f} s per run")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("no system Chromium on the PATH (apt-get install chromium)")
        return 1
    base = f"http://127.0.0.1:{args.port}"
    shop = subprocess.Popen([sys.executable, "-c", SHOP.replace("{port}", str(args.port))],
                            cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        (monitor,) = load_monitors(BROWSER_MONITORS_FILE)
        context = Context(base_url=base, policy=AddressPolicy.parse(["127.0.0.1"]))
        kind = BrowserFlowKind()
        failed: list[str] = []

        def shopwatch_run() -> None:
            result = kind.run(monitor, context)
            if not result.ok:
                failed.append(result.failure or "failed")

        def bare_run() -> None:
            subprocess.run([sys.executable, "-c", BARE.format(), base, chromium], check=True)

        print(f"{args.runs} runs each of a 6-step checkout on the demo shop ({base}), "
              f"Chromium {chromium}, {len(os.sched_getaffinity(0))} cores")
        shopwatch_run()  # warm the page cache: the first launch reads Chromium from disk
        measure("shopwatch browser_flow", args.runs, shopwatch_run)
        measure("baseline: bare Playwright script", args.runs, bare_run)
        if failed:
            print(f"FAILED runs: {len(failed)}: {failed[0]}")
            return 1
        return 0
    finally:
        shop.terminate()
        shop.wait(10)


if __name__ == "__main__":
    sys.exit(main())
