"""The ``browser_flow`` monitor kind in the system's headless Chromium: the demo shop's
checkout bought end to end, a failing flow with its screenshot, HTML, console errors and
failed requests, the hard timeout, and the address policy held by the guarded proxy
(a canary on loopback must see no connection). Servers are real, on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shopwatch.checks.browser_flow import prune
from shopwatch.checks.gate import summary_lines
from shopwatch.checks.http import Context
from shopwatch.checks.kinds import run_monitor
from shopwatch.checks.monitor import Monitor, load_monitors, parse_monitors
from shopwatch.checks.safety import UNRESTRICTED, AddressPolicy
from shopwatch.demo.runner import BROWSER_MONITORS_FILE
from shopwatch.errors import ConfigError
from tests.test_check_safety import Canary
from tests.test_demo_shop import RunningShop, server, shop  # noqa: F401 (fixtures)

PAGES = {
    "/": b"""<!doctype html><html><head><title>Home</title></head><body>
<h1>Little shop</h1><img src="/missing.png" alt=""><a id="next" href="/cart">Cart</a>
<script>console.error("checkout widget failed to start")</script></body></html>""",
    "/cart": b"""<!doctype html><html><body><h1>Your cart</h1>
<input name="email"><button id="pay" onclick="document.body.insertAdjacentHTML('beforeend',
'<p id=done>Paid by ' + document.querySelector('input').value + '</p>')">Pay</button>
<p>marker-7c1f</p></body></html>""",
}


class Site:
    """Pages from :data:`PAGES` on loopback; ``/hang`` never answers (until closed)."""

    def __init__(self) -> None:
        site = self
        self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/hang":
                    site.release.wait(60)
                    return
                body = PAGES.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.close()


def flow(steps: str, extra: str = "") -> Monitor:
    (monitor,) = parse_monitors(
        f"monitors: [{{name: web, kind: browser_flow, steps: [{steps}]{extra}}}]")
    return monitor


# --- the format -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "error"), [
    ("{name: b, kind: browser_flow}", "monitors[0].steps: a browser_flow monitor needs"),
    ("{name: b, kind: browser_flow, url: /, steps: [{name: a, url: /}]}",
     "monitors[0].url: a browser_flow monitor has no url (see docs/monitors.md)"),
    ("{name: b, kind: browser_flow, steps: [{name: a, method: POST, url: /}]}",
     "monitors[0].steps[0].method: a browser step has no method"),
    ("{name: b, kind: browser_flow, steps: [{name: a}]}",
     "monitors[0].steps[0]: a browser step needs an action"),
    ("{name: b, kind: browser_flow, steps: [{name: a, url: /, expect: {json: {$.a: 1}}}]}",
     "monitors[0].steps[0].expect.json: not for a browser step"),
    ("{name: b, kind: browser_flow, steps: [{name: a, click: '  '}]}",
     "monitors[0].steps[0].click: empty"),
    ("{name: b, kind: browser_flow, steps: [{name: a, url: /}, {name: a, url: /x}]}",
     "monitors[0].steps[1].name: 'a' is used twice"),
    ("{name: b, kind: browser_flow, device: tablet, steps: [{name: a, url: /}]}",
     "monitors[0].device: invalid enum value 'tablet' (one of desktop, mobile)"),
    ("{name: b, kind: api_flow, steps: [{name: a, url: /, click: '#x'}]}",
     "monitors[0].steps[0].click: only a browser_flow step acts on a page"),
    ("{name: b, kind: api_flow, steps: [{name: a, click: '#x'}]}",
     "monitors[0].steps[0].url: an api_flow step needs a url"),
    ("{name: b, kind: http, url: /, expect: {visible: '#x'}}",
     "monitors[0].expect.visible: only a browser_flow step has a page"),
    ("{name: b, kind: http, url: /, device: mobile}",
     "monitors[0].device: an http monitor has no device"),
])
def test_browser_flows_are_validated_with_their_place(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_monitors(f"monitors: [{text}]", "m.yml")
    assert f"m.yml: {error}" in str(info.value)


def test_browser_flow_timeout_defaults_to_a_minute_and_keeps_the_contract() -> None:
    monitor = flow("{name: a, url: /}")
    assert monitor.timeout_s == 60 and monitor.target == "1 steps"
    assert flow("{name: a, url: /}", ", timeout: 20s").timeout_s == 20
    (http,) = parse_monitors("monitors: [{name: h, kind: http, url: /}]")
    assert http.timeout_s == 10  # the other kinds keep theirs


def test_prune_keeps_the_newest_files(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"2026010{i}T000000Z-step.png").write_bytes(b"x")
    prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20260103T000000Z-step.png", "20260104T000000Z-step.png"]


# --- in Chromium -------------------------------------------------------------------------


@pytest.mark.browser
def test_the_demo_checkout_is_bought_in_a_real_browser(shop: RunningShop,  # noqa: F811
                                                        tmp_path: Path) -> None:
    (monitor,) = load_monitors(BROWSER_MONITORS_FILE)
    # The server's policy, with the demo shop allow-listed as the demo does.
    context = Context(base_url=shop.base_url, policy=AddressPolicy.parse(["127.0.0.1"]),
                      artifacts=tmp_path)
    result = run_monitor(monitor, context)
    assert result.ok, "\n".join(summary_lines(result))
    assert [s.name for s in result.steps] == ["home", "product", "add to cart", "checkout",
                                              "shipping", "pay"]
    home, pay = result.steps[0], result.steps[-1]
    assert home.status == 200 and home.method == "GOTO"
    assert "/order/" in pay.url and pay.status == 200 and pay.method == "FILL"
    # Each page has its Web Vitals; the first page of a step its navigation timings.
    (page,) = home.details["pages"]
    assert page["url"] == shop.base_url + "/"
    assert page["ttfb_ms"] is not None and page["fcp_ms"] is not None
    assert page["lcp_ms"] is not None and page["cls"] is not None
    assert set(home.timings) == {"ttfb_ms", "load_ms"}
    assert all(s.duration_ms > 0 for s in result.steps)
    assert not list(tmp_path.rglob("*"))  # nothing kept when all passed
    # A real order was placed, and the shop tracked none of the monitor's requests.
    assert shop.shop.orders.get(pay.url.rsplit("/", 1)[1]) is not None
    assert shop.tracker.events == []


@pytest.mark.browser
def test_a_failing_step_keeps_screenshot_html_errors_and_skips_the_rest(
        site: Site, tmp_path: Path) -> None:
    monitor = flow("""{name: home, url: /, expect: {contains: Little shop}},
        {name: cart, click: "#next", expect: {url_contains: /cart}},
        {name: pay, fill: {input: ada}, click: "#pay", expect: {visible: "#done",
         contains: "Paid by ada"}},
        {name: confirm, expect: {contains: "Order number"}},
        {name: never, url: /}""", ", timeout: 20s")
    result = run_monitor(monitor, Context(base_url=site.url, policy=UNRESTRICTED,
                                          artifacts=tmp_path))
    assert not result.ok
    assert result.failure == "step confirm: the page does not show 'Order number'"
    home, cart, pay, confirm, never = result.steps
    assert home.ok and cart.ok and pay.ok and not confirm.ok
    assert cart.status == 200 and cart.url == site.url + "/cart"
    assert never.failures == ["skipped: an earlier step failed"]
    assert home.details["console_errors"] == [
        f"checkout widget failed to start ({site.url}/)"]
    assert home.details["failed_requests"] == [f"GET {site.url}/missing.png: HTTP 404"]
    assert "console_errors" not in cart.details
    # The failure's screenshot (a PNG) and HTML, in the monitor's folder.
    folder = tmp_path / "web"
    png = folder / confirm.details["screenshot"]
    html = folder / confirm.details["html"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "marker-7c1f" in html.read_text() and "Paid by ada" in html.read_text()
    lines = summary_lines(result)
    assert any("console error: checkout widget failed to start" in line for line in lines)
    assert any(line.strip().startswith("screenshot: ") for line in lines)


@pytest.mark.browser
def test_the_timeout_is_a_hard_limit(site: Site, tmp_path: Path) -> None:
    monitor = flow("{name: home, url: /}, {name: stuck, url: /hang}, {name: after, url: /}",
                   ", timeout: 4s")
    result = run_monitor(monitor, Context(base_url=site.url, policy=UNRESTRICTED,
                                          artifacts=tmp_path))
    assert not result.ok
    home, stuck, after = result.steps
    assert home.ok
    assert stuck.failures[0].startswith("timed out at GOTO /hang: the flow's timeout is 4s")
    assert after.failures == ["skipped: an earlier step failed"]
    assert (tmp_path / "web" / stuck.details["screenshot"]).exists()


@pytest.mark.browser
def test_the_browser_reaches_no_refused_address(tmp_path: Path) -> None:
    canary = Canary()
    redirector = Canary(redirect_to=f"http://127.0.0.1:{canary.port}/")
    try:
        targets = [f"http://127.0.0.1:{canary.port}/", f"http://2130706433:{canary.port}/",
                   f"http://0x7f000001:{canary.port}/", f"http://127.1:{canary.port}/",
                   f"http://[::ffff:127.0.0.1]:{canary.port}/",
                   f"https://127.0.0.1:{canary.port}/",
                   # localhost is allow-listed by name; its redirect to loopback is not.
                   f"http://localhost:{redirector.port}/"]
        policy = AddressPolicy.parse(["localhost"])
        for target in targets:
            monitor = flow(f"{{name: go, url: '{target}'}}", ", timeout: 15s")
            result = run_monitor(monitor, Context(policy=policy, artifacts=tmp_path))
            assert not result.ok, target
            assert "is a loopback address" in (result.failure or ""), (target, result.failure)
        assert redirector.connections >= 1  # the allowed host was reached...
        time.sleep(0.2)
        assert canary.connections == 0  # ...and nothing refused ever was
    finally:
        canary.close()
        redirector.close()


@pytest.mark.browser
def test_without_chromium_the_check_says_what_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                         site: Site) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = run_monitor(flow("{name: a, url: /}"), Context(base_url=site.url))
    assert not result.ok
    assert result.failure == ("cannot run a browser flow: no system Chromium on the PATH "
                              "(install the `chromium` package)")


# --- Playwright scripts ------------------------------------------------------------------

SCRIPT = '''import re

from playwright.async_api import expect


async def flow(page, step):
    async with step("home"):
        await page.goto("/")
        await expect(page.locator("h1")).to_have_text("Little shop")
    async with step("cart", max_ms=20000):
        await page.click("#next")
        await expect(page).to_have_url(re.compile("/cart$"))
        await page.fill("input", "ada")
        await page.click("#pay")
        await expect(page.locator("#done")).to_have_text("Paid by ada")
    async with step("receipt"):
        await expect(page.locator("text=Receipt number")).to_be_visible(timeout=500)
    async with step("never"):
        pass
'''


def script_monitor(tmp_path: Path, source: str, extra: str = "") -> Monitor:
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "shop.py").write_text(source)
    (tmp_path / "m.yml").write_text(
        "monitors:\n  - {name: scripted, kind: browser_flow, script: flows/shop.py"
        f"{extra}}}\n")
    (monitor,) = load_monitors(tmp_path / "m.yml")
    return monitor


@pytest.mark.parametrize(("source", "yaml_extra", "error"), [
    ("async def flow(page, step):\n    pass\n", ", steps: [{name: a, url: /}]",
     "m.yml: monitors[0].steps: give steps or a script, not both"),
    ("def flow(page, step):\n    pass\n", "",
     "m.yml: monitors[0].script: flows/shop.py defines no `async def flow(page, step)`"),
    ("async def flow(page, step):\n    async with step('a')\n", "",
     "m.yml: monitors[0].script: flows/shop.py:2: expected ':'"),
    ("async def flow(page, step):\n    pass\n", ", script_source: x",
     "m.yml: monitors[0].script_source: set by Shopwatch from script"),
])
def test_scripts_are_checked_when_loaded(tmp_path: Path, source: str, yaml_extra: str,
                                         error: str) -> None:
    with pytest.raises(ConfigError) as info:
        script_monitor(tmp_path, source, yaml_extra)
    assert error in str(info.value)


def test_scripts_come_only_from_files(tmp_path: Path) -> None:
    text = "monitors: [{name: s, kind: browser_flow, script: shop.py}]"
    with pytest.raises(ConfigError) as info:
        parse_monitors(text, "body")  # the API and the dashboard's form
    assert str(info.value) == (
        "body: monitors[0].script: a browser script is Python that the server runs: it is "
        "applied only from files, by an operator (shopwatch monitors apply; see "
        "docs/monitors.md)")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_monitors(text, "m.yml", tmp_path)
    monitor = script_monitor(tmp_path, SCRIPT)
    assert monitor.script_source == SCRIPT and monitor.target == "script flows/shop.py"


@pytest.mark.browser
def test_a_script_runs_step_by_step_and_fails_at_its_line(site: Site, tmp_path: Path) -> None:
    monitor = script_monitor(tmp_path, SCRIPT, ", timeout: 30s")
    result = run_monitor(monitor, Context(base_url=site.url, policy=UNRESTRICTED,
                                          artifacts=tmp_path / "art"))
    assert [s.name for s in result.steps] == ["home", "cart", "receipt"]
    home, cart, receipt = result.steps
    assert home.ok and cart.ok and not receipt.ok
    assert home.status == 200 and home.details["pages"][0]["url"] == site.url + "/"
    assert cart.url == site.url + "/cart" and cart.status == 200
    assert receipt.failures[0] == ("flows/shop.py:17: AssertionError: Locator expected to "
                                   "be visible")
    assert home.details["console_errors"] == [
        f"checkout widget failed to start ({site.url}/)"]
    png = tmp_path / "art" / "scripted" / receipt.details["screenshot"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
def test_a_script_that_breaks_or_hangs_says_where(site: Site, tmp_path: Path) -> None:
    broken = script_monitor(tmp_path, "async def flow(page, step):\n"
                                      "    async with step('home'):\n"
                                      "        await page.goto('/')\n"
                                      "    undefined_name()\n")
    result = run_monitor(broken, Context(base_url=site.url, policy=UNRESTRICTED))
    home, script = result.steps
    assert home.ok and script.name == "script"
    assert script.failures == [
        "flows/shop.py:4: NameError: name 'undefined_name' is not defined"]
    hanging = script_monitor(tmp_path, "async def flow(page, step):\n"
                                       "    async with step('stuck'):\n"
                                       "        await page.goto('/hang')\n", ", timeout: 4s")
    result = run_monitor(hanging, Context(base_url=site.url, policy=UNRESTRICTED))
    (stuck,) = result.steps
    assert stuck.failures == ["timed out: the flow's timeout is 4s"]
