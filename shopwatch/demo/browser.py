"""A scripted Chromium shopping in the demo shop, so real-user monitoring gets real beacons.

When a system Chromium (``chromium`` or ``chromium-browser`` on the ``PATH``; a browser
is never downloaded) and Playwright are both present, ``shopwatch demo`` runs this
module as a child process (``python -m shopwatch.demo.browser``). Every few seconds it
visits the shop like a shopper — the home page, a category, a product, often the cart,
sometimes the checkout and the payment — in a fresh browser context (a new shop
session) with a phone or desktop viewport. The shop's pages carry the RUM snippet, so
each visit sends real beacons: navigation timings, Web Vitals, the images that fail
while the image host is down, the long first byte of checkout pages while checkout is
slow, all joined to the visit's server-side events by the shop's session id.

User agent: Chromium is launched with ``--user-agent=`` set to an ordinary Chrome's
(desktop Linux, or Android for phones; one browser process per kind), so Shopwatch does
not file the visits as a headless bot. A context's own user agent would not do: the
beacons sent while a page unloads carry the browser-wide one.

Why a child process, in its own session: Ctrl-C in a terminal signals the whole
foreground process group, and Playwright's driver and Chromium would die mid-visit.
Instead the demo closes the child's standard input when it stops; the child ends the
visit under way (so an order it is placing is reported), closes Chromium and exits. Its
Playwright traffic also stays off the demo's event loop, which answers the shop's
requests (and so the timings the beacons measure).

The child reports on standard output, one JSON object a line: ``{"started": version}``,
``{"visit": session_id, "device": "mobile"|"desktop"}``, ``{"order": order_id}``,
``{"declined": reason}`` and ``{"note": text}`` (something went wrong; said once).
Playwright's and Chromium's own messages go to standard error, which the demo appends
to ``demo-browser.log`` in the data directory. Nothing here can stop the demo: without
Chromium or Playwright it says so in one line and the demo carries on without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from shopwatch.checks.browser_flow import CHROMIUM_FLAGS, find_chromium, unavailable

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Playwright

    from shopwatch.demo.simulator import Summary

log = logging.getLogger(__name__)

USER_AGENTS: Final = {
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/{major}.0.0.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
              "Gecko) Chrome/{major}.0.0.0 Mobile Safari/537.36",
}
DESKTOP_VIEWPORTS: Final = ((1366, 768), (1440, 900), (1536, 864), (1920, 1080))
MOBILE_SHARE: Final = 0.55
LOCALES: Final = ("fr-FR", "de-DE", "en-GB", "en-US", "es-ES", "it-IT")
CARD: Final = "4242424242424242"  # an ordinary card: approved but for the sandbox's ~6 %
CAMPAIGN: Final = "?utm_source=newsletter&utm_medium=email&utm_campaign=weekly-deals"
STEP_TIMEOUT_MS: Final = 20_000
MAX_FAILURES: Final = 5  # visits failing in a row before the browser gives up
MAX_SESSIONS_KEPT: Final = 500
STOP_GRACE: Final = 45.0  # seconds the demo waits for the visit under way to end


# --- in the demo's process ---------------------------------------------------------------


@dataclass
class BrowserReport:
    """What the scripted browser did, for ``demo-summary.json``."""

    status: str = "not started"
    visits: int = 0
    sessions: list[str] = field(default_factory=list)  # the first few hundred
    orders: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "visits": self.visits, "sessions": self.sessions,
                "orders": self.orders}


class ScriptedBrowser:
    """Runs and stops the child process; see the module docstring.

    Its orders and declined payments also go into ``summary`` (the simulator's), so the
    demo's summary still lists every order placed and every decline met in the shop.
    """

    def __init__(self, shop_url: str, *, summary: Summary, seed: int = 0,
                 interval: float = 4.0, think: float = 2.0, log_path: Path | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.shop_url = shop_url.rstrip("/")
        self.summary = summary
        self.seed = seed
        self.interval = interval
        self.think = think
        self.log_path = log_path
        self.say = say
        self.report = BrowserReport()

    async def run(self, stop: asyncio.Event) -> None:
        """Shop until ``stop`` is set (then end the visit under way); never raises."""
        try:
            await self._run(stop)
        except Exception as exc:  # the demo goes on without its browser
            log.debug("scripted browser failed", exc_info=True)
            self.report.status = f"failed: {exc!r}"
            self.say(f"  scripted browser stopped: {exc!r}")

    async def _run(self, stop: asyncio.Event) -> None:
        reason = unavailable()
        if reason is not None:
            self.report.status = f"off: {reason}"
            self.say(f"  scripted browser: off ({reason}); real-user data comes from the "
                     "history and from your own visits")
            return
        args = [sys.executable, "-m", "shopwatch.demo.browser", "--shop", self.shop_url,
                "--seed", str(self.seed), "--interval", str(self.interval),
                "--think", str(self.think)]
        with contextlib.ExitStack() as files:
            err: Any = (files.enter_context(self.log_path.open("ab"))
                        if self.log_path is not None else asyncio.subprocess.DEVNULL)
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, start_new_session=True)
            self.report.status = "starting"
            reader = asyncio.create_task(self._read(proc))
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([reader, waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if proc.stdin is not None:
                proc.stdin.close()  # "stop": the child ends its visit and exits
            try:
                await asyncio.wait_for(asyncio.shield(reader), STOP_GRACE)
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            await asyncio.gather(reader, return_exceptions=True)
            if not stop.is_set():
                self.say(f"  scripted browser ended early ({self.report.status}); see "
                         f"{self.log_path or 'its standard error'}")
            elif self.report.status == "shopping":
                self.report.status = "stopped"

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                self._take(message)

    def _take(self, message: dict[str, Any]) -> None:
        report, counts = self.report, self.summary.counts
        if "started" in message:
            report.status = "shopping"
            self.say(f"  scripted browser: Chromium {message['started']} shops every "
                     f"~{self.interval:g} s, sending real RUM beacons")
        elif "visit" in message:
            report.visits += 1
            counts["browser_visits"] += 1
            if len(report.sessions) < MAX_SESSIONS_KEPT and message["visit"]:
                report.sessions.append(str(message["visit"]))
        elif "order" in message:
            report.orders.append(str(message["order"]))
            self.summary.orders.append(str(message["order"]))
            counts["orders"] += 1
        elif "declined" in message:
            counts[f"declined_{message['declined']}"] += 1
        elif "note" in message:
            report.status = str(message["note"])


# --- in the child process ----------------------------------------------------------------


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def chromium_major(executable: str) -> str:
    """The major version of the system Chromium (for an honest Chrome user agent)."""
    import subprocess

    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    match = re.search(r"\b(\d{2,4})\.\d+\.\d+", out)
    return match.group(1) if match else "130"


class Shopper:
    """Visits the shop again and again until ``stop`` is set."""

    def __init__(self, playwright: Playwright, executable: str, shop_url: str,
                 rng: random.Random, interval: float, think: float) -> None:
        self.playwright = playwright
        self.executable = executable
        self.shop_url = shop_url.rstrip("/")
        self.rng = rng
        self.interval = interval
        self.think = think
        self.major = chromium_major(executable)
        self.browsers: dict[str, Browser] = {}

    async def browser(self, device: str) -> Browser:
        """The Chromium of this device kind (one process each: see the module docstring)."""
        found = self.browsers.get(device)
        if found is not None and found.is_connected():
            return found
        launched = await self.playwright.chromium.launch(
            executable_path=self.executable, headless=True,
            args=[*CHROMIUM_FLAGS, "--user-agent=" + USER_AGENTS[device].format(
                major=self.major)],
            handle_sigint=False, handle_sigterm=False, handle_sighup=False)
        self.browsers[device] = launched
        return launched

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        _emit({"started": self.major})
        try:
            while not stop.is_set():
                device = "mobile" if self.rng.random() < MOBILE_SHARE else "desktop"
                try:
                    await self.visit(device, stop)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.warning("visit failed (%d in a row): %r", failures, exc)
                    if failures >= MAX_FAILURES:
                        _emit({"note": f"gave up after {failures} failed visits: {exc!r}"})
                        return
                await _pause(stop, self.interval * self.rng.uniform(0.5, 1.5))
        finally:
            for browser in self.browsers.values():
                with contextlib.suppress(Exception):
                    await browser.close()

    async def visit(self, device: str, stop: asyncio.Event) -> None:
        """One shopper's visit, in a new context (new cookies: a new shop session)."""
        rng = self.rng
        browser = await self.browser(device)
        options: dict[str, Any] = {"locale": rng.choice(LOCALES),
                                   "user_agent": USER_AGENTS[device].format(major=self.major)}
        if device == "mobile":
            options.update(viewport={"width": 412, "height": 915}, device_scale_factor=2.625,
                           is_mobile=True, has_touch=True)
        else:
            width, height = rng.choice(DESKTOP_VIEWPORTS)
            options.update(viewport={"width": width, "height": height - 120})
        context = await browser.new_context(**options)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            page = await context.new_page()
            landing = self.shop_url + "/" + (CAMPAIGN if rng.random() < 0.2 else "")
            await page.goto(landing, wait_until="load")
            session = await page.get_attribute("script[data-session-id]", "data-session-id")
            _emit({"visit": session, "device": device})
            await self._shop(page, stop)
            # Leaving hides the page: the snippet sends the page's vitals and flushes.
            await page.goto("about:blank")
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await context.close()

    async def _think(self, stop: asyncio.Event) -> bool:
        """Read the page a moment; True when it is time to stop."""
        return await _pause(stop, self.think * self.rng.uniform(0.5, 1.5))

    async def _follow(self, page: Page, selector: str) -> bool:
        """Click one of the links matching ``selector`` and wait for the next page."""
        links = page.locator(selector)
        count = await links.count()
        if count == 0:
            return False
        async with page.expect_navigation(wait_until="load"):
            await links.nth(self.rng.randrange(count)).click()
        return True

    async def _shop(self, page: Page, stop: asyncio.Event) -> None:
        """Browse, maybe buy; every page is read a moment before the next step."""
        rng = self.rng
        if await self._think(stop) or not await self._follow(page, "nav a"):
            return
        for _ in range(rng.choice((1, 1, 2))):
            if await self._think(stop) or not await self._follow(page, ".card a"):
                return
            with contextlib.suppress(Exception):
                await page.mouse.wheel(0, rng.randrange(200, 900))
        if await self._think(stop) or rng.random() > 0.7:
            return
        await self._submit(page, "form[action='/cart/add'] button")  # to the cart
        if await self._think(stop) or rng.random() > 0.5:
            return
        if not await self._follow(page, "a[href='/checkout']") or await self._think(stop):
            return
        for name, value in (("name", "Alex Martin"), ("address", "12 Example Street"),
                            ("city", "Lyon"), ("country", rng.choice(("FR", "DE", "BE")))):
            await page.fill(f"input[name={name}]", value)
        await self._submit(page, "form[action='/checkout/shipping'] button")  # to payment
        if await self._think(stop) or rng.random() > 0.6:
            return
        await page.fill("input[name=card_number]", CARD)
        response = await self._submit(page, "form[action='/checkout/payment'] button")
        path = urlsplit(page.url).path
        if path.startswith("/order/"):
            _emit({"order": path.rsplit("/", 1)[1]})
        elif response is not None:
            reason = response.headers.get("x-payment-declined") or f"http_{response.status}"
            _emit({"declined": reason})
        await self._think(stop)

    async def _submit(self, page: Page, selector: str) -> Any:
        """Press a form's button; the response of the page it leads to."""
        async with page.expect_navigation(wait_until="load") as navigation:
            await page.click(selector)
        return await navigation.value


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, or return early (True) once ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        return False
    return True


async def _child(shop_url: str, seed: int, interval: float, think: float) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def watch_stdin() -> None:  # the demo closes our stdin (or dies): time to stop
        with contextlib.suppress(Exception):
            sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    executable = find_chromium()
    if executable is None:
        _emit({"note": "no system Chromium on the PATH"})
        return 1
    try:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            shopper = Shopper(playwright, executable, shop_url,
                              random.Random(f"browser-{seed}"), interval, think)
            await shopper.run(stop)
    except Exception as exc:
        log.exception("the scripted browser failed")
        _emit({"note": f"failed: {exc!r}"})
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A scripted Chromium shopping in the "
                                                 "demo shop (run by `shopwatch demo`).")
    parser.add_argument("--shop", required=True, help="the demo shop's URL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interval", type=float, default=4.0,
                        help="seconds between visits (on average)")
    parser.add_argument("--think", type=float, default=2.0,
                        help="seconds on each page before the next step (on average)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_child(args.shop, args.seed, args.interval, args.think))


if __name__ == "__main__":
    sys.exit(main())
