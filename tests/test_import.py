"""``shopwatch import KIND FILE`` (docs/import.md) on real files and a real data
directory: good rows stored with their own dates, bad rows reported with line, field and
reason, re-imports storing nothing new (even once the dedup index has forgotten the
ids), Parquet, spend, and the clear refusal while a server holds the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from shopwatch import importer
from shopwatch.analytics import service_desk
from shopwatch.analytics.timerange import parse_range
from shopwatch.cli import main
from shopwatch.runtime import EVENTS_FILE, open_state
from shopwatch.settings import Settings, defaults
from shopwatch.spend import spend_between
from tests.conftest import Live, open_event_store

ORDERS = """order_id,customer,ordered_at,value,currency,refunded_value,refunded_at,\
payment_method,channel
A1,c1,2023-05-01T10:00:00Z,50.5,EUR,,,card,Google
A2,c2,2023-05-02 12:00,20,EUR,5,2023-05-03T09:30:00+02:00,paypal,
A3,c3,not-a-date,10,EUR,,,,
A4,c4,2023-05-04,abc,EUR,,,,
A1,c1,2023-05-01T10:00:00Z,50.5,EUR,,,card,google
A5,c5,1683540000000,30,usd,,2023-05-09,,
A6,c6,2023-05-06T10:00:00Z,10,EUR,20,2023-05-07T00:00:00Z,,
A7,c7,2999-01-01T00:00:00Z,10,EUR,,,,
"""


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.fixture
def data(tmp_path: Path) -> Settings:
    """A data directory with one project (EUR, Europe/Berlin)."""
    settings = defaults().replace(data_dir=str(tmp_path / "data"))
    state = open_state(settings)
    state.create_project("shop", "EUR", "Europe/Berlin")
    state.close()
    return settings


def run(settings: Settings, *args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(main, ["import", *args, "--data", settings.data_dir, "--json"])
    report = json.loads(result.output.strip().splitlines()[-1]) if result.output.strip() \
        .startswith("{") else {}
    return result, report


def stored(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    store = open_event_store(settings.data_path / EVENTS_FILE, settings)
    try:
        return store.query(sql)
    finally:
        store.close()


def test_orders_good_rows_stored_with_their_dates_bad_rows_reported(
        data: Settings, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS)
    result, report = run(data, "orders", str(path))
    assert result.exit_code == 3, result.output  # some rows were bad
    assert report["rows"] == 8 and report["bad_rows"] == 5
    assert report["errors"] == [
        {"line": 4, "field": "ordered_at",
         "reason": "'not-a-date' is not a date, an RFC 3339 time nor epoch milliseconds"},
        {"line": 5, "field": "value", "reason": "'abc' is not a number"},
        {"line": 6, "field": "id", "reason": "the same row id as line 2; this row is skipped"},
        {"line": 8, "field": "refunded_value",
         "reason": "20 is more than the order's value 10"},
        {"line": 9, "field": "ordered_at", "reason": "2999-01-01T00:00:00Z is in the future"},
    ]
    # A1, A2 (+ refund), A5 (+ refund): 5 events.
    assert report["stored"] == 5 and report["skipped"] == 0
    rows = stored(data, "SELECT id, name, epoch_ms(ts), user_id, value, currency, "
                        "transaction_id, utm_source, params->>'$.payment_method' "
                        "FROM events ORDER BY ts")
    assert rows == [
        ("import:orders:A1", "purchase", ms("2023-05-01T10:00:00+00:00"), "c1", 50.5, "EUR",
         "A1", "google", "card"),
        # No offset: the project's time zone (Berlin, summer: +02:00).
        ("import:orders:A2", "purchase", ms("2023-05-02T12:00:00+02:00"), "c2", 20.0, "EUR",
         "A2", None, "paypal"),
        ("import:orders:A2:refund", "refund", ms("2023-05-03T09:30:00+02:00"), "c2", 5.0,
         "EUR", "A2", None, None),
        ("import:orders:A5", "purchase", 1683540000000, "c5", 30.0, "USD", "A5", None, None),
        # A refund without a value refunds the whole order (docs/kpis.md); a date alone is
        # midnight in the project's time zone.
        ("import:orders:A5:refund", "refund", ms("2023-05-09T00:00:00+02:00"), "c5", None,
         "USD", "A5", None, None),
    ]
    assert stored(data, "SELECT count(*) FROM events WHERE list_contains(flags, "
                        "'ts_clamped')") == [(0,)]


def test_reimport_stores_nothing_new_even_after_the_dedup_window(
        data: Settings, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS)
    run(data, "orders", str(path))
    _, again = run(data, "orders", str(path))
    assert again["stored"] == 0 and again["skipped"] == 5 and again["events"] == 0
    # Years later the dedup index has been pruned: the events themselves still say
    # which rows were imported.
    store = open_event_store(data.data_path / EVENTS_FILE, data)
    assert store.prune_dedup(2**62) > 0
    store.close()
    _, later = run(data, "orders", str(path))
    assert later["stored"] == 0 and later["skipped"] == 5
    assert stored(data, "SELECT count(*) FROM events") == [(5,)]
    # A new row in the file: only it is stored.
    path.write_text(ORDERS + "A9,c9,2023-06-01T00:00:00Z,12,EUR,,,,\n")
    _, grown = run(data, "orders", str(path))
    assert grown["stored"] == 1 and grown["skipped"] == 5
    assert stored(data, "SELECT count(*) FROM events") == [(6,)]


def test_contacts_from_parquet_feed_the_service_desk(data: Settings, tmp_path: Path) -> None:
    q = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    table = pa.table({
        "contact_id": ["K1", "K2", "K3", "K4", "K5"],
        "customer_id": ["c1", "c2", None, "c4", "c5"],
        "channel": ["phone", "phone", "chat", "email", "fax"],
        "queued_at": [q, q, q, q, q],
        "answered_at": ["2024-03-04T09:00:20Z", None, "2024-03-04T09:00:30Z",
                        "2024-03-04T10:00:00Z", None],
        "abandoned_at": [None, "2024-03-04T09:00:20Z", None, None, None],
        "talk_s": [120.0, None, 60.0, 30.0, None],
        "acw_s": [30.0, None, None, None, None],
        "first_contact_resolved": ["yes", None, "no", "true", None],
        "agent": ["Ana", None, "Ben", "Ana", None],
        "reason": ["billing", None, "delivery", "billing", None],
        "order_id": ["O-1", None, None, None, None],
    })
    path = tmp_path / "contacts.parquet"
    pq.write_table(table, path)
    result, report = run(data, "contacts", str(path))
    assert result.exit_code == 3
    assert report["errors"] == [{"line": 6, "field": "channel",
                                 "reason": "'fax' is not one of chat, email, other, phone"}]
    assert report["stored"] == 4
    rows = stored(data, "SELECT id, epoch_ms(ts), user_id, transaction_id FROM events "
                        "ORDER BY id")
    assert rows[0] == ("import:contacts:K1", int(q.timestamp() * 1000), "c1", "O-1")
    store = open_event_store(data.data_path / EVENTS_FILE, data)
    try:
        rng = parse_range("custom", "2024-03-04T00:00:00Z", "2024-03-05T00:00:00Z", 0)
        desk = service_desk.service_desk(store, 1, rng, timezone="Europe/Berlin",
                                         now_us=0)
    finally:
        store.close()
    t = desk["totals"]
    # K1 answered at exactly 20 s (in time), K2 abandoned at exactly 20 s (short: out),
    # K3 answered after 30 s: 1 / 2.
    assert (t["contacts"], t["service_level"], t["short_abandons"]) == (4, 0.5, 1)
    assert t["aht_s"] == pytest.approx((150 + 60 + 30) / 3) and t["fcr_rate"] == pytest.approx(
        2 / 3)
    assert desk["days"][0]["day"] == "2024-03-04" and desk["days"][0]["contacts"] == 4


def test_customers_and_spend(data: Settings, tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("User_ID,created_at,Channel\nu1,2022-01-15,Newsletter\n"
                         "u2,2022-02-01T08:00:00Z,\n,2022-03-01,\n")
    result, report = run(data, "customers", str(customers))
    assert report["stored"] == 2 and report["errors"] == [
        {"line": 4, "field": "user_id", "reason": "missing"}]
    assert stored(data, "SELECT id, name, epoch_ms(ts), user_id, utm_source FROM events "
                        "ORDER BY ts") == [
        ("import:customers:u1", "sign_up", ms("2022-01-15T00:00:00+01:00"), "u1",
         "newsletter"),
        ("import:customers:u2", "sign_up", ms("2022-02-01T08:00:00+00:00"), "u2", None)]
    spend = tmp_path / "spend.csv"
    spend.write_text("date,channel,campaign,cost\n2024-01-01,google,brand,10\n"
                     "2024-01-02,google,brand,-1\n")
    for _ in range(2):  # a row replaces its (date, channel, campaign): no duplicates
        result, report = run(data, "spend", str(spend))
        assert result.exit_code == 3 and report["stored"] == 1
        assert report["errors"][0]["line"] == 3 and report["errors"][0]["field"] == "cost"
    state = open_state(data)
    from datetime import date
    assert len(spend_between(state, 1, date(2024, 1, 1), date(2024, 1, 31))) == 1
    state.close()


def test_a_file_that_cannot_be_imported_says_why(data: Settings, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("id,when\n1,2\n")
    result = CliRunner().invoke(main, ["import", "orders", str(path), "--data", data.data_dir])
    assert result.exit_code == 1
    assert "header: missing column order_id" in result.output
    ok = tmp_path / "ok.csv"
    ok.write_text("order_id,ordered_at,value\nB1,2023-01-01T00:00:00Z,5\n")
    result = CliRunner().invoke(main, ["import", "orders", str(ok), "--data", data.data_dir,
                                       "--project", "nope"])
    assert result.exit_code == 2 and "no project 'nope'" in result.output
    # The plain report, and every bad row to a CSV.
    errors = tmp_path / "errors.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,ordered_at,value\nB2,2023-01-01T00:00:00Z,x\n")
    result = CliRunner().invoke(main, ["import", "orders", str(bad), "--data", data.data_dir,
                                       "--errors", str(errors)])
    assert result.exit_code == 3 and "0 events stored" in " ".join(result.output.split())
    assert errors.read_text().splitlines() == ["line,field,reason",
                                               "2,value,'x' is not a number"]


def test_importing_while_the_server_holds_the_store_fails_clearly(live: Live,
                                                                   tmp_path: Path) -> None:
    live.create_project("shop")
    path = tmp_path / "orders.csv"
    path.write_text("order_id,ordered_at,value\nB1,2023-01-01T00:00:00Z,5\n")
    result = CliRunner().invoke(main, ["import", "orders", str(path), "--data",
                                       live.settings.data_dir])
    assert result.exit_code == 1
    assert "Stop `shopwatch serve`" in " ".join(result.output.split())


def test_row_to_event_core() -> None:
    events = importer.to_events("contacts", {
        "contact_id": "Z" * 120, "queued_at": "2024-01-01T00:00:00Z",
        "answered_at": "2024-01-01T00:00:05Z", "first_contact_resolved": "1"}, now_ms=2e12)
    assert events[0]["id"].startswith("import:contacts:sha256:")
    assert len(events[0]["id"]) <= 128 and events[0]["params"]["first_contact_resolved"]
    with pytest.raises(importer.RowError, match="answered_at: precedes queued_at"):
        importer.to_events("contacts", {"contact_id": "1", "queued_at": "2024-01-01T00:01:00Z",
                                        "answered_at": "2024-01-01T00:00:00Z"}, now_ms=2e12)
    with pytest.raises(importer.RowError, match="abandoned_at: a contact is either"):
        importer.to_events("contacts", {"contact_id": "1", "queued_at": "2024-01-01T00:00:00Z",
                                        "answered_at": "2024-01-01T00:00:01Z",
                                        "abandoned_at": "2024-01-01T00:00:02Z"}, now_ms=2e12)
