"""``POST /api/v1/events`` and the read API against a real server on loopback.

Each test starts uvicorn in a thread over real DuckDB and SQLite files (see
``conftest.py``) and talks to it with httpx, as a shop's backend would.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shopwatch.store.process import EventStoreProcess
from tests.conftest import Live, second_connection

MiB = 1024 * 1024
URL = "/api/v1/events"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in events]


def post(live: Live, key: str | None, content: bytes, **headers: str) -> httpx.Response:
    hdrs = {"Content-Type": "application/json", **headers}
    return live.client(key).post(URL, content=content, headers=hdrs)


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    message: str = body["error"]["message"]
    return message


def gzip_zeros(n: int) -> bytes:
    """``n`` zero bytes gzip-compressed, built chunk by chunk (never ``n`` bytes in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(MiB)
    parts = [compressor.compress(chunk) for _ in range(n // MiB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def sized_body(size: int) -> bytes:
    """A valid one-event JSON body of exactly ``size`` bytes (padded with whitespace)."""
    body = json.dumps({"events": [{"name": "page_view", "id": "sized"}]}).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def peak_rss_kib() -> int:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match
    return int(match.group(1))


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


# --- body formats --------------------------------------------------------------------------


def test_json_body_is_stored_and_read_back(live: Live, project: Any) -> None:
    ts = now_ms() - 60_000
    event = {
        "id": "evt-1", "name": "purchase", "ts": ts, "session_id": "s1", "anonymous_id": "a1",
        "user_id": "customer-42", "page": "https://shop.example/thanks?utm_source=mail",
        "referrer": "https://shop.example/checkout", "utm_source": "mail", "utm_medium": "email",
        "utm_campaign": "summer", "utm_term": "shoes", "utm_content": "hero",
        "device": {"category": "mobile", "browser": "Firefox", "os": "Android",
                   "country": "DE", "screen_width": 390, "screen_height": 844},
        "params": {"transaction_id": "T-1", "value": 59.9, "currency": "EUR",
                   "items": [{"item_id": "SKU-1", "price": 29.95, "quantity": 2}]},
    }
    response = live.post_events(project.ingest_key, [event])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "rejected": [], "warnings": []}
    [stored] = live.read_events(project.secret_key)
    for key in ("id", "name", "session_id", "anonymous_id", "user_id", "page", "referrer",
                "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"):
        assert stored[key] == event[key], key
    assert stored["device"] == event["device"]
    assert stored["params"] == event["params"]
    assert stored["flags"] == []
    assert stored["ts"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts / 1000)) + \
        f".{ts % 1000:03d}Z"


def test_bare_array_body(live: Live, project: Any) -> None:
    body = json.dumps([{"name": "page_view", "id": "a"}, {"name": "view_item", "id": "b"}])
    response = post(live, project.ingest_key, body.encode())
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2
    assert ids(live.read_events(project.secret_key)) == ["a", "b"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=utf-8",
                                          "application/x-www-form-urlencoded"])
def test_json_sent_with_other_content_types(live: Live, project: Any, content_type: str) -> None:
    body = json.dumps({"events": [{"name": "page_view", "id": "beacon"}]}).encode()
    response = post(live, project.ingest_key, body, **{"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert ids(live.read_events(project.secret_key)) == ["beacon"]


def test_ndjson_with_a_malformed_line(live: Live, project: Any) -> None:
    body = b'{"name": "page_view", "id": "n0"}\n{"name": "view_item", "id": \n' \
           b'{"name": "add_to_cart", "id": "n2"}\n'
    response = post(live, project.ingest_key, body, **{"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 2
    assert [r["index"] for r in result["rejected"]] == [1]
    assert "not valid JSON" in result["rejected"][0]["error"]
    assert ids(live.read_events(project.secret_key)) == ["n0", "n2"]


def test_gzip_body(live: Live, project: Any) -> None:
    events = [{"name": "page_view", "id": f"g{i}", "page": f"/p/{i}"} for i in range(200)]
    body = gzip.compress(json.dumps({"events": events}).encode())
    response = post(live, project.ingest_key, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 200
    assert sorted(ids(live.read_events(project.secret_key))) == sorted(e["id"] for e in events)


def test_gzip_ndjson_body(live: Live, project: Any) -> None:
    body = gzip.compress(b'{"name": "a", "id": "1"}\n{"name": "b", "id": "2"}\n')
    response = post(live, project.ingest_key, body, **{"Content-Type": "application/x-ndjson",
                                                      "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert sorted(ids(live.read_events(project.secret_key))) == ["1", "2"]


# --- size limits ---------------------------------------------------------------------------


def test_gzip_bomb_is_refused_without_inflating_it(live: Live, project: Any) -> None:
    bomb = gzip_zeros(100 * MiB)
    assert len(bomb) < 200_000  # ~100 KB on the wire
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
    except OSError:
        pytest.skip("cannot reset the peak-RSS mark on this kernel")
    before = peak_rss_kib()
    response = post(live, project.ingest_key, bomb, **{"Content-Encoding": "gzip"})
    grown_mib = (peak_rss_kib() - before) / 1024
    assert response.status_code == 413, response.text
    assert "max_body_bytes" in error_of(response)
    # The server runs in this process: inflating the bomb would raise the peak by 100 MiB.
    assert grown_mib < 40, f"peak RSS grew by {grown_mib:.0f} MiB while refusing the bomb"
    assert live.read_events(project.secret_key) == []


def test_compressed_body_inflating_past_the_limit_is_413(live: Live, project: Any) -> None:
    events = [{"name": "page_view", "id": f"e{i}", "page": "/" + "x" * 1500} for i in range(1000)]
    raw = json.dumps({"events": events}).encode()
    assert len(raw) > MiB
    body = gzip.compress(raw)
    assert len(body) < MiB // 10
    response = post(live, project.ingest_key, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert live.read_events(project.secret_key) == []


def test_limits_are_exact(server: Any) -> None:
    live = server(max_body_bytes=4096)
    project = live.create_project()
    at_limit = sized_body(4096)
    assert post(live, project.ingest_key, at_limit).status_code == 200
    assert post(live, project.ingest_key, at_limit + b" ").status_code == 413
    gz = {"Content-Encoding": "gzip"}
    assert post(live, project.ingest_key, gzip.compress(at_limit), **gz).status_code == 200
    over = post(live, project.ingest_key, gzip.compress(at_limit + b" "), **gz)
    assert over.status_code == 413
    assert "4096" in error_of(over)


def test_body_over_the_limit_is_413(server: Any) -> None:
    live = server(max_body_bytes=4096)
    project = live.create_project()
    body = sized_body(10_000)
    response = post(live, project.ingest_key, body)  # with Content-Length
    assert response.status_code == 413
    chunked = live.client(project.ingest_key).post(
        URL, content=iter([body[:5000], body[5000:]]),
        headers={"Content-Type": "application/json"})  # chunked: no Content-Length
    assert chunked.status_code == 413
    assert live.read_events(project.secret_key) == []


def test_declared_content_length_over_the_limit_is_refused_before_the_body(
        live: Live, project: Any) -> None:
    """The server answers 413 from the header alone: it never waits for 100 MB."""
    parts = urlsplit(live.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall((f"POST {URL} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Authorization: Bearer {project.ingest_key}\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: 100000000\r\n\r\n").encode())
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head


def test_too_many_events_is_413(live: Live, project: Any) -> None:
    events = [{"name": "a", "id": str(i)} for i in range(1001)]
    response = live.post_events(project.ingest_key, events)
    assert response.status_code == 413
    assert "max_events_per_request" in error_of(response)
    assert live.read_events(project.secret_key) == []
    assert live.post_events(project.ingest_key, events[:1000]).status_code == 200


# --- undecodable bodies --------------------------------------------------------------------


def test_truncated_gzip_is_400(live: Live, project: Any) -> None:
    body = gzip.compress(json.dumps({"events": [{"name": "a"}] * 50}).encode())
    response = post(live, project.ingest_key, body[: len(body) // 2],
                    **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in error_of(response)


def test_garbage_gzip_is_400(live: Live, project: Any) -> None:
    response = post(live, project.ingest_key, b'{"events": []}', **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in error_of(response)
    trailing = gzip.compress(b'{"events": []}') + b"junk"
    response = post(live, project.ingest_key, trailing, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "trailing" in error_of(response)


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, br"])
def test_unsupported_content_encoding_is_415(live: Live, project: Any, encoding: str) -> None:
    response = post(live, project.ingest_key, b'{"events": []}',
                    **{"Content-Encoding": encoding})
    assert response.status_code == 415
    assert "Content-Encoding" in error_of(response)


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data",
                                          "application/protobuf"])
def test_unsupported_content_type_is_415(live: Live, project: Any, content_type: str) -> None:
    response = post(live, project.ingest_key, b'{"events": []}', **{"Content-Type": content_type})
    assert response.status_code == 415
    assert "Content-Type" in error_of(response)


def test_malformed_json_is_400_naming_the_byte(live: Live, project: Any) -> None:
    body = b'{"events": [{"name": "a", "id": "x"},, {"name": "b"}]}'
    response = post(live, project.ingest_key, body)
    assert response.status_code == 400
    message = error_of(response)
    assert "not valid JSON" in message
    assert f"byte {body.index(b',,') + 1}" in message
    assert live.read_events(project.secret_key) == []


def test_invalid_utf8_is_400(live: Live, project: Any) -> None:
    response = post(live, project.ingest_key, b'{"events": [{"name": "a", "page": "/\xff"}]}')
    assert response.status_code == 400
    assert "UTF-8" in error_of(response)


@pytest.mark.parametrize("body", [b"", b"null", b"42", b'{"evnts": []}', b'{"events": {}}'])
def test_a_body_that_is_not_a_batch_is_400(live: Live, project: Any, body: bytes) -> None:
    response = post(live, project.ingest_key, body)
    assert response.status_code == 400
    assert error_of(response)


# --- keys ----------------------------------------------------------------------------------


def test_missing_key_is_401(live: Live, project: Any) -> None:
    response = post(live, None, b'{"events": [{"name": "a"}]}')
    assert response.status_code == 401
    assert "missing API key" in error_of(response)


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer swpub_not-a-real-key"},
    {"Authorization": "Bearer"},
    {"Authorization": "Token swpub_x"},
    {"X-Shopwatch-Key": "nope"},
])
def test_wrong_key_is_401(live: Live, project: Any, header: dict[str, str]) -> None:
    response = live.client().post(URL, json={"events": [{"name": "a"}]}, headers=header)
    assert response.status_code == 401
    assert live.read_events(project.secret_key) == []


def test_basic_auth_with_the_key_is_not_accepted(live: Live, project: Any) -> None:
    response = live.client().post(URL, json={"events": [{"name": "a"}]},
                                  auth=(project.ingest_key, ""))
    assert response.status_code == 401


def test_key_in_x_shopwatch_key_header(live: Live, project: Any) -> None:
    response = live.client(**{"X-Shopwatch-Key": project.ingest_key}).post(
        URL, json={"events": [{"name": "a", "id": "hdr"}]})
    assert response.status_code == 200, response.text
    assert ids(live.read_events(project.secret_key)) == ["hdr"]


# --- partial batches -----------------------------------------------------------------------


def test_partial_batch_stores_the_valid_events(live: Live, project: Any) -> None:
    events = [
        {"name": "purchase", "id": "ok-0", "params": {"value": 10, "currency": "EUR"}},
        {"name": "purchase", "id": "bad-1", "params": {"value": "abc"}},
        {"name": "page_view", "id": "ok-2"},
        {"name": "page view", "id": "bad-3"},
        {"name": "page_view", "id": "x" * 129},
    ]
    response = live.post_events(project.ingest_key, events)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 2
    assert [r["index"] for r in result["rejected"]] == [1, 3, 4]
    errors = [r["error"] for r in result["rejected"]]
    assert errors[0].startswith("params.value: ")
    assert errors[1].startswith("name: ")
    assert errors[2].startswith("id: ")
    assert sorted(ids(live.read_events(project.secret_key))) == ["ok-0", "ok-2"]


def test_all_rejected_is_400_with_the_reasons(live: Live, project: Any) -> None:
    response = live.post_events(project.ingest_key, [{"name": "a", "ts": "yesterday"},
                                                     {"nom": "a"}])
    assert response.status_code == 400
    result = response.json()
    assert result["accepted"] == 0
    assert [r["index"] for r in result["rejected"]] == [0, 1]
    assert result["rejected"][0]["error"].startswith("ts: ")
    assert live.read_events(project.secret_key) == []


def test_empty_batch_is_200(live: Live, project: Any) -> None:
    response = live.post_events(project.ingest_key, [])
    assert response.status_code == 200
    assert response.json() == {"accepted": 0, "rejected": [], "warnings": []}


def test_clamped_ts_is_flagged_and_warned(live: Live, project: Any) -> None:
    future = now_ms() + 3_600_000
    response = live.post_events(project.ingest_key, [{"name": "a", "id": "f", "ts": future}])
    assert response.status_code == 200
    [warning] = response.json()["warnings"]
    assert warning["index"] == 0 and "future" in warning["warning"]
    [stored] = live.read_events(project.secret_key)
    assert stored["flags"] == ["ts_clamped"]
    assert stored["ts"] == stored["received_at"]


def test_pii_never_reaches_the_store(server: Callable[..., Live]) -> None:
    # In-process store, so the test can read the DuckDB file with a second connection.
    live = server(store_process=False)
    project = live.create_project("shop-a")
    response = live.post_events(project.ingest_key, [{
        "name": "login", "id": "p", "user_id": "jane@example.com",
        "page": "/account?email=jane@example.com&utm_source=mail",
        "params": {"password": "hunter2", "note": "card 4111111111111111"}}])
    assert response.status_code == 200
    [stored] = live.read_events(project.secret_key)
    assert stored["user_id"].startswith("email:")
    assert stored["page"] == "/account?utm_source=mail"
    assert stored["params"] == {"password": "[redacted]", "note": "card [card]"}
    with second_connection(live.runtime.events.path, live.settings) as con:
        dump = json.dumps(con.execute("SELECT * FROM events").fetchall(), default=str)
    assert "jane" not in dump and "hunter2" not in dump and "4111111111111111" not in dump


# --- deduplication and isolation -----------------------------------------------------------


def test_same_id_twice_in_one_request_is_stored_once(live: Live, project: Any) -> None:
    events = [{"name": "purchase", "id": "dup"}, {"name": "refund", "id": "dup"},
              {"name": "page_view", "id": "other"}]
    response = live.post_events(project.ingest_key, events)
    assert response.status_code == 200
    assert response.json()["accepted"] == 3  # all acknowledged ...
    stored = live.read_events(project.secret_key)
    assert sorted(ids(stored)) == ["dup", "other"]  # ... each id stored once


def test_same_id_across_requests_is_stored_once(live: Live, project: Any) -> None:
    for name in ("purchase", "refund", "purchase"):
        response = live.post_events(project.ingest_key, [{"name": name, "id": "retry"}])
        assert response.status_code == 200
        assert response.json()["accepted"] == 1
    stored = live.read_events(project.secret_key)
    assert ids(stored) == ["retry"]
    assert stored[0]["name"] == "purchase"  # a later copy never replaces the stored one


def test_events_without_id_are_never_deduplicated(live: Live, project: Any) -> None:
    for _ in range(2):
        assert live.post_events(project.ingest_key, [{"name": "page_view"}] * 2).status_code \
            == 200
    stored = live.read_events(project.secret_key)
    assert len(stored) == 4
    assert len(set(ids(stored))) == 4  # the server gave each its own id


def test_same_id_in_two_projects_is_stored_in_both(live: Live, project: Any) -> None:
    other = live.create_project("shop-b")
    for key in (project.ingest_key, other.ingest_key):
        assert live.post_events(key, [{"name": "purchase", "id": "shared"}]).status_code == 200
    assert ids(live.read_events(project.secret_key)) == ["shared"]
    assert ids(live.read_events(other.secret_key)) == ["shared"]


def test_projects_are_isolated(live: Live, project: Any) -> None:
    other = live.create_project("shop-b")
    assert live.post_events(project.ingest_key, [{"name": "a", "id": "A1"}]).status_code == 200
    assert live.post_events(other.ingest_key, [{"name": "b", "id": "B1"},
                                               {"name": "b", "id": "B2"}]).status_code == 200
    assert live.post_events(other.secret_key, [{"name": "b", "id": "B3"}]).status_code == 200
    assert ids(live.read_events(project.secret_key)) == ["A1"]
    assert sorted(ids(live.read_events(other.secret_key))) == ["B1", "B2", "B3"]
    assert ids(live.read_events(project.secret_key, name="b")) == []


def test_ingest_key_cannot_read(live: Live, project: Any) -> None:
    live.post_events(project.ingest_key, [{"name": "a"}])
    response = live.client(project.ingest_key).get(URL)
    assert response.status_code == 403
    assert "secret key" in error_of(response)
    assert "events" not in response.json()
    assert live.client().get(URL).status_code == 401
    assert live.client("swsec_unknown").get(URL).status_code == 401


# --- back-pressure and failures ------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_and_stores_nothing(server: Any) -> None:
    live = server(ingest_rate_limit=1)  # one event per second per project
    project = live.create_project()
    first = live.post_events(project.ingest_key, [{"name": "a", "id": f"r{i}"} for i in range(50)])
    assert first.status_code == 200  # a full bucket admits one batch; it leaves ~49 s of debt
    second = live.post_events(project.ingest_key, [{"name": "a", "id": "late-1"},
                                                   {"name": "a", "id": "late-2"}])
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    assert "rate" in error_of(second)
    stored = ids(live.read_events(project.secret_key))
    assert len(stored) == 50 and "late-1" not in stored
    other = live.create_project("another shop")  # buckets are per project
    assert live.post_events(other.ingest_key, [{"name": "a"}]).status_code == 200


def test_overload_answers_503_with_retry_after_and_stores_nothing(server: Any) -> None:
    live = server(writer_queue_events=5, retry_after=7)
    project = live.create_project()
    response = live.post_events(project.ingest_key, [{"name": "a", "id": str(i)}
                                                     for i in range(10)])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert "overloaded" in error_of(response)
    assert live.read_events(project.secret_key) == []
    assert live.post_events(project.ingest_key, [{"name": "a", "id": str(i)}
                                                 for i in range(5)]).status_code == 200
    assert len(live.read_events(project.secret_key)) == 5


def test_store_failure_answers_503_and_nothing_is_acknowledged(
        server: Callable[..., Live]) -> None:
    # A second client of the server's own DuckDB database (same process, so the store
    # runs in-process here): renaming the table makes every write fail, as a broken
    # store would.
    live = server(store_process=False)
    project = live.create_project("shop-a")
    with second_connection(live.runtime.events.path, live.settings) as con:
        con.execute("ALTER TABLE events RENAME TO events_away")
        response = live.post_events(project.ingest_key, [{"name": "a", "id": "during"}])
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "cannot write" in error_of(response)
        con.execute("ALTER TABLE events_away RENAME TO events")
    # The failed commit was rolled back whole: a retry with the same id is stored.
    retry = live.post_events(project.ingest_key, [{"name": "a", "id": "during"}])
    assert retry.status_code == 200
    assert ids(live.read_events(project.secret_key)) == ["during"]
    samples = metric_samples(live.client().get("/metrics").text)
    assert samples[("shopwatch_commit_failures_total", ())] == 1
    assert samples[("shopwatch_ingest_requests_total", (("status", "503"),))] == 1


# --- reading -------------------------------------------------------------------------------


@pytest.fixture
def timeline(live: Live, project: Any) -> int:
    """Four events one second apart, an hour ago; returns the first one's ts (ms)."""
    base = now_ms() - 3_600_000
    events = [{"name": n, "id": f"t{i}", "ts": base + i * 1000}
              for i, n in enumerate(["page_view", "add_to_cart", "purchase", "page_view"])]
    assert live.post_events(project.ingest_key, events).status_code == 200
    return base


def test_read_filters(live: Live, project: Any, timeline: int) -> None:
    read = live.read_events
    key = project.secret_key
    assert ids(read(key)) == ["t0", "t1", "t2", "t3"]
    assert ids(read(key, order="desc")) == ["t3", "t2", "t1", "t0"]
    assert ids(live.client(key).get(URL).json()["events"]) == ["t3", "t2", "t1", "t0"]
    assert ids(read(key, **{"from": timeline + 1000, "to": timeline + 3000})) == ["t1", "t2"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((timeline + 2000) / 1000))
    from_iso = f"{iso}.{(timeline + 2000) % 1000:03d}Z"
    assert ids(read(key, **{"from": from_iso})) == ["t2", "t3"]
    assert ids(read(key, name="page_view")) == ["t0", "t3"]
    assert ids(read(key, name="page_view,purchase")) == ["t0", "t2", "t3"]
    assert ids(read(key, name=["add_to_cart", "purchase"])) == ["t1", "t2"]
    assert ids(read(key, limit=2)) == ["t0", "t1"]
    assert ids(read(key, limit=2, order="desc")) == ["t3", "t2"]
    assert ids(read(key, **{"from": timeline + 10_000})) == []


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "last tuesday"}, "from"),
    ({"to": "2025-13-45"}, "to"),
    ({"limit": 0}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"order": "sideways"}, "order"),
])
def test_bad_read_parameters_are_400_naming_the_field(
        live: Live, project: Any, params: dict[str, Any], field: str) -> None:
    response = live.client(project.secret_key).get(URL, params=params)
    assert response.status_code == 400
    assert error_of(response).startswith(f"{field}: ") or f"{field}:" in error_of(response)


# --- operations ----------------------------------------------------------------------------


def test_healthz(live: Live) -> None:
    response = live.client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["event_store_schema"] >= 1 and body["state_store_schema"] >= 1
    assert body["writer_queue_events"] == 0


def test_metrics(live: Live, project: Any) -> None:
    live.post_events(project.ingest_key, [{"name": "a"}, {"name": "b"}, {"name": "c", "x": 1},
                                          {"name": "d", "ts": "soon"},
                                          {"name": "e", "params": {"value": "abc"}}])
    live.post_events(project.ingest_key, [{"name": "f"}])
    post(live, project.ingest_key, b"{oops")
    response = live.client().get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    assert samples[("shopwatch_events_accepted_total", ())] == 3
    rejected = "shopwatch_events_rejected_total"
    assert samples[(rejected, (("reason", "invalid_field"),))] == 1
    assert samples[(rejected, (("reason", "invalid_ts"),))] == 1
    assert samples[(rejected, (("reason", "invalid_params"),))] == 1
    assert samples[("shopwatch_ingest_requests_total", (("status", "200"),))] == 2
    assert samples[("shopwatch_ingest_requests_total", (("status", "400"),))] == 1
    assert samples[("shopwatch_writer_queue_events", ())] == 0
    assert samples[("shopwatch_store_bytes", ())] > 0
    assert samples[("shopwatch_commit_seconds_count", ())] >= 1
    assert samples[("shopwatch_commit_events_sum", ())] == 3
    assert samples[("shopwatch_ingest_request_seconds_count", ())] >= 2
    assert ("shopwatch_commit_seconds_bucket", (("le", "+Inf"),)) in samples


def test_metrics_token(server: Any) -> None:
    live = server(metrics_token="s3cret-token")
    assert live.client().get("/metrics").status_code == 401
    assert live.client("wrong").get("/metrics").status_code == 401
    response = live.client("s3cret-token").get("/metrics")
    assert response.status_code == 200
    assert "shopwatch_events_accepted_total" in response.text


def test_openapi_documents_ingest(live: Live) -> None:
    project = live.create_project()
    spec = live.client(project.secret_key).get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/events"]["post"]
    assert {"200", "400", "401", "413", "415", "429", "503"} <= set(operation["responses"])


def test_unknown_routes_and_methods_answer_in_the_error_format(live: Live) -> None:
    with httpx.Client(base_url=live.base_url) as client:
        missing = client.get("/api/v1/nothing-here")
        wrong = client.delete("/api/v1/events")
        docs = client.get("/docs")  # FastAPI's CDN-backed page is switched off (offline)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert docs.status_code == 404


def test_a_dead_store_process_answers_503_and_nothing_is_acknowledged(
        live: Live, project: Any) -> None:
    store = live.runtime.events
    assert isinstance(store, EventStoreProcess)
    assert live.post_events(project.ingest_key, [{"name": "a", "id": "before"}]).status_code == 200
    assert store.pid is not None
    os.kill(store.pid, signal.SIGKILL)
    response = live.post_events(project.ingest_key, [{"name": "a", "id": "after"}])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "cannot write" in error_of(response)
    health = httpx.get(live.base_url + "/healthz")
    assert health.status_code == 503 and health.json()["status"] == "event store down"


@pytest.mark.parametrize("api_only", [False, True])
def test_ingest_answers_the_same_through_the_front_door_and_fastapi(
        server: Callable[..., Live], api_only: bool) -> None:
    live = server(api_only=api_only)
    project = live.create_project("shop-a")
    ok = live.post_events(project.ingest_key, [{"name": "a", "id": "1"}, {"name": "b c"}])
    assert ok.status_code == 200
    assert ok.json()["accepted"] == 1 and ok.json()["rejected"][0]["index"] == 1
    refused = live.post_events("swpub_nope", [{"name": "a"}])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    [stored] = live.read_events(project.secret_key)
    assert stored["id"] == "1"
