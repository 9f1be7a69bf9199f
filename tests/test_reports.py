"""Scheduled reports with real parts: events, RUM beacons and check results through a
real server into DuckDB and SQLite, reports over HTTP, a real SMTP server (aiosmtpd)
receiving the e-mails, and the system's Chromium drawing the charts and printing the
PDF. Only the clock is ours to move in the schedule tests."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from pypdf import PdfReader

from shopwatch.alerts.channels import Environment, Smtp
from shopwatch.alerts.lifecycle import State
from shopwatch.analytics.kpis import kpis
from shopwatch.analytics.products import products
from shopwatch.analytics.uptime import monitor_detail
from shopwatch.analytics.vitals import vitals
from shopwatch.checks.browser_flow import find_chromium
from shopwatch.checks.monitor import parse_monitors
from shopwatch.checks.record import CheckRow
from shopwatch.cli import main
from shopwatch.errors import ConfigError
from shopwatch.reports import content, periods, render
from shopwatch.reports.loop import RETRY_AFTER_S, Reporter
from shopwatch.reports.render import Rendered
from shopwatch.store import alerts as alert_store
from shopwatch.store import incidents as incident_store
from shopwatch.store import monitors as monitor_store
from shopwatch.store import reports as store
from shopwatch.store.base import EventBatch
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import Project, StateStore
from tests.conftest import Live, csrf_of, free_port, sign_in
from tests.test_channels import Inbox

PARIS = ZoneInfo("Europe/Paris")
US = 1_000_000
needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no system Chromium (`make browser` installs it)")


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd) on loopback, keeping what it receives."""
    received = Inbox(free_port())
    controller = Controller(received, hostname="127.0.0.1", port=received.port)
    controller.start()
    yield received
    controller.stop()


@pytest.fixture
def live(server: Callable[..., Live]) -> Live:
    """A server whose own report loop is off: these tests send reports themselves."""
    return server(reports_interval=0.0)


# --- periods -----------------------------------------------------------------------------------


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
          second: int = 0) -> int:
    """Epoch µs of a wall-clock time in Paris."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=PARIS).timestamp()) * US


def test_days_and_weeks_are_local_and_follow_dst() -> None:
    day = periods.daily(date(2026, 11, 21), PARIS)
    assert day.as_dict()["from"] == "2026-11-20T23:00:00Z"  # Paris is UTC+1 in winter
    assert day.as_dict()["to"] == "2026-11-21T23:00:00Z"
    assert day.previous().key == "2026-11-20" and day.label == "Saturday 21 November 2026"
    # The spring change: 23 hours; the autumn one: 25.
    spring = periods.daily(date(2026, 3, 29), PARIS)
    autumn = periods.daily(date(2026, 10, 25), PARIS)
    assert (spring.end_us - spring.start_us) / US == 23 * 3600
    assert (autumn.end_us - autumn.start_us) / US == 25 * 3600
    week = periods.weekly(date(2026, 11, 16), PARIS)
    assert week.key == "2026-W47" and week.previous().key == "2026-W46"
    assert week.as_dict()["from"] == "2026-11-15T23:00:00Z"
    assert week.as_dict()["to"] == "2026-11-22T23:00:00Z"
    new_york = periods.daily(date(2026, 11, 21), ZoneInfo("America/New_York"))
    assert new_york.as_dict()["from"] == "2026-11-21T05:00:00Z"


def test_the_latest_period_is_the_last_one_that_ended_locally() -> None:
    # 00:30 in Paris on Sunday 22 November is still Saturday 23:30 in UTC.
    now = local(2026, 11, 22, 0, 30)
    assert periods.latest("daily", PARIS, now).key == "2026-11-21"
    assert periods.latest("daily", ZoneInfo("UTC"), now).key == "2026-11-20"
    # The ISO week 47 ends on Sunday 22 at midnight: on Sunday, the latest is week 46.
    assert periods.latest("weekly", PARIS, now).key == "2026-W46"
    assert periods.latest("weekly", PARIS, local(2026, 11, 23, 0, 0)).key == "2026-W47"
    assert periods.by_key("weekly", "2026-W47", PARIS).label == (
        "week 47 of 2026, 16 Nov to 22 Nov 2026")
    with pytest.raises(ConfigError, match=r"^week: "):
        periods.by_key("weekly", "2026-47", PARIS)


def test_a_schedule_is_due_once_per_period_and_catches_up_once() -> None:
    created = local(2026, 11, 20, 10, 0)  # after today's 08:00: the first is tomorrow's

    def due(at: int, last: str | None) -> str | None:
        found = periods.due("daily", 8, PARIS, at, created, last)
        return None if found is None else found.key

    assert due(created, None) is None
    assert due(local(2026, 11, 21, 7, 59), None) is None
    assert due(local(2026, 11, 21, 8, 0), None) == "2026-11-20"
    assert due(local(2026, 11, 21, 9, 0), "2026-11-20") is None  # never twice
    # Down from Sunday to Wednesday 09:00: only the latest missed day, once.
    assert due(local(2026, 11, 25, 9, 0), "2026-11-20") == "2026-11-24"
    assert due(local(2026, 11, 25, 9, 5), "2026-11-24") is None
    weekly = periods.due("weekly", 8, PARIS, local(2026, 11, 23, 8, 0), created, None)
    assert weekly is not None and weekly.key == "2026-W47"
    assert periods.due("weekly", 8, PARIS, local(2026, 11, 23, 7, 0), created, None) is None


# --- schedules in the store --------------------------------------------------------------------


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state.sqlite")
    opened.create_project("shop", "EUR", "Europe/Paris")
    yield opened
    opened.close()


def schedule_data(**changes: Any) -> dict[str, Any]:
    return {"name": "daily ops", "audience": "technical", "period": "daily", "hour": 8,
            "recipients": ["ops@shop.example"], **changes}


@pytest.mark.parametrize(("changes", "error"), [
    ({"recipients": ["ops@shop.example", "nope"]},
     "recipients[1]: 'nope' is not an e-mail address"),
    ({"recipients": []}, "recipients: required"),
    ({"recipients": [f"r{i}@shop.example" for i in range(21)]}, "recipients: at most 20"),
    ({"audience": "sales"}, "audience: 'sales' is not one of technical, business"),
    ({"period": "monthly"}, "period: 'monthly' is not one of daily, weekly"),
    ({"hour": 24}, "hour: 24 is not an hour of the day"),
    ({"name": ""}, "name: ''"),
    ({"colour": "red"}, "colour: not a field"),
])
def test_bad_schedules_name_the_field(state: StateStore, changes: dict[str, Any],
                                      error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        store.add_schedule(state, 1, schedule_data(**changes), time.time())
    assert str(raised.value).startswith(error)
    assert store.list_schedules(state) == []


def test_schedules_are_unique_by_name_and_take_a_comma_list(state: StateStore) -> None:
    made = store.add_schedule(state, 1, schedule_data(
        recipients="a@shop.example, b@shop.example;a@shop.example"), 1.0)
    assert made.recipients == ("a@shop.example", "b@shop.example")
    with pytest.raises(ConfigError, match=r"^name: "):
        store.add_schedule(state, 1, schedule_data(), 2.0)
    assert store.remove_schedule(state, 1, "daily ops").id == made.id
    assert state.schema_version >= 17


# --- sending: due logic with a real SMTP server ------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tables_only(report: dict[str, Any]) -> Rendered:
    """The report without Chromium (its real ``tables`` page): the schedule tests count
    e-mails and need no drawing."""
    return Rendered(render.html(report, "tables"), None, False, "not drawn in this test")


@pytest.fixture
def stores(tmp_path: Path, state: StateStore) -> Iterator[tuple[DuckDBEventStore, StateStore]]:
    events = DuckDBEventStore(tmp_path / "events.duckdb")
    yield events, state
    events.close()


def smtp_env(port: int) -> Environment:
    return Environment(smtp=Smtp(host="127.0.0.1", port=port, security="none",
                                 sender="Shopwatch <reports@shop.example>"), timeout=10)


def test_due_reports_are_sent_once_even_across_restarts(
        stores: tuple[DuckDBEventStore, StateStore], inbox: Inbox) -> None:
    events, state = stores
    created = local(2026, 11, 20, 10, 0) / US
    store.add_schedule(state, 1, schedule_data(recipients=["a@shop.example"]), created)
    clock = Clock(created)
    reporter = Reporter(events, state, smtp_env(inbox.port), clock=clock,
                        draw=tables_only)
    assert reporter.send_due() == []  # created after today's hour: tomorrow is the first
    clock.now = local(2026, 11, 21, 8, 0, 30) / US
    [sent] = reporter.send_due()
    assert (sent.period, sent.sent) == ("2026-11-20", True)
    assert reporter.send_due() == []
    # A restart: a new reporter on the same state sends nothing more.
    again = Reporter(events, state, smtp_env(inbox.port), clock=clock, draw=tables_only)
    assert again.send_due() == []
    assert len(inbox.messages) == 1
    _, recipients, message = inbox.messages[0]
    assert recipients == ["a@shop.example"]
    assert message["Subject"] == "Technical report: Friday 20 November 2026 · shop"
    # Down for three days: only the latest missed day goes, once.
    clock.now = local(2026, 11, 24, 9, 0) / US
    [caught_up] = again.send_due()
    assert caught_up.period == "2026-11-23" and again.send_due() == []
    assert len(inbox.messages) == 2
    assert store.get_schedule(state, 1, "daily ops").last_sent_for == "2026-11-23"


def test_a_failed_send_is_retried_after_its_delay(
        stores: tuple[DuckDBEventStore, StateStore], inbox: Inbox) -> None:
    events, state = stores
    created = local(2026, 11, 20, 6, 0) / US
    store.add_schedule(state, 1, schedule_data(period="weekly"), created)
    clock = Clock(local(2026, 11, 23, 8, 1) / US)  # Monday after week 47
    reporter = Reporter(events, state, smtp_env(free_port()), clock=clock, draw=tables_only)
    [failed] = reporter.send_due()
    assert not failed.sent and not failed.given_up and failed.period == "2026-W47"
    stored = store.get_schedule(state, 1, "daily ops")
    assert stored.last_sent_for is None and stored.last_error is not None
    assert stored.last_error.startswith("2026-W47: SMTP 127.0.0.1")
    reporter.env = smtp_env(inbox.port)  # the SMTP server is back
    clock.now += RETRY_AFTER_S[0] - 1
    assert reporter.send_due() == []  # not before its retry time
    clock.now += 1
    [sent] = reporter.send_due()
    assert sent.sent and len(inbox.messages) == 1
    assert store.get_schedule(state, 1, "daily ops").last_error is None


# --- report content against the analytics modules -----------------------------------------------


def iso(us: float) -> str:
    return datetime.fromtimestamp(us / US, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def shop(live: Live) -> dict[str, Any]:
    """A Paris shop with yesterday (local) and the day before: orders, an abandoned cart,
    page views with Web Vitals, check runs of one monitor, and an incident."""
    rt = live.runtime
    project = rt.state.create_project("shop", "EUR", "Europe/Paris")
    now = time.time()
    day = periods.latest("daily", PARIS, int(now * US))
    before = day.previous()
    start, prev = day.start_us, before.start_us

    def at(base: int, minutes: float) -> str:
        return iso(base + minutes * 60 * US)

    product = {"item_id": "mug", "item_name": "Blue mug", "item_category": "kitchen",
               "price": 20, "quantity": 3}
    hat = {"item_id": "hat", "item_name": "Red hat", "item_category": "clothes", "price": 15}
    sent = [
        # 00:30 local yesterday is still the day before in UTC: it counts in yesterday.
        {"name": "purchase", "ts": at(start, 30), "session_id": "s0",
         "params": {"transaction_id": "T-early", "value": 15, "currency": "EUR",
                    "items": [hat]}},
        {"name": "view_item", "ts": at(start, 600), "session_id": "s1",
         "params": {"items": [product]}},
        {"name": "add_to_cart", "ts": at(start, 601), "session_id": "s1",
         "params": {"value": 60, "currency": "EUR", "items": [product]}},
        {"name": "begin_checkout", "ts": at(start, 603), "session_id": "s1"},
        {"name": "purchase", "ts": at(start, 605), "session_id": "s1",
         "params": {"transaction_id": "T1", "value": 60, "currency": "EUR",
                    "items": [product]}},
        {"name": "view_item", "ts": at(start, 700), "session_id": "s2",
         "params": {"items": [hat]}},
        {"name": "add_to_cart", "ts": at(start, 701), "session_id": "s2",
         "params": {"value": 15, "currency": "EUR", "items": [hat]}},
        {"name": "page_view", "ts": at(start, 800), "session_id": "s3", "page": "/"},
        # The day before: one order.
        {"name": "purchase", "ts": at(prev, 720), "session_id": "s9",
         "params": {"transaction_id": "T0", "value": 30, "currency": "EUR", "items": [hat]}},
    ]
    response = live.post_events(str(project.ingest_key), sent)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(sent)
    records = []
    for i, (lcp, inp) in enumerate([(1800, 120), (2600, 180), (4200, 600), (2000, 90)]):
        t = (start + (660 + i) * 60 * US) // 1000
        records += [{"k": "view", "pv": f"pv{i}", "t": t, "url": "https://shop.example/p/mug",
                     "ttfb": 300 + i, "load": lcp + 100},
                    {"k": "vitals", "pv": f"pv{i}", "t": t + 5000,
                     "url": "https://shop.example/p/mug", "fcp": lcp / 2, "lcp": lcp,
                     "cls": 0.02 * i, "inp": inp}]
    rum = live.client().post(f"/api/v1/rum?key={project.ingest_key}",
                             content=json.dumps({"sid": "s1", "r": records}),
                             headers={"content-type": "text/plain"})
    assert rum.status_code == 200 and not rum.json()["rejected"], rum.text
    monitor_store.apply(rt.state, project.id, parse_monitors(
        "monitors: [{name: home, kind: http, url: /}]"))
    rows = [CheckRow(ts=(start + (60 + i) * 60 * US) / US, monitor="home", kind="http",
                     location="local", ok=i not in (3, 4), attempts=1, duration_ms=100.0)
            for i in range(10)]
    rows += [CheckRow(ts=(prev + (60 + i) * 60 * US) / US, monitor="home", kind="http",
                      location="local", ok=True, attempts=1, duration_ms=90.0)
             for i in range(10)]
    rt.writer.submit(EventBatch(project.id, time.time_ns() // 1000, b"[]", 0, [],
                                checks=msgspec.json.encode(rows), n_checks=len(rows))
                     ).result(timeout=30)
    # An incident from 11:00 to 11:45 yesterday, detected at 11:05, with its impact.
    t0 = start / US + 11 * 3600
    firing = alert_store.record(rt.state, project.id, "checkout down", "critical",
                                State(phase="firing", since=t0, notified_at=t0 + 300),
                                "firing", t0 + 300, 1.0)
    assert firing is not None
    incident, _ = incident_store.attach(rt.state, firing, t0 + 300)
    resolved = alert_store.record(rt.state, project.id, "checkout down", "critical",
                                  State(), "resolved", t0 + 2700, 0.0)
    assert resolved is not None
    incident_store.alert_resolved(rt.state, resolved, t0 + 2700)
    incident_store.set_impact(rt.state, incident.id, {
        "orders": {"lost": 3.0}, "revenue": {"lost": 180.0}, "wasted_spend": 4.5}, t0 + 2700)
    return {"project": rt.state.get_project(project.id), "day": day, "before": before,
            "t0": t0}


def get_report(live: Live, project: Project, audience: str, **params: str
               ) -> httpx.Response:
    return live.client(str(project.secret_key)).get(f"/api/v1/reports/{audience}",
                                                    params=params, timeout=120)


def test_business_figures_equal_the_analytics_modules(live: Live,
                                                      shop: dict[str, Any]) -> None:
    project, day, before = shop["project"], shop["day"], shop["before"]
    response = get_report(live, project, "business")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["period"] == day.as_dict()
    figures = {k["key"]: k for k in report["kpis"]}
    now, then = (kpis(live.runtime.events, project, day.range()),
                 kpis(live.runtime.events, project, before.range()))
    for key, figure in figures.items():
        assert figure["value"] == now[key] and figure["previous"] == then[key], key
    # By hand: T-early (00:30 local, the UTC day before) and T1; the day before, T0.
    assert (figures["orders"]["value"], figures["orders"]["previous"]) == (2, 1)
    assert figures["revenue"]["value"] == pytest.approx(75.0)
    assert figures["conversion_rate"]["value"] == pytest.approx(2 / 4)  # s0, s1 of 4
    assert figures["cart_abandonment_rate"]["value"] == pytest.approx(1 / 2)  # s2's cart
    assert figures["checkout_abandonment_rate"]["value"] == pytest.approx(0.0)
    rows = products(live.runtime.events, project, day.range(), "product", 1000)["rows"]
    by_revenue = sorted((r for r in rows if r["units"] > 0), key=lambda r: -r["revenue"])
    assert report["top_products"] == by_revenue
    assert [(p["product"], p["revenue"]) for p in report["top_products"]] == [
        ("mug", 60.0), ("hat", 15.0)]
    hours = {r["label"]: r for r in report["orders_over_time"]["rows"]}

    def hour(base: int, minutes: int) -> str:  # the local hour (a DST day shifts it)
        return f"{periods.local_datetime(base + minutes * 60 * US, PARIS).hour:02d}:00"

    assert len(hours) == 24 and hours["00:00"]["orders"] == 1
    assert hours[hour(day.start_us, 605)]["orders"] == 1
    assert hours[hour(before.start_us, 720)]["previous_orders"] == 1
    assert sum(r["revenue"] for r in hours.values()) == pytest.approx(75.0)
    impact = report["impact"]
    assert impact["source"] == "incidents" and impact["count"] == 1
    assert (impact["lost_orders"], impact["lost_revenue"], impact["wasted_spend"]) == (
        3.0, 180.0, 4.5)


def test_technical_figures_equal_the_analytics_modules(live: Live,
                                                       shop: dict[str, Any]) -> None:
    project, day, before = shop["project"], shop["day"], shop["before"]
    report = get_report(live, project, "technical").json()
    [home] = report["availability"]["monitors"]
    detail = monitor_detail(live.runtime.events, project.id, "home", day.range())
    assert home["availability"] == detail["availability"] == pytest.approx(0.8)
    assert (home["runs"], home["failed"], home["outages"], home["previous"]) == (10, 2, 1, 1.0)
    assert report["availability"]["overall"]["availability"] == pytest.approx(0.8)
    measured = vitals(live.runtime.events, project.id, day.range())["total"]
    lcp = report["vitals"]["metrics"]["lcp"]
    # p75 of 1800, 2000, 2600, 4200: 2600 + 0.25 x 1600.
    assert lcp["p75"] == measured["metrics"]["lcp"]["p75"] == pytest.approx(3000)
    assert (lcp["rating"], lcp["good"], lcp["poor"]) == ("needs-improvement", 2500.0, 4000.0)
    assert report["vitals"]["views"] == measured["views"] == 4
    assert report["vitals"]["metrics"]["inp"]["previous"] is None
    incidents = report["incidents"]
    assert incidents["source"] == "incidents" and incidents["count"] == 1
    [item] = incidents["items"]
    assert (item["title"], item["mttd_s"], item["mttr_s"]) == ("checkout down", 300.0, 2700.0)
    assert (incidents["mttr_s"], incidents["previous"]["count"]) == (2700.0, 0)
    assert before.key < day.key


def test_slos_show_what_the_period_achieved_and_the_budget_left(
        live: Live, shop: dict[str, Any]) -> None:
    from shopwatch.alerts.objectives import parse_objectives
    from shopwatch.store.slos import apply_slos

    project, day = shop["project"], shop["day"]
    no_slos = content.gather(live.runtime.events, live.runtime.state, project, "technical",
                             day)
    assert "slos" not in no_slos  # no objective: no section, no made-up figure
    apply_slos(live.runtime.state, project.id, parse_objectives(
        "slos: [{name: home up, sli: availability, target: 99%, window: 30d, "
        "filter: {monitor: home}}]"))
    report = get_report(live, project, "technical").json()
    [slo] = report["slos"]["items"]
    # Yesterday 8 of 10 runs passed; over the 30 days to its end, 18 of 20: 2 bad
    # against an allowance of 1 % of 20 = 0.2, so the budget is overspent 9 times.
    assert (slo["name"], slo["target"], slo["achieved"], slo["met"]) == (
        "home up", 0.99, 0.8, False)
    assert slo["budget_remaining"] == pytest.approx(1 - 2 / 0.2)


def test_without_the_incident_store_the_alerts_stand_in(
        live: Live, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shopwatch.store.incidents", None)  # not importable
    project, day = shop["project"], shop["day"]
    report = content.gather(live.runtime.events, live.runtime.state, project, "technical",
                            day)
    incidents = report["incidents"]
    assert incidents["source"] == "alerts" and incidents["count"] == 1
    [item] = incidents["items"]
    # MTTR = resolved_at - since; no impact estimate without the incident store.
    assert (item["mttd_s"], item["mttr_s"], item["lost_orders"]) == (300.0, 2700.0, None)


def test_bad_report_requests_name_the_field(live: Live, shop: dict[str, Any]) -> None:
    project = shop["project"]
    sales = get_report(live, project, "sales")
    assert sales.status_code == 400
    assert sales.json()["error"]["message"].startswith("audience: 'sales'")
    monthly = get_report(live, project, "business", period="monthly")
    assert monthly.status_code == 400 and "period" in monthly.json()["error"]["message"]
    future = get_report(live, project, "business", period="daily", key="2999-01-01")
    assert future.status_code == 400
    assert future.json()["error"]["message"].startswith("key: 2999-01-01 has not ended")
    bad_week = get_report(live, project, "business", period="weekly", key="47")
    assert bad_week.json()["error"]["message"].startswith("week: ")
    custom = get_report(live, project, "business", period="custom",
                        **{"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z"})
    assert custom.status_code == 200
    assert custom.json()["period"]["key"] == "2026-11-01T00:00:00Z/2026-11-08T00:00:00Z"


# --- HTML and PDF --------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html.lower()


@pytest.mark.browser
@needs_chromium
def test_downloads_hold_static_charts_and_a_pdf(live: Live, shop: dict[str, Any]) -> None:
    project = shop["project"]
    html = get_report(live, project, "business", format="html")
    assert html.status_code == 200, html.text
    assert html.headers["content-disposition"] == (
        f'attachment; filename="shopwatch-business-{shop["day"].key}.html"')
    page = html.text
    assert_self_contained(page)
    # Static SVG charts from ECharts, the tables they replace gone, the figures kept.
    assert page.count("<svg") == 2 and "data-option" not in page
    assert "data-stands-for" not in page and "Blue mug" in page
    assert re.search(r"<text[^>]*>[^<]*Order value per hour \(EUR\)", page)
    pdf = get_report(live, project, "business", format="pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    text = pdf_text(pdf.content)
    # Titles drawn inside the charts' SVG only: the PDF holds the charts as text.
    assert "Order value per hour (EUR)" in text
    assert "Revenue of the top products (EUR)" in text
    assert "Blue mug" in text and "Business report" in text
    technical = get_report(live, project, "technical", format="pdf")
    text = pdf_text(technical.content)
    assert "Availability per monitor (%)" in text and "LCP at p75 over the period (ms)" in text


@pytest.mark.browser
@needs_chromium
def test_names_from_the_shop_cannot_script_the_report(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    events = DuckDBEventStore(tmp_path / "events.duckdb")
    try:
        project = state.create_project("<b>shop</b>", "EUR", "UTC")
        day = periods.latest("daily", ZoneInfo("UTC"), int(time.time() * US))
        report = content.gather(events, state, project, "business", day)
        evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
        report["top_products"] = [{"product": "x", "name": evil, "category": evil,
                                   "views": 1, "adds": 1.0, "units": 1.0, "revenue": 5.0,
                                   "viewed_sessions": 1, "purchased_sessions": 1,
                                   "view_to_purchase": 1.0}]
        done = render.render(report)
        assert done.charts and done.pdf is not None
        assert_self_contained(done.html)
        assert "<img" not in done.html and "&lt;b&gt;shop&lt;/b&gt;" in done.html
    finally:
        events.close()
        state.close()


def test_without_chromium_html_has_tables_and_pdf_answers_503(
        live: Live, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    project = shop["project"]
    pdf = get_report(live, project, "technical", format="pdf")
    assert pdf.status_code == 503
    assert "no system Chromium" in pdf.json()["error"]["message"]
    html = get_report(live, project, "technical", format="html")
    assert html.status_code == 200
    assert_self_contained(html.text)
    assert "<svg" not in html.text and "Charts and the PDF need Chromium" in html.text
    assert 'data-stands-for="lcp"' in html.text  # the chart's figures, as a table


# --- e-mail with the PDF, through the server's loop pieces ---------------------------------------


@pytest.mark.browser
@needs_chromium
def test_the_email_has_a_readable_body_and_the_pdf_attached(
        live: Live, shop: dict[str, Any], inbox: Inbox) -> None:
    project = shop["project"]
    rt = live.runtime
    # Hour 0: the report of the last whole local day is due from local midnight on (at
    # 8 it would be the day before's until 8 o'clock in Paris).
    made = store.add_schedule(rt.state, project.id, schedule_data(
        audience="business", recipients=["ceo@shop.example", "cmo@shop.example"], hour=0),
        0.0)
    reporter = Reporter(rt.events, rt.state, smtp_env(inbox.port))
    [outcome] = reporter.send_due()  # created at the epoch: due at once, for yesterday
    assert outcome.sent and outcome.period == shop["day"].key
    [(sender, recipients, message)] = inbox.messages
    assert recipients == ["ceo@shop.example", "cmo@shop.example"]
    assert sender == "reports@shop.example"
    text = message.get_body(("plain",))
    body = message.get_body(("html",))
    assert text is not None and body is not None
    assert "Orders: 2 (previous 1)" in text.get_content()
    html = body.get_content()
    assert_self_contained(html)
    assert "<svg" not in html and "Blue mug" in html and "charts are in the attached PDF" in html
    [attachment] = list(message.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"shopwatch-business-{shop['day'].key}.pdf"
    data = attachment.get_content()
    assert data.startswith(b"%PDF") and "Order value per hour" in pdf_text(data)
    assert store.get_schedule(rt.state, project.id, made.id).last_sent_for == shop["day"].key


@pytest.mark.browser
@needs_chromium
def test_shopwatch_serve_sends_due_reports_by_itself(server: Callable[..., Live],
                                                     inbox: Inbox) -> None:
    live = server(smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_security="none",
                  smtp_from="reports@shop.example", reports_interval=0.2)
    assert live.runtime.reports is not None
    project = live.create_project("shop")
    # Created at the epoch: yesterday's report is due at once (hour 0: from midnight on).
    store.add_schedule(live.runtime.state, project.id, schedule_data(hour=0), 0.0)
    deadline = time.monotonic() + 120
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    [(_, recipients, message)] = inbox.messages
    assert recipients == ["ops@shop.example"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content().startswith(b"%PDF")
    while (store.get_schedule(live.runtime.state, project.id, "daily ops").last_sent_for
           is None and time.monotonic() < deadline):
        time.sleep(0.1)
    sent = store.get_schedule(live.runtime.state, project.id, "daily ops")
    assert sent.last_sent_for == periods.latest("daily", ZoneInfo("UTC"),
                                                int(time.time() * US)).key


# --- API and page -----------------------------------------------------------------------------


def test_the_schedules_api_validates_and_needs_a_writer(
        server: Callable[..., Live], inbox: Inbox) -> None:
    live = server(smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_security="none",
                  reports_interval=0.0)
    project = live.create_project("shop")
    own = live.client(str(project.secret_key))
    bad = own.post("/api/v1/report-schedules", json=schedule_data(
        recipients=["ok@shop.example", "not an address"]))
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "recipients[1]: 'not an address' is not an e-mail address")
    made = own.post("/api/v1/report-schedules", json=schedule_data())
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["name"] == "daily ops" and body["due"] is None
    assert body["next"]["period"] > "2000" and body["timezone"] == "UTC"
    listed = own.get("/api/v1/report-schedules").json()
    assert listed["smtp"] is True and [s["name"] for s in listed["schedules"]] == ["daily ops"]
    # A viewer reads them but cannot change them; an admin needs the CSRF token.
    live.runtime.users.add("viewer@example.com", "correct horse battery", "viewer")
    viewer = sign_in(live, "viewer@example.com")
    assert viewer.get("/api/v1/report-schedules").status_code == 200
    assert viewer.delete(f"/api/v1/report-schedules/{body['id']}").status_code == 403
    live.runtime.users.add("admin@example.com", "correct horse battery", "admin")
    admin = sign_in(live, "admin@example.com")
    assert admin.delete(f"/api/v1/report-schedules/{body['id']}").status_code == 403
    token = csrf_of(admin, "/alerts/reports")
    gone = admin.delete(f"/api/v1/report-schedules/{body['id']}",
                        headers={"X-CSRF-Token": token})
    assert gone.status_code == 200 and gone.json()["name"] == "daily ops"
    assert own.delete(f"/api/v1/report-schedules/{body['id']}").status_code == 404


def test_schedules_need_an_inbox(live: Live, project: Project) -> None:
    refused = live.client(str(project.secret_key)).post("/api/v1/report-schedules",
                                                        json=schedule_data())
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("smtp_host: ")


def test_the_reports_page_links_previews_and_downloads(dashboard: Live) -> None:
    admin = sign_in(dashboard)
    page = admin.get("/alerts/reports?period=weekly")
    assert page.status_code == 200
    assert "/api/v1/reports/business?project=1&amp;period=weekly&amp;format=pdf" in page.text
    assert "data-report-frame" in page.text and "data-schedule-form" in page.text
    assert 'href="/alerts/reports?' in admin.get("/alerts").text  # in the Alerts layer
    viewer = sign_in(dashboard, "viewer@example.com")
    assert "data-schedule-form" not in viewer.get("/alerts/reports").text


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
def test_cli_adds_lists_renders_sends_and_removes(tmp_path: Path, inbox: Inbox,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {**{k: None for k in os.environ if k.startswith("SHOPWATCH_")},
           "SHOPWATCH_SMTP_HOST": "127.0.0.1", "SHOPWATCH_SMTP_PORT": str(inbox.port),
           "SHOPWATCH_SMTP_SECURITY": "none"}

    def run(*args: str) -> Any:
        return runner.invoke(main, [*args, "--data", str(tmp_path / "d")], env=env,
                             catch_exceptions=False)

    assert run("project", "create", "shop", "--timezone", "Europe/Paris").exit_code == 0
    bad = run("reports", "add", "x", "--audience", "business", "--period", "weekly",
              "--to", "a@shop.example", "--to", "nope")
    assert bad.exit_code == 2 and "--to[1]: 'nope' is not an e-mail address" in bad.output
    added = run("reports", "add", "weekly biz", "--audience", "business", "--period",
                "weekly", "--hour", "7", "--to", "ceo@shop.example")
    assert added.exit_code == 0, added.output
    assert "Mondays at 07:00, to ceo@shop.example" in added.output
    listed = json.loads(run("reports", "list", "--json").output)
    assert [(s["name"], s["hour"], s["due"]) for s in listed] == [("weekly biz", 7, None)]
    assert "nothing due" in run("reports", "send", "weekly biz").output
    sent = run("reports", "send", "weekly biz", "--now")
    assert sent.exit_code == 0, sent.output
    [(_, recipients, message)] = inbox.messages
    assert recipients == ["ceo@shop.example"]
    assert message["Subject"].startswith("Business report: week ")
    out = tmp_path / "report.pdf"
    rendered = run("reports", "render", "--audience", "technical", "--period", "daily",
                   "--format", "pdf", "-o", str(out))
    assert rendered.exit_code == 0, rendered.output
    assert out.read_bytes().startswith(b"%PDF")
    page = tmp_path / "report.html"
    assert run("reports", "render", "--audience", "business", "--format", "html", "-o",
               str(page)).exit_code == 0
    assert_self_contained(page.read_text())
    assert run("reports", "remove", "weekly biz").exit_code == 0
    assert json.loads(run("reports", "list", "--json").output) == []
