"""``shopwatch.client.ShopwatchClient`` against real servers on loopback.

Every test talks to a real Shopwatch server (``server`` fixture in conftest.py), to a
small real ASGI proxy in front of one, or to a real socket that misbehaves: a port with
nothing listening, or a listener that never answers. The only test double is
:class:`Recorder`, a real ``httpx.HTTPTransport`` that notes what went over the wire.
No test asserts on timing; "send does not block" is shown by counters read while the
server has not answered.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import uvicorn

from shopwatch.client import ShopwatchClient
from shopwatch.settings import defaults
from tests.conftest import Live, _start, free_port

FAST: dict[str, Any] = {"backoff": 0.01, "max_backoff": 0.05}  # quick retries


class Recorder(httpx.HTTPTransport):
    """A real HTTP transport that records ``(events in the request, status)`` per request
    (status ``None`` when the request failed at the network level)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["events"])
        try:
            response = super().handle_request(request)
        except httpx.TransportError:
            self.calls.append((n, None))
            raise
        self.calls.append((n, response.status_code))
        return response


def new_project(live: Live) -> tuple[str, str]:
    """A fresh project on ``live``: its ``(ingest_key, secret_key)``."""
    project = live.create_project(f"shop-{uuid.uuid4().hex[:8]}")
    assert project.ingest_key and project.secret_key
    return project.ingest_key, project.secret_key


def stored_ids(live: Live, secret_key: str, *names: str) -> Counter[str]:
    """How often each id is stored, over the given event names (one read per name)."""
    ids: Counter[str] = Counter()
    for name in names or ("page_view",):
        events = live.read_events(secret_key, name=name)
        assert len(events) < 1000, "read limit reached: the count would be incomplete"
        ids.update(e["id"] for e in events)
    return ids


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- real servers in front of, or instead of, Shopwatch -------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[MutableMapping[str, Any]], Any]


class FlakyProxy:
    """An ASGI app forwarding to ``upstream``, except that it answers ``503`` with
    ``Retry-After: 0`` to its first ``refuse`` requests without forwarding them, and to the
    ``lose`` requests after those *after* forwarding them: the server stored the events
    but the answer was lost, as when a commit outlasts ``commit_timeout``."""

    def __init__(self, upstream: str, refuse: int, lose: int = 0) -> None:
        self.upstream = upstream
        self.refuse = refuse
        self.lose = lose
        self.requests = 0
        self.forwarded = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.requests += 1
        n = self.requests
        if n > self.refuse:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]
                       if k.lower() in (b"authorization", b"content-type")}
            async with httpx.AsyncClient() as client:
                upstream = await client.request(scope["method"], self.upstream + scope["path"],
                                                content=body, headers=headers)
            self.forwarded += 1
            if n > self.refuse + self.lose:
                await send({"type": "http.response.start", "status": upstream.status_code,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": upstream.content})
                return
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"),
                                (b"retry-after", b"0")]})
        await send({"type": "http.response.body",
                    "body": b'{"error":{"code":"unavailable","message":"proxy says no"}}'})


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Overrides conftest's per-test ``live``: one default server for the whole module.

    Each test creates its own project, so no test sees another's events; starting a
    server per test would cost more than most of these tests take. Tests that need
    other settings start their own with ``server(...)``.
    """
    data_dir = tmp_path_factory.mktemp("client") / "data"
    live, srv, thread = _start(defaults().replace(data_dir=str(data_dir)))
    yield live
    for client in live._clients:
        client.close()
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def asgi_server() -> Iterator[Callable[..., str]]:
    """Factory: ``asgi_server(app, port=0)`` serves ``app`` with uvicorn on 127.0.0.1 in
    a thread (as conftest starts Shopwatch) and returns its base URL."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any, port: int = 0) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn-proxy", daemon=True)
        thread.start()
        running.append((server, thread))
        wait_for(lambda: server.started, "the proxy to start")
        return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)


# --- delivery -------------------------------------------------------------------------------


def test_delivers_every_event_in_batches_with_the_ids_it_returned(live: Live) -> None:
    ingest, secret = new_project(live)
    recorder = Recorder()
    with ShopwatchClient(live.base_url, ingest, batch_size=100, transport=recorder) as client:
        ids = [client.send({"name": "page_view" if i % 2 else "view_item", "page": f"/p/{i}"})
               for i in range(1050)]
        ids.append(client.send({"id": "mine-1", "name": "page_view"}))
        assert client.flush(timeout=30) is True
        stats = client.stats

    assert ids[-1] == "mine-1"
    assert len(set(ids)) == 1051
    assert stored_ids(live, secret, "page_view", "view_item") == Counter(ids)
    assert (stats.sent, stats.rejected, stats.dropped, stats.queued) == (1051, 0, 0, 0)
    assert stats.retries == 0 and stats.last_error is None
    assert all(status == 200 and n <= 100 for n, status in recorder.calls)
    assert len(recorder.calls) == 11  # full batches, not one request per event


def test_track_builds_the_event_the_api_expects(live: Live) -> None:
    ingest, secret = new_project(live)
    # An hour ago, in UTC+2, with milliseconds: recent enough not to be clamped.
    when = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=250_000).astimezone(
        timezone(timedelta(hours=2)))
    with ShopwatchClient(live.base_url, ingest) as client:
        event_id = client.track(
            "view_item", ts=datetime.now(timezone(timedelta(hours=2))), session_id="s-1",
            anonymous_id="a-1", user_id="cust-1", page="/p/shoe?utm_campaign=from-page",
            referrer="https://www.example.org/", utm={"source": "newsletter",
                                                     "utm_medium": "email"},
            device={"category": "mobile", "country": "DE"},
            params={"currency": "EUR", "value": 89.9, "items": [{"item_id": "SKU-1"}]})
        late = client.track("page_view", ts=when, id="evt-late")
        # A naive datetime is local time (as datetime.astimezone reads it).
        client.track("login", ts=when.astimezone().replace(tzinfo=None), id="evt-naive",
                     ip="203.0.113.40", user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:132.0) "
                     "Gecko/20100101 Firefox/132.0")
        assert client.flush(timeout=10) is True

    (event,) = live.read_events(secret, name="view_item")
    assert event["id"] == event_id
    assert (event["session_id"], event["anonymous_id"], event["user_id"]) == (
        "s-1", "a-1", "cust-1")
    assert event["referrer"] == "https://www.example.org/"
    assert (event["utm_source"], event["utm_medium"], event["utm_campaign"]) == (
        "newsletter", "email", "from-page")
    assert event["device"] == {"category": "mobile", "country": "DE"}
    assert event["params"]["items"] == [{"item_id": "SKU-1"}]
    assert event["flags"] == []  # the datetime arrived with its offset, not clamped
    assert late == "evt-late"
    (page_view,) = live.read_events(secret, name="page_view")
    assert page_view["id"] == "evt-late" and page_view["flags"] == []
    assert page_view["ts"] == when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.250Z")
    (login,) = live.read_events(secret, name="login")
    assert login["id"] == "evt-naive" and login["ts"] == page_view["ts"]
    assert login["net_prefix"] == "203.0.113.0/24" and "ip" not in login
    assert login["user_agent"].endswith("Firefox/132.0")


def test_a_partial_batch_goes_out_after_flush_interval_and_a_full_one_at_once(
        live: Live) -> None:
    ingest, secret = new_project(live)
    with ShopwatchClient(live.base_url, ingest, batch_size=100, flush_interval=0.05) as lone:
        lone.send({"name": "page_view"})
        wait_for(lambda: lone.stats.sent == 1, "the interval to send a lone event")
    with ShopwatchClient(live.base_url, ingest, batch_size=10, flush_interval=3600) as full:
        for _ in range(10):
            full.send({"name": "page_view"})
        wait_for(lambda: full.stats.sent == 10, "a full batch to go out without flush()")
    assert sum(stored_ids(live, secret).values()) == 11


def test_send_is_thread_safe(live: Live) -> None:
    ingest, secret = new_project(live)
    ids: list[str] = []
    with ShopwatchClient(live.base_url, ingest, batch_size=50, flush_interval=0.01) as client:
        def shop_worker() -> None:
            ids.extend([client.send({"name": "page_view"}) for _ in range(100)])

        threads = [threading.Thread(target=shop_worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(timeout=30) is True
    assert stored_ids(live, secret) == Counter(ids)
    assert len(ids) == 800


# --- overload: retried, same ids, stored once ------------------------------------------------


def test_429_is_retried_after_retry_after_and_every_event_arrives_once(
        server: Callable[..., Live]) -> None:
    live = server(ingest_rate_limit=200, retry_after=1)
    ingest, secret = new_project(live)
    recorder = Recorder()
    with ShopwatchClient(live.base_url, ingest, batch_size=100, transport=recorder,
                         **FAST) as client:
        ids = [client.send({"name": "page_view"}) for _ in range(600)]
        assert client.flush(timeout=60) is True
        stats = client.stats

    assert stored_ids(live, secret) == Counter(ids)
    assert stats.retries > 0 and stats.dropped == 0 and stats.sent == 600
    assert stats.last_error is not None and stats.last_error.startswith("HTTP 429")
    assert 429 in {status for _, status in recorder.calls}


def test_503_is_retried_and_a_lost_answer_does_not_store_twice(
        live: Live, asgi_server: Callable[..., str]) -> None:
    ingest, secret = new_project(live)
    proxy = FlakyProxy(live.base_url, refuse=2, lose=2)
    with ShopwatchClient(asgi_server(proxy), ingest, batch_size=50, **FAST) as client:
        ids = [client.send({"name": "page_view"}) for _ in range(200)]
        assert client.flush(timeout=30) is True
        stats = client.stats

    # Two batches reached the server but their answers were lost: the retries resent the
    # same ids, and the server kept one copy of each.
    assert proxy.forwarded == 6
    assert stored_ids(live, secret) == Counter(ids)
    assert (stats.retries, stats.sent, stats.dropped) == (4, 200, 0)


# --- network failures ------------------------------------------------------------------------


def test_send_returns_while_the_server_has_not_answered() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    listener.settimeout(10)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    client = ShopwatchClient(url, "swpub_x", batch_size=1, max_retries=0, timeout=30)
    try:
        client.send({"name": "page_view"})
        conn, _ = listener.accept()  # the first request is on the wire, unanswered
        with conn:
            ids = [client.send({"name": "page_view"}) for _ in range(50)]
            stats = client.stats
            assert (stats.sent, stats.dropped, stats.queued) == (0, 0, 51)
            assert len(set(ids)) == 50
    finally:
        listener.close()
        client.close(timeout=10)
    assert client.stats.dropped == 51 and client.stats.queued == 0


def test_unreachable_server_is_retried_then_the_batch_is_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    client = ShopwatchClient(f"http://127.0.0.1:{free_port()}", "swpub_x", batch_size=10,
                             max_retries=3, transport=recorder, **FAST)
    for _ in range(25):
        client.send({"name": "page_view"})
    assert client.stats.queued == 25  # queued, not sent or given up inside send()
    with caplog.at_level(logging.WARNING, logger="shopwatch.client"):
        assert client.flush(timeout=30) is False
    stats = client.stats
    client.close()

    assert (stats.sent, stats.dropped, stats.queued) == (0, 25, 0)
    assert stats.retries == 3 * 3  # three batches, three retries each
    assert len(recorder.calls) == 3 * 4 and {s for _, s in recorder.calls} == {None}
    assert stats.last_error is not None and "ConnectError" in stats.last_error
    assert "giving up 10 events after 3 retries" in caplog.text


def test_a_server_that_comes_up_later_gets_everything(
        live: Live, asgi_server: Callable[..., str]) -> None:
    ingest, secret = new_project(live)
    port = free_port()
    with ShopwatchClient(f"http://127.0.0.1:{port}", ingest, batch_size=20, max_retries=100,
                         **FAST) as client:
        ids = [client.send({"name": "page_view"}) for _ in range(30)]
        client.flush(timeout=0)  # post now rather than after flush_interval
        wait_for(lambda: client.stats.retries >= 2, "connection errors to be retried")
        asgi_server(FlakyProxy(live.base_url, refuse=0), port=port)
        assert client.flush(timeout=30) is True
        assert client.stats.dropped == 0
    assert stored_ids(live, secret) == Counter(ids)


# --- requests the server refuses -------------------------------------------------------------


def test_invalid_events_are_counted_as_rejected_and_the_valid_ones_stored(
        live: Live, caplog: pytest.LogCaptureFixture) -> None:
    ingest, secret = new_project(live)
    with caplog.at_level(logging.WARNING, logger="shopwatch.client"), \
            ShopwatchClient(live.base_url, ingest) as client:
        good = [client.send({"name": "page_view"}), client.track("page_view", page="/b")]
        client.track("add to cart")
        client.send({"name": "page_view", "colour": "red"})
        assert client.flush(timeout=10) is False
        assert (client.stats.sent, client.stats.rejected) == (2, 2)
        # A batch of invalid events only is answered 400 with the same per-event errors.
        client.track("bad name")
        assert client.flush(timeout=10) is False
        stats = client.stats

    assert stored_ids(live, secret) == Counter(good)
    assert (stats.sent, stats.rejected, stats.dropped, stats.retries) == (2, 3, 0, 0)
    assert "rejected event 2" in caplog.text and "must start with a letter" in caplog.text
    assert "rejected event 3" in caplog.text and "colour: unknown field" in caplog.text


def test_a_wrong_key_is_not_retried(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="shopwatch.client"), \
            ShopwatchClient(live.base_url, "swpub_wrong", transport=recorder, **FAST) as client:
        for _ in range(5):
            client.send({"name": "page_view"})
        assert client.flush(timeout=10) is False
        stats = client.stats

    assert recorder.calls == [(5, 401)]
    assert (stats.sent, stats.dropped, stats.retries) == (0, 5, 0)
    assert stats.last_error is not None and stats.last_error.startswith("HTTP 401")
    assert "unknown or revoked API key" in caplog.text


def test_413_splits_the_batch_in_half_once(server: Callable[..., Live]) -> None:
    live = server(max_events_per_request=40)
    ingest, secret = new_project(live)
    fits = Recorder()
    with ShopwatchClient(live.base_url, ingest, batch_size=70, transport=fits) as client:
        ids = [client.send({"name": "page_view"}) for _ in range(70)]
        assert client.flush(timeout=10) is True
    assert fits.calls == [(70, 413), (35, 200), (35, 200)]
    assert stored_ids(live, secret) == Counter(ids)

    too_big = Recorder()
    with ShopwatchClient(live.base_url, ingest, batch_size=100, transport=too_big) as client:
        for _ in range(100):
            client.send({"name": "view_item"})
        assert client.flush(timeout=10) is False
        stats = client.stats
    assert too_big.calls == [(100, 413), (50, 413), (50, 413)]
    assert (stats.sent, stats.dropped) == (0, 100)
    assert stored_ids(live, secret, "view_item") == Counter()


# --- bounded queue, closing ---------------------------------------------------------------


def test_a_full_queue_drops_and_counts_new_events(
        live: Live, caplog: pytest.LogCaptureFixture) -> None:
    ingest, secret = new_project(live)
    # A long flush_interval keeps the queue full until flush(), as an unreachable or
    # overloaded server would.
    with caplog.at_level(logging.WARNING, logger="shopwatch.client"), \
            ShopwatchClient(live.base_url, ingest, max_queue=5, flush_interval=3600) as client:
        ids = [client.send({"name": "page_view"}) for _ in range(20)]
        stats = client.stats
        assert (stats.queued, stats.dropped, stats.sent) == (5, 15, 0)
        assert client.flush(timeout=10) is True
        later = [client.send({"name": "page_view"}) for _ in range(3)]  # room again
        assert client.flush(timeout=10) is True
        stats = client.stats

    assert len(set(ids)) == 20  # dropped events still get their id back
    assert stored_ids(live, secret) == Counter(ids[:5] + later)
    assert (stats.sent, stats.dropped) == (8, 15)
    assert caplog.text.count("queue full") == 1  # one warning per episode, not per event


def test_close_flushes_pending_events_and_is_idempotent(live: Live) -> None:
    ingest, secret = new_project(live)
    client = ShopwatchClient(live.base_url, ingest, flush_interval=3600)
    ids = [client.send({"name": "page_view"}) for _ in range(10)]
    assert client.stats.queued == 10
    client.close()
    client.close()
    client.send({"name": "page_view"})  # after close: counted, not raised
    assert (client.stats.sent, client.stats.dropped, client.stats.queued) == (10, 1, 0)

    with ShopwatchClient(live.base_url, ingest, flush_interval=3600) as managed:
        ids.append(managed.track("page_view", page="/ctx"))
    assert managed.stats.sent == 1
    assert stored_ids(live, secret) == Counter(ids)


def test_close_gives_up_on_a_batch_still_backing_off() -> None:
    client = ShopwatchClient(f"http://127.0.0.1:{free_port()}", "swpub_x", max_retries=1000,
                             backoff=3600, max_backoff=3600)
    for _ in range(3):
        client.send({"name": "page_view"})
    client.flush(timeout=0)
    wait_for(lambda: client.stats.retries == 1, "the first retry to be scheduled")
    client.close(timeout=0.2)
    stats = client.stats
    assert (stats.queued, stats.dropped, stats.sent) == (0, 3, 0)


def test_send_and_track_never_raise_on_bad_input() -> None:
    client = ShopwatchClient(f"http://127.0.0.1:{free_port()}", "swpub_x", max_retries=0)
    try:
        assert client.send({"name": "page_view", "params": {"x": object()}})
        assert client.send({"name": "page_view", "params": {"value": float("nan")}})
        assert client.send(["not", "a", "dict"]) == ""  # type: ignore[arg-type]
        assert client.track("page_view", utm=42, id="u-1") == "u-1"  # type: ignore[arg-type]
        stats = client.stats
        assert (stats.dropped, stats.queued) == (4, 0)
    finally:
        client.close(timeout=1)
