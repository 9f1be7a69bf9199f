"""Real-user analytics over the API: Web Vitals at p75, error groups, resources, journeys.

Beacons go in through ``POST /api/v1/rum`` and figures come out of ``/api/v1/vitals``,
``/api/v1/errors`` and ``/api/v1/journey``; expected values are computed here from the
raw numbers sent.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from shopwatch.analytics.vitals import rating
from shopwatch.store.state import Project
from tests.conftest import Live

SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")


def p75(values: list[float]) -> float:
    """Linear-interpolation 75th percentile (DuckDB's quantile_cont, numpy's default)."""
    ordered = sorted(values)
    pos = 0.75 * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def send(live: Live, key: str, sid: str, records: list[dict[str, Any]], ua: str) -> None:
    response = live.client().post(f"/api/v1/rum?key={key}", content=json.dumps(
        {"sid": sid, "r": records}), headers={"content-type": "text/plain", "user-agent": ua})
    assert response.status_code == 200, response.text
    assert not response.json()["rejected"]


def page_view(pv: str, path: str, t: float, lcp: float, cls: float, inp: float,
              ttfb: float) -> list[dict[str, Any]]:
    url = f"https://shop.example{path}"
    return [{"k": "view", "pv": pv, "t": t, "url": url, "ttfb": ttfb, "di": ttfb + 200,
             "load": lcp + 100},
            {"k": "vitals", "pv": pv, "t": t + 500, "url": url, "fcp": lcp / 2, "lcp": lcp * 0.9,
             "cls": cls / 2, "inp": inp / 2},
            # a later report of the same page view supersedes the first
            {"k": "vitals", "pv": pv, "t": t + 9000, "url": url, "fcp": lcp / 2, "lcp": lcp,
             "cls": cls, "inp": inp, "lcpEl": "img.hero"}]


@pytest.fixture
def filled(live: Live, project: Project) -> dict[str, Any]:
    """Twelve product page views, four cart views, errors, resources; what was sent."""
    key = str(project.ingest_key)
    now = time.time() * 1000 - 3600_000
    sent: dict[str, Any] = {"lcp": [], "inp": [], "cls": [], "ttfb": [], "product_lcp": []}
    for i in range(16):
        path = f"/product/item-{i % 5}" if i < 12 else "/cart"
        lcp, cls, inp, ttfb = 1000.0 + 300 * i, 0.01 * i, 40.0 + 35 * i, 200.0 + 90 * i
        ua = SAFARI if i % 2 else CHROME
        records = page_view(f"pv-{i}", path, now + i * 60_000, lcp, cls, inp, ttfb)
        if i in (3, 5, 7):
            records.append({"k": "error", "pv": f"pv-{i}", "t": now + i * 60_000 + 1000,
                            "url": f"https://shop.example{path}",
                            "msg": f"TypeError: cart is undefined (item {i})",
                            "stack": "TypeError: cart\n at add (https://shop.example/cart.js"
                                     f"?v={i}:{10 + i}:5)"})
        if i == 4:
            records.append({"k": "error", "type": "rejection", "pv": "pv-4", "t": now + 241_000,
                            "url": "https://shop.example/product/item-4", "msg": "timeout"})
        if i in (8, 9):
            records.append({"k": "resource", "pv": f"pv-{i}", "t": now + i * 60_000 + 100,
                            "url": f"https://shop.example{path}",
                            "ru": "https://js.payments.example/v3/sdk.js", "rt": "script",
                            "fail": True})
        records.append({"k": "resource", "pv": f"pv-{i}", "t": now + i * 60_000 + 200,
                        "url": f"https://shop.example{path}", "rt": "img",
                        "ru": f"https://cdn.example/img/{i % 2}.jpg", "dur": 1000.0 + 100 * i})
        send(live, key, f"session-{i // 4}", records, ua)
        sent["lcp"].append(lcp)
        sent["inp"].append(inp)
        sent["cls"].append(cls)
        sent["ttfb"].append(ttfb)
        if i < 12:
            sent["product_lcp"].append(lcp)
    # Commerce events of session-1, server-side.
    response = live.post_events(key, [
        {"name": "add_to_cart", "session_id": "session-1", "ts": int(now + 4 * 60_000 + 3000),
         "params": {"value": 20, "currency": "EUR"}}])
    assert response.status_code == 200
    return sent


def test_p75_ratings_and_breakdowns(live: Live, project: Project,
                                    filled: dict[str, Any]) -> None:
    client = live.client(project.secret_key)
    body = client.get("/api/v1/vitals", params={"range": "24h"}).json()
    total = body["total"]
    assert total["views"] == 16
    for metric in ("lcp", "inp", "ttfb"):
        expected = p75(filled[metric])
        assert total["metrics"][metric]["p75"] == round(expected)
        assert total["metrics"][metric]["rating"] == rating(metric, expected)
        assert total["metrics"][metric]["n"] == 16
    assert total["metrics"]["cls"]["p75"] == pytest.approx(p75(filled["cls"]), abs=1e-4)
    lcp = total["metrics"]["lcp"]
    assert lcp["good"] == sum(1 for v in filled["lcp"] if v <= 2500)
    assert lcp["poor"] == sum(1 for v in filled["lcp"] if v > 4000)
    assert lcp["good"] + lcp["needs_improvement"] + lcp["poor"] == 16
    groups = {r["key"]: r for r in body["breakdown"]}
    assert set(groups) == {"/product/*", "/cart"}
    assert groups["/product/*"]["views"] == 12
    assert groups["/product/*"]["metrics"]["lcp"]["p75"] == round(p75(filled["product_lcp"]))
    assert body["thresholds"]["inp"] == {"good": 200.0, "poor": 500.0, "unit": "ms"}
    assert sum(t["views"] for t in body["trend"]) == 16
    # Narrowed to a page group; broken down by browser.
    narrowed = client.get("/api/v1/vitals", params={"page": "/product/*", "by": "browser"}).json()
    assert narrowed["total"]["views"] == 12
    assert {r["key"] for r in narrowed["breakdown"]} == {"Chrome", "Mobile Safari"}
    slowest = body["slowest_pages"]
    assert slowest[0]["page"] == "/cart"  # the last four views are the slowest
    assert slowest[0]["lcp_rating"] == "poor"
    # Resources: the slow image URLs, the payment provider's failures by host.
    assert [r["host"] for r in body["failed_hosts"]] == ["js.payments.example"]
    failed = body["failed_hosts"][0]
    assert (failed["failures"], failed["views"], failed["sessions"]) == (2, 2, 1)
    assert {r["url"] for r in body["slow_resources"]} == {"https://cdn.example/img/0.jpg",
                                                          "https://cdn.example/img/1.jpg"}
    csv = client.get("/api/v1/vitals", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.startswith("key,views,lcp_p75")
    assert client.get("/api/v1/vitals", params={"by": "colour"}).status_code == 400


def test_errors_grouped_by_fingerprint(live: Live, project: Project,
                                       filled: dict[str, Any]) -> None:
    client = live.client(project.secret_key)
    body = client.get("/api/v1/errors", params={"range": "24h"}).json()
    groups = body["groups"]
    assert [(g["type"], g["count"], g["views"], g["sessions"]) for g in groups] == [
        ("error", 3, 3, 2), ("rejection", 1, 1, 1)]
    top = groups[0]
    # Numbers in the message and the stack's query and line do not split the group.
    assert top["message"] == "TypeError: cart is undefined (item 7)"
    assert "?v=" not in top["stack"]
    assert set(top["browsers"]) == {"Mobile Safari"}
    assert top["pages"][0].startswith("/product/")
    assert top["first_seen"] < top["last_seen"]
    assert sum(t["errors"] for t in body["trend"]) == 4
    one = client.get("/api/v1/errors", params={"fingerprint": top["fingerprint"]}).json()
    assert [g["fingerprint"] for g in one["groups"]] == [top["fingerprint"]]
    assert {s["session_id"] for s in one["sessions"]} == {"session-0", "session-1"}
    assert client.get("/api/v1/errors", params={"fingerprint": "x"}).status_code == 400


def test_journey_lists_a_session_in_order(live: Live, project: Project,
                                          filled: dict[str, Any]) -> None:
    client = live.client(project.secret_key)
    body = client.get("/api/v1/journey", params={"session": "session-1"}).json()
    assert body["page_views"] == 4 and body["errors"] == 3 and body["events"] == 1
    types = [s["type"] for s in body["steps"]]
    assert types.count("vitals") == 4  # the last report of each page view only
    times = [s["t"] for s in body["steps"]]
    assert times == sorted(times)
    cart = next(s for s in body["steps"] if s["type"] == "event")
    assert cart["name"] == "add_to_cart" and cart["value"] == 20
    # The add_to_cart came after page view pv-4 (its view, first vitals...) and its error.
    assert types.index("event") > types.index("error")
    vitals = [s for s in body["steps"] if s["type"] == "vitals"]
    assert vitals[0]["lcp"] == 1000.0 + 300 * 4 and vitals[0]["ratings"]["lcp"] == "good"
    assert client.get("/api/v1/journey", params={"session": "nope"}).status_code == 404
    # The other project's key reads nothing of this one.
    other = live.create_project("other")
    assert live.client(other.secret_key).get(
        "/api/v1/journey", params={"session": "session-1"}).status_code == 404
