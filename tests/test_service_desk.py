"""The Service desk section (docs/kpis.md, "Service desk"): hand-made ``support_contact``
events posted through the real ingest endpoint into a real DuckDB file, then
``GET /api/v1/service-desk`` checked against figures computed by hand; validation of the
contact params; the page.

The contacts, queued from ``t0`` (the hour three hours ago), threshold 20 s:

====  =======  ==========================  =====================================
id    channel  outcome (wait)              talk/hold/acw, FCR, agent, reason
====  =======  ==========================  =====================================
P1    phone    answered after 10 s         100/20/30, yes, Ana, billing
P2    phone    answered after 20 s (exact) 200/0/40, no, Ben, billing
P3    phone    answered after 30 s         300/-/-, -, Ana, delivery
P4    phone    abandoned after 20 s        (exactly at the threshold: a short abandon)
P5    phone    abandoned after 45 s
P6    phone    abandoned after 5 s         (short abandon)
C1    chat     answered after 15 s         400/-/-, yes, Ben, delivery
C2    chat     sent twice: queued, then    100/-/20, yes, Ana, returns
               answered after 60 s
C3    chat     still waiting
E1    email    answered after 3600 s       180/-/60, yes, Ben, returns
E2    email    not answered (no queued_at) reason billing
O1    -        no contact_id, no channel
====  =======  ==========================  =====================================

Queued (phone, chat): answered P1 P2 P3 C1 C2 (waits 10+20+30+15+60 = 135 s), in time
P1 P2 C1; abandoned P4 P5 P6, short P4 P6. Service level 3 / (5 + 3 - 2) = 0.5; ASA
27 s; abandonment 3/8. Handled: P1 150, P2 240, P3 300, C1 400, C2 120, E1 240 s: AHT
1450/6. FCR 4/5. Orders: T1 (twice), T2 and one without an id: 3; 12 contacts: 400
per 100 orders.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from shopwatch.analytics import service_desk
from shopwatch.analytics.timerange import parse_range
from shopwatch.store.state import Project
from tests.conftest import VIEWER_EMAIL, Live, sign_in

HOUR_MS = 3_600_000


def period_start() -> int:
    return (int(time.time()) // 3600 - 3) * 3600 * 1000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def contact(t0: int, minute: int, cid: str | None, channel: str | None, *,
            answered: float | None = None, abandoned: float | None = None,
            as_text: bool = True, queued: bool = True, **params: Any) -> dict[str, Any]:
    q = t0 + minute * 60_000
    p: dict[str, Any] = dict(params)
    if cid is not None:
        p["contact_id"] = cid
    if channel is not None:
        p["channel"] = channel
    if queued:
        p["queued_at"] = iso(q) if as_text else q
    if answered is not None:
        p["answered_at"] = iso(q + int(answered * 1000)) if as_text else q + int(answered * 1000)
    if abandoned is not None:
        p["abandoned_at"] = iso(q + int(abandoned * 1000))
    return {"name": "support_contact", "ts": q, "user_id": f"cust-{minute}", "params": p}


def crafted(t0: int) -> list[dict[str, Any]]:
    return [
        contact(t0, 1, "P1", "phone", answered=10, talk_s=100, hold_s=20, acw_s=30,
                first_contact_resolved=True, agent="Ana", reason="billing"),
        contact(t0, 2, "P2", "phone", answered=20, as_text=False, talk_s=200, hold_s=0,
                acw_s=40, first_contact_resolved=False, agent="Ben", reason="billing"),
        contact(t0, 3, "P3", "phone", answered=30, talk_s=300, agent="Ana", reason="delivery",
                transaction_id="T1"),
        contact(t0, 4, "P4", "phone", abandoned=20),
        contact(t0, 5, "P5", "phone", abandoned=45),
        contact(t0, 6, "P6", "phone", abandoned=5),
        contact(t0, 7, "C1", "chat", answered=15, talk_s=400, first_contact_resolved=True,
                agent="Ben", reason="delivery"),
        contact(t0, 8, "C2", "chat"),
        contact(t0, 8, "C2", "chat", answered=60, talk_s=100, acw_s=20,
                first_contact_resolved=True, agent="Ana", reason="returns"),
        contact(t0, 9, "C3", "chat"),
        contact(t0, 10, "E1", "email", answered=3600, talk_s=180, acw_s=60,
                first_contact_resolved=True, agent="Ben", reason="returns"),
        contact(t0, 11, "E2", "email", queued=False, reason="billing"),
        contact(t0, 12, None, None, queued=False),
        # Orders: T1 sent twice is one order; one purchase without a transaction id.
        {"name": "purchase", "ts": t0 + 20 * 60_000, "params": {"transaction_id": "T1"}},
        {"name": "purchase", "ts": t0 + 21 * 60_000, "params": {"transaction_id": "T1"}},
        {"name": "purchase", "ts": t0 + 22 * 60_000, "params": {"transaction_id": "T2"}},
        {"name": "purchase", "ts": t0 + 23 * 60_000},
        # Outside the period.
        contact(t0, -5, "X1", "phone", answered=1),
    ]


@pytest.fixture
def seeded(dashboard: Live) -> tuple[Live, Project, int]:
    t0 = period_start()
    project = dashboard.runtime.state.get_project("shop-a")
    events = crafted(t0)
    # C2's second event is received after its first: send them in two requests.
    first, second = events[:8], events[8:]
    for batch in (first, second):
        response = dashboard.post_events(project.ingest_key or "", batch)
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == []
    return dashboard, project, t0


def get(live: Live, project: Project, t0: int, **params: Any) -> dict[str, Any]:
    response = live.client(project.secret_key).get(
        "/api/v1/service-desk", params={"from": t0, "to": t0 + HOUR_MS, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_totals_computed_by_hand(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    body = get(live, project, t0)
    assert body["threshold_s"] == 20.0 and body["target"] == 0.8
    assert body["queued_channels"] == ["phone", "chat"]
    t = body["totals"]
    assert t == {
        "contacts": 12, "answered": 6, "queued_answered": 5, "abandoned": 3,
        "short_abandons": 2, "answered_in_time": 3, "service_level": 0.5,
        "meets_target": False, "asa_s": pytest.approx(27.0),
        "abandonment_rate": pytest.approx(3 / 8), "handled": 6,
        "aht_s": pytest.approx(1450 / 6), "avg_talk_s": pytest.approx(1280 / 6),
        "avg_hold_s": pytest.approx(20 / 6), "avg_acw_s": pytest.approx(150 / 6),
        "fcr_rate": pytest.approx(0.8), "fcr_reported": 5,
        "orders": 3, "contacts_per_100_orders": pytest.approx(400.0)}


def test_breakdowns_and_days(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    body = get(live, project, t0)
    channels = {r["channel"]: r for r in body["by_channel"]}
    assert [r["channel"] for r in body["by_channel"]] == ["phone", "chat", "email", "other"]
    phone, chat, email = channels["phone"], channels["chat"], channels["email"]
    assert (phone["contacts"], phone["service_level"], phone["asa_s"]) == (6, 0.5, 20.0)
    assert phone["abandonment_rate"] == 0.5 and phone["short_abandons"] == 2
    assert (chat["contacts"], chat["service_level"], chat["asa_s"]) == (3, 0.5, 37.5)
    # E-mail: no service level nor abandonment; its speed of answer is its own.
    assert email["service_level"] is None and email["abandonment_rate"] is None
    assert email["asa_s"] == 3600.0 and email["answered"] == 1
    assert channels["other"]["contacts"] == 1
    assert [(r["agent"], r["contacts"]) for r in body["by_agent"]] == [
        (None, 6), ("Ana", 3), ("Ben", 3)]
    ana = body["by_agent"][1]
    # Ana: P1 (10 s, in time), P3 (30 s), C2 (60 s): 1 of 3 in time.
    assert ana["service_level"] == pytest.approx(1 / 3) and ana["asa_s"] == pytest.approx(
        100 / 3)
    assert ana["aht_s"] == pytest.approx((150 + 300 + 120) / 3) and ana["fcr_rate"] == 1.0
    assert [(r["reason"], r["contacts"]) for r in body["by_reason"]] == [
        (None, 5), ("billing", 3), ("delivery", 2), ("returns", 2)]
    days = body["days"]
    assert len(days) == 1 and days[0]["day"] == iso(t0)[:10]
    assert days[0]["contacts"] == 12 and days[0]["service_level"] == 0.5
    assert body["limit"] == 20
    assert [r["agent"] for r in get(live, project, t0, limit=1)["by_agent"]] == [None]
    csv = live.client(project.secret_key).get(
        "/api/v1/service-desk", params={"from": t0, "to": t0 + HOUR_MS, "format": "csv"})
    assert csv.status_code == 200 and csv.text.splitlines()[1].startswith(iso(t0)[:10])


def test_the_threshold_decides_in_time_and_short_abandons(
        seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    rng = parse_range("custom", str(t0), str(t0 + HOUR_MS), 0)
    now = time.time_ns() // 1000
    at = {s: service_desk.service_desk(live.runtime.events, project.id, rng, threshold_s=s,
                                       now_us=now)["totals"] for s in (19.999, 30)}
    # Just under 20 s: P2 is late and P4 a late abandon: 2 / (5 + 3 - 1).
    assert at[19.999]["answered_in_time"] == 2 and at[19.999]["short_abandons"] == 1
    assert at[19.999]["service_level"] == pytest.approx(2 / 7)
    # 30 s: P3 is in time too (exactly at it); P4, P6 short abandons: 4 / 6.
    assert at[30]["service_level"] == pytest.approx(4 / 6)
    assert at[30]["meets_target"] is False


def test_today_live_view_in_the_project_time_zone(dashboard: Live) -> None:
    project = dashboard.runtime.state.create_project("desk-tz", timezone="Asia/Kolkata")
    now_ms = int(time.time() * 1000)
    queued = now_ms - 60_000
    events = [contact(queued, 0, "L1", "phone", answered=5),
              contact(queued, 0, "L2", "chat", abandoned=40)]
    assert dashboard.post_events(project.ingest_key or "", events).json()["rejected"] == []
    body = get(dashboard, project, now_ms - HOUR_MS)
    today = body["today"]
    assert today["timezone"] == "Asia/Kolkata" and today["interval_seconds"] == 900
    local_midnight = datetime.fromisoformat(today["from"].replace("Z", "+00:00"))
    # Kolkata is UTC+05:30: its midnight is 18:30 UTC.
    assert (local_midnight.hour, local_midnight.minute) == (18, 30)
    if queued >= local_midnight.timestamp() * 1000:  # not in the first minute of the day
        assert today["totals"]["contacts"] == 2
        assert today["totals"]["service_level"] == 0.5
        last = today["intervals"][-1]
        assert datetime.fromisoformat(last["t"].replace("Z", "+00:00")).timestamp() * 1000 \
            <= now_ms
        assert sum(i["contacts"] for i in today["intervals"]) == 2
    assert len(today["intervals"]) <= 100


def test_a_contact_without_ts_is_dated_when_it_was_queued(live: Live, project: Project
                                                          ) -> None:
    """A desk that sends the record once answered (or a day's export) without `ts`: the
    contact is dated `queued_at`, so it falls in the period and the day it was waited
    in, not the minute it was sent. A `ts` sent wins; one without `queued_at` is dated
    on receipt; an implausible `queued_at` is clamped like any time."""
    now_ms = int(time.time() * 1000)
    queued = now_ms - 2 * HOUR_MS
    sent = [contact(queued, 0, "late-1", "phone", answered=30),
            contact(queued, 1, "late-2", "chat", abandoned=10, as_text=False),
            contact(queued, 2, "own-ts", "phone", answered=5),
            {"name": "support_contact", "params": {"contact_id": "no-queue", "channel": "email"}},
            contact(queued, 0, "ancient", "phone")]
    for event in sent[:2] + sent[4:]:
        del event["ts"]
    sent[2]["ts"] = queued + 30 * 60_000
    sent[4]["params"]["queued_at"] = 1_000_000_000_000  # 2001: older than max_event_age
    response = live.post_events(project.ingest_key or "", sent)
    assert response.json()["rejected"] == []
    warnings = response.json().get("warnings", [])
    assert [w["index"] for w in warnings] == [4], warnings
    assert warnings[0]["warning"].startswith(
        "ts (from params.queued_at): 1000000000000.0 is older than max_event_age"), warnings
    stored = {e["params"]["contact_id"]: e for e in live.read_events(project.secret_key or "")}

    def at(cid: str) -> float:
        return datetime.fromisoformat(stored[cid]["ts"].replace("Z", "+00:00")).timestamp()

    assert at("late-1") == pytest.approx(queued / 1000, abs=0.001)
    assert at("late-2") == pytest.approx(queued / 1000 + 60, abs=0.001)
    assert at("own-ts") == pytest.approx(queued / 1000 + 1800, abs=0.001)
    for cid in ("no-queue", "ancient"):
        assert abs(at(cid) - now_ms / 1000) < 60


@pytest.mark.parametrize(("params", "message"), [
    ({"contact_id": "x", "channel": "fax"}, "params.channel: 'fax' is not one of"),
    ({"contact_id": "x", "queued_at": "2026-01-01T10:00:00"}, "params.queued_at: "),
    ({"queued_at": "2026-01-01T10:00:00Z", "answered_at": "2026-01-01T09:59:59Z"},
     "params.answered_at: precedes queued_at"),
    ({"answered_at": 1_700_000_000_000, "abandoned_at": 1_700_000_001_000},
     "params.abandoned_at: a contact is either answered or abandoned"),
    ({"talk_s": -1}, "params.talk_s: expected float >= 0.0"),
    ({"first_contact_resolved": "yes"}, "params.first_contact_resolved: expected bool"),
    ({"answered_at": "soon"}, "params.answered_at: 'soon' is not an RFC 3339"),
])
def test_contact_params_are_checked(live: Live, project: Project, params: dict[str, Any],
                                    message: str) -> None:
    response = live.post_events(project.ingest_key or "", [
        {"name": "support_contact", "params": {"contact_id": "ok", "channel": "phone"}},
        {"name": "support_contact", "params": params}])
    assert response.status_code == 200, response.text
    rejected = response.json()["rejected"]
    assert len(rejected) == 1 and rejected[0]["index"] == 1
    assert rejected[0]["error"].startswith(message), rejected


def test_reading_needs_access_and_the_page_renders(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    assert live.client().get("/api/v1/service-desk").status_code == 401
    assert live.client(project.ingest_key).get("/api/v1/service-desk").status_code == 403
    empty = get(live, project, t0 - 10 * HOUR_MS)
    assert empty["totals"]["contacts"] == 0 and empty["totals"]["service_level"] is None
    assert empty["totals"]["contacts_per_100_orders"] is None
    viewer = sign_in(live, VIEWER_EMAIL)
    page = viewer.get("/business/service-desk")
    assert page.status_code == 200 and "Not built yet" not in page.text
    assert 'data-api="/api/v1/service-desk"' in page.text
    assert "shopwatch import contacts" in page.text


@pytest.mark.browser
def test_the_page_draws_in_a_browser(browser: Any, dashboard: Live) -> None:
    """Six days of contacts and a few today: cards, charts and tables fill, with no
    console error; the screenshot is test-artifacts/screenshots/service-desk.png."""
    from tests.test_browser import Watched

    project = dashboard.runtime.state.get_project("shop-a")
    now = int(time.time() * 1000)
    events = []
    channels = ("phone", "phone", "chat", "email")
    for i in range(120):
        at = now - (i * 71 % (6 * 24 * 60)) * 60_000 - 60_000
        channel = channels[i % 4]
        kwargs: dict[str, Any] = {"abandoned": 5 + i % 50} if i % 7 == 0 and channel != "email" \
            else {"answered": (i * 13) % 45 if channel != "email" else 3000,
                  "talk_s": 120 + i % 200, "acw_s": 30, "first_contact_resolved": i % 4 != 0,
                  "agent": ("Ana", "Ben", "Chloé")[i % 3]}
        events.append(contact(at, 0, f"B{i}", channel, reason=("delivery", "billing",
                                                                "returns")[i % 3], **kwargs))
    events += [{"name": "purchase", "ts": now - i * 3_600_000,
                "params": {"transaction_id": f"T{i}"}} for i in range(40)]
    assert dashboard.post_events(project.ingest_key or "", events).json()["rejected"] == []
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US",
                                  timezone_id="UTC")
    watched = Watched(context.new_page(), dashboard.base_url)
    try:
        watched.sign_in()
        watched.open("/business/service-desk?range=7d")
        watched.settle()
        page = watched.page
        assert page.locator("[data-sd-card=contacts] .kpi-value").inner_text() == "120"
        assert page.locator("[data-sd-table=by_agent] tbody tr").count() == 4
        assert page.locator("[data-sd-chart=days] canvas").count() == 1
        watched.shot("service-desk")
        assert watched.problems == []
    finally:
        context.close()
