"""The Customers section (docs/customers.md): hand-made events posted through the real
ingest endpoint into a real DuckDB file, spend uploaded through the API, then
``GET /api/v1/customers`` and ``/api/v1/customers/list`` checked against figures
computed by hand; the churn edge; the health weights; access; the page.

The period ends at ``T``, the start of the current UTC month, and spans 30 days. ``M0``
is the month before ``T`` (the last month of the tables); ``at(k, day)`` is noon of that
day of the month ``k`` months before ``M0``. The project sells in EUR. The server runs
with ``customer_churn_days=90`` and the default health weights.

- alice: orders A1 100 (utm_source google) at (5, 10), A2 50 at (4, 10), A3 30 at (0, 20);
  an NPS 9 and one support contact. 3 orders, net 180.
- bob: B1 80 at (5, 12) sent twice (one order), its session's first event a page view
  from utm_source facebook; a partial refund of 30 at (3, 1). 1 order, net 50.
- carol: C1 40 at (2, 5), no source: (direct). The customer with one order.
- dan: D1 105.30 USD (100 EUR) at (4, 3) from google; D2 20 at (3, 3), refunded in full
  (a refund without a value) at (3, 4); a CSAT 2 and three support contacts. 2 orders,
  gross 120, net 100; D2 nets 0, so the LTV model sees one purchase.
- erin: E1 60 at (0, 25) from facebook: the period's new customer.
- one purchase without a user_id in the period.
- spend: google 250 in M0-5 and 50 in M0-4, facebook 20 in M0-5 and 30 in M0, bing 10
  in M0-2.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shopwatch.analytics import customers
from shopwatch.settings import defaults, load
from shopwatch.store.state import Project
from tests.conftest import ADMIN_EMAIL, PASSWORD, VIEWER_EMAIL, Live, sign_in

DAY_S = 86_400


def period_end() -> datetime:
    """``T``: the start of the current UTC month."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def month(k: int) -> tuple[int, int]:
    """(year, month) of ``M0`` minus ``k`` months."""
    t = period_end()
    index = t.year * 12 + t.month - 1 - 1 - k
    return index // 12, index % 12 + 1


def at(k: int, day: int, hour: int = 12) -> datetime:
    y, m = month(k)
    return datetime(y, m, day, hour, tzinfo=UTC)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def ev(name: str, t: datetime, user: str | None = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "ts": ms(t)}
    if user is not None:
        out["user_id"] = user
    params = fields.pop("params", None)
    out.update(fields)
    if params:
        out["params"] = params
    return out


def buy(t: datetime, user: str | None, txn: str, value: float, currency: str = "EUR",
        **fields: Any) -> dict[str, Any]:
    return ev("purchase", t, user, params={"transaction_id": txn, "value": value,
                                           "currency": currency}, **fields)


def crafted() -> list[dict[str, Any]]:
    """The events of the module docstring."""
    t = period_end()
    return [
        buy(at(5, 10), "alice", "A1", 100, utm_source="google", utm_medium="cpc"),
        buy(at(4, 10), "alice", "A2", 50),
        buy(at(0, 20), "alice", "A3", 30),
        ev("survey_response", at(0, 21), "alice", params={"survey": "nps", "score": 9}),
        ev("support_contact", at(0, 22), "alice", params={"reason": "where_is_my_order"}),
        ev("page_view", at(5, 12, 11), "bob", session_id="s-bob", page="https://shop.test/",
           utm_source="facebook", utm_medium="paid_social"),
        buy(at(5, 12), "bob", "B1", 80, session_id="s-bob"),
        buy(at(5, 12), "bob", "B1", 80, session_id="s-bob"),
        ev("refund", at(3, 1), "bob", params={"transaction_id": "B1", "value": 30,
                                              "currency": "EUR"}),
        buy(at(2, 5), "carol", "C1", 40),
        buy(at(4, 3), "dan", "D1", 105.3, "USD", utm_source="google"),
        buy(at(3, 3), "dan", "D2", 20),
        ev("refund", at(3, 4), "dan", params={"transaction_id": "D2"}),
        ev("survey_response", at(3, 5), "dan", params={"survey": "csat", "score": 2}),
        *[ev("support_contact", at(3, 5 + i), "dan") for i in range(3)],
        buy(at(0, 25), "erin", "E1", 60, utm_source="Facebook"),
        buy(t - timedelta(days=2), None, "X1", 999),
    ]


SPEND = [(5, "google", 250.0), (4, "google", 50.0), (5, "facebook", 20.0),
         (0, "facebook", 30.0), (2, "bing", 10.0)]


@pytest.fixture
def shop(server: Callable[..., Live]) -> tuple[Live, Project]:
    live = server(max_event_age=400 * DAY_S, customer_churn_days=90)
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    live.runtime.users.add(VIEWER_EMAIL, PASSWORD, "viewer")
    project = live.runtime.state.create_project("shop-c", "EUR")
    response = live.post_events(project.ingest_key or "", crafted())
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []
    rows = [{"date": f"{month(k)[0]:04d}-{month(k)[1]:02d}-15", "channel": ch,
             "campaign": "c", "cost": cost} for k, ch, cost in SPEND]
    uploaded = live.client(project.secret_key).post("/api/v1/spend", json={"rows": rows})
    assert uploaded.status_code == 200 and uploaded.json()["accepted"] == 5, uploaded.text
    return live, project


def get(live: Live, project: Project, path: str = "/api/v1/customers",
        **params: Any) -> dict[str, Any]:
    t = period_end()
    query = {"from": ms(t - timedelta(days=30)), "to": ms(t), **params}
    response = live.client(project.secret_key).get(path, params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_user(live: Live, project: Project) -> dict[str, dict[str, Any]]:
    rows = get(live, project, "/api/v1/customers/list")["rows"]
    return {r["user_id"]: r for r in rows}


def test_kpis_cohorts_and_churn(shop: tuple[Live, Project]) -> None:
    live, project = shop
    body = get(live, project, months=6)
    assert body["currency"] == "EUR"
    assert body["kpis"] == {
        "customers": 2, "new_customers": 1, "returning_customers": 1, "orders": 2,
        "orders_without_user": 1, "net_revenue": pytest.approx(90.0),
        "revenue_per_customer": pytest.approx(45.0), "customers_to_date": 5,
        "repeat_customers": 2, "repeat_purchase_rate": pytest.approx(0.4),
        "orders_per_customer": pytest.approx(8 / 5),
        "purchase_frequency": body["kpis"]["purchase_frequency"],
        # 90 days: alice, bob and dan are older; bob and dan have not ordered since.
        "churn_days": 90, "churn_eligible": 3, "churned": 2,
        "churn_rate": pytest.approx(2 / 3)}
    rows = body["cohorts"]["rows"]
    assert [r["month"] for r in rows] == [f"{y:04d}-{m:02d}" for y, m in
                                          (month(k) for k in range(5, -1, -1))]
    assert [(r["customers"], r["retention"]) for r in rows] == [
        (2, [0.5, 0.0, 0.0, 0.0, 0.5]),  # alice and bob; alice again at +1 and +5
        (1, [1.0, 0.0, 0.0, 0.0]),  # dan, again at +1 (the refunded order still counts)
        (0, [None, None, None]), (1, [0.0, 0.0]), (0, [None]), (1, [])]
    assert body["cohorts"]["max_offset"] == 5


def test_per_customer_rows_refunds_and_a_one_order_customer(
        shop: tuple[Live, Project]) -> None:
    live, project = shop
    rows = by_user(live, project)
    assert set(rows) == {"alice", "bob", "carol", "dan", "erin"}
    facts = {u: (r["orders"], r["gross_revenue"], r["returns"], r["net_revenue"], r["aov"],
                 r["source"]) for u, r in rows.items()}
    assert facts == {
        "alice": (3, 180.0, 0.0, 180.0, 60.0, "google"),
        "bob": (1, 80.0, 30.0, 50.0, 80.0, "facebook"),  # from its session's page view
        "carol": (1, 40.0, 0.0, 40.0, 40.0, "(direct)"),
        "dan": (2, pytest.approx(120.0), 20.0, pytest.approx(100.0), pytest.approx(60.0),
                "google"),
        "erin": (1, 60.0, 0.0, 60.0, 60.0, "facebook")}
    carol = rows["carol"]
    assert carol["first_order"] == carol["last_order"]
    assert carol["first_order"].startswith(at(2, 5).strftime("%Y-%m-%dT%H:%M:%S"))
    tenure_months = (period_end() - at(2, 5)).total_seconds() / (30.4375 * DAY_S)
    assert carol["frequency"] == pytest.approx(1 / tenure_months, rel=1e-5)
    assert carol["rfm"] == {"recency": 3, "frequency": 2, "monetary": 1}
    assert carol["segment"] == "new" and carol["satisfaction"] is None
    # Paging and sorting.
    page = get(live, project, "/api/v1/customers/list", sort="orders", limit=2, offset=1)
    assert page["total"] == 5 and [r["user_id"] for r in page["rows"]] == ["dan", "bob"]
    asc = get(live, project, "/api/v1/customers/list", sort="user_id", order="asc")
    assert [r["user_id"] for r in asc["rows"]] == ["alice", "bob", "carol", "dan", "erin"]
    csv = live.client(project.secret_key).get(
        "/api/v1/customers/list", params={"format": "csv", "sort": "user_id",
                                          "order": "asc", "to": ms(period_end()),
                                          "from": ms(period_end() - timedelta(days=1))})
    assert csv.status_code == 200 and csv.text.splitlines()[1].startswith("alice,")
    assert "rfm_recency" in csv.text.splitlines()[0]


def test_segments_and_health_scores(shop: tuple[Live, Project]) -> None:
    live, project = shop
    rows = by_user(live, project)
    assert {u: (tuple(r["rfm"].values()), r["segment"]) for u, r in rows.items()} == {
        "alice": ((4, 5, 5), "champions"), "bob": ((1, 2, 2), "hibernating"),
        "carol": ((3, 2, 1), "new"), "dan": ((2, 4, 4), "at_risk"),
        "erin": ((5, 2, 3), "new")}
    # Default weights 0.3 / 0.2 / 0.2 / 0.2 / 0.1; without a survey the four others
    # re-normalised (÷ 0.8).
    assert rows["alice"]["health"] == pytest.approx(88.0)  # .225+.2+.2+.18+.075
    assert rows["dan"]["health"] == pytest.approx(45.0)  # .075+.15+.15+.05+.025
    assert rows["carol"]["health"] == pytest.approx(37.5)  # (.15+.05+0+.1) / .8
    assert rows["erin"]["health"] == pytest.approx(68.75, abs=0.051)  # (.3+.05+.1+.1)/.8
    assert rows["bob"]["health"] == pytest.approx(25.0)  # (0+.05+.05+.1) / .8
    assert rows["alice"]["satisfaction"] == pytest.approx(0.9)
    assert rows["dan"]["satisfaction"] == pytest.approx(0.25)
    assert rows["dan"]["support_contacts"] == 3
    segments = {s["segment"]: (s["customers"], s["net_revenue"])
                for s in get(live, project)["segments"]}
    assert segments == {"champions": (1, 180.0), "loyal": (0, 0.0),
                        "new": (2, 100.0), "at_risk": (1, pytest.approx(100.0)),
                        "hibernating": (1, 50.0)}
    only = get(live, project, "/api/v1/customers/list", segment="new")
    assert only["total"] == 2 and {r["user_id"] for r in only["rows"]} == {"carol", "erin"}


def test_lifetime_value_uses_net_orders(shop: tuple[Live, Project]) -> None:
    live, project = shop
    body = get(live, project)
    ltv = body["ltv"]
    # Five customers, two repeat buyers: too few for the models.
    assert ltv["method"] == "historical" and "repeat customers" in ltv["reason"]
    assert ltv["average_probability_alive"] is None
    rows = by_user(live, project)
    # Historical: average net purchase value * repeat purchases / T * 12 months, in weeks.
    today = int(period_end().timestamp()) // DAY_S
    horizon = 12 * 30.4375 / 7
    first = int(at(5, 10).timestamp()) // DAY_S
    alice = 60.0 * 2 / ((today - first) / 7) * horizon
    assert rows["alice"]["predicted_ltv"] == pytest.approx(alice, rel=1e-6)
    # dan's second order was refunded in full: one purchase left, no repeat rate.
    assert rows["dan"]["predicted_ltv"] == 0.0 and rows["carol"]["predicted_ltv"] == 0.0
    assert ltv["average_predicted_ltv"] == pytest.approx(alice / 5, rel=1e-6)
    assert ltv["average_historical_value"] == pytest.approx(430 / 5)
    assert rows["alice"]["probability_alive"] is None


def test_acquisition_cost_ltv_cac_and_payback(shop: tuple[Live, Project]) -> None:
    live, project = shop
    cac = get(live, project, months=6)["cac"]

    def name(k: int) -> str:
        return f"{month(k)[0]:04d}-{month(k)[1]:02d}"

    assert [(r["month"], r["channel"], r["new_customers"], r["spend"], r["cac"])
            for r in cac["by_month"]] == [
        (name(0), "facebook", 1, 30.0, 30.0),
        (name(2), "(direct)", 1, 0.0, None), (name(2), "bing", 0, 10.0, None),
        (name(4), "google", 1, 50.0, 50.0),
        (name(5), "facebook", 1, 20.0, 20.0), (name(5), "google", 1, 250.0, 250.0)]
    rows = {r["channel"]: r for r in cac["by_channel"]}
    assert [r["channel"] for r in cac["by_channel"]] == ["google", "facebook", "bing",
                                                         "(direct)"]
    assert (rows["google"]["new_customers"], rows["google"]["spend"],
            rows["google"]["cac"]) == (2, 300.0, 150.0)
    # google's customers (alice, dan) net 100 each in their first month, 125 a head by
    # +1 to +4; at +5 only alice has been seen that long (180): paid back.
    assert rows["google"]["payback_month"] == 5
    # facebook: 25 a head; bob 80 and erin 60 in their first month.
    assert rows["facebook"]["cac"] == 25.0 and rows["facebook"]["payback_month"] == 0
    assert rows["bing"]["cac"] is None and rows["(direct)"]["cac"] is None
    alice = by_user(live, project)["alice"]["predicted_ltv"]
    assert rows["google"]["avg_ltv"] == pytest.approx(alice / 2)
    assert rows["google"]["ltv_cac"] == pytest.approx(alice / 2 / 150)
    assert cac["total"]["new_customers"] == 5 and cac["total"]["spend"] == 360.0
    assert cac["total"]["cac"] == pytest.approx(72.0)


def test_churn_at_the_edge_of_churn_days(shop: tuple[Live, Project]) -> None:
    live, _ = shop
    edge = live.runtime.state.create_project("shop-edge", "EUR")
    t = period_end()
    limit = t - timedelta(days=90)
    assert live.post_events(edge.ingest_key or "", [
        buy(limit, "fay", "F1", 10),  # exactly 90 days before the end: not churned
        buy(limit - timedelta(seconds=1), "gus", "G1", 10),  # a second more: churned
        buy(limit + timedelta(seconds=1), "hal", "H1", 10),  # too young to judge
    ]).status_code == 200
    k = get(live, edge)["kpis"]
    assert (k["churn_eligible"], k["churned"], k["churn_rate"]) == (2, 1, 0.5)


def test_health_weights_setting() -> None:
    assert customers.parse_weights(defaults().customer_health_weights) == {
        "recency": 0.3, "frequency": 0.2, "monetary": 0.2, "satisfaction": 0.2,
        "support": 0.1}
    assert customers.parse_weights("recency=2, support=1")["frequency"] == 0.0
    for bad, message in (("recency=x", "not a number"), ("age=1", "component among"),
                         ("recency=0", "above 0"), ("recency=1,recency=2", "twice"),
                         ("recency=-1", "from 0 to 100")):
        with pytest.raises(ValueError, match=message):
            customers.parse_weights(bad)
    with pytest.raises(Exception, match="CUSTOMER_HEALTH_WEIGHTS"):
        load(environ={"SHOPWATCH_CUSTOMER_HEALTH_WEIGHTS": "age=1"}, env_file=None)
    c = customers.Customer("u", "(direct)", 0, scores={"recency": 5, "frequency": 1,
                                                       "monetary": 3})
    assert customers.health_of(c, customers.parse_weights("recency=1")) == 100.0
    assert customers.health_of(c, customers.parse_weights("recency=1,monetary=1")) == 75.0
    c.contacts = 2
    assert customers.health_of(c, customers.parse_weights("support=1")) == 50.0
    # Satisfaction alone but no answer: nothing to weigh.
    assert customers.health_of(c, customers.parse_weights("satisfaction=1")) == 0.0
    c.satisfaction = 0.4
    assert customers.health_of(c, customers.parse_weights(
        "satisfaction=1,frequency=1")) == 20.0


def test_access_bad_parameters_and_the_page(shop: tuple[Live, Project]) -> None:
    live, project = shop
    assert live.client().get("/api/v1/customers").status_code == 401
    assert live.client(project.ingest_key).get("/api/v1/customers/list").status_code == 403
    client = live.client(project.secret_key)
    for path, params in (("/api/v1/customers/list", {"sort": "age"}),
                         ("/api/v1/customers/list", {"segment": "vip"}),
                         ("/api/v1/customers/list", {"order": "up"}),
                         ("/api/v1/customers", {"months": 0})):
        assert client.get(path, params=params).status_code in (400, 422), (path, params)
    viewer = sign_in(live, VIEWER_EMAIL)
    body = viewer.get("/api/v1/customers", params={"project": project.id}).json()
    assert body["kpis"]["customers_to_date"] == 5  # as of now: 24 hours by default
    page = viewer.get(f"/business/customers?project={project.id}")
    assert page.status_code == 200 and "Not built yet" not in page.text
    assert 'data-api="/api/v1/customers"' in page.text
    assert 'data-panel="customer-list"' in page.text
    # An empty project answers zeros, not errors.
    empty = live.runtime.state.create_project("shop-empty", "EUR")
    nothing = get(live, empty)
    assert nothing["kpis"]["customers_to_date"] == 0 and nothing["segments"][0]["share"] is None
    assert nothing["ltv"]["average_predicted_ltv"] is None


def test_lifetime_value_estimates_are_kept_per_input() -> None:
    """The page's two reads of one book fit the models once; a change in any customer's
    figures is a new input and gets a new estimate."""
    import numpy as np

    from shopwatch.analytics.ltv import CustomerSummary

    def summary(last_frequency: float) -> CustomerSummary:
        frequency = np.array([0.0, 1.0, 2.0, last_frequency])
        return CustomerSummary(user_ids=("a", "b", "c", "d"), frequency=frequency,
                               recency=np.array([0.0, 1.0, 2.0, 2.0]),
                               T=np.array([3.0, 3.0, 3.0, 3.0]),
                               monetary_value=np.array([0.0, 10.0, 20.0, 30.0]),
                               average_value=np.array([5.0, 10.0, 20.0, 30.0]),
                               unit_days=7)

    first = customers._estimate(summary(3.0), 52.0)
    assert customers._estimate(summary(3.0), 52.0) is first
    changed = customers._estimate(summary(4.0), 52.0)
    assert changed is not first
    assert changed.value[3] > first.value[3]
    assert customers._estimate(summary(3.0), 26.0).horizon == 26.0
