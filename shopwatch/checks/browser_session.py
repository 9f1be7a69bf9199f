"""One run of a ``browser_flow`` in headless Chromium, in a child process.

:mod:`shopwatch.checks.browser_flow` starts ``python -m shopwatch.checks.browser_session``
in a new process group, writes a :class:`Job` (JSON) to its standard input and reads a
:class:`Report` (JSON) from its standard output; the parent kills the whole group when
the run overstays its hard timeout. Playwright drives the system's Chromium (never a
downloaded browser).

What a run records, per step (``details`` of its :class:`~.result.StepResult`):

- ``pages``: each page (document) the step loaded, with its URL and Web Vitals —
  ``ttfb_ms``, ``fcp_ms``, ``lcp_ms``, ``cls`` (the largest session window of layout
  shifts without recent input), ``inp_ms`` (the longest interaction), ``load_ms`` —
  read again before every later action, so a page's INP includes the clicks made on it;
- ``console_errors``: ``console.error`` messages and uncaught exceptions;
- ``failed_requests``: requests that failed in the network or got a 4xx/5xx answer,
  and targets the address policy refused;
- on failure, ``screenshot`` and ``html``: file names (in the job's artifacts
  directory) of a full-page screenshot and of the page's HTML at that moment.

Timings: ``duration_ms`` per step; the step's first page adds ``ttfb_ms`` and
``load_ms`` to ``timings``. The whole flow must end within the job's ``timeout_s``:
each action is given the time left, and a step that runs out fails with "timed out".
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from shopwatch.checks.browser_flow import CHROMIUM_FLAGS
from shopwatch.checks.http import CHECK_HEADERS, absolute
from shopwatch.checks.monitor import Monitor, Step
from shopwatch.checks.proxy import REFUSED_HEADER, GuardedProxy
from shopwatch.checks.result import SKIPPED, StepResult
from shopwatch.checks.safety import AddressPolicy

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Page, Response
    from playwright.async_api import Request as PwRequest

# A flow's browser has no way out but the proxy: no WebRTC over UDP either.
FLOW_FLAGS: Final = (*CHROMIUM_FLAGS, "--force-webrtc-ip-handling-policy=disable_non_proxied_udp")
DEVICES: Final[dict[str, dict[str, Any]]] = {
    "desktop": {"viewport": {"width": 1366, "height": 768}},
    "mobile": {"viewport": {"width": 412, "height": 915}, "device_scale_factor": 2.625,
               "is_mobile": True, "has_touch": True},
}
EXPECT_WAIT_S: Final = 5.0  # how long an expectation may wait for the page to match
MAX_MESSAGES: Final = 20  # console errors and failed requests kept per step
MAX_MESSAGE: Final = 300
ARTIFACT_WAIT_S: Final = 5.0

# Installed before any page script: Web Vitals of the document, read by `_VITALS_READ`.
VITALS_JS: Final = """(() => {
  const v = {lcp: null, fcp: null, cls: 0, inp: null};
  let win = 0, last = 0, first = 0;
  const observe = (type, fn, opts) => {
    try { new PerformanceObserver(l => l.getEntries().forEach(fn))
            .observe(Object.assign({type, buffered: true}, opts || {})); } catch (e) {}
  };
  observe('largest-contentful-paint', e => { v.lcp = e.startTime; });
  observe('paint', e => { if (e.name === 'first-contentful-paint') v.fcp = e.startTime; });
  observe('layout-shift', e => {
    if (e.hadRecentInput) return;
    if (win && e.startTime - last < 1000 && e.startTime - first < 5000) { win += e.value; }
    else { win = e.value; first = e.startTime; }
    last = e.startTime; v.cls = Math.max(v.cls, win);
  });
  observe('event', e => { if (e.interactionId) v.inp = Math.max(v.inp || 0, e.duration); },
          {durationThreshold: 16});
  const r = x => (x === null || x === undefined) ? null : Math.round(x * 10) / 10;
  const read = () => {
    const n = performance.getEntriesByType('navigation')[0];
    return {doc: performance.timeOrigin, url: location.href,
            ttfb_ms: n ? r(n.responseStart) : null,
            load_ms: n && n.loadEventEnd ? r(n.loadEventEnd) : null,
            fcp_ms: r(v.fcp), lcp_ms: r(v.lcp), cls: Math.round(v.cls * 10000) / 10000,
            inp_ms: r(v.inp)};
  };
  Object.defineProperty(window, '__shopwatchRead', {value: read});
})();"""
# Read after two animation frames: a page just loaded has painted by then (FCP, LCP).
_VITALS_READ: Final = """async () => {
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return window.__shopwatchRead ? window.__shopwatchRead() : null;
}"""
# Read at once: the page is about to be left (a navigation request has just gone out).
_VITALS_READ_NOW: Final = "() => window.__shopwatchRead ? window.__shopwatchRead() : null"


class Job(msgspec.Struct):
    """What the parent asks: the monitor, the base URL relative URLs join, the address
    policy (``None``: unrestricted, no proxy), Chromium's path, where failure artifacts
    go (``None``: nowhere) and their file-name prefix, and the hard timeout."""

    monitor: Monitor
    chromium: str
    timeout_s: float
    base_url: str | None = None
    networks: list[str] | None = None
    hosts: list[str] | None = None
    artifacts: str | None = None
    prefix: str = "run"


class Report(msgspec.Struct):
    """What the child answers: the steps (StepResult dicts), and an error when the
    browser itself could not run."""

    steps: list[dict[str, Any]]
    error: str | None = None


@dataclass
class _Recorder:
    """The messages the page produces, filed under the step under way."""

    step: StepResult | None = None
    pages: dict[float, dict[str, Any]] = field(default_factory=dict)
    main_frame: Any = None
    on_leave: Any = None  # called when the main frame starts navigating away
    nav_status: int | None = None  # of the last page the main frame navigated to
    refused: bool = False  # the proxy refused the last navigation's target

    def add(self, key: str, text: str) -> None:
        if self.step is None:
            return
        items = self.step.details.setdefault(key, [])
        if len(items) < MAX_MESSAGES:
            items.append(text[:MAX_MESSAGE])

    def page_read(self, found: Any) -> None:
        """File a reading of a document's vitals: a page first read joins the current
        step's ``pages``; a page read again has its figures updated."""
        if not isinstance(found, dict) or not str(found.get("url", "")).startswith("http"):
            return
        doc = float(found.pop("doc"))
        known = self.pages.get(doc)
        if known is None:
            self.pages[doc] = found
            if self.step is not None:
                self.step.details.setdefault("pages", []).append(found)
        else:
            known.update(found)

    def console(self, message: ConsoleMessage) -> None:
        # "Failed to load resource" repeats what failed_requests says.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            where = message.location.get("url") or ""
            self.add("console_errors", f"{message.text}" + (f" ({where})" if where else ""))

    def page_error(self, error: Exception) -> None:
        self.add("console_errors", f"uncaught: {error}")

    def request_failed(self, request: PwRequest) -> None:
        if not _ignored(request.url):
            self.add("failed_requests", f"{request.method} {request.url}: {request.failure}")

    def request(self, request: PwRequest) -> None:
        if (self.on_leave is not None and request.is_navigation_request()
                and request.frame == self.main_frame):
            self.on_leave()

    def response(self, response: Response) -> None:
        request = response.request
        if request.is_navigation_request() and response.frame == self.main_frame:
            self.nav_status = response.status
            self.refused = REFUSED_HEADER.lower() in response.headers
        if self.refused and response.frame == self.main_frame:
            return  # the proxy's refusal is reported as such, not as the site's 403
        if response.status >= 400 and not _ignored(response.url):
            self.add("failed_requests",
                     f"{response.request.method} {response.url}: HTTP {response.status}")


def _ignored(url: str) -> bool:
    """The favicon Chromium asks for by itself: no page asked for it."""
    return url.split("?", 1)[0].endswith("/favicon.ico")


def _policy(job: Job) -> AddressPolicy | None:
    if job.networks is None and job.hosts is None:
        return None
    return AddressPolicy.parse([*(job.networks or []), *(job.hosts or [])])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "step"


class Flow:
    """A run of the job's steps on one page."""

    def __init__(self, job: Job, page: Page, recorder: _Recorder,
                 proxy: GuardedProxy | None) -> None:
        self.job = job
        self.page = page
        self.recorder = recorder
        self.proxy = proxy
        self.deadline = time.monotonic() + job.timeout_s
        self.reads: set[asyncio.Future[None]] = set()
        recorder.on_leave = self.leaving

    def left_ms(self) -> float:
        return max(1.0, (self.deadline - time.monotonic()) * 1000)

    def leaving(self) -> None:
        """The page is about to be left: read its vitals while it is still there (a
        click or a script's goto in the middle of a step)."""
        async def read() -> None:
            with contextlib.suppress(Exception):
                self.recorder.page_read(await asyncio.wait_for(
                    self.page.evaluate(_VITALS_READ_NOW), 2))
        self.reads.add(asyncio.ensure_future(read()))

    async def settle(self) -> None:
        """Wait for the readings of pages left (they are quick, or they failed)."""
        reads, self.reads = self.reads, set()
        if reads:
            await asyncio.wait(reads, timeout=3)

    async def snapshot(self) -> None:
        """Read the current document's vitals (kept per document, newest reading)."""
        try:
            found = await asyncio.wait_for(self.page.evaluate(_VITALS_READ), 2)
        except Exception:  # a page mid-navigation has no document to read
            return
        self.recorder.page_read(found)

    async def run_step(self, step: Step, result: StepResult) -> None:
        page = self.page
        page.set_default_timeout(self.left_ms())
        self.recorder.nav_status = None
        if step.url is not None:
            url = absolute(step.url, self.job.base_url)
            result.url = url
            await self.snapshot()
            await page.goto(url, wait_until="load")
            self.refused()
        for selector, value in (step.fill or {}).items():
            await page.fill(selector, value)
        for selector, value in (step.select or {}).items():
            await page.select_option(selector, value)
        if step.check is not None:
            await page.check(step.check)
        for action, target in (("click", step.click), ("press", step.press)):
            if target is None:
                continue
            await self.snapshot()
            if action == "click":
                await page.click(target)
            else:
                await page.keyboard.press(target)
            # An action that starts a navigation: wait for the next page to load.
            await page.wait_for_load_state("load")
            self.refused()
        if step.wait_for is not None:
            await page.wait_for_selector(step.wait_for, state="visible")
        result.url = page.url
        await self.settle()
        await self.snapshot()
        await self.expect(step, result)

    def refused(self) -> None:
        """Raise :class:`Refused` when the page navigated to is a refused target."""
        if self.recorder.refused:
            reasons = self.proxy.refusals if self.proxy is not None else []
            raise Refused(reasons[0] if reasons else "refused by the address policy")

    async def expect(self, step: Step, result: StepResult) -> None:
        from playwright.async_api import expect

        want = step.expect
        status = result.status = self.recorder.nav_status
        if want is None:
            if status is not None and status >= 400:
                result.fail(f"the page answered HTTP {status}")
            return
        wait = min(EXPECT_WAIT_S * 1000, self.left_ms())
        body = self.page.locator("body")
        if want.status is not None:
            allowed = want.status if isinstance(want.status, list) else [want.status]
            if status is None:
                result.fail(f"expected status {want.status}, but the step loaded no page")
            elif status not in allowed:
                result.fail(f"expected status {want.status}, got {status}")
        elif status is not None and status >= 400:
            result.fail(f"the page answered HTTP {status}")
        checks: list[tuple[Any, str]] = []
        if want.contains is not None:
            checks.append((expect(body).to_contain_text(want.contains, timeout=wait),
                           f"the page does not show {want.contains!r}"))
        if want.not_contains is not None:
            checks.append((expect(body).not_to_contain_text(want.not_contains, timeout=wait),
                           f"the page shows {want.not_contains!r}"))
        if want.regex is not None:
            checks.append((expect(body).to_contain_text(re.compile(want.regex), timeout=wait),
                           f"the page text does not match /{want.regex}/"))
        if want.not_regex is not None:
            checks.append((expect(body).not_to_contain_text(re.compile(want.not_regex),
                                                            timeout=wait),
                           f"the page text matches /{want.not_regex}/"))
        if want.visible is not None:
            checks.append((expect(self.page.locator(want.visible).first).to_be_visible(
                timeout=wait), f"{want.visible} is not visible"))
        if want.url_contains is not None:
            checks.append((expect(self.page).to_have_url(
                re.compile(re.escape(want.url_contains)), timeout=wait),
                f"the page's URL {self.page.url} does not contain {want.url_contains!r}"))
        for check, reason in checks:
            try:
                await check
            except AssertionError:
                result.fail(reason)

    async def keep_artifacts(self, result: StepResult) -> None:
        """A full-page screenshot and the page's HTML, into the artifacts directory."""
        if self.job.artifacts is None:
            return
        folder = Path(self.job.artifacts)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{self.job.prefix}-{_slug(result.name)}"
        # A navigation still pending (a page that never answers) would hold the
        # screenshot back: stop it, and keep what the browser shows.
        try:
            cdp = await self.page.context.new_cdp_session(self.page)
            await asyncio.wait_for(cdp.send("Page.stopLoading"), 2)
        except Exception:  # the screenshot is still worth trying
            pass
        try:
            await self.page.screenshot(path=str(folder / f"{stem}.png"), full_page=True,
                                       timeout=ARTIFACT_WAIT_S * 1000)
            result.details["screenshot"] = f"{stem}.png"
        except Exception as exc:
            result.details["screenshot_error"] = _first_line(exc)
        try:
            html = await asyncio.wait_for(self.page.content(), ARTIFACT_WAIT_S)
            (folder / f"{stem}.html").write_text(html)
            result.details["html"] = f"{stem}.html"
        except Exception as exc:
            result.details["html_error"] = _first_line(exc)


class Refused(Exception):
    """The step's page is at an address the policy refuses."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:MAX_MESSAGE]


def _reason(exc: BaseException, left_ms: float, timeout_s: float, step: Step,
            proxy: GuardedProxy | None) -> str:
    """Why a step failed, in a sentence."""
    from playwright.async_api import TimeoutError as PwTimeout

    if proxy is not None and proxy.refusals and "ERR_TUNNEL_CONNECTION_FAILED" in str(exc):
        return proxy.refusals[0]  # an https:// target the proxy refused
    if isinstance(exc, PwTimeout | TimeoutError) or left_ms <= 1.0:
        doing = f"{_action(step)} {step.url or ''}".strip()
        detail = f" ({_first_line(exc)})" if isinstance(exc, PwTimeout) else ""
        return f"timed out at {doing}: the flow's timeout is {timeout_s:g}s{detail}"
    return _first_line(exc)


def _finish(flow: Flow, result: StepResult, started: float, max_ms: float | None) -> None:
    """What every step ends with: its duration, the proxy's refusals, its first page's
    timings, and ``max_ms``."""
    proxy, recorder = flow.proxy, flow.recorder
    result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    if proxy is not None and proxy.refusals:
        for refusal in dict.fromkeys(proxy.refusals):
            recorder.add("failed_requests", refusal)
        proxy.refusals.clear()
    first = (result.details.get("pages") or [{}])[0]
    result.timings = {k: first[k] for k in ("ttfb_ms", "load_ms") if first.get(k) is not None}
    if max_ms is not None and result.duration_ms > max_ms:
        result.fail(f"took {result.duration_ms:.0f} ms, over max_ms {max_ms:g}")


async def _run_steps(flow: Flow, steps: list[Step], results: list[StepResult]) -> None:
    """The YAML steps, in order; the first failure ends the flow."""
    job, page, recorder = flow.job, flow.page, flow.recorder
    for i, step in enumerate(steps):
        result = StepResult(name=step.name, url=step.url or page.url, method=_action(step))
        recorder.step = result
        results.append(result)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(flow.run_step(step, result), flow.left_ms() / 1000)
        except Exception as exc:
            result.fail(_reason(exc, flow.left_ms(), job.timeout_s, step, flow.proxy))
        _finish(flow, result, started, step.expect.max_ms if step.expect else None)
        if not result.ok:
            await flow.keep_artifacts(result)
            for later in steps[i + 1:]:
                skipped = StepResult(name=later.name, url=later.url or "",
                                     method=_action(later), ok=False)
                skipped.failures.append(SKIPPED)
                results.append(skipped)
            return


class _StepFailed(Exception):
    """A script's step failed: the flow stops (the step holds the reason)."""


def _script_reason(exc: BaseException, script: str) -> str:
    """An exception of a script, with the script's line it was raised at."""
    import traceback

    line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__))
                 if f.filename == script), None)
    where = f"{script}:{line}: " if line else ""
    return f"{where}{type(exc).__name__}: {_first_line(exc)}"


class ScriptSteps:
    """The ``step`` a script's ``flow(page, step)`` is given: ``async with step("pay"):``
    times what it wraps as one step, files the page's messages under it, and on an
    exception fails it (with the script's line), keeps the screenshot and HTML, and
    ends the flow."""

    def __init__(self, flow: Flow, results: list[StepResult], script: str) -> None:
        self.flow = flow
        self.results = results
        self.script = script
        self.current: tuple[StepResult, float] | None = None

    @contextlib.asynccontextmanager
    async def __call__(self, name: str, *, max_ms: float | None = None
                       ) -> AsyncIterator[StepResult]:
        flow = self.flow
        if self.current is not None:
            raise RuntimeError(f"step {name!r} started inside step "
                               f"{self.current[0].name!r}: steps do not nest")
        result = StepResult(name=str(name)[:100], url=flow.page.url, method="SCRIPT")
        self.results.append(result)
        flow.recorder.step = result
        flow.recorder.nav_status = None
        await flow.snapshot()
        started = time.perf_counter()
        self.current = (result, started)
        try:
            yield result
            flow.refused()
        except _StepFailed:
            raise
        except Exception as exc:
            reason = (flow.proxy.refusals[0] if isinstance(exc, Refused) and flow.proxy
                      and flow.proxy.refusals else _script_reason(exc, self.script))
            result.fail(reason)
        self.current = None
        result.url, result.status = flow.page.url, flow.recorder.nav_status
        await flow.settle()
        if result.ok and result.status is not None and result.status >= 400:
            result.fail(f"the page answered HTTP {result.status}")
        await flow.snapshot()
        _finish(flow, result, started, max_ms)
        if not result.ok:
            await flow.keep_artifacts(result)
            raise _StepFailed(result.name)


async def _run_script(flow: Flow, monitor: Monitor, results: list[StepResult]) -> None:
    """The monitor's Playwright script: its ``async def flow(page, step)``."""
    assert monitor.script is not None and monitor.script_source is not None
    name = monitor.script
    steps = ScriptSteps(flow, results, name)
    try:
        namespace: dict[str, Any] = {"__name__": "shopwatch_flow"}
        # The operator's own code: scripts come only from files applied by an operator
        # (monitor.SCRIPT_ONLY_FROM_FILES), never from the API or the dashboard.
        exec(compile(monitor.script_source, name, "exec"), namespace)
        await asyncio.wait_for(namespace["flow"](flow.page, steps), flow.left_ms() / 1000)
    except _StepFailed:
        return
    except TimeoutError:
        if steps.current is not None:  # cancelled inside a step: that step timed out
            result, started = steps.current
            result.fail(f"timed out: the flow's timeout is {flow.job.timeout_s:g}s")
            _finish(flow, result, started, None)
            await flow.keep_artifacts(result)
            return
        failed = StepResult(name="script", url=flow.page.url, method="SCRIPT")
        failed.fail(f"timed out between steps: the flow's timeout is "
                    f"{flow.job.timeout_s:g}s")
        results.append(failed)
    except Exception as exc:  # outside any step: the script's own fault
        failed = StepResult(name="script", url=flow.page.url, method="SCRIPT")
        failed.fail(_script_reason(exc, name))
        results.append(failed)
        await flow.keep_artifacts(failed)
    if not results:
        empty = StepResult(name="script", url=flow.page.url, method="SCRIPT")
        empty.fail("the script ran no step: wrap its actions in `async with step(...)`")
        results.append(empty)


async def run(job: Job) -> Report:
    """Run the job's flow; see the module docstring. Never raises for the site's faults."""
    from playwright.async_api import async_playwright

    monitor = job.monitor
    policy = _policy(job)
    proxy = GuardedProxy(policy) if policy is not None else None
    args = list(FLOW_FLAGS)
    if proxy is not None:
        port = await proxy.start()
        # <-loopback>: Chromium sends even loopback addresses through the proxy.
        args += [f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>"]
    results: list[StepResult] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=job.chromium, headless=True, args=args,
                handle_sigint=False, handle_sigterm=False, handle_sighup=False)
            context = await browser.new_context(
                **DEVICES[monitor.device], service_workers="block", base_url=job.base_url,
                extra_http_headers={"X-Shopwatch-Check": CHECK_HEADERS["X-Shopwatch-Check"],
                                    **(monitor.headers or {})})
            recorder = _Recorder()
            await context.add_init_script(VITALS_JS)
            page = await context.new_page()
            recorder.main_frame = page.main_frame
            page.on("console", recorder.console)
            page.on("pageerror", recorder.page_error)
            page.on("requestfailed", recorder.request_failed)
            page.on("response", recorder.response)
            page.on("request", recorder.request)
            flow = Flow(job, page, recorder, proxy)
            if monitor.script_source is not None:
                await _run_script(flow, monitor, results)
            else:
                assert monitor.steps is not None
                await _run_steps(flow, monitor.steps, results)
            recorder.step = None
            await browser.close()
    except Exception as exc:
        return Report([r.as_dict() for r in results],
                      error=f"the browser failed: {str(exc).strip().splitlines()[0][:300]}")
    finally:
        if proxy is not None:
            await proxy.close()
    return Report([r.as_dict() for r in results])


def _action(step: Step) -> str:
    """What a step does first, as the summary shows it (``GOTO``, ``CLICK``, ...)."""
    for name in ("url", "fill", "select", "check", "click", "press", "wait_for"):
        if getattr(step, name) is not None:
            return "GOTO" if name == "url" else name.upper()
    return "EXPECT"


def main() -> int:
    job = msgspec.json.decode(sys.stdin.buffer.read(), type=Job)
    report = asyncio.run(run(job))
    sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

