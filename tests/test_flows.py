"""The Checks page's figures (``GET /api/v1/checks``): flows step by step, from check
results written through the real writer into the real DuckDB store."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import pytest

from shopwatch.checks.monitor import parse_monitors
from shopwatch.checks.record import CheckRow, row_of
from shopwatch.checks.result import SKIPPED, CheckResult, StepResult
from shopwatch.store import monitors as store
from shopwatch.store.maintenance import add_window
from shopwatch.store.state import Project
from tests.conftest import Live
from tests.test_uptime import write

FLOWS = """
monitors:
  - name: checkout in a browser
    kind: browser_flow
    steps:
      - {name: home, url: /}
      - {name: add to cart, click: "text=Add to cart"}
      - {name: pay, click: "text=Pay"}
  - name: checkout api
    kind: api_flow
    steps:
      - {name: add, method: POST, url: /cart/add}
      - {name: pay, method: POST, url: /checkout}
  - {name: ping flow, kind: api_flow, steps: [{name: ping, url: /ping}]}
  - {name: home, kind: http, url: /}
"""
BROWSER = "checkout in a browser"
RUNS = range(10)  # browser runs k = 0..9, every 5 minutes over the last hour
IN_MAINTENANCE = 8  # run 8 fails at home during a maintenance window
PAY_FAILS = {1: "took 12000 ms, expected at most 10000",
             3: "the page does not show 'Thank you for your order'",
             7: "the page does not show 'Thank you for your order'"}
ADD_FAILS = {5: "timed out at CLICK text=Add to cart: the flow's timeout is 60s"}
SHOT = "20261122T120000Z-pay.png"


def percentile(values: Sequence[float], q: int) -> float:
    """The ``q``-th percentile with linear interpolation, as DuckDB's ``quantile_cont``."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def home_ms(k: int) -> float:
    return 100.0 + 10 * k


def add_ms(k: int) -> float:
    return 200.0 + 5 * k


def pay_ms(k: int) -> float:
    return 300.0 + k * k


def browser_run(k: int, started_at: float) -> CheckResult:
    """Run ``k`` of the browser flow as the browser session reports it."""
    home = StepResult("home", "https://shop.example/", "GOTO", duration_ms=home_ms(k),
                      status=200, details={"pages": [
                          {"url": "https://shop.example/", "ttfb_ms": 50.0 + k,
                           "fcp_ms": 400.0, "lcp_ms": 1000.0 + 100 * k, "cls": 0.01 * k,
                           "inp_ms": None, "load_ms": 900.0}]})
    if k == 2:
        home.details["console_errors"] = ["ReferenceError: gtag is not defined"]
    if k == IN_MAINTENANCE:
        home.fail("status 503")
    add = StepResult("add to cart", "", "CLICK", duration_ms=add_ms(k))
    pay = StepResult("pay", "", "CLICK", duration_ms=pay_ms(k))
    if k in ADD_FAILS:
        add.fail(ADD_FAILS[k])
        pay = StepResult("pay", "", "CLICK", ok=False, duration_ms=0.0, failures=[SKIPPED])
    if k in PAY_FAILS:
        pay.fail(PAY_FAILS[k])
        pay.details.update(screenshot=SHOT.replace("pay", f"pay{k}"),
                           html=f"20261122T120000Z-pay{k}.html",
                           console_errors=["Uncaught TypeError: sdk is undefined"],
                           failed_requests=["GET https://pay.example/sdk.js: 503",
                                            "POST https://shop.example/api/pay: 500"])
    steps = [home] if k == IN_MAINTENANCE else [home, add, pay]
    result = CheckResult("checkout in a browser", "browser_flow", all(s.ok for s in steps),
                         round(sum(s.duration_ms for s in steps), 1), steps, started_at)
    return result


@pytest.fixture
def flows_history(live: Live, project: Project) -> dict[str, Any]:
    store.apply(live.runtime.state, project.id, parse_monitors(FLOWS))
    now = time.time()
    start = now - 3600
    rows: list[CheckRow] = []
    for k in RUNS:
        rows.append(row_of(browser_run(k, start + k * 300), "local"))
    # The maintenance window holds run 8 only.
    add_window(live.runtime.state, project.id, start + 8 * 300 - 60, 120)
    # The API flow: 6 runs, the 4th and 6th fail at pay (status 500, 502); an older run,
    # out of the range. (Maintenance windows hold every monitor: these runs miss it.)
    for k in range(6):
        add = StepResult("add", "https://shop.example/cart/add", "POST", status=200,
                         duration_ms=40.0 + k)
        pay = StepResult("pay", "https://shop.example/checkout", "POST", status=200,
                         duration_ms=80.0 + 2 * k)
        if k in (3, 5):
            pay.status = 500 + k - 3
            pay.fail(f"status {pay.status}, expected 2xx or 3xx")
        rows.append(row_of(CheckResult("checkout api", "api_flow", pay.ok,
                                       add.duration_ms + pay.duration_ms, [add, pay],
                                       start + k * 600 + 150), "eu-west"))
    rows.append(row_of(CheckResult("checkout api", "api_flow", False, 5000.0, [
        StepResult("add", ok=False, duration_ms=5000.0, failures=["timed out"]),
        StepResult("pay", ok=False, failures=[SKIPPED])], now - 3 * 86400), "local"))
    # A one-step flow: its rows carry no steps JSON, only the run's columns.
    for k in range(3):
        ping = StepResult("ping", "https://shop.example/ping", status=200 if k else 502,
                          duration_ms=20.0 + k)
        if k == 0:
            ping.fail("status 502, expected 2xx or 3xx")
        row = row_of(CheckResult("ping flow", "api_flow", ping.ok, ping.duration_ms, [ping],
                                 start + k * 60), "local")
        assert row.steps is None
        rows.append(row)
    write(live, project.id, rows)
    return {"now": now}


def _counted(skip: frozenset[int] = frozenset()) -> list[int]:
    """The browser runs that count: not the one in maintenance, nor those in ``skip``."""
    return [k for k in RUNS if k != IN_MAINTENANCE and k not in skip]


def test_flows_per_step_figures(live: Live, project: Project,
                                flows_history: dict[str, Any]) -> None:
    response = live.client(project.secret_key).get("/api/v1/checks", params={"range": "24h"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["range"]["label"] == "24h"
    by = {f["name"]: f for f in body["flows"]}
    # Flows only, in name order; the http monitor is not one.
    assert [f["name"] for f in body["flows"]] == ["checkout api", BROWSER, "ping flow"]

    flow = by[BROWSER]
    counted = _counted()
    assert flow["kind"] == "browser_flow" and flow["maintenance_runs"] == 1
    assert flow["runs"] == 9 and flow["passed"] == 5
    assert flow["pass_rate"] == pytest.approx(5 / 9, abs=1e-6)
    totals = [home_ms(k) + add_ms(k) + (0 if k in ADD_FAILS else pay_ms(k)) for k in counted]
    assert flow["p50_ms"] == pytest.approx(percentile(totals, 50), abs=0.05)
    assert flow["p95_ms"] == pytest.approx(percentile(totals, 95), abs=0.05)
    # The last run (9) passed, from the server's own location.
    assert flow["status"] == "passed" and flow["last"]["ok"] is True
    assert flow["last"]["location"] == "local"

    home, add, pay = flow["steps"]
    assert [s["name"] for s in flow["steps"]] == ["home", "add to cart", "pay"]
    assert [s["index"] for s in flow["steps"]] == [0, 1, 2]
    # home: every counted run; the failure during maintenance counts nowhere.
    assert (home["runs"], home["failures"], home["skipped"]) == (9, 0, 0)
    assert home["failure_rate"] == 0 and home["top_failure"] is None
    assert home["p50_ms"] == pytest.approx(percentile([home_ms(k) for k in counted], 50))
    assert home["p95_ms"] == pytest.approx(percentile([home_ms(k) for k in counted], 95),
                                           abs=0.05)
    assert home["lcp_p75_ms"] == pytest.approx(
        percentile([1000 + 100 * k for k in counted], 75), abs=0.05)
    assert home["ttfb_p75_ms"] == pytest.approx(percentile([50 + k for k in counted], 75),
                                                abs=0.05)
    assert home["cls_max"] == pytest.approx(0.09)  # run 9's; not run 8's, in maintenance
    assert home["lcp_rating"] == "good" and home["cls_rating"] == "good"
    assert home["console_errors"] == 1 and home["failed_requests"] == 0
    # add to cart: one failure (run 5).
    assert (add["runs"], add["failures"]) == (9, 1)
    assert add["failure_rate"] == pytest.approx(1 / 9, abs=1e-6)
    assert add["top_failure"] == {"reason": ADD_FAILS[5], "count": 1}
    assert add["p95_ms"] == pytest.approx(percentile([add_ms(k) for k in counted], 95),
                                          abs=0.05)
    assert add["lcp_p75_ms"] is None  # no page of its own
    # pay: skipped once (after add failed), failed three times, twice for the same reason.
    paid = _counted(frozenset(ADD_FAILS))
    assert (pay["runs"], pay["failures"], pay["skipped"]) == (8, 3, 1)
    assert pay["failure_rate"] == pytest.approx(3 / 8, abs=1e-6)
    assert pay["top_failure"] == {"reason": PAY_FAILS[3], "count": 2}
    assert pay["p50_ms"] == pytest.approx(percentile([pay_ms(k) for k in paid], 50),
                                          abs=0.05)
    assert pay["p95_ms"] == pytest.approx(percentile([pay_ms(k) for k in paid], 95),
                                          abs=0.05)
    assert pay["console_errors"] == 3 and pay["failed_requests"] == 6

    latest = flow["latest_failure"]
    assert latest["step"] == "pay" and latest["reason"] == PAY_FAILS[7]
    assert latest["failure"] == f"step pay: {PAY_FAILS[7]}"
    assert latest["screenshot"] == "20261122T120000Z-pay7.png"
    assert latest["html"] == "20261122T120000Z-pay7.html"
    assert latest["location"] == "local"
    assert latest["failed_requests"][0] == "GET https://pay.example/sdk.js: 503"
    started = flows_history["now"] - 3600 + 7 * 300
    assert latest["at"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(started)))

    series = flow["series"]
    assert [s["name"] for s in series["steps"]] == ["home", "add to cart", "pay"]
    assert len(series["t"]) >= 2  # 30-minute buckets over an hour of runs
    assert all(len(s["p50_ms"]) == len(series["t"]) for s in series["steps"])
    assert all(v is not None for v in series["steps"][0]["p50_ms"])


def test_api_flows_and_flows_whose_runs_keep_no_steps(live: Live, project: Project,
                                                      flows_history: dict[str, Any]) -> None:
    client = live.client(project.secret_key)
    by = {f["name"]: f for f in client.get("/api/v1/checks", params={"range": "24h"}).json()
          ["flows"]}
    api = by["checkout api"]
    # The run 3 days ago is out of the range.
    assert (api["runs"], api["passed"], api["maintenance_runs"]) == (6, 4, 0)
    add, pay = api["steps"]
    assert (add["runs"], add["failures"], add["skipped"]) == (6, 0, 0)
    assert add["p50_ms"] == pytest.approx(percentile([40 + k for k in range(6)], 50))
    assert (pay["runs"], pay["failures"]) == (6, 2)
    # Reasons that differ only in a number are one; the newest is shown.
    assert pay["top_failure"] == {"reason": "status 502, expected 2xx or 3xx", "count": 2}
    assert pay["lcp_p75_ms"] is None and pay["console_errors"] == 0
    latest = api["latest_failure"]
    assert latest["step"] == "pay" and latest["url"] == "https://shop.example/checkout"
    assert latest["location"] == "eu-west" and latest["screenshot"] is None
    assert api["last"]["location"] == "eu-west" and api["status"] == "failed"
    # Over 7 days the older run counts: it failed at add, and pay was skipped.
    week = {f["name"]: f for f in client.get("/api/v1/checks", params={"range": "7d"}).json()
            ["flows"]}["checkout api"]
    add, pay = week["steps"]
    assert (add["runs"], add["failures"], pay["skipped"], pay["runs"]) == (7, 1, 1, 6)

    ping = by["ping flow"]
    (step,) = ping["steps"]
    assert step["name"] == "ping" and (step["runs"], step["failures"]) == (3, 1)
    assert step["p50_ms"] == 21.0
    assert ping["latest_failure"]["reason"] == "status 502, expected 2xx or 3xx"


def test_flows_without_runs_and_projects_without_flows(live: Live, project: Project) -> None:
    client = live.client(project.secret_key)
    assert client.get("/api/v1/checks").json()["flows"] == []
    store.apply(live.runtime.state, project.id, parse_monitors(FLOWS))
    flow = {f["name"]: f for f in client.get("/api/v1/checks").json()["flows"]}[BROWSER]
    assert flow["status"] == "unknown" and flow["last"] is None and flow["runs"] == 0
    assert flow["pass_rate"] is None and flow["latest_failure"] is None
    assert [(s["name"], s["runs"]) for s in flow["steps"]] == [
        ("home", 0), ("add to cart", 0), ("pay", 0)]
    assert flow["series"]["t"] == []
    csv = client.get("/api/v1/checks", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("flow,kind,name")
    assert client.get("/api/v1/checks", params={"range": "2h"}).status_code == 400
