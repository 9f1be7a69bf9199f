"""Monitors as code and the pre-release gate (``shopwatch check run``), against local
servers started here: a flaky one, a slow one, and a small JSON shop API for flows."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shopwatch.checks.gate import junit, run_all
from shopwatch.checks.http import Context
from shopwatch.checks.kinds import run_monitor
from shopwatch.checks.monitor import load_monitors, parse_monitors
from shopwatch.checks.safety import UNRESTRICTED, AddressPolicy
from shopwatch.errors import ConfigError
from tests.conftest import SHOPWATCH, clean_env


class Target:
    """A loopback test site: ``/flaky`` fails its first ``flaky`` requests, ``/slow``
    answers after ``slow_s``; ``/api/cart`` (POST, JSON) opens a cart and sets a cookie;
    ``/api/checkout/<id>`` (POST) needs that cookie."""

    def __init__(self, flaky: int = 2, slow_s: float = 0.4) -> None:
        target = self
        self.hits: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes, ctype: str = "text/html",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                target.hits[path] = target.hits.get(path, 0) + 1
                if path == "/flaky":
                    ok = target.hits[path] > flaky
                    self._send(200 if ok else 503, b"fine" if ok else b"down")
                elif path == "/slow":
                    time.sleep(slow_s)
                    self._send(200, b"<h1>Slow shop</h1> Add to cart")
                elif path == "/":
                    self._send(200, b"<h1>Shop</h1><button>Add to cart</button>",
                               headers={"X-Shop": "yes"})
                else:
                    self._send(404, b"not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/api/cart":
                    answer = {"cart": {"id": f"C-{body.get('item_id')}"}, "items": 1}
                    self._send(200, json.dumps(answer).encode(), "application/json",
                               {"Set-Cookie": "sid=abc; Path=/"})
                elif self.path.startswith("/api/checkout/"):
                    if "sid=abc" not in (self.headers.get("Cookie") or ""):
                        self._send(401, b'{"error": "no session"}', "application/json")
                        return
                    cart = self.path.rsplit("/", 1)[1]
                    self._send(200, json.dumps({"order": f"O-{cart}", "paid": True}).encode(),
                               "application/json")
                else:
                    self._send(404, b"{}", "application/json")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


MONITORS = """
monitors:
  - name: home
    kind: http
    url: /
    interval: 60s
    expect: {status: 200, contains: "Add to cart", max_ms: 2000, headers: {X-Shop: "yes"}}
  - name: checkout
    kind: api_flow
    steps:
      - {name: add, method: POST, url: /api/cart, json: {item_id: SKU-1, quantity: 1},
         expect: {status: 200, json: {"$.items": 1}}, extract: {cart: "$.cart.id"}}
      - {name: pay, method: POST, url: "/api/checkout/{cart}", expect: {status: 200,
         json: {"$.order": "O-C-SKU-1", "$.paid": true}}}
"""


def context(target: Target) -> Context:
    return Context(base_url=target.url, policy=UNRESTRICTED)


def test_http_and_api_flow_pass_with_timings_variables_and_cookies(target: Target) -> None:
    results = run_all(parse_monitors(MONITORS), context(target))
    assert [(r.monitor, r.ok) for r in results] == [("home", True), ("checkout", True)], \
        [r.as_dict() for r in results]
    home = results[0].steps[0]
    assert home.status == 200 and home.url == f"{target.url}/"
    assert {"dns_ms", "connect_ms", "first_byte_ms", "transfer_ms"} <= set(home.timings)
    pay = results[1].steps[1]
    assert pay.url == f"{target.url}/api/checkout/C-SKU-1"  # the extracted variable


def test_failures_say_what_and_where(target: Target) -> None:
    text = """
monitors:
  - {name: missing, kind: http, url: /nope}
  - {name: slow, kind: http, url: /slow, expect: {max_ms: 100, not_contains: "Slow"}}
  - {name: flow, kind: api_flow, steps: [
      {name: add, method: POST, url: /api/cart, json: {item_id: X}, extract: {cart: "$.nope"}},
      {name: pay, method: POST, url: "/api/checkout/{cart}"}]}
  - {name: timeout, kind: http, url: /slow, timeout: 100ms}
"""
    results = {r.monitor: r for r in run_all(parse_monitors(text), context(target))}
    assert results["missing"].failure == "status 404, expected 2xx or 3xx"
    slow = results["slow"].steps[0].failures
    assert slow[0] == "body contains 'Slow'" and slow[1].startswith("took ")
    flow = results["flow"]
    assert flow.failure == "step add: extract cart: $.nope found nothing"
    assert flow.steps[1].failures == ["skipped: an earlier step failed"]
    assert results["timeout"].failure == "timed out (ReadTimeout)"


def test_retries_before_a_monitor_fails(target: Target) -> None:
    flaky = parse_monitors("monitors: [{name: f, kind: http, url: /flaky, retries: 2}]")[0]
    result = run_monitor(flaky, context(target))
    assert result.ok and result.attempts == 3
    once = parse_monitors("monitors: [{name: g, kind: http, url: /flaky, retries: 0}]")[0]
    assert run_monitor(once, context(target)).ok  # the site is up by now


def test_the_server_policy_refuses_loopback_targets(target: Target) -> None:
    monitor = parse_monitors("monitors: [{name: h, kind: http, url: /}]")[0]
    result = run_monitor(monitor, Context(base_url=target.url, policy=AddressPolicy()))
    assert not result.ok and "loopback" in (result.failure or "")
    assert target.hits == {}


def test_junit_xml_has_a_case_per_monitor(target: Target) -> None:
    text = MONITORS + "  - {name: broken, kind: http, url: /nope}\n"
    root = ET.fromstring(junit(run_all(parse_monitors(text), context(target))))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["broken"]
    assert failed[0].find("failure").get("message") == "status 404, expected 2xx or 3xx"  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "message"), [
    ("monitors: [{name: a, kind: http}]", "monitors[0].url: an http monitor needs a url"),
    ("monitors: [{name: a, kind: smtp, url: /}]", "monitors[0].kind: invalid enum value 'smtp'"),
    ("monitors: [{name: a, kind: http, url: /, interval: 5s}]",
     "monitors[0].interval: 5s is under the minimum of 20s"),
    ("monitors: [{name: a, kind: http, url: /, expect: {status: ok}}]",
     "monitors[0].expect.status: expected int | array | null, got str"),
    ("monitors: [{name: a, kind: http, url: /, colour: red}]", "monitors[0].colour: unknown"),
    ("monitors: [{name: a, kind: api_flow, steps: [{name: s, url: /, extract: {c: 'x'}}]}]",
     "monitors[0].steps[0].extract.c: 'x' must be a JSON path"),
    ("monitors: [{name: a, kind: http, url: /, expect: {regex: '('}}]",
     "monitors[0].expect.regex: missing )"),
    ("monitors: [{name: a, kind: http, url: /, interval: soon}]",
     "monitors[0].interval: 'soon' is not a duration"),
    ("monitors: [", "not valid YAML"),
])
def test_bad_monitor_files_name_the_place(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_monitors(text, "m.yml")
    assert str(exc.value).startswith("m.yml: ") and message in str(exc.value)


def test_a_directory_of_files_and_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("monitors: [{name: home, kind: http, url: /}]")
    (tmp_path / "b.yaml").write_text("monitors: [{name: cart, kind: http, url: /cart}]")
    (tmp_path / "notes.txt").write_text("not a monitor")
    assert [m.name for m in load_monitors(tmp_path)] == ["home", "cart"]
    (tmp_path / "c.yml").write_text("monitors: [{name: home, kind: http, url: /x}]")
    with pytest.raises(ConfigError, match=r"c\.yml: monitor 'home' is also defined in a\.yml"):
        load_monitors(tmp_path)


def test_check_run_cli_exit_codes_summary_and_junit(target: Target, tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(MONITORS)
    report = tmp_path / "report.xml"
    run = subprocess.run([str(SHOPWATCH), "check", "run", str(good), "--base-url", target.url,
                          "--junit", str(report)], capture_output=True, text=True,
                         env=clean_env(), timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS  home (http)" in run.stdout and "ok  pay: POST" in run.stdout
    assert "2 monitors: 2 passed, 0 failed" in run.stdout
    assert ET.parse(report).getroot().get("tests") == "2"
    bad = tmp_path / "bad.yml"
    bad.write_text(MONITORS + "  - {name: gone, kind: http, url: /nope}\n")
    run = subprocess.run([str(SHOPWATCH), "check", "run", str(bad), "--base-url", target.url],
                         capture_output=True, text=True, env=clean_env(), timeout=60)
    assert run.returncode == 1
    assert "FAIL  gone (http)" in run.stdout and "✗ status 404, expected 2xx or 3xx" in run.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text("monitors: [{name: x, kind: http}]")
    run = subprocess.run([str(SHOPWATCH), "check", "run", str(broken)], capture_output=True,
                         text=True, env=clean_env(), timeout=60)
    assert run.returncode == 2 and "monitors[0].url: an http monitor needs a url" in run.stderr
    relative = subprocess.run([str(SHOPWATCH), "check", "run", str(good)], capture_output=True,
                              text=True, env=clean_env(), timeout=60)
    assert relative.returncode == 1 and "give --base-url" in relative.stdout
