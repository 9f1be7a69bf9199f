"""The shopper's address and user agent on server-sent events, end to end.

A shop's backend sends ``ip`` and ``user_agent`` with events such as ``login_failed``;
Shopwatch stores the address's network (``net_prefix``) and a keyed hash of it
(``net_hash``), never the address. Each test posts to a real server on loopback and
reads back through the API or the DuckDB files themselves (see ``conftest.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shopwatch.errors import ConfigError
from shopwatch.privacy import hash_address
from shopwatch.settings import load
from tests.conftest import Live
from tests.mmdb import write_mmdb

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


def send(live: Live, project: Any, *events: dict[str, Any]) -> dict[str, Any]:
    """Post events (ids e0, e1... unless given); the answer's body."""
    batch = [{"id": f"e{i}", **e} for i, e in enumerate(events)]
    response = live.post_events(project.ingest_key, batch)
    assert response.status_code in (200, 400), response.text
    body: dict[str, Any] = response.json()
    return body


def stored(live: Live, project: Any) -> dict[str, dict[str, Any]]:
    """Every stored event of the project, by id."""
    return {e["id"]: e for e in live.read_events(project.secret_key)}


def key_of(live: Live) -> bytes:
    return live.runtime.pipeline.pseudonym_key


# --- prefixes and hashes -------------------------------------------------------------------


def test_ipv4_gives_its_24_and_a_keyed_hash(live: Live, project: Any) -> None:
    body = send(live, project, {"name": "login", "user_id": "c-1", "ip": "203.0.113.9"})
    assert body == {"accepted": 1, "rejected": [], "warnings": []}
    [event] = live.read_events(project.secret_key)
    assert event["net_prefix"] == "203.0.113.0/24"
    assert event["net_hash"] == hash_address("203.0.113.9", key_of(live))
    assert len(event["net_hash"]) == 16 and int(event["net_hash"], 16) >= 0
    assert "ip" not in event
    assert "203.0.113.9" not in str(event)


def test_ipv6_gives_its_48(live: Live, project: Any) -> None:
    send(live, project, {"name": "login", "ip": "2001:db8:1:2:3:4:5:6"},
         {"name": "login", "ip": "2001:DB8:0001:0002:0003:0004:0005:0006"},  # same address
         {"name": "login", "ip": "fe80::1%eth0"})
    events = stored(live, project)
    assert events["e0"]["net_prefix"] == "2001:db8:1::/48"
    assert events["e1"]["net_prefix"] == "2001:db8:1::/48"
    assert events["e0"]["net_hash"] == events["e1"]["net_hash"]
    assert events["e0"]["net_hash"] == hash_address("2001:db8:1:2:3:4:5:6", key_of(live))
    assert events["e2"]["net_prefix"] == "fe80::/48"
    assert events["e2"]["net_hash"] == hash_address("fe80::1", key_of(live))


def test_an_ipv4_mapped_ipv6_address_counts_as_ipv4(live: Live, project: Any) -> None:
    send(live, project, {"name": "login", "ip": "::ffff:198.51.100.23"},
         {"name": "login", "ip": "198.51.100.23"})
    events = stored(live, project)
    assert events["e0"]["net_prefix"] == events["e1"]["net_prefix"] == "198.51.100.0/24"
    assert events["e0"]["net_hash"] == events["e1"]["net_hash"]


def test_one_address_one_hash_and_neighbours_share_only_the_prefix(
        live: Live, project: Any) -> None:
    send(live, project, {"name": "login_failed", "ip": "192.0.2.10"},
         {"name": "login_failed", "ip": "192.0.2.10"},
         {"name": "login_failed", "ip": "192.0.2.11"},
         {"name": "login_failed", "ip": "192.0.3.10"})
    events = stored(live, project)
    hashes = [events[f"e{i}"]["net_hash"] for i in range(4)]
    prefixes = [events[f"e{i}"]["net_prefix"] for i in range(4)]
    assert hashes[0] == hashes[1]
    assert len(set(hashes)) == 3
    assert prefixes == ["192.0.2.0/24", "192.0.2.0/24", "192.0.2.0/24", "192.0.3.0/24"]
    # Another request to another project: the hash is the instance's, not the project's.
    other: Any = live.create_project("shop-b")
    send(live, other, {"name": "login", "ip": "192.0.2.10"})
    [again] = live.read_events(other.secret_key)
    assert again["net_hash"] == hashes[0]


def test_prefix_settings_are_honoured(server: Callable[..., Live]) -> None:
    live = server(network_prefix_v4=16, network_prefix_v6=64)
    project = live.create_project("shop")
    send(live, project, {"name": "login", "ip": "203.0.113.9"},
         {"name": "login", "ip": "2001:db8:1:2:3:4:5:6"},
         {"name": "login", "ip": "::ffff:203.0.113.9"})
    events = stored(live, project)
    assert events["e0"]["net_prefix"] == "203.0.0.0/16"
    assert events["e1"]["net_prefix"] == "2001:db8:1:2::/64"
    assert events["e2"]["net_prefix"] == "203.0.0.0/16"
    # The hash is of the whole address, whatever the prefix.
    assert events["e0"]["net_hash"] == hash_address("203.0.113.9", key_of(live))


@pytest.mark.parametrize(("name", "raw"), [
    ("network_prefix_v4", "33"), ("network_prefix_v4", "7"), ("network_prefix_v4", "x"),
    ("network_prefix_v6", "15"), ("network_prefix_v6", "129")])
def test_prefix_settings_out_of_range_are_refused(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"SHOPWATCH_{name.upper()}"):
        load(environ={f"SHOPWATCH_{name.upper()}": raw}, env_file=None)
    assert load(environ={f"SHOPWATCH_{name.upper()}": "32"}, env_file=None).values[name] == 32


# --- what is refused -------------------------------------------------------------------------


def test_an_invalid_ip_rejects_its_event_only(live: Live, project: Any) -> None:
    body = send(live, project, {"name": "login", "ip": "203.0.113.9"},
                {"name": "login", "ip": "not-an-ip"},
                {"name": "login", "ip": "203.0.113.9:443"},
                {"name": "login", "ip": "203.0.113.9, 10.0.0.1"},
                {"name": "login", "ip": "1" * 65},
                {"name": "purchase", "params": {"value": 5, "currency": "EUR"}})
    assert body["accepted"] == 2
    assert body["rejected"] == [
        {"index": 1, "error": "ip: 'not-an-ip' is not an IPv4 or IPv6 address"},
        {"index": 2, "error": "ip: '203.0.113.9:443' is not an IPv4 or IPv6 address"},
        {"index": 3, "error": "ip: '203.0.113.9, 10.0.0.1' is not an IPv4 or IPv6 address"},
        {"index": 4, "error": "ip: expected str of length <= 64"},
    ]
    assert sorted(stored(live, project)) == ["e0", "e5"]
    text = live.client().get("/metrics").text
    assert 'shopwatch_events_rejected_total{reason="invalid_field"} 4.0' in text


@pytest.mark.parametrize("field", ["net_prefix", "net_hash"])
def test_fields_only_shopwatch_sets_are_refused(live: Live, project: Any, field: str) -> None:
    body = send(live, project, {"name": "login", field: "203.0.113.0/24"},
                {"name": "login", field: "x", "ip": "203.0.113.9"},
                {"name": "login", "ip": "203.0.113.9"})
    assert body["accepted"] == 1
    error = f"{field}: set by Shopwatch from ip; send ip instead"
    assert body["rejected"] == [{"index": 0, "error": error}, {"index": 1, "error": error}]
    # Also when every other field would take the pipeline's fast path.
    body = send(live, project, {"name": "login", "id": "again", field: "y"})
    assert body["rejected"] == [{"index": 0, "error": error}]


# --- the address never reaches the disk ---------------------------------------------------------


def _files(path: Path) -> bytes:
    """The database file and its WAL (when there is one), as bytes."""
    wal = path.with_name(path.name + ".wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_raw_addresses_are_absent_from_the_database_files(live: Live, project: Any) -> None:
    addresses = ["10.0.0.1", "198.51.100.77", "::ffff:192.0.2.201", "2001:db8:abcd:12::7777"]
    canary = "canary-session-5f1e9c0b"  # a stored value: proves the bytes are searchable
    body = send(live, project, *[
        {"name": "login_failed", "session_id": canary, "ip": a, "user_agent": CHROME,
         "user_id": "jane@example.com", "params": {"reason": "wrong_password"}}
        for a in addresses])
    assert body["accepted"] == len(addresses)
    needles = [b"10.0.0.1", b"198.51.100.77", b"192.0.2.201", b"2001:db8:abcd:12:",
               b"abcd:12::7777", b"7777", b"jane"]
    path = live.runtime.events.path
    # Committed (acknowledged), most likely still in the WAL.
    data = _files(path)
    assert canary.encode() in data
    for needle in needles:
        assert needle not in data, needle
    # Folded into the database file: stop the writer (nothing else writes), checkpoint.
    live.runtime.writer.stop()
    live.runtime.events.checkpoint()
    data = path.read_bytes()
    assert canary.encode() in data
    for needle in needles:
        assert needle not in data, needle
    rows = live.runtime.events.query(
        "SELECT net_prefix, net_hash, user_agent FROM events ORDER BY net_prefix")
    assert [r[0] for r in rows] == ["10.0.0.0/24", "192.0.2.0/24", "198.51.100.0/24",
                                    "2001:db8:abcd::/48"]
    assert all(r[2] == CHROME for r in rows)


# --- user agents ---------------------------------------------------------------------------------


def test_user_agent_fills_the_device_when_none_is_given(live: Live, project: Any) -> None:
    send(live, project, {"name": "login", "user_agent": CHROME},
         {"name": "login", "user_agent": IPHONE, "device": {"language": "de-DE"}},
         {"name": "login", "user_agent": IPHONE, "device": {"browser": "Shop App"}},
         {"name": "login", "user_agent": "curl/8.5.0"})
    events = stored(live, project)
    assert events["e0"]["user_agent"] == CHROME
    assert events["e0"]["device"] == {"category": "desktop", "browser": "Chrome",
                                      "browser_version": "120", "os": "Windows",
                                      "os_version": "10"}
    assert events["e1"]["device"] == {"category": "mobile", "browser": "Mobile Safari",
                                      "browser_version": "17", "os": "iOS",
                                      "os_version": "17", "language": "de-DE"}
    assert events["e2"]["device"]["browser"] == "Shop App"  # the client's field is kept
    assert events["e2"]["device"]["os"] == "iOS"
    assert events["e3"]["device"]["category"] == "bot"


def test_user_agent_does_not_override_a_given_device(live: Live, project: Any) -> None:
    device = {"category": "tablet", "browser": "Firefox", "os": "Android", "country": "FR"}
    send(live, project, {"name": "login", "user_agent": CHROME, "device": device},
         {"name": "login", "user_agent": CHROME, "device": {"category": "mobile"}})
    events = stored(live, project)
    assert events["e0"]["device"] == device
    assert events["e0"]["user_agent"] == CHROME
    assert events["e1"]["device"] == {"category": "mobile"}


def test_user_agent_is_stored_cut_to_512_and_refused_over_1024(
        live: Live, project: Any) -> None:
    long = CHROME + " " + "x" * 800
    body = send(live, project, {"name": "login", "user_agent": long},
                {"name": "login", "user_agent": "y" * 1025},
                {"name": "login", "user_agent": "contact bot@example.com card 4111111111111111"})
    assert body["rejected"] == [
        {"index": 1, "error": "user_agent: expected str of length <= 1024"}]
    events = stored(live, project)
    assert events["e0"]["user_agent"] == long[:512]
    assert events["e0"]["device"]["browser"] == "Chrome"
    # The text rules apply: no e-mail address nor card number is stored from it.
    assert events["e2"]["user_agent"] == "contact [email] card [card]"


# --- country -----------------------------------------------------------------------------------


def test_country_from_the_address_with_a_geoip_database(
        server: Callable[..., Live], tmp_path: Path) -> None:
    mmdb = write_mmdb(tmp_path / "country.mmdb", {"81.2.69.0/24": {"country": {"iso_code": "GB"}}})
    live = server(geoip_database=str(mmdb))
    project = live.create_project("shop")
    send(live, project, {"name": "login", "ip": "81.2.69.160"},
         {"name": "login", "ip": "::ffff:81.2.69.160", "device": {"category": "mobile"}},
         {"name": "login", "ip": "81.2.69.160", "device": {"country": "DE"}},
         {"name": "login", "ip": "203.0.113.9"})
    events = stored(live, project)
    assert events["e0"]["device"] == {"country": "GB"}
    assert events["e1"]["device"] == {"category": "mobile", "country": "GB"}
    assert events["e2"]["device"] == {"country": "DE"}  # the client's country is kept
    assert events["e3"]["device"] == {}


def test_no_country_without_a_geoip_database(live: Live, project: Any) -> None:
    send(live, project, {"name": "login", "ip": "81.2.69.160"})
    [event] = live.read_events(project.secret_key)
    assert event["device"] == {}


# --- new params ----------------------------------------------------------------------------------


def test_card_bin_must_be_6_to_8_digits(live: Live, project: Any) -> None:
    body = send(live, project,
                {"name": "payment_declined", "params": {"card_bin": "411111",
                                                        "card_fingerprint": "fp_8a7c2e"}},
                {"name": "payment_declined", "params": {"card_bin": "41111111"}},
                {"name": "payment_declined", "params": {"card_bin": "4111111111111111"}},
                {"name": "payment_declined", "params": {"card_bin": "41111"}},
                {"name": "payment_declined", "params": {"card_bin": "4111-11"}},
                {"name": "payment_declined", "params": {"card_bin": 411111}},
                {"name": "payment_declined", "params": {"card_fingerprint": "f" * 65}})
    assert body["accepted"] == 2
    rejected = {r["index"]: r["error"] for r in body["rejected"]}
    assert set(rejected) == {2, 3, 4, 5, 6}
    for index in (2, 3, 4):
        assert rejected[index].startswith("params.card_bin: ")
        assert rejected[index].endswith(
            "must be the card's first 6-8 digits, never the card number")
    assert "4111111111111111" not in rejected[2]  # a card number is never echoed
    assert rejected[5] == "params.card_bin: expected str | null, got int"
    assert rejected[6].startswith("params.card_fingerprint: ")
    events = stored(live, project)
    assert events["e0"]["params"] == {"card_bin": "411111", "card_fingerprint": "fp_8a7c2e"}
    assert events["e1"]["params"] == {"card_bin": "41111111"}


def test_profile_updated_fields(live: Live, project: Any) -> None:
    body = send(live, project,
                {"name": "profile_updated", "user_id": "c-1", "ip": "203.0.113.9",
                 "params": {"fields": ["email", "password", "address"]}},
                {"name": "profile_updated", "params": {"fields": "email"}},
                {"name": "profile_updated", "params": {"fields": ["x" * 65]}})
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert body["rejected"][0]["error"].startswith("params.fields: expected array")
    [event] = live.read_events(project.secret_key)
    assert event["params"] == {"fields": ["email", "password", "address"]}
    assert event["net_prefix"] == "203.0.113.0/24"


def test_server_events_keep_their_time_and_pseudonyms(live: Live, project: Any) -> None:
    ts = time.time_ns() // 1_000_000 - 60_000
    send(live, project, {"name": "login_failed", "ts": ts, "user_id": "Jane@Example.com",
                         "ip": "203.0.113.9", "user_agent": CHROME,
                         "params": {"reason": "wrong_password", "method": "password"}})
    [event] = live.read_events(project.secret_key)
    assert event["user_id"].startswith("email:")
    assert event["ts"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts / 1000)) + \
        f".{ts % 1000:03d}Z"
    assert event["params"] == {"reason": "wrong_password", "method": "password"}


def test_events_without_ip_have_null_network_fields(live: Live, project: Any) -> None:
    send(live, project, {"name": "page_view", "page": "/"})
    [event] = live.read_events(project.secret_key)
    assert event["net_prefix"] is None and event["net_hash"] is None
    assert event["user_agent"] is None
    csv = live.client(project.secret_key).get("/api/v1/events", params={"format": "csv"})
    assert csv.status_code == 200
    assert "net_prefix,net_hash,user_agent" in csv.text.splitlines()[0]


# --- the store's migration ----------------------------------------------------------------------


def test_an_existing_event_store_gains_the_columns(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from shopwatch.ingest.pipeline import Format, PipelineConfig, process
    from shopwatch.store import duckdb as store_module
    from shopwatch.store.base import EventQuery
    from tests.conftest import open_event_store

    path = tmp_path / "events.duckdb"
    with monkeypatch.context() as patch:  # a store as the previous release left it
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:5])
        old = open_event_store(path)
        assert old.schema_version == 5
        old.query("INSERT INTO events (project_id, id, name, ts, received_at) "
                  "VALUES (1, 'old', 'login', now(), now())")
        old.close()
    store = open_event_store(path)
    try:
        assert store.schema_version == 6
        now_us = time.time_ns() // 1000
        outcome = process(b'[{"id": "new", "name": "login", "ip": "203.0.113.9"}]',
                          Format.JSON, 1, now_us, PipelineConfig(pseudonym_key=b"k" * 32))
        assert store.write([outcome.rows]) == 1
        rows = {r["id"]: r for r in store.query_events(EventQuery(1))}
        assert rows["old"]["net_prefix"] is None and rows["old"]["user_agent"] is None
        assert rows["new"]["net_prefix"] == "203.0.113.0/24"
        assert rows["new"]["net_hash"] == hash_address("203.0.113.9", b"k" * 32)
    finally:
        store.close()


def test_a_card_number_as_fingerprint_is_refused_and_a_digit_rich_token_kept(
        live: Live, project: Any) -> None:
    # A hex token whose digits happen to hold a Luhn-valid run is the shop's identifier:
    # kept as sent, even in a batch scrubbed for an e-mail address.
    token = "a4111111111111111b"
    body = send(live, project,
                {"name": "payment_declined", "user_id": "x@example.com",
                 "params": {"card_fingerprint": token}},
                {"name": "payment_declined", "params": {"card_fingerprint": "4111 1111 1111 1111"}})
    assert body["accepted"] == 1
    (error,) = [r["error"] for r in body["rejected"]]
    assert error.startswith("params.card_fingerprint: this is a card number")
    assert "4111" not in error
    assert stored(live, project)["e0"]["params"] == {"card_fingerprint": token}
