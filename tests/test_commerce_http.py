"""The commerce API over HTTP: the contract keys, periods, errors naming the parameter."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import VIEWER_EMAIL, Live, sign_in

EVENTS: list[dict[str, Any]] = [
    {"name": "view_item", "session_id": "a"}, {"name": "add_to_cart", "session_id": "a"},
    {"name": "begin_checkout", "session_id": "a"},
    {"name": "purchase", "session_id": "a",
     "params": {"transaction_id": "T1", "value": 30, "currency": "USD"}},
    {"name": "view_item", "session_id": "b"}, {"name": "add_to_cart", "session_id": "b"},
]


def test_kpis_and_funnel_contracts(dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    now_ms = int(time.time() * 1000)
    # A second apart, oldest first: events stamped alike have no order among themselves.
    stamped = [{**e, "ts": now_ms - (len(EVENTS) - i) * 1000} for i, e in enumerate(EVENTS)]
    assert dashboard.post_events(project.ingest_key or "", stamped).status_code == 200
    client = dashboard.client(project.secret_key)
    body = client.get("/api/v1/kpis", params={"range": "1h"}).json()
    assert {"sessions", "orders", "revenue", "aov", "conversion_rate", "carts",
            "cart_abandonment_rate", "checkout_abandonment_rate"} <= set(body)
    assert (body["sessions"], body["orders"], body["revenue"], body["carts"]) == (2, 1, 30, 2)
    assert body["cart_abandonment_rate"] == 0.5 and body["conversion_rate"] == 0.5
    funnel = client.get("/api/v1/funnel", params={
        "steps": "view_item,add_to_cart,purchase", "range": "1h"}).json()
    assert [(s["name"], s["count"], s["conversion"], s["drop_off"]) for s in funnel["steps"]] == [
        ("view_item", 2, 1.0, 0.0), ("add_to_cart", 2, 1.0, 0.0), ("purchase", 1, 0.5, 0.5)]
    assert funnel["previous"][0]["count"] == 0 and "previous_range" in funnel
    alone = client.get("/api/v1/funnel", params={
        "steps": "view_item,add_to_cart,purchase", "range": "1h", "compare": "false"}).json()
    assert alone["steps"] == funnel["steps"] and "previous" not in alone
    dropped = client.get("/api/v1/funnel/dropped", params={
        "steps": "view_item,add_to_cart,purchase", "step": 2, "range": "1h"}).json()
    assert [d["session"] for d in dropped["sessions"]] == ["s:b"]
    events = client.get("/api/v1/session-events", params={"session": "s:a", "range": "1h"})
    assert [e["name"] for e in events.json()["events"]][-1] == "purchase"
    # A session reads the same figures.
    viewer = sign_in(dashboard, VIEWER_EMAIL)
    assert viewer.get("/api/v1/kpis?range=1h").json()["orders"] == 1


def test_from_and_to_alone_make_a_custom_period(dashboard: Live) -> None:
    client = sign_in(dashboard)
    body = client.get("/api/v1/kpis", params={"from": "2026-01-01T00:00:00Z",
                                              "to": "2026-01-02T00:00:00Z"}).json()
    assert body["range"]["label"] == "custom" and body["sessions"] == 0


def test_bad_parameters_are_named(dashboard: Live) -> None:
    client = sign_in(dashboard)
    for path, message in [
        ("/api/v1/funnel?steps=only_one", "steps:"),
        ("/api/v1/funnel?within=soon", "within:"),
        ("/api/v1/funnel?by=planet", "by:"),
        ("/api/v1/funnel/dropped", "step:"),
        ("/api/v1/funnel/dropped?step=5", "step:"),
        ("/api/v1/session-events", "session:"),
    ]:
        response = client.get(path)
        assert response.status_code == 400, path
        assert response.json()["error"]["message"].startswith(message), (path, response.text)


def test_tables_export_as_csv_and_parquet(dashboard: Live) -> None:
    import csv
    import io

    import pyarrow.parquet as pq

    project = dashboard.runtime.state.get_project("shop-a")
    events = [{"name": "page_view", "session_id": "x", "utm_source": "google",
               "utm_medium": "cpc", "utm_campaign": "spring"},
              {"name": "purchase", "session_id": "x",
               "params": {"transaction_id": "T9", "value": 12.5, "currency": "USD"}}]
    assert dashboard.post_events(project.ingest_key or "", events).status_code == 200
    client = dashboard.client(project.secret_key)
    as_csv = client.get("/api/v1/acquisition", params={"by": "campaign", "range": "1h",
                                                       "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="acquisition-by-campaign.csv"' in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows == [{"campaign": "spring", "sessions": "1", "converted_sessions": "1",
                     "conversion_rate": "1.0", "orders": "1", "revenue": "12.5"}]
    as_parquet = client.get("/api/v1/events", params={"format": "parquet"})
    table = pq.read_table(io.BytesIO(as_parquet.content))
    assert table.num_rows == 2 and "params" in table.column_names
    assert sorted(table.column("name").to_pylist()) == ["page_view", "purchase"]
    kpis_csv = client.get("/api/v1/kpis", params={"range": "1h", "format": "csv"}).text
    assert kpis_csv.splitlines()[0].startswith("from,to,currency,events,sessions")
    bad = client.get("/api/v1/kpis", params={"format": "xlsx"})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("format:")
    by_channel = client.get("/api/v1/acquisition", params={"range": "1h"}).json()
    assert [(r["channel"], r["orders"]) for r in by_channel["rows"]] == [("paid", 1)]


def test_products_route(dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    item = {"item_id": "tea", "item_name": "Tea", "item_category": "tea", "price": 4}
    events = [{"name": "view_item", "session_id": "p", "params": {"items": [item]}}]
    assert dashboard.post_events(project.ingest_key or "", events).status_code == 200
    client = dashboard.client(project.secret_key)
    rows = client.get("/api/v1/products", params={"range": "1h"}).json()["rows"]
    assert [(r["product"], r["views"], r["units"]) for r in rows] == [("tea", 1, 0)]
    assert client.get("/api/v1/products?by=colour").status_code == 400


def test_carts_route(dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    item = {"item_id": "mug", "item_name": "Mug", "price": 10}
    events = [{"name": "add_to_cart", "session_id": "c", "page": "/p/mug",
               "params": {"items": [item]}}]
    assert dashboard.post_events(project.ingest_key or "", events).status_code == 200
    client = dashboard.client(project.secret_key)
    body = client.get("/api/v1/carts", params={"range": "1h"}).json()
    assert (body["carts"], body["abandoned_carts"], body["abandoned_cart_value"]) == (1, 1, 10)
    assert body["last_pages"] == [{"page": "/p/mug", "carts": 1}]
    as_csv = client.get("/api/v1/carts", params={"range": "1h", "format": "csv"}).text
    assert as_csv.splitlines()[0] == "item_id,item_name,category,carts,units,value"


def test_timeseries_route(dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    assert dashboard.post_events(project.ingest_key or "", [
        {"name": "purchase", "session_id": "t",
         "params": {"transaction_id": "TS1", "value": 8, "currency": "USD"}}]).status_code == 200
    client = dashboard.client(project.secret_key)
    body = client.get("/api/v1/timeseries", params={"range": "1h", "interval": "minute"}).json()
    assert len(body["buckets"]) in (60, 61)
    assert sum(r["orders"] for r in body["current"]) == 1
    assert sum(r["revenue"] for r in body["current"]) == 8
    bad = client.get("/api/v1/timeseries", params={"range": "30d", "interval": "minute"})
    assert bad.status_code == 400 and "interval:" in bad.text


def test_marketing_spend_gives_cost_per_order_roas_and_wasted_spend(dashboard: Live) -> None:
    import datetime as dt

    project = dashboard.runtime.state.get_project("shop-a")  # currency USD
    today = dt.datetime.now(dt.UTC).date().isoformat()
    events = [
        {"name": "page_view", "session_id": "m1", "utm_source": "google", "utm_medium": "cpc",
         "utm_campaign": "spring"},
        {"name": "purchase", "session_id": "m1",
         "params": {"transaction_id": "M1", "value": 100, "currency": "USD"}},
        {"name": "page_view", "session_id": "m2", "utm_source": "facebook",
         "utm_medium": "paid_social", "utm_campaign": "reels"},
    ]
    assert dashboard.post_events(project.ingest_key or "", events).status_code == 200
    client = dashboard.client(project.secret_key)
    csv_body = (f"date,channel,campaign,cost,currency\n{today},google,spring,25,USD\n"
                f"{today},facebook,reels,40,USD\n{today},tiktok,dance,10,USD\n"
                f"yesterday,google,spring,5,USD\n{today},google,spring,-3,USD\n")
    uploaded = client.post("/api/v1/spend", content=csv_body,
                           headers={"Content-Type": "text/csv"})
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert body["accepted"] == 3
    assert body["rejected"] == [
        {"line": 5, "error": "date: 'yesterday' is not YYYY-MM-DD"},
        {"line": 6, "error": "cost: '-3' must be a number from 0 to 10^12"}]
    by_campaign = client.get("/api/v1/acquisition", params={"by": "campaign",
                                                            "range": "24h"}).json()
    rows = {r["campaign"]: r for r in by_campaign["rows"]}
    assert (rows["spring"]["cost"], rows["spring"]["cost_per_order"],
            rows["spring"]["roas"]) == (25, 25, 4)
    assert rows["reels"]["cost"] == 40 and rows["reels"]["roas"] == 0
    assert rows["dance"]["sessions"] == 0 and rows["dance"]["cost"] == 10  # spend, no visit
    total = by_campaign["total"]
    assert (total["cost"], total["wasted_spend"]) == (75, 50)  # reels and dance sold nothing
    assert total["roas"] == pytest.approx(100 / 75)
    # by channel: the same totals.
    by_channel = client.get("/api/v1/acquisition", params={"range": "24h"}).json()
    assert by_channel["total"]["wasted_spend"] == 50
    # A corrected upload replaces the day's row.
    client.post("/api/v1/spend", json={"rows": [{"date": today, "channel": "google",
                                                 "campaign": "spring", "cost": 30}]})
    listed = client.get("/api/v1/spend", params={"range": "24h"}).json()["rows"]
    assert {(r["campaign"], r["cost"]) for r in listed} == {("spring", 30), ("reels", 40),
                                                            ("dance", 10)}


def test_spend_upload_needs_an_admin_and_csrf(dashboard: Live) -> None:
    viewer = sign_in(dashboard, VIEWER_EMAIL)
    refused = viewer.post("/api/v1/spend", content="date,channel,campaign,cost\n",
                          headers={"Content-Type": "text/csv"})
    assert refused.status_code == 403
    admin = sign_in(dashboard)
    no_token = admin.post("/api/v1/spend", content="date,channel,campaign,cost\n",
                          headers={"Content-Type": "text/csv"})
    assert no_token.status_code == 403 and "csrf" in no_token.text
    bad_header = dashboard.client(dashboard.runtime.state.get_project("shop-a").secret_key).post(
        "/api/v1/spend", content="day,cost\n", headers={"Content-Type": "text/csv"})
    assert bad_header.status_code == 400 and "header: missing column" in bad_header.text
