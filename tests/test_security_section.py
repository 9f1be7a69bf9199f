"""The Security section (docs/kpis.md, "Security"): a hand-made set of events posted
through the real ingest endpoint into a real DuckDB file, then ``GET /api/v1/security``
checked against figures computed by hand; its access rules; the page.

The events, by minute of the hour-long period from ``t0`` (``ip`` and ``user_agent`` as
a shop's server sends them; the stored network is the /24 or /48):

- Sign-ins. An attack from 203.0.113.0/24 with python-requests: ``login_failed`` for
  acct-a1..a3 at minute 1 and acct-a4, acct-a5 at minute 2, and one ``login`` (cust-9)
  at minute 2. An office on 198.51.100.0/24 with Chrome: ``login`` for cust-1..cust-4
  and one ``login_failed`` for cust-1 at minute 10. From 2001:db8:1::/48 with Firefox:
  two ``login_failed`` for cust-7 (two addresses of the network) at minute 20. A
  ``login`` of cust-8 without an address at minute 30.
  So 6 succeeded, 8 failed: failure rate 8/14; 7 accounts and 3 networks failed.
- Payments, minutes 40-45. Orders: T1 by card on stripe (sent twice: one order), T2 by
  paypal on paypal, T3 by card on adyen. Declines: three ``card_declined`` by card on
  stripe from 192.0.2.0/24 with fingerprints fp-1..fp-3 (BIN 411111), one
  ``insufficient_funds`` by card on stripe with only BIN 550000, one ``do_not_honor``
  by paypal on paypal naming no card. Declined rate 5/8; card 4/6, paypal 1/2; stripe
  4/5, paypal 1/2, adyen 0/1; 4 distinct cards, 1 decline without one.
- Account changes, minutes 50-54: cust-1 ``["email"]`` (from the card-testing network),
  cust-2 ``["address", "phone"]``, cust-3 ``["first_name", "newsletter"]``, cust-4
  without fields, then cust-1 ``password_changed``. By field: email 1, address 1,
  phone 1, name 1, other 2; 4 profile updates, 1 password change.
- Sign-ups: new-1..3 from 203.0.113.0/24 at minutes 56, 57 and 58, new-4 from
  198.51.100.0/24 at minute 58, new-5 without an address at minute 58.5.
- Outside: a ``login_failed`` from the attack network a minute before ``t0``, and the
  same kind of event in another project.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from shopwatch.analytics import security
from shopwatch.analytics.timerange import parse_range
from shopwatch.store.state import Project
from tests.conftest import VIEWER_EMAIL, Live, sign_in

ATTACK, OFFICE, V6, CARDS = "203.0.113.0/24", "198.51.100.0/24", "2001:db8:1::/48", "192.0.2.0/24"
BOT = "python-requests/2.31.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def period_start() -> int:
    """``t0`` in epoch ms: the start of the hour three hours ago (whole-minute buckets)."""
    return (int(time.time()) // 3600 - 3) * 3600 * 1000


def ev(t0: int, minute: float, name: str, user: str | None = None, ip: str | None = None,
       agent: str | None = None, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "ts": t0 + int(minute * 60_000)}
    if user is not None:
        out["user_id"] = user
    if ip is not None:
        out["ip"] = ip
    if agent is not None:
        out["user_agent"] = agent
    if params:
        out["params"] = params
    return out


def crafted(t0: int) -> list[dict[str, Any]]:
    """The events of the module docstring."""
    out = [ev(t0, 1, "login_failed", f"acct-a{i}", f"203.0.113.{4 + i}", BOT,
              method="password", reason="wrong_password") for i in (1, 2, 3)]
    out += [ev(t0, 2, "login_failed", f"acct-a{i}", "203.0.113.9", BOT, reason="no_account")
            for i in (4, 5)]
    out.append(ev(t0, 2.5, "login", "cust-9", "203.0.113.7", BOT, method="password"))
    out += [ev(t0, 10, "login", f"cust-{i}", f"198.51.100.{i}", CHROME) for i in (1, 2, 3, 4)]
    out.append(ev(t0, 10.5, "login_failed", "cust-1", "198.51.100.1", CHROME,
                  reason="wrong_password"))
    out += [ev(t0, 20, "login_failed", "cust-7", ip, FIREFOX, reason="wrong_password")
            for ip in ("2001:db8:1::1", "2001:db8:1:0:0:0:0:2")]
    out.append(ev(t0, 30, "login", "cust-8"))
    # Payments
    out += [ev(t0, 40, "purchase", "cust-1", "198.51.100.1", CHROME, transaction_id="T1",
               value=50.0, currency="EUR", payment_method="card", gateway="stripe")
            for _ in range(2)]
    out.append(ev(t0, 41, "purchase", "cust-2", "198.51.100.2", CHROME, transaction_id="T2",
                  value=20.0, currency="EUR", payment_method="paypal", gateway="paypal"))
    out.append(ev(t0, 41, "purchase", "cust-3", "198.51.100.3", CHROME, transaction_id="T3",
                  value=30.0, currency="EUR", payment_method="card", gateway="adyen"))
    out += [ev(t0, 42, "payment_declined", "cust-9", "192.0.2.10", BOT, reason="card_declined",
               payment_method="card", gateway="stripe", card_fingerprint=f"fp-{i}",
               card_bin="411111", value=1.0, currency="EUR") for i in (1, 2, 3)]
    out.append(ev(t0, 43, "payment_declined", "cust-9", "192.0.2.10", BOT,
                  reason="insufficient_funds", payment_method="card", gateway="stripe",
                  card_bin="550000"))
    out.append(ev(t0, 45, "payment_declined", "cust-2", "198.51.100.2", CHROME,
                  reason="do_not_honor", payment_method="paypal", gateway="paypal"))
    # Account changes
    out.append(ev(t0, 50, "profile_updated", "cust-1", "192.0.2.10", BOT, fields=["email"]))
    out.append(ev(t0, 51, "profile_updated", "cust-2", "198.51.100.2", CHROME,
                  fields=["address", "phone"]))
    out.append(ev(t0, 52, "profile_updated", "cust-3", "198.51.100.3", CHROME,
                  fields=["first_name", "newsletter"]))
    out.append(ev(t0, 53, "profile_updated", "cust-4", "198.51.100.4", CHROME))
    out.append(ev(t0, 54, "password_changed", "cust-1", "192.0.2.10", BOT, method="reset"))
    # Sign-ups
    out += [ev(t0, 55 + i, "sign_up", f"new-{i}", f"203.0.113.{20 + i}", BOT)
            for i in (1, 2, 3)]
    out.append(ev(t0, 58, "sign_up", "new-4", "198.51.100.40", CHROME))
    out.append(ev(t0, 58.5, "sign_up", "new-5"))
    # Outside the period
    out.append(ev(t0, -1, "login_failed", "acct-a1", "203.0.113.5", BOT))
    return out


@pytest.fixture
def seeded(dashboard: Live) -> tuple[Live, Project, int]:
    """The dashboard's project with the crafted events, and ``t0``."""
    t0 = period_start()
    project = dashboard.runtime.state.get_project("shop-a")
    response = dashboard.post_events(project.ingest_key or "", crafted(t0))
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []
    other = dashboard.create_project("shop-b")
    assert dashboard.post_events(other.ingest_key or "", [
        ev(t0, 5, "login_failed", "x", "203.0.113.5", BOT)]).status_code == 200
    return dashboard, project, t0


def get(live: Live, project: Project, t0: int, **params: Any) -> dict[str, Any]:
    client = live.client(project.secret_key)
    response = client.get("/api/v1/security",
                          params={"from": t0, "to": t0 + 3_600_000, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_sign_in_figures(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    body = get(live, project, t0)
    assert body["range"]["bucket_seconds"] == 60 and body["limit"] == 20
    logins = body["logins"]
    assert logins["totals"] == {"logins": 6, "failed": 8, "attempts": 14,
                                "failure_rate": pytest.approx(8 / 14), "accounts": 12,
                                "accounts_failed": 7, "networks_failed": 3}
    series = logins["series"]
    assert len(series) == 60
    assert [(p["logins"], p["failed"]) for p in series[:3]] == [(0, 0), (0, 3), (1, 2)]
    assert series[0]["failure_rate"] is None and series[1]["failure_rate"] == 1.0
    assert series[2]["failure_rate"] == pytest.approx(2 / 3)
    assert sum(p["logins"] for p in series) == 6 and sum(p["failed"] for p in series) == 8
    assert [(n["net_prefix"], n["failures"], n["successes"], n["accounts"],
             n["accounts_failed"], n["user_agents"]) for n in logins["networks"]] == [
        (ATTACK, 5, 1, 6, 5, 1), (V6, 2, 0, 1, 1, 1), (OFFICE, 1, 4, 4, 1, 1)]
    assert logins["networks"][0]["failure_rate"] == pytest.approx(5 / 6)
    assert logins["networks"][2]["failure_rate"] == pytest.approx(1 / 5)
    assert logins["networks"][0]["last_seen"].startswith(iso_minute(t0, 2))
    agents = logins["user_agents"]
    assert [(a["user_agent"], a["browser"], a["category"], a["failures"], a["successes"],
             a["accounts"], a["networks"]) for a in agents] == [
        (BOT, "Python Requests", "bot", 5, 1, 6, 1), (FIREFOX, "Firefox", "desktop", 2, 0, 1, 1),
        (CHROME, "Chrome", "desktop", 1, 4, 4, 1)]
    accounts = logins["accounts"]
    assert [(a["user_id"], a["failures"], a["successes"], a["networks"]) for a in accounts] == [
        ("cust-7", 2, 0, 1), ("acct-a1", 1, 0, 1), ("acct-a2", 1, 0, 1), ("acct-a3", 1, 0, 1),
        ("acct-a4", 1, 0, 1), ("acct-a5", 1, 0, 1), ("cust-1", 1, 1, 1)]
    assert accounts[0]["last_seen"].startswith(iso_minute(t0, 20))
    assert [(n["net_prefix"], n["accounts"], n["accounts_succeeded"], n["accounts_failed"],
             n["logins"], n["failures"]) for n in logins["accounts_per_network"]] == [
        (ATTACK, 6, 1, 5, 1, 5), (OFFICE, 4, 4, 1, 4, 1), (V6, 1, 0, 1, 0, 2)]


def iso_minute(t0: int, minute: int) -> str:
    """``YYYY-MM-DDTHH:MM`` of ``t0`` plus ``minute`` minutes, as the API prints it."""
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(t0 / 1000 + minute * 60))


def test_payment_figures(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    pay = get(live, project, t0)["payments"]
    assert pay["totals"] == {"declined": 5, "purchases": 3,
                             "declined_rate": pytest.approx(5 / 8)}
    assert [(p["declined"], p["purchases"]) for p in pay["series"][40:46]] == [
        (0, 1), (0, 2), (3, 0), (1, 0), (0, 0), (1, 0)]
    assert pay["series"][42]["declined_rate"] == 1.0 and pay["series"][44]["declined_rate"] is None
    assert [(m["payment_method"], m["declined"], m["purchases"]) for m in pay["by_method"]] == [
        ("card", 4, 2), ("paypal", 1, 1)]
    assert pay["by_method"][0]["declined_rate"] == pytest.approx(4 / 6)
    assert [(g["gateway"], g["declined"], g["purchases"], g["declined_rate"])
            for g in pay["by_gateway"]] == [("stripe", 4, 1, pytest.approx(0.8)),
                                            ("paypal", 1, 1, 0.5), ("adyen", 0, 1, 0.0)]
    assert pay["reasons"] == [
        {"reason": "card_declined", "count": 3, "share": pytest.approx(0.6)},
        {"reason": "do_not_honor", "count": 1, "share": pytest.approx(0.2)},
        {"reason": "insufficient_funds", "count": 1, "share": pytest.approx(0.2)}]
    cards = pay["cards"]
    assert cards["distinct"] == 4 and cards["without_card"] == 1
    assert [(c["card"], c["kind"], c["card_bin"], c["declines"], c["networks"], c["accounts"],
             c["reasons"]) for c in cards["top"]] == [
        ("550000", "bin", "550000", 1, 1, 1, ["insufficient_funds"]),
        ("fp-1", "fingerprint", "411111", 1, 1, 1, ["card_declined"]),
        ("fp-2", "fingerprint", "411111", 1, 1, 1, ["card_declined"]),
        ("fp-3", "fingerprint", "411111", 1, 1, 1, ["card_declined"])]


def test_account_changes_and_sign_ups(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    body = get(live, project, t0)
    changes = body["account_changes"]
    assert changes["totals"] == {"changes": 5, "profile_updated": 4, "password_changed": 1,
                                 "accounts": 4, "by_field": {"email": 1, "address": 1,
                                                             "phone": 1, "name": 1, "other": 2}}
    at = {m: changes["series"][m] for m in range(50, 55)}
    assert at[50]["email"] == 1 and at[51]["address"] == at[51]["phone"] == 1
    assert at[52]["name"] == at[52]["other"] == 1 and at[53]["other"] == 1
    assert at[54]["password_changed"] == 1 and at[54]["profile_updated"] == 0
    assert [(c["name"], c["user_id"], c["fields"], c["kinds"], c["net_prefix"])
            for c in changes["latest"]] == [
        ("password_changed", "cust-1", [], [], CARDS),
        ("profile_updated", "cust-4", [], ["other"], OFFICE),
        ("profile_updated", "cust-3", ["first_name", "newsletter"], ["name", "other"], OFFICE),
        ("profile_updated", "cust-2", ["address", "phone"], ["address", "phone"], OFFICE),
        ("profile_updated", "cust-1", ["email"], ["email"], CARDS)]
    assert changes["latest"][0]["user_agent"] == BOT
    signups = body["sign_ups"]
    assert signups["totals"] == {"sign_ups": 5, "without_network": 1}
    assert [(n["net_prefix"], n["sign_ups"], n["share"], n["accounts"])
            for n in signups["networks"]] == [(ATTACK, 3, pytest.approx(0.6), 3),
                                              (OFFICE, 1, pytest.approx(0.2), 1)]
    assert signups["series_networks"] == [ATTACK, OFFICE]
    assert [p["sign_ups"] for p in signups["series"][55:59]] == [0, 1, 1, 3]
    assert signups["series"][58]["networks"] == {ATTACK: 1, OFFICE: 1}
    assert body["totals"] == {
        "logins": 6, "failed": 8, "attempts": 14, "failure_rate": pytest.approx(8 / 14),
        "declined": 5, "purchases": 3, "declined_rate": pytest.approx(5 / 8),
        "account_changes": 5, "sign_ups": 5}


def test_lists_are_capped_and_the_functions_agree(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    body = get(live, project, t0, limit=1)
    assert body["limit"] == 1
    assert [n["net_prefix"] for n in body["logins"]["networks"]] == [ATTACK]
    assert len(body["logins"]["accounts"]) == len(body["payments"]["reasons"]) == 1
    assert len(body["payments"]["cards"]["top"]) == 1
    assert body["payments"]["cards"]["distinct"] == 4  # the count is not capped
    rng = parse_range("custom", str(t0), str(t0 + 3_600_000), 0)
    store = live.runtime.events
    assert security.login_networks(store, project.id, rng, 2) == get(
        live, project, t0)["logins"]["networks"][:2]
    # Another range sees none of it; the API answers zeros, not errors.
    empty = get(live, project, t0 - 3_600_000)
    assert empty["totals"]["attempts"] == 1  # only the failure a minute before t0
    assert empty["payments"]["totals"]["declined_rate"] is None
    csv = live.client(project.secret_key).get(
        "/api/v1/security", params={"from": t0, "to": t0 + 3_600_000, "format": "csv"})
    assert csv.status_code == 200 and csv.text.splitlines()[1].startswith(ATTACK)


def test_reading_needs_a_session_or_the_secret_key(seeded: tuple[Live, Project, int]) -> None:
    live, project, t0 = seeded
    anonymous = live.client().get("/api/v1/security")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert live.client(project.ingest_key).get("/api/v1/security").status_code == 403
    other = live.runtime.state.get_project("shop-b")
    assert live.client(project.secret_key).get(
        "/api/v1/security", params={"project": other.id}).status_code == 403
    viewer = sign_in(live, VIEWER_EMAIL)
    body = viewer.get("/api/v1/security", params={"project": other.id, "from": t0,
                                                  "to": t0 + 3_600_000}).json()
    assert body["totals"]["failed"] == 1  # shop-b's own event only
    bad = viewer.get("/api/v1/security?range=2h")
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("range:")
    page = viewer.get("/security")
    assert page.status_code == 200
    assert 'data-api="/api/v1/security"' in page.text and "Not built yet" not in page.text
    detail = viewer.get("/security?finding=3")
    assert 'data-api="/api/v1/security/findings/3"' in detail.text
    assert "data-set-status" not in detail.text  # a viewer cannot change a finding
    assert "data-set-status" in sign_in(live).get("/security?finding=3").text
