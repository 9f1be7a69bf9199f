"""``POST /api/v1/rum`` and ``GET /rum.js`` over real HTTP, and the beacon parser."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopwatch import beacon
from shopwatch.errors import BadRequest
from shopwatch.store.state import Project
from shopwatch.useragent import parse_agent
from shopwatch.web.snippet import MAX_GZIP_BYTES, SOURCE, served
from tests.conftest import Live

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
SHOP = "https://shop.example"


def _beacon(*records: dict[str, Any], sid: str = "s-1", **extra: Any) -> dict[str, Any]:
    now = time.time() * 1000
    return {"v": 1, "sid": sid, "vw": 390, "vh": 844, "ect": "4g",
            "r": [{"pv": "pv-1", "t": now, "url": f"{SHOP}/p/shoe", **r} for r in records],
            **extra}


def _post(live: Live, key: str | None, body: bytes | dict[str, Any], *,
          origin: str | None = SHOP, **headers: str) -> httpx.Response:
    hdrs = {"content-type": "text/plain;charset=UTF-8", "user-agent": IPHONE, **headers}
    if origin is not None:
        hdrs["origin"] = origin
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = "/api/v1/rum" + (f"?key={key}" if key else "")
    return live.client().post(url, content=content, headers=hdrs)


def _rum(live: Live, sql: str = "SELECT kind FROM rum ORDER BY ts") -> list[tuple[Any, ...]]:
    return live.runtime.events.query(sql)


def test_snippet_is_small_cached_and_served_compressed(live: Live) -> None:
    response = live.client().get("/rum.js", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["content-encoding"] == "gzip"
    assert "max-age=86400" in response.headers["cache-control"]
    compressed = int(response.headers["content-length"])
    assert compressed <= MAX_GZIP_BYTES  # the bar: at most 3 KB gzip
    assert compressed == len(gzip.compress(served()[0], 9))
    # The readable source too, should it be served as it is.
    assert len(gzip.compress(SOURCE.read_bytes(), 9)) <= MAX_GZIP_BYTES
    again = live.client().get("/rum.js", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304


def test_beacon_is_stored_scrubbed_with_device_and_no_address(live: Live,
                                                              project: Project) -> None:
    body = _beacon(
        {"k": "view", "url": f"{SHOP}/account/orders/1234567890?utm_source=news&mail=a@b.example",
         "ref": "https://www.google.com/search?q=a%40b.example", "dns": 3, "tcp": 10, "tls": 8,
         "ttfb": 180, "di": 600, "load": 900},
        {"k": "vitals", "fcp": 700, "lcp": 1900, "cls": 0.05, "inp": 120, "lcpEl": "img.hero",
         "vis": 4000},
        {"k": "error", "msg": "Failed for jane@shop.example", "stack": "Error: x\n at f "
         "(https://shop.example/app.js?token=secret:1:2)", "src": f"{SHOP}/app.js?token=t",
         "line": 1, "col": 2},
        {"k": "resource", "ru": "https://js.payments.example/v3/?session=abc", "rt": "script",
         "fail": True})
    response = _post(live, project.ingest_key, body, **{"x-forwarded-for": "203.0.113.9"})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 4
    # No CORS header: the project lists no origin (any may send; none is answered).
    assert "access-control-allow-origin" not in response.headers
    rows = _rum(live, "SELECT kind, page, referrer, device_category, browser, os, "
                      "viewport_width, connection, message, stack, source, resource_url, "
                      "resource_host FROM rum ORDER BY kind")
    by_kind = {r[0]: r for r in rows}
    view = by_kind["view"]
    assert view[1] == "/account/orders/[number]?utm_source=news"
    assert view[2] == "https://www.google.com/search"
    assert view[3:8] == ("mobile", "Mobile Safari", "iOS", 390, "4g")
    error = by_kind["error"]
    assert error[8] == "Failed for [email]"
    assert "token" not in error[9] and "token" not in error[10]
    assert by_kind["resource"][11:] == ("https://js.payments.example/v3/", "js.payments.example")
    everything = json.dumps(_rum(live, "SELECT * FROM rum"), default=str)
    assert "203.0.113.9" not in everything and "127.0.0.1" not in everything
    assert "a@b" not in everything and "jane@" not in everything and "secret" not in everything


def test_invalid_records_are_reported_and_the_valid_kept(live: Live, project: Project) -> None:
    body = _beacon({"k": "view"}, {"k": "vitals", "cls": -1}, {"k": "nope"},
                   {"k": "resource"}, {"k": "vitals", "lcp": "slow"},
                   {"k": "event", "n": "1bad"}, {"k": "event", "n": "purchase",
                                                "p": {"value": "a lot"}})
    response = _post(live, project.ingest_key, body)
    assert response.status_code == 200
    payload = response.json()
    assert payload["accepted"] == 1
    errors = {r["index"]: r["error"] for r in payload["rejected"]}
    assert errors[1] == "r[1].cls: expected float >= 0.0"
    assert errors[2] == "r[2].k: invalid value 'nope'"
    assert errors[3] == "r[3]: object missing required field ru"
    assert errors[4] == "r[4].lcp: expected float | null, got str"
    assert errors[5].startswith("name: '1bad' must start with a letter")
    assert errors[6].startswith("params.value: expected float")
    assert _rum(live) == [("view",)]


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    (b"", {}, 400, "empty body"),
    (b"{not json", {}, 400, "not valid JSON"),
    (b"[1, 2]", {}, 400, "beacon: expected object"),
    (b'{"r": "x"}', {}, 400, "beacon.r: expected array"),
    (json.dumps({"r": [{"k": "view"}] * 201}).encode(), {}, 400, "length <= 200"),
    (b"{}", {"content-type": "application/xml"}, 415, "Content-Type"),
    (b"x" * (64 * 1024 + 1), {}, 413, "larger than 65536 bytes"),
])
def test_bad_beacons_get_a_clear_error(live: Live, project: Project, body: bytes,
                                       headers: dict[str, str], status: int,
                                       message: str) -> None:
    response = _post(live, project.ingest_key, body, **headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert _rum(live) == []


def test_keys(live: Live, project: Project) -> None:
    assert _post(live, None, _beacon({"k": "view"})).status_code == 401
    assert _post(live, "swpub_nope", _beacon({"k": "view"})).status_code == 401
    # The key may also come as a header (for servers relaying beacons).
    response = _post(live, None, _beacon({"k": "view"}), **{"x-shopwatch-key": str(
        project.ingest_key)})
    assert response.status_code == 200


def test_cors_exact_origin_for_listed_origins_and_nothing_for_others(
        live: Live, project: Project) -> None:
    live.runtime.state.update_project(project.id, rum_origins=[SHOP, "http://localhost:3000"])
    time.sleep(2.1)  # the key cache's lifetime: a running server sees the change
    ok = _post(live, project.ingest_key, _beacon({"k": "view"}))
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert ok.headers["vary"] == "Origin"
    other = _post(live, project.ingest_key, _beacon({"k": "view"}), origin="https://evil.example")
    assert other.status_code == 403
    assert "access-control-allow-origin" not in other.headers
    assert "https://evil.example is not one of the project's RUM origins" in other.text
    # A beacon without Origin (a server relaying) is refused too once origins are listed.
    assert _post(live, project.ingest_key, _beacon({"k": "view"}), origin=None).status_code == 403
    preflight = live.client().options(f"/api/v1/rum?key={project.ingest_key}", headers={
        "origin": "http://localhost:3000", "access-control-request-method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    refused = live.client().options(f"/api/v1/rum?key={project.ingest_key}", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in refused.headers
    assert _rum(live) == [("view",)]


def test_sampling_keeps_whole_sessions_and_every_commerce_event(
        live: Live, project: Project) -> None:
    live.runtime.state.update_project(project.id, rum_sample_rate=0.5)
    time.sleep(2.1)
    sids = [f"session-{i}" for i in range(40)]
    inside = {s for s in sids if beacon.sample_point(s) < 0.5}
    assert 5 < len(inside) < 35
    for sid in sids:
        body = _beacon({"k": "view"}, {"k": "vitals", "lcp": 1000},
                       {"k": "event", "n": "add_to_cart", "p": {"value": 1, "currency": "EUR"}},
                       sid=sid)
        response = _post(live, project.ingest_key, body)
        assert response.status_code == 200
        assert response.json()["sampled_out"] == (0 if sid in inside else 2)
    kept = _rum(live, "SELECT DISTINCT session_id FROM rum")
    assert {r[0] for r in kept} == inside
    assert live.runtime.events.count(project.id) == 40


def test_sample_point_matches_the_snippet() -> None:
    # FNV-1a 32-bit, as rum.js computes it over charCodeAt(i) & 255.
    assert beacon.sample_point("") == 0x811C9DC5 / 2**32
    assert beacon.sample_point("a") == 0xE40C292C / 2**32


def test_user_agents() -> None:
    assert parse_agent(IPHONE).category == "mobile"
    assert parse_agent("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                       "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
                       ).category == "tablet"
    desktop = parse_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                          "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0")
    assert (desktop.category, desktop.browser, desktop.os) == ("desktop", "Edge", "Windows")
    assert parse_agent("Googlebot/2.1 (+http://www.google.com/bot.html)").category == "bot"
    assert parse_agent("").category == "other"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4), max_leaves=20)
_record = st.fixed_dictionaries({"k": st.sampled_from(["view", "vitals", "error", "resource",
                                                      "event", "x"])},
                                optional={"pv": _json, "t": _json, "url": _json, "lcp": _json,
                                          "cls": _json, "msg": _json, "ru": _json, "n": _json,
                                          "p": _json, "stack": _json, "spa": _json})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"r": st.lists(_record, max_size=6)},
                          optional={"sid": _json, "uid": _json, "vw": _json}).map(
        lambda v: json.dumps(v).encode())))
def test_fuzzed_beacons_never_crash_the_parser(body: bytes) -> None:
    agent = parse_agent(IPHONE)
    try:
        parsed = beacon.parse(body, now_ms=1.7e12, agent=agent)
    except BadRequest as exc:
        assert str(exc)
        return
    decoded = json.loads(body)
    n = len(decoded["r"])
    # Every record is accounted for: stored, an event, or rejected with its index.
    assert len(parsed.rows) + len(parsed.events) + len(parsed.rejected) == n
    assert all(r["error"].startswith(f"r[{r['index']}]") for r in parsed.rejected)
    for row in parsed.rows:
        assert row.kind in ("view", "vitals", "error", "resource")
        assert row.page is None or row.page.startswith("/")
