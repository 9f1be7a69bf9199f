"""`shopwatch demo`: its history (events and real-user data, written into a real
Shopwatch and read back from its store), its scripted browser (real Chromium shopping
in the real demo shop, sending real beacons), and the whole command end to end: its
shop, shoppers and incidents, the stored events checked through the API against what
the simulator says it did."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shopwatch import events as ev
from shopwatch.beacon import RumRow, fingerprint
from shopwatch.client import ShopwatchClient
from shopwatch.demo import attacks, browsing, history, incidents, model, past_attacks
from shopwatch.demo.browser import ScriptedBrowser
from shopwatch.demo.shop import BrowserTag, catalogue, create_shop
from shopwatch.demo.shop.payments import TEST_CARDS, card_fingerprint, luhn_ok
from shopwatch.demo.simulator import Summary
from shopwatch.useragent import parse_agent
from tests.conftest import SHOPWATCH, Live, ServeProcess, clean_env

HAS_CHROMIUM = (shutil.which("chromium") or shutil.which("chromium-browser")) is not None
PRODUCTS = [history.Product(p.id, p.name, p.category, p.price) for p in catalogue.PRODUCTS]
ORIGIN = "http://127.0.0.1:8081"

EVERY_KIND = {"page_view", "view_item_list", "search", "view_item", "add_to_cart",
              "remove_from_cart", "view_cart", "begin_checkout", "add_shipping_info",
              "add_payment_info", "purchase", "payment_declined", "refund", "login",
              "login_failed", "sign_up", "profile_updated", "survey_response",
              "support_contact"}


def two_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports")


def read_all(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every stored event matching ``params``, paging by receive time."""
    events: list[dict[str, Any]] = []
    seen: set[str] = set()
    since = None
    while True:
        query = {"limit": 1000, "sort": "received_at", "order": "asc", **params}
        if since:
            query["received_from"] = since
        page = client.get("/api/v1/events", params=query)
        assert page.status_code == 200, page.text
        fresh = [e for e in page.json()["events"] if e["id"] not in seen]
        events.extend(fresh)
        seen.update(e["id"] for e in fresh)
        if len(page.json()["events"]) < 1000:
            return events
        since = page.json()["events"][-1]["received_at"]


# --- history: events and what the shoppers' browsers reported -----------------------------

VIEWS_SQL = """
WITH pv AS (
    SELECT view_id, any_value(device_category) AS device, max(ttfb_ms) AS ttfb,
           max(fcp_ms) AS fcp, max(lcp_ms) AS lcp, max(cls) AS cls, max(inp_ms) AS inp
    FROM rum WHERE project_id = ? AND kind IN ('view', 'vitals') GROUP BY view_id)
"""
THRESHOLDS = {"lcp": (2500, 4000), "inp": (200, 500), "cls": (0.1, 0.25),
              "fcp": (1800, 3000), "ttfb": (800, 1800)}


def query(live: Live, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return live.runtime.events.query(sql, list(params))


def test_history_writes_real_user_data_for_the_same_sessions(live: Live) -> None:
    project = live.create_project("demo")
    pid = project.id
    sink = history.Ingest(live.runtime, pid)
    result = history.backfill(sink, PRODUCTS, days=2, now=datetime.now(UTC), seed=3,
                              timezone="Europe/Paris", origin=ORIGIN)
    sink.close()
    assert sink.rejected == 0 and sink.accepted == result.events > 10_000
    assert sink.rum_rows == result.rum == sum(result.rum_counts.values())

    # Every row is stored, in the same batches as the events.
    kinds = dict(query(live, "SELECT kind, count(*) FROM rum WHERE project_id = ? "
                             "GROUP BY kind", pid))
    assert kinds == dict(result.rum_counts)
    assert set(kinds) == {"view", "vitals", "resource", "error"}
    assert kinds["view"] - 20 <= kinds["vitals"] <= kinds["view"]  # one report per view
    assert kinds["resource"] < kinds["view"] // 5 and kinds["error"] < kinds["view"] // 20

    # The same visits: browsers' sessions are the server's (but for ad blockers), each
    # page view the server saw was seen by the browser too, signed-in shoppers alike.
    visits = {r[0] for r in query(live, "SELECT DISTINCT session_id FROM events WHERE "
                                        "project_id = ? AND name = 'page_view'", pid)}
    browsed = {r[0] for r in query(live, "SELECT DISTINCT session_id FROM rum WHERE "
                                         "project_id = ?", pid)}
    assert browsed <= visits
    assert 0.85 < len(browsed) / len(visits) < 0.97
    unseen = query(live, """
        SELECT count(*) FROM events e WHERE project_id = ? AND name = 'page_view'
           AND session_id IN (SELECT session_id FROM rum WHERE project_id = ?)
           AND NOT EXISTS (SELECT 1 FROM rum r WHERE r.project_id = e.project_id
                           AND r.session_id = e.session_id AND r.kind = 'view'
                           AND regexp_replace(r.page, '\\?.*', '') = e.page)""", pid, pid)
    assert unseen == [(0,)]
    users = query(live, "SELECT count(DISTINCT user_id), count(DISTINCT user_id) FILTER "
                        "(WHERE user_id NOT IN (SELECT user_id FROM events WHERE project_id = ? "
                        "AND user_id IS NOT NULL)) FROM rum WHERE project_id = ?", pid, pid)
    assert users[0][0] > 0 and users[0][1] == 0

    # Columns as the live snippet fills them: paths, ua-parser's names.
    agents = {parse_agent(d[1]) for d in model.DEVICES}
    seen = query(live, "SELECT DISTINCT device_category, browser, browser_version, os, "
                       "connection FROM rum WHERE project_id = ?", pid)
    assert {(d, b, v, o) for d, b, v, o, _ in seen} == {
        (a.category, a.browser, a.browser_version, a.os) for a in agents}
    assert {b for *_, b, _, _, c in seen if c is not None} <= browsing.CHROMIUM
    assert {"Chrome Mobile", "Mobile Safari", "Edge", "Samsung Internet"} <= {
        b for _, b, *_ in seen}
    assert query(live, "SELECT count(*) FROM rum WHERE project_id = ? AND (page NOT LIKE '/%' "
                       "OR page LIKE '%?%' AND page NOT LIKE '%utm_%')", pid) == [(0,)]

    # Vitals: most page views good, a poor tail; phones slower than desktops.
    by_device = {r[0]: r[1:] for r in query(live, VIEWS_SQL + """
        SELECT device, quantile_cont(lcp, 0.75), quantile_cont(inp, 0.75),
               quantile_cont(cls, 0.75), quantile_cont(fcp, 0.75), quantile_cont(ttfb, 0.75)
        FROM pv GROUP BY device""", pid)}
    assert set(by_device) == {"desktop", "mobile", "tablet"}
    assert all(lcp > 0 for lcp, *_ in by_device.values())
    desktop, mobile = by_device["desktop"], by_device["mobile"]
    assert desktop[0] < 2500 and mobile[0] > desktop[0] and mobile[1] > desktop[1]
    for i, metric in enumerate(THRESHOLDS):
        good, poor = THRESHOLDS[metric]
        assert desktop[i] <= good, metric
        shares = query(live, VIEWS_SQL + f"""
            SELECT avg(({metric} <= {good})::INT), avg(({metric} > {poor})::INT)
            FROM pv WHERE {metric} IS NOT NULL""", pid)[0]
        assert shares[0] > 0.7, metric  # mostly good
        if metric != "ttfb":  # first bytes are only poor while checkout is slow
            assert 0 < shares[1] < 0.1, metric

    # JavaScript errors: a few groups, each one message, stack and source; a group
    # belongs to its browsers and pages.
    groups = query(live, """
        SELECT fingerprint, any_value(error_type), any_value(message), any_value(stack),
               any_value(source), count(DISTINCT message), count(DISTINCT stack),
               count(DISTINCT source), list(DISTINCT browser), count(*)
        FROM rum WHERE project_id = ? AND kind = 'error' GROUP BY fingerprint""", pid)
    assert 3 <= len(groups) <= len(browsing.ERRORS) + len(browsing.SDK_MISSING)
    for fp, kind, message, stack, source, messages, stacks, sources, browsers, _ in groups:
        assert messages == 1 and stacks <= 1 and sources <= 1
        assert fp == fingerprint(kind, message, stack, source)
        if "shop.js" in (source or ""):
            assert set(browsers) <= browsing.CHROMIUM
        if "evaluating 'form.dataset.method'" in message:
            assert set(browsers) <= browsing.SAFARI
    assert any(g[4] and g[4].startswith(ORIGIN + "/static/") for g in groups)

    # Failed and slow resources, by host: the shop's own /cdn/ and third parties.
    resources = query(live, """
        SELECT resource_host, failed, count(*), min(duration_ms) FROM rum
        WHERE project_id = ? AND kind = 'resource' GROUP BY ALL""", pid)
    assert {r[0] for r in resources} <= {"127.0.0.1", "maps.googleapis.com",
                                         "js.payments-sandbox.example"}
    assert all(r[3] > 1000 for r in resources if not r[1])  # slow: over a second
    assert {"127.0.0.1", "maps.googleapis.com"} <= {r[0] for r in resources if not r[1]}


def _persona(user_agent: str) -> model.Persona:
    return model.Persona(user_agent, "", "", "", "FR", "fr-FR", "direct", None, {})


IPHONE = next(d[1] for d in model.DEVICES if "iPhone" in d[1])
WINDOWS_CHROME = model.DEVICES[0][1]
VISIT = ["/", "/c/coffee", "/p/kenya-aa", "/cart", "/checkout", "/checkout/payment"]


def _browse(windows: browsing.Windows, user_agent: str, at: float) -> list[RumRow]:
    by_category = {c: [p.id for p in PRODUCTS if p.category == c]
                   for c in sorted({p.category for p in PRODUCTS})}
    featured = [pid for ids in by_category.values() for pid in ids[:2]]
    site = browsing.Site(ORIGIN, windows, featured, by_category)
    visit = browsing.Browsing(random.Random(5), site, _persona(user_agent), "s-1")
    visit.blocked = False  # this shopper has no ad blocker
    for i, path in enumerate(VISIT):
        visit.view(path, at + 20 * i)
    return visit.rows(at + 3600)


def test_prepare_gives_the_project_the_shops_url_and_its_monitors(tmp_path: Path) -> None:
    from shopwatch.checks import browser_flow
    from shopwatch.demo.runner import DemoOptions, prepare
    from shopwatch.runtime import open_state
    from shopwatch.settings import defaults
    from shopwatch.store.channels import list_channels
    from shopwatch.store.monitors import list_monitors
    from shopwatch.store.rules import list_rules
    from shopwatch.store.slos import list_slos

    settings = defaults().replace(data_dir=str(tmp_path / "demo"))
    options = DemoOptions(port=18600, data=settings.data_path, open_browser=False)
    for _ in range(2):  # again on the next start: nothing doubles
        record = prepare(settings, options)
    state = open_state(settings)
    project = state.get_project(record["project_id"])
    stored = list_monitors(state, project.id)
    rules = [rule.name for _, rule in list_rules(state, project.id)]
    slos = {o.name: o.sli for _, o in list_slos(state, project.id)}
    (inbox,) = list_channels(state, project.id)
    state.close()
    assert project.base_url == "http://127.0.0.1:18601"
    assert rules == ["checkout failing", "login failures spike", "payments failing",
                     "product images down", "tracking stopped"]
    assert slos == {"checkout success": "checkout", "home available": "availability",
                    "payment success": "payment", "product images available": "availability",
                    "product pages fast": "latency"}
    assert inbox.name == "demo inbox" and inbox.kind == "webhook"
    assert inbox.config["url"] == "http://127.0.0.1:18601/_demo/inbox/hook"
    assert inbox.config["secret"] == record["inbox_secret"]  # the same on every start
    browser = ["checkout in a browser"] if browser_flow.unavailable() is None else []
    assert [s.monitor.name for s in stored] == ["checkout", *browser, "home", "product image",
                                                "search"]
    assert all(s.source == "code" for s in stored)


def test_incidents_of_the_past_show_in_real_user_data() -> None:
    at = datetime(2025, 3, 3, 12, tzinfo=UTC).timestamp()
    down = browsing.Windows([(kind, at - 60, at + 600) for kind in (
        "image_host_down", "slow_checkout", "gateway_errors")])
    calm = browsing.Windows([])
    for agent in (IPHONE, WINDOWS_CHROME):
        bad, good = _browse(down, agent, at), _browse(calm, agent, at)
        assert [r.page for r in bad if r.kind == "view"] == VISIT
        # The image host is down: every product image fails, LCP is the heading.
        failed = {r.resource_url for r in bad if r.kind == "resource" and r.failed}
        images = {u for u in failed if "/cdn/img/" in u}
        assert f"{ORIGIN}/cdn/img/kenya-aa.svg" in images
        assert images == {u for u in failed if u.startswith(ORIGIN)}
        assert len(images) >= 12  # the home page's and the category's too
        assert not any(r.failed for r in good if r.kind == "resource")
        product = next(r for r in bad if r.kind == "vitals" and r.page == "/p/kenya-aa")
        assert product.lcp_target == "div>h1"
        # Checkout is slow: its first bytes come 2.5 s late, the others' do not.
        ttfb = {r.page: r.ttfb_ms for r in bad if r.kind == "view"}
        calm_ttfb = {r.page: r.ttfb_ms for r in good if r.kind == "view"}
        assert ttfb["/checkout"] > 2500 and ttfb["/checkout/payment"] > 2500
        assert calm_ttfb["/checkout"] < 1000 and ttfb["/"] < 1000
        # The gateway is down: its script fails, and the code needing it throws.
        assert browsing.PAYMENT_SDK in failed
        errors = [r for r in bad if r.kind == "error" and "PaymentsSandbox" in (r.message or "")]
        assert len(errors) == 1 and errors[0].page == "/checkout/payment"
        assert not any("PaymentsSandbox" in (r.message or "") for r in good)
    safari = next(r for r in _browse(down, IPHONE, at) if r.kind == "error"
                  and "PaymentsSandbox" in (r.message or ""))
    chrome = next(r for r in _browse(down, WINDOWS_CHROME, at) if r.kind == "error"
                  and "PaymentsSandbox" in (r.message or ""))
    assert safari.fingerprint != chrome.fingerprint  # each engine words it its own way
    assert safari.browser == "Mobile Safari" and chrome.browser == "Chrome"


# --- where shoppers and attackers are on the internet -------------------------------------


def _accepted(event: dict[str, Any]) -> str | None:
    """What Shopwatch's ingest would reject the event for; ``None`` if it is accepted."""
    decoded = ev.event_decoder.decode(json.dumps(event).encode())
    return ev.check_event(decoded) or ev.check_params(event.get("params") or {})


def test_shoppers_come_from_public_networks_and_customers_from_their_home() -> None:
    rng = random.Random(1)
    customers = model.Customers([(e, p) for _, e, p in model.regulars(0)])
    seen = [model.persona(rng, customers) for _ in range(3000)]
    for who in seen:
        address = ipaddress.ip_address(who.ip)
        assert address.version == 4 and address.is_global, who.ip
        assert all(luhn_ok(c) and c not in TEST_CARDS for c in who.cards)
    # Anonymous shoppers share their busiest networks (one provider's neighbourhood).
    networks = Counter(w.ip.rsplit(".", 1)[0] for w in seen if w.email is None)
    assert networks.most_common(1)[0][1] >= 10 and len(networks) > 100
    # A customer keeps their device, country and cards, and mostly their address.
    returning = [w for w in seen if w.email]
    assert len(returning) > 500
    for who in returning:
        home = model.home(str(who.email))
        assert (who.user_agent, who.country, who.cards) == (home.user_agent, home.country,
                                                          home.cards)
    at_home = sum(w.ip == model.home(str(w.email)).ip for w in returning)
    assert 0.75 < at_home / len(returning) < 0.95
    # The office: several accounts, one network.
    office = {w.email for w in returning if w.ip in model.OFFICE_ADDRESSES}
    assert len(office) >= 5
    assert all(str(e).endswith("@" + model.OFFICE_DOMAIN) for e in office)
    # The regulars' ids are the history's, whatever the case typed.
    email = model.regulars(0)[10][1]
    assert model.customer_id(email) == model.customer_id(email.upper())


def test_every_attack_has_its_own_network_user_agent_and_history() -> None:
    networks = [ipaddress.ip_network(a.network) for a in attacks.ATTACKERS.values()]
    assert len(set(networks)) == len(networks)
    for attacker, network in zip(attacks.ATTACKERS.values(), networks, strict=True):
        assert not network.is_global  # documentation ranges: nobody's real network
        assert all(ipaddress.ip_address(a) in network for a in attacker.addresses)
        assert len(attacker.addresses) == attacker.hosts
    assert set(attacks.ATTACKERS) == set(incidents.ATTACKS)
    assert {kind for kind, _ in history.PAST_INCIDENTS} == set(incidents.KINDS)
    cards = [attacks.tester_card(random.Random(i)) for i in range(500)]
    assert 0.05 < sum(map(luhn_ok, cards)) / len(cards) < 0.3
    assert {c[:6] for c in cards} == set(attacks.TESTER_BINS)


def test_past_attacks_send_what_the_live_ones_do() -> None:
    secret = b"k" * 32
    shop = past_attacks.PastShop({p.id: p for p in PRODUCTS}, "EUR", secret,
                                 history.SHIPPING, history.TAX_RATE)
    customers = model.Customers([(e, p) for _, e, p in model.regulars(0)])
    start = datetime(2025, 3, 3, 12, tzinfo=UTC)
    sent = {}
    for kind, attacker in attacks.ATTACKERS.items():
        events = list(past_attacks.attack_events(kind, random.Random(1), start,
                                                 start + timedelta(minutes=5), shop, customers))
        sent[kind] = events
        assert events, kind
        for event in events:
            assert _accepted(event) is None, (kind, event)
            assert ipaddress.ip_address(event["ip"]) in ipaddress.ip_network(attacker.network)
            assert event["user_agent"] in attacker.user_agents
            assert event["device"]["country"] == attacker.country
            assert start.timestamp() * 1000 <= event["ts"]
    stuffing = sent["credential_stuffing"]
    assert 1000 < len(stuffing) < 2600  # ~6 a second for 5 minutes
    assert len({e["user_id"] for e in stuffing}) > 0.8 * len(stuffing)
    assert any(e["name"] == "login" for e in stuffing)
    assert len({e["user_id"] for e in sent["brute_force"]}) == 1
    declined = [e for e in sent["card_testing"] if e["name"] == "payment_declined"]
    assert len({e["params"]["card_fingerprint"] for e in declined}) == len(declined) > 300
    assert any(e["name"] == "purchase" for e in sent["card_testing"])
    takeover = [e["name"] for e in sent["account_takeover"]]
    assert takeover[:4] == ["page_view", "login", "page_view", "profile_updated"]
    assert "add_to_cart" in takeover and takeover[-1] in ("purchase", "payment_declined")
    regular_ids = {model.customer_id(e) for _, e, _ in model.regulars(0)}
    assert {e.get("user_id") for e in sent["account_takeover"][1:]} <= regular_ids
    assert {e["device"]["category"] for e in sent["bot_traffic"]} == {"bot"}
    signups = [e for e in sent["signup_abuse"] if e["name"] == "sign_up"]
    assert len({e["session_id"] for e in signups}) == len(signups) > 100


def test_history_events_name_who_sent_them_and_cards_by_fingerprint() -> None:
    class Collect:
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def send(self, event: dict[str, Any]) -> str:
            self.events.append(event)
            return str(event["id"])

    secret = b"s" * 32
    sink = Collect()
    result = history.backfill(sink, PRODUCTS, days=0.5, now=datetime(2025, 3, 3, 20, tzinfo=UTC),
                              seed=2, spans=False, card_secret=secret)
    events = sink.events
    assert len(events) == result.events > 1000
    assert all(ipaddress.ip_address(e["ip"]).is_global and e["user_agent"] for e in events)
    # A visitor keeps one address through the visit.
    by_session: dict[str, set[str]] = {}
    for e in events:
        by_session.setdefault(e["session_id"], set()).add(e["ip"])
    assert all(len(ips) == 1 for ips in by_session.values())
    paid = [e for e in events if e["name"] in ("purchase", "payment_declined")
            and e["params"]["payment_method"] == "card"]
    assert paid and all(re.fullmatch(r"fp_[0-9a-f]{16}", e["params"]["card_fingerprint"])
                        and len(e["params"]["card_bin"]) == 6 for e in paid)
    # A regular customer pays with their own cards: the fingerprints the live shop makes
    # of them with the same secret.
    homes = {model.customer_id(e): model.home(e) for _, e, _ in model.regulars(2)}
    regulars_paid = [e for e in paid if e.get("user_id") in homes]
    assert regulars_paid
    for e in regulars_paid:
        cards = homes[e["user_id"]].cards
        assert e["params"]["card_fingerprint"] in {card_fingerprint(secret, c) for c in cards}
    assert [_accepted(e) for e in events[:2000]] == [None] * min(2000, len(events))


# --- the scripted browser ----------------------------------------------------------------


def test_without_chromium_the_demo_goes_on_without_its_browser(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium to be found
    said: list[str] = []
    browser = ScriptedBrowser("http://127.0.0.1:9", summary=Summary(), say=said.append)
    asyncio.run(browser.run(asyncio.Event()))
    assert len(said) == 1 and "scripted browser: off" in said[0] and "Chromium" in said[0]
    assert browser.report.status.startswith("off") and browser.report.visits == 0


@pytest.fixture
def demo_shop(live: Live) -> Iterator[tuple[str, Any, ShopwatchClient]]:
    """The demo shop on loopback, sending its events to ``live`` and carrying its RUM
    snippet; the project allows the shop's origin."""
    project = live.create_project("demo")
    client = ShopwatchClient(live.base_url, project.ingest_key, flush_interval=0.2)
    app = create_shop(client, browser_tag=BrowserTag(live.base_url, project.ingest_key))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, name="demo-shop", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the shop did not start"
        time.sleep(0.01)
    shop_url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    live.runtime.state.update_project(project.id, rum_origins=[shop_url])
    yield shop_url, project, client
    server.should_exit = True
    thread.join(timeout=30)
    client.close(10)


def poll(live: Live, sql: str, params: list[Any], enough: Callable[[list[Any]], bool],
         timeout: float = 30.0) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    while True:
        found = live.runtime.events.query(sql, params)
        if enough(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.browser
def test_the_scripted_browser_sends_real_beacons_joined_to_the_shops_events(
        live: Live, demo_shop: tuple[str, Any, ShopwatchClient], tmp_path: Path) -> None:
    shop_url, project, client = demo_shop
    summary, said = Summary(), []
    log = tmp_path / "browser.log"
    browser = ScriptedBrowser(shop_url, summary=summary, seed=2, interval=0.2, think=0.4,
                              log_path=log, say=said.append)

    async def shop_a_while() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(browser.run(stop))
        deadline = time.monotonic() + 120
        while browser.report.visits < 3 and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stop.set()  # the visit under way ends, then Chromium closes
        await task

    asyncio.run(shop_a_while())
    assert browser.report.status == "stopped", (said, log.read_text())
    sessions = browser.report.sessions
    assert len(sessions) >= 3 and len(set(sessions)) == len(sessions)
    assert summary.counts["browser_visits"] == len(sessions)
    assert any("Chromium" in line for line in said)

    # Real beacons, stored, from an ordinary (not headless) Chrome, per session.
    marks = ", ".join("?" * len(sessions))
    views = poll(live, f"""SELECT session_id, page, device_category, browser, os
                          FROM rum WHERE project_id = ? AND kind = 'view'
                          AND session_id IN ({marks}) ORDER BY ts""",
                 [project.id, *sessions], lambda rows: {r[0] for r in rows} == set(sessions))
    assert {r[0] for r in views} == set(sessions)
    assert {(d, b, o) for _, _, d, b, o in views} <= {("desktop", "Chrome", "Linux"),
                                                      ("mobile", "Chrome Mobile", "Android")}
    landing = {r[0]: r[1] for r in reversed(views)}
    assert all(page.split("?")[0] == "/" for page in landing.values())
    vitals = poll(live, f"""SELECT DISTINCT session_id FROM rum WHERE project_id = ?
                           AND kind = 'vitals' AND lcp_ms > 0 AND session_id IN ({marks})""",
                  [project.id, *sessions], lambda rows: len(rows) == len(sessions))
    assert len(vitals) == len(sessions)

    # The shop's server-side events of the same sessions: the journey joins them.
    client.flush()
    events = poll(live, f"""SELECT session_id, page, device_category FROM events
                           WHERE project_id = ? AND name = 'page_view'
                           AND session_id IN ({marks})""", [project.id, *sessions],
                  lambda rows: {r[0] for r in rows} == set(sessions))
    assert {r[0] for r in events} == set(sessions)
    server_pages = {(s, p) for s, p, _ in events}
    assert {(s, p.split("?")[0]) for s, p, *_ in views} <= server_pages
    devices = {(s, d) for s, _, d in events}
    assert {(s, d) for s, _, d, *_ in views} <= devices
    if summary.orders:
        placed = live.runtime.events.query(
            "SELECT DISTINCT transaction_id FROM events WHERE project_id = ? AND "
            "name = 'purchase'", [project.id])
        assert set(summary.orders) <= {r[0] for r in placed}


@pytest.mark.slow
@pytest.mark.browser
def test_demo_runs_end_to_end(tmp_path: Path,
                              serve_process: Callable[[Path], ServeProcess]) -> None:
    data = tmp_path / "demo"
    port = two_free_ports()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SHOPWATCH), "demo", "--port", str(port), "--data", str(data), "--seed", "7",
             "--speed", "60", "--backfill", "2", "--no-browser"],
            stdout=out, stderr=subprocess.STDOUT, env=clean_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while "demo shop:" not in log.read_text() or "backfill done" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        shop = httpx.get(f"http://127.0.0.1:{port + 1}/", timeout=10)
        assert shop.status_code == 200 and "<html" in shop.text.lower()
        time.sleep(30)  # live shoppers and incidents at 60x
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "sign in as demo@example.com, password " in output
    assert "Traceback" not in output

    listed = subprocess.run([str(SHOPWATCH), "project", "list", "--data", str(data), "--json"],
                            capture_output=True, text=True, env=clean_env(), check=True)
    project = json.loads(listed.stdout)[0]
    assert project["name"] == "Demo shop"
    summary = json.loads((data / "demo-summary.json").read_text())
    assert summary["client"]["dropped"] == 0 and summary["client"]["rejected"] == 0
    # The live rate follows the shop's time of day (a few visits at night): any will do.
    assert summary["counts"]["visits"] > 0
    assert summary["incidents"], "no incident in 30 s at 60x"
    logged = [json.loads(line) for line in (data / "demo-incidents.jsonl").read_text()
              .splitlines()]
    # The log holds the backfill's incidents and every live one, as the summary says.
    assert [i for i in logged if not i.get("backfill")] == summary["incidents"]
    assert {i["kind"] for i in logged} <= set(incidents.KINDS)
    # History has real-user data too; the scripted browser shopped when it could.
    assert {"view", "vitals"} <= set(summary["backfill"]["rum"])
    scripted = summary["browser"]
    if HAS_CHROMIUM:
        assert scripted["status"] == "stopped" and scripted["visits"] >= 1, output
        assert "scripted browser: Chromium" in output
    else:
        assert scripted["status"].startswith("off") and "scripted browser: off" in output

    server = serve_process(data)
    client = httpx.Client(base_url=server.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {project['secret_key']}"})
    counts = client.get("/api/v1/event-counts", params={
        "name": sorted(EVERY_KIND), "range": "7d"}).json()["counts"]
    missing = [c["name"] for c in counts if c["events"] == 0]
    assert not missing, f"no {missing} events"

    purchases = read_all(client, name="purchase")
    live = {e["params"]["transaction_id"] for e in purchases
            if not e["params"]["transaction_id"].startswith("H-")}
    past = [e for e in purchases if e["params"]["transaction_id"].startswith("H-")]
    # Every order the shoppers completed is stored, once, and nothing else.
    assert live == set(summary["orders"])
    assert len(live) == len([e for e in purchases if e["params"]["transaction_id"] in live])
    assert len(past) == summary["backfill"]["orders"]
    for event in purchases[:50]:
        params = event["params"]
        assert params["currency"] == "EUR" and params["value"] > 0 and params["items"]
    # The scripted browser's visits: its page views (from its beacons) and the shop's
    # events of the same sessions, joined in each session's journey.
    for session in scripted["sessions"]:
        journey = client.get("/api/v1/journey", params={"session": session})
        assert journey.status_code == 200, journey.text
        views = [s for s in journey.json()["steps"] if s["type"] == "page_view"]
        assert {"browser", "server"} <= {s["source"] for s in views}, session
        assert journey.json()["device"] in ("desktop", "mobile")
    refunds = {e["params"]["transaction_id"] for e in read_all(client, name="refund")}
    assert set(summary["refunded"]) <= refunds
    # Every declined payment the shoppers (and card testers) met is stored, and the
    # backfill's too.
    declined = read_all(client, name="payment_declined")
    live_declined = [e for e in declined
                     if not e["params"]["transaction_id"].startswith("H-")]
    counts_ = summary["counts"]
    expected = (sum(v for k, v in counts_.items()
                    if k.startswith("declined_") and not k.startswith("declined_http_"))
                + counts_.get("card_tests_declined", 0))
    assert len(live_declined) == expected
    assert len(declined) - len(live_declined) == summary["backfill"]["counts"].get(
        "payment_declined", 0)
    # The shop's traces (live, through OTLP, and backfilled) fill Reliability → Backend.
    backend = client.get("/api/v1/backend", params={"range": "7d"})
    assert backend.status_code == 200, backend.text
    assert {"demo-shop", "payments-sandbox"} <= {s["service"]
                                                 for s in backend.json()["services"]}
    assert summary["backfill"]["spans"] > 0
    deps = client.get("/api/v1/backend/dependencies", params={"range": "7d"})
    assert deps.status_code == 200, deps.text
    names = {d["name"] for d in deps.json()["dependencies"]}
    assert {"api.payments-sandbox.example", "in-memory SELECT"} <= names, names
    client.close()
    server.proc.terminate()  # the next demo needs the data directory's lock
    server.proc.wait(timeout=30)

    # A second run reuses the data: same project, same login, no second backfill.
    again = subprocess.run(
        [str(SHOPWATCH), "demo", "--port", str(two_free_ports()), "--data", str(data),
         "--speed", "60", "--backfill", "2", "--no-browser", "--duration", "2"],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "backfilling" not in again.stdout
    relisted = subprocess.run([str(SHOPWATCH), "project", "list", "--data", str(data),
                               "--json"], capture_output=True, text=True, env=clean_env())
    assert json.loads(relisted.stdout) == json.loads(listed.stdout)


def test_the_service_desk_answers_most_contacts_and_queues_longer_when_busy() -> None:
    import random
    from datetime import UTC, datetime

    from shopwatch.demo import desk

    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    rng = random.Random(5)
    calm = [desk.contact(rng, "phone", at) for _ in range(2000)]
    busy = [desk.contact(rng, "phone", at, busy=4.0) for _ in range(2000)]

    def abandoned(contacts: list[dict[str, object]]) -> float:
        return sum("abandoned_at" in c for c in contacts) / len(contacts)

    assert 0.05 < abandoned(calm) < 0.3 < abandoned(busy)
    emails = [desk.contact(rng, "email", at) for _ in range(200)]
    assert abandoned(emails) == 0  # nobody hangs up on an e-mail
    answered = [c for c in calm if "answered_at" in c]
    assert all(c["agent"] in desk.AGENTS for c in answered)
    assert 0.6 < sum(bool(c["first_contact_resolved"]) for c in answered) / len(answered) < 0.95
