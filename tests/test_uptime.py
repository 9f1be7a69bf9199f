"""Monitor status, availability, response-time percentiles and incidents over the API,
from check results written through the real writer."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from shopwatch.checks.monitor import parse_monitors
from shopwatch.checks.record import CheckRow
from shopwatch.store import monitors as store
from shopwatch.store.base import EventBatch
from shopwatch.store.state import Project
from tests.conftest import Live

MONITORS = """
monitors:
  - {name: home, kind: http, url: /}
  - {name: checkout, kind: http, url: /checkout}
  - {name: new, kind: http, url: /new}
  - {name: paused, kind: http, url: /p, enabled: false}
"""


def write(live: Live, project_id: int, rows: list[CheckRow]) -> None:
    batch = EventBatch(project_id, time.time_ns() // 1000, b"[]", 0, [],
                       checks=msgspec.json.encode(rows), n_checks=len(rows))
    live.runtime.writer.submit(batch).result(timeout=30)


@pytest.fixture
def history(live: Live, project: Project) -> dict[str, Any]:
    """Home: one run a minute for the last 2 hours, failing from 60 to 50 minutes ago;
    checkout: up 2 days ago, down now; two locations for home."""
    store.apply(live.runtime.state, project.id, parse_monitors(MONITORS))
    now = time.time()
    rows, durations = [], []
    for i in range(120):
        t = now - (120 - i) * 60
        ok = not 60 <= 120 - i <= 70
        duration = 100.0 + i
        durations.append(duration)
        rows.append(CheckRow(ts=t, monitor="home", kind="http", location="local", ok=ok,
                             attempts=1, duration_ms=duration, status=200 if ok else 503,
                             failure=None if ok else "status 503, expected 2xx or 3xx"))
    rows.append(CheckRow(ts=now - 30, monitor="home", kind="http", location="eu", ok=True,
                         attempts=1, duration_ms=80.0, status=200))
    rows.append(CheckRow(ts=now - 2 * 86400, monitor="checkout", kind="http",
                         location="local", ok=True, attempts=1, duration_ms=50, status=200))
    rows.append(CheckRow(ts=now - 60, monitor="checkout", kind="http", location="local",
                         ok=False, attempts=3, duration_ms=10_000,
                         failure="timed out (ReadTimeout)"))
    write(live, project.id, rows)
    return {"durations": durations}


def test_status_availability_and_bars(live: Live, project: Project,
                                      history: dict[str, Any]) -> None:
    body = live.client(project.secret_key).get("/api/v1/monitors").json()
    by = {m["name"]: m for m in body["monitors"]}
    assert [m["name"] for m in body["monitors"]] == ["checkout", "home", "new", "paused"]
    home = by["home"]
    assert home["status"] == "up" and home["last"]["location"] == "eu"
    # 121 runs in the last 24 hours, 11 failed (the minutes 60..70 before now).
    assert home["availability"]["24h"] == pytest.approx(110 / 121, abs=1e-6)
    assert home["availability"]["90d"] == home["availability"]["24h"]
    assert len(home["bars"]) == 90
    assert sum(b["runs"] for b in home["bars"]) == 121
    assert home["bars"][0]["availability"] is None  # no run that day: no figure
    checkout = by["checkout"]
    assert checkout["status"] == "down"
    assert checkout["last"]["failure"] == "timed out (ReadTimeout)"
    assert checkout["availability"]["24h"] == 0.0 and checkout["availability"]["30d"] == 0.5
    assert by["new"]["status"] == "unknown" and by["new"]["availability"]["24h"] is None
    assert by["paused"]["status"] == "paused"


def test_detail_percentiles_per_location_and_incidents(live: Live, project: Project,
                                                       history: dict[str, Any]) -> None:
    client = live.client(project.secret_key)
    body = client.get("/api/v1/monitors/home", params={"range": "24h"}).json()
    assert body["runs"] == 121 and set(body["locations"]) == {"local", "eu"}
    local = body["locations"]["local"]
    assert sum(b["runs"] for b in local) == 120
    assert all(b["p50_ms"] <= b["p95_ms"] <= b["p99_ms"] for b in local)
    (incident,) = body["incidents"]
    assert incident["location"] == "local" and incident["failures"] == 11
    assert incident["reason"] == "status 503, expected 2xx or 3xx"
    assert incident["duration_s"] == pytest.approx(11 * 60, abs=1)
    assert body["latest"][0]["location"] == "eu"
    assert body["monitor"]["url"] == "/"
    checkout = client.get("/api/v1/monitors/checkout", params={"range": "24h"}).json()
    assert checkout["incidents"][0]["ended"] is None  # still down
    assert client.get("/api/v1/monitors/nope").status_code == 404


def test_monitors_can_be_created_changed_run_and_deleted_through_the_api(server: Any) -> None:
    from tests.test_checks import Target

    live = server(checks_allow="127.0.0.1")
    project = live.create_project("shop")
    target = Target()
    try:
        live.runtime.state.update_project(project.id, base_url=target.url)
        api = live.client(project.secret_key)
        body = {"kind": "http", "url": "/", "expect": {"contains": "Add to cart"}}
        created = api.put("/api/v1/monitors/home", json=body)
        assert created.status_code == 200, created.text
        assert created.json()["managed_in"] == "dashboard"
        listed = api.get("/api/v1/monitors").json()["monitors"]
        assert [(m["name"], m["managed_in"]) for m in listed] == [("home", "dashboard")]
        run = api.post("/api/v1/monitors/home/run").json()
        assert run["ok"] is True and run["steps"][0]["status"] == 200
        bad = api.put("/api/v1/monitors/home", json={"kind": "http", "interval": "5s",
                                                     "url": "/"})
        assert bad.status_code == 400
        assert bad.json()["error"]["message"] == \
            "interval: 5s is under the minimum of 20s"
        other = api.put("/api/v1/monitors/home", json={**body, "name": "away"})
        assert other.status_code == 400 and "differs from the URL" in other.text
        assert api.put("/api/v1/monitors/home", content=b"{").status_code == 400
        assert api.delete("/api/v1/monitors/home").json() == {"deleted": "home"}
        assert api.delete("/api/v1/monitors/home").status_code == 404
        assert api.post("/api/v1/monitors/home/run").status_code == 404
        # The public ingest key changes nothing.
        assert live.client(project.ingest_key).put("/api/v1/monitors/x",
                                                   json=body).status_code == 403
    finally:
        target.close()


def test_tls_monitors_show_the_certificate_countdown(live: Live, project: Project) -> None:
    store.apply(live.runtime.state, project.id, parse_monitors(
        "monitors: [{name: cert, kind: tls, host: shop.example}]"))
    now = time.time()
    details = {"days_left": 9.5, "not_after": "2026-12-01T12:00:00+00:00"}
    write(live, project.id, [
        CheckRow(ts=now - 120, monitor="cert", kind="tls", location="local", ok=True,
                 attempts=1, duration_ms=30, steps=[{"name": "cert", "details": {
                     "days_left": 10.5, "not_after": "2026-12-01T12:00:00+00:00"}}]),
        CheckRow(ts=now - 60, monitor="cert", kind="tls", location="local", ok=False,
                 attempts=1, duration_ms=30, failure="certificate expires in 9 days",
                 steps=[{"name": "cert", "details": details}])])
    (row,) = live.client(project.secret_key).get("/api/v1/monitors").json()["monitors"]
    assert row["certificate"] == details
    assert row["target"] == "shop.example:443"


@pytest.mark.browser
def test_a_browser_flow_run_keeps_its_screenshot_for_signed_in_users(server: Any) -> None:
    from tests.test_browser_flow import Site

    live = server(checks_allow="127.0.0.1")
    project = live.create_project("shop")
    site = Site()
    try:
        live.runtime.state.update_project(project.id, base_url=site.url)
        api = live.client(project.secret_key)
        body = {"kind": "browser_flow", "timeout": "20s", "steps": [
            {"name": "home", "url": "/", "expect": {"contains": "Little shop"}},
            {"name": "pay", "url": "/cart", "expect": {"contains": "Order number"}}]}
        assert api.put("/api/v1/monitors/web flow", json=body).status_code == 200
        # A script is code the server runs: never accepted through the API.
        scripted = api.put("/api/v1/monitors/scripted", json={
            "kind": "browser_flow", "script": "flow.py"})
        assert scripted.status_code == 400
        assert "applied only from files, by an operator" in scripted.json()["error"]["message"]
        run = api.post("/api/v1/monitors/web flow/run").json()
        assert run["ok"] is False
        assert run["failure"] == "step pay: the page does not show 'Order number'"
        home, pay = run["steps"]
        assert home["details"]["pages"][0]["lcp_ms"] is not None
        png = api.get(f"/api/v1/monitors/web flow/artifacts/{pay['details']['screenshot']}")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
        html = api.get(f"/api/v1/monitors/web flow/artifacts/{pay['details']['html']}")
        # The shop's page is served as text, never as a page of Shopwatch's own origin.
        assert html.headers["content-type"].startswith("text/plain")
        assert html.headers["content-security-policy"].startswith("sandbox")
        assert "marker-7c1f" in html.text
        for name in ("../../shopwatch.db", "20261122T120000Z-x.png", "x.txt"):
            assert api.get(f"/api/v1/monitors/web flow/artifacts/{name}").status_code == 404
        anonymous = live.client(None).get(
            f"/api/v1/monitors/web flow/artifacts/{pay['details']['screenshot']}")
        assert anonymous.status_code == 401
        assert live.client(project.ingest_key).get(
            f"/api/v1/monitors/web flow/artifacts/{pay['details']['screenshot']}"
        ).status_code == 403
    finally:
        site.close()
