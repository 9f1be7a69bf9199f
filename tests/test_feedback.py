"""Feedback (docs/feedback.md; docs/kpis.md, "NPS and CSAT"): survey_response events
posted through the real ingest endpoint, ``GET /api/v1/feedback`` and
``/api/v1/feedback/comments`` checked against figures computed by hand; the score
validation; the post-purchase widget (rum-survey.js) in real Chromium.

The events, by minute of the hour-long period from ``t0``:

- Sessions: s1 (cust-1, mobile, DE, arrived with utm_source=newsletter), s2 (cust-2,
  desktop, FR, no utm), s3 (cust-3, mobile, DE, utm_source=google), s4 (cust-4, no
  device, from minute 12.9). Orders: T1 (cust-1, card, s1), T2 (cust-2, paypal, s2),
  T3 (cust-3, card).
- NPS answers: cust-1 6 on T1 (a detractor at the boundary) "Checkout crashed twice",
  cust-2 7 on T2 "ok", cust-3 8 (no order, no session), cust-4 9, cust-5 10 (no session).
  Promoters 2, passives 2, detractors 1: NPS = (2 - 1) / 5 = 20.
- CSAT answers: cust-1 3 (not satisfied, the boundary), cust-2 4 (satisfied, the
  boundary), cust-3 5, cust-4 4: CSAT = 3 / 4 = 75. Custom survey "delivery" 3: a
  response, in no score.
- cust-1's session s1 (minutes 1-20) had a JS error (a RUM beacon) at minute 5.5 and
  overlaps an incident of minutes 1.2-1.8, which no other session does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser

from shopwatch.analytics import feedback
from shopwatch.store.state import Project, incidents
from tests.conftest import Live
from tests.rum_fixtures import SHOP_PAGE, FixtureSite, rum_tag


def period_start() -> int:
    """``t0`` in epoch ms: the start of the hour three hours ago."""
    return (int(time.time()) // 3600 - 3) * 3600 * 1000


def ev(t0: int, minute: float, name: str, user: str | None, session: str | None = None,
       **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "ts": t0 + int(minute * 60_000)}
    if user is not None:
        out["user_id"] = user
    if session is not None:
        out["session_id"] = session
    params = fields.pop("params", None)
    out.update(fields)
    if params:
        out["params"] = params
    return out


def answer(t0: int, minute: float, user: str, survey: str, score: int,
           session: str | None = None, **params: Any) -> dict[str, Any]:
    return ev(t0, minute, "survey_response", user, session,
              params={"survey": survey, "score": score, **params})


def crafted(t0: int) -> list[dict[str, Any]]:
    mobile_de = {"category": "mobile", "country": "DE"}
    out = [
        ev(t0, 1, "page_view", None, "s1", device=mobile_de, utm_source="newsletter"),
        ev(t0, 2, "login", "cust-1", "s1", device=mobile_de),
        ev(t0, 3, "page_view", None, "s2", device={"category": "desktop", "country": "FR"}),
        ev(t0, 3.5, "login", "cust-2", "s2"),
        ev(t0, 4, "page_view", "cust-3", "s3", device=mobile_de, utm_source="google"),
        ev(t0, 12.9, "page_view", "cust-4", "s4"),
        ev(t0, 5, "purchase", "cust-1", "s1", params={
            "transaction_id": "T1", "value": 50.0, "currency": "EUR", "payment_method": "card"}),
        ev(t0, 6, "purchase", "cust-2", "s2", params={
            "transaction_id": "T2", "value": 20.0, "currency": "EUR",
            "payment_method": "paypal"}),
        ev(t0, 6.5, "purchase", "cust-3", "s3", params={
            "transaction_id": "T3", "value": 30.0, "currency": "EUR", "payment_method": "card"}),
        answer(t0, 10, "cust-1", "nps", 6, "s1", transaction_id="T1",
               comment="Checkout crashed twice", question="Recommend us?"),
        answer(t0, 11, "cust-2", "NPS", 7, "s2", transaction_id="T2", comment="ok"),
        answer(t0, 12, "cust-3", "nps", 8),
        answer(t0, 13, "cust-4", "nps", 9, "s4", comment="Great CHECKOUT, fast"),
        answer(t0, 14, "cust-5", "nps", 10),
        answer(t0, 20, "cust-1", "csat", 3, "s1"),
        answer(t0, 21, "cust-2", "csat", 4, "s2"),
        answer(t0, 22, "cust-3", "csat", 5, "s3"),
        answer(t0, 23, "cust-4", "csat", 4, "s4"),
        answer(t0, 24, "cust-4", "delivery", 3, "s4"),
        # Outside the period
        answer(t0, -5, "cust-9", "nps", 0),
    ]
    return out


@pytest.fixture
def seeded(dashboard: Live) -> tuple[Live, Project, int]:
    t0 = period_start()
    project = dashboard.runtime.state.get_project("shop-a")
    response = dashboard.post_events(project.ingest_key or "", crafted(t0))
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []
    # A JS error in s1 (cust-1's session) from the snippet, at minute 5.5.
    beacon = {"v": 1, "sid": "s1", "uid": "cust-1", "r": [
        {"k": "error", "t": t0 + 330_000, "pv": "pv1", "url": "https://shop.example/checkout",
         "msg": "TypeError: pay is undefined"}]}
    rum = dashboard.client().post(f"/api/v1/rum?key={project.ingest_key}", json=beacon,
                                  headers={"Content-Type": "text/plain"})
    assert rum.status_code == 200, rum.text
    # An incident from minute 1.2 to 1.8: it overlaps s1 (minutes 1-20) only.
    with dashboard.runtime.state.engine.begin() as conn:
        conn.execute(incidents.insert().values(
            project_id=project.id, title="Checkout errors", severity="critical",
            status="resolved", started_at=t0 / 1000 + 72, detected_at=t0 / 1000 + 80,
            resolved_at=t0 / 1000 + 108, updated_at=t0 / 1000 + 108))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not dashboard.runtime.events.query(
            "SELECT 1 FROM rum WHERE kind = 'error'"):
        time.sleep(0.05)
    return dashboard, project, t0


def get(live: Live, project: Project, t0: int, path: str = "/api/v1/feedback",
        **params: Any) -> dict[str, Any]:
    response = live.client(project.secret_key).get(
        path, params={"from": t0, "to": t0 + 3_600_000, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_nps_csat_and_segments_by_hand(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    body = get(live, project, t0)
    t = body["totals"]
    assert t["responses"] == 10 and t["customers"] == 5 and t["comments"] == 3
    assert t["nps"] == {"score": pytest.approx(20.0), "responses": 5, "promoters": 2,
                        "passives": 2, "detractors": 1}
    assert t["csat"] == {"score": pytest.approx(75.0), "responses": 4, "satisfied": 3}
    # Unhappy: cust-1's NPS 6 and CSAT 3, both with s1's error and the incident.
    assert (t["unhappy"], t["unhappy_with_errors"], t["unhappy_in_incidents"],
            t["unhappy_with_problems"]) == (2, 2, 2, 2)
    assert body["interval"] == {"label": "bucket", "bucket_seconds": 60}
    series = body["series"]
    assert len(series) == 60
    assert series[10]["nps"] == -100.0 and series[11]["nps"] == 0.0
    assert series[13]["nps"] == 100.0 and series[0]["nps"] is None
    assert series[20]["csat"] == 0.0 and series[21]["csat"] == 100.0
    assert sum(p["responses"] for p in series) == 10
    assert body["distribution"] == {"nps": [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
                                    "csat": [0, 0, 1, 2, 1]}
    assert body["surveys"] == [{"survey": "nps", "responses": 5, "mean_score": 8.0},
                               {"survey": "csat", "responses": 4, "mean_score": 4.0},
                               {"survey": "delivery", "responses": 1, "mean_score": 3.0}]
    seg = body["segments"]

    def flat(key: str) -> list[tuple[Any, ...]]:
        return [(r["value"], r["responses"], r["nps"]["score"], r["csat"]["score"])
                for r in seg[key]]

    # device: s1, s3 mobile (cust-1: 6, 3; cust-3's CSAT 5), s2 desktop (7, 4); cust-4's
    # session s4 has none, cust-3's NPS and cust-5's answers no session: NPS of 8, 9, 10
    # is (2 - 0) / 3.
    third = pytest.approx(200 / 3)
    assert flat("device") == [(None, 5, third, 100.0), ("mobile", 3, -100.0, 50.0),
                              ("desktop", 2, 0.0, 100.0)]
    assert flat("country") == [(None, 5, third, 100.0), ("DE", 3, -100.0, 50.0),
                               ("FR", 2, 0.0, 100.0)]
    # first touch: cust-1 newsletter (s1 starts with it), cust-3 google, others none.
    assert flat("channel") == [(None, 6, third, 100.0), ("google", 2, 0.0, 100.0),
                               ("newsletter", 2, -100.0, 0.0)]
    # payment method of the order answered about: only the NPS answers name one.
    assert flat("payment_method") == [(None, 8, third, 75.0), ("card", 1, -100.0, None),
                                      ("paypal", 1, 0.0, None)]


def test_zero_responses_give_null_scores(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    body = get(live, project, t0 + 7_200_000)
    assert body["totals"]["responses"] == 0
    assert body["totals"]["nps"]["score"] is None and body["totals"]["csat"]["score"] is None
    assert all(s == [] for s in body["segments"].values())


def test_boundaries_by_definition() -> None:
    assert [feedback.nps_category(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor", "detractor", "passive", "passive", "promoter", "promoter"]
    assert [feedback.csat_category(s) for s in (1, 3, 4, 5)] == [
        "not_satisfied", "not_satisfied", "satisfied", "satisfied"]


def test_comments_search_pages_and_links(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    path = "/api/v1/feedback/comments"
    body = get(live, project, t0, path)
    assert body["total"] == 3
    assert [c["comment"] for c in body["comments"]] == [
        "Great CHECKOUT, fast", "ok", "Checkout crashed twice"]  # newest first
    found = get(live, project, t0, path, q="checkout")
    assert found["total"] == 2
    assert [c["user_id"] for c in found["comments"]] == ["cust-4", "cust-1"]
    second = get(live, project, t0, path, q="CHECKOUT", limit=1, offset=1)
    assert second["total"] == 2 and len(second["comments"]) == 1
    c = second["comments"][0]
    assert (c["survey"], c["score"], c["category"], c["question"]) == (
        "nps", 6, "detractor", "Recommend us?")
    assert [(o["transaction_id"], o["about"], o["payment_method"]) for o in c["orders"]] == [
        ("T1", True, "card")]
    assert [s["session_id"] for s in c["sessions"]] == ["s1"]
    assert c["sessions"][0]["errors"] == 1
    assert c["sessions"][0]["journey"] == "/behaviour/session-journeys?session=s1"
    assert c["errors"]["count"] == 1
    assert c["errors"]["top"][0]["message"] == "TypeError: pay is undefined"
    assert [(i["title"], i["link"].startswith("/alerts/incidents?id=")) for i in c["incidents"]
            ] == [("Checkout errors", True)]
    happy = found["comments"][0]
    assert happy["errors"]["count"] == 0 and happy["incidents"] == []
    assert [s["session_id"] for s in happy["sessions"]] == ["s4"]
    assert get(live, project, t0, path, q="nothing like this")["comments"] == []


def test_reading_needs_a_session_or_the_secret_key(seeded: tuple[Live, Project, int]) -> None:
    live, project, _t0 = seeded
    for path in ("/api/v1/feedback", "/api/v1/feedback/comments"):
        assert live.client().get(path).status_code == 401
        assert live.client(project.ingest_key).get(path).status_code in (401, 403)


@pytest.mark.parametrize(("survey", "score", "error"), [
    ("nps", 11, "params.score: 11 is not valid; an NPS score is a whole number from 0 to 10"),
    ("nps", 7.5, "params.score: 7.5 is not valid; an NPS score is a whole number from 0 to 10"),
    ("csat", 0, "params.score: 0 is not valid; a CSAT score"),
    ("csat", 6, "params.score: 6 is not valid; a CSAT score is a whole number from 1 to 5"),
    ("nps", None, "params.score: missing; an NPS score"),
    ("csat", "4", "params.score: expected a number, got str"),
])
def test_scores_are_checked_per_survey(live: Live, project: Project, survey: str,
                                       score: Any, error: str) -> None:
    params: dict[str, Any] = {"survey": survey}
    if score is not None:
        params["score"] = score
    response = live.post_events(project.ingest_key or "", [
        {"name": "survey_response", "user_id": "c", "params": params}])
    assert response.status_code == 400, response.text
    assert response.json()["rejected"][0]["error"].startswith(error)


def test_valid_scores_are_kept(live: Live, project: Project) -> None:
    response = live.post_events(project.ingest_key or "", [
        {"name": "survey_response", "user_id": "c", "params": {"survey": s, "score": v}}
        for s, v in (("nps", 0), ("nps", 10), ("csat", 1), ("csat", 5), ("effort", 7))])
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []


# --- the widget in a real browser --------------------------------------------------------------

CONFIRMATION = """<!doctype html>
<html><head><meta charset="utf-8"><title>Order confirmed</title>{tag}
<script>shopwatch('identify', 'cust-42'); shopwatch('survey', {{transaction_id: 'T-42'}});</script>
</head><body><h1>Thank you for your order</h1></body></html>
"""


@pytest.fixture
def shop(live: Live) -> Iterator[tuple[FixtureSite, Project]]:
    project = live.create_project("survey")
    keys: dict[str, str] = {"key": project.ingest_key or ""}
    site = FixtureSite({
        "/thanks.html": lambda: CONFIRMATION.format(
            tag=rum_tag(live.base_url, keys["key"], survey="nps")),
        "/plain.html": lambda: SHOP_PAGE.format(tag=rum_tag(live.base_url, keys["key"])),
    })
    live.runtime.state.update_project(project.id, rum_origins=[site.origin])
    yield site, project
    site.close()


@pytest.mark.browser
def test_widget_answers_once_per_order(live: Live, shop: tuple[FixtureSite, Project],
                                       browser: Browser) -> None:
    site, project = shop
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.origin}/thanks.html")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert "recommend us" in dialog.inner_text()
    radios = page.get_by_role("radio")
    assert radios.count() == 11
    assert page.get_by_role("button", name="Send").is_disabled()
    page.get_by_role("radio", name="9").click()
    assert page.get_by_role("radio", name="9").get_attribute("aria-checked") == "true"
    page.get_by_label("Anything you would like to tell us?").fill("Quick and easy")
    page.get_by_role("button", name="Send").click()
    page.get_by_role("status").wait_for()
    page.goto("about:blank")  # hidden: rum.js flushes its queue
    deadline = time.monotonic() + 15
    stored: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and not stored:
        stored = live.runtime.events.query(
            "SELECT user_id, params->>'$.survey', params->>'$.score', params->>'$.comment', "
            "transaction_id FROM events WHERE project_id = ? AND name = 'survey_response'",
            [project.id])
        time.sleep(0.1)
    assert stored == [("cust-42", "nps", "9", "Quick and easy", "T-42")]
    # Never twice for one order; the plain page (no data-survey) has no widget at all.
    page.goto(f"{site.origin}/thanks.html")
    page.wait_for_load_state("load")
    page.wait_for_timeout(800)
    assert page.get_by_role("dialog").count() == 0
    page.goto(f"{site.origin}/plain.html")
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    assert page.evaluate("!!document.querySelector('script[src$=\"rum-survey.js\"]')") is False
    context.close()
