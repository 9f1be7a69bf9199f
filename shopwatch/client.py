"""A small Python client that sends a shop's events to Shopwatch in the background.

Contract
--------
:class:`ShopwatchClient` queues events in memory and one daemon thread posts them to
``POST /api/v1/events`` (docs/events.md) in batches. It is meant for the request path
of a shop's web app: :meth:`~ShopwatchClient.send` and :meth:`~ShopwatchClient.track`
never block on the network and never raise.

- **Ids.** ``send`` gives every event without an ``id`` a random UUID (and returns the
  id). The server stores an id once (deduplication), so resending a batch after a
  timeout, a ``503`` or a lost connection cannot store an event twice.
- **Batching.** A batch of up to ``batch_size`` events is posted as soon as it is full,
  or when ``flush_interval`` seconds have passed since the oldest queued event was
  queued, or at once when :meth:`~ShopwatchClient.flush` or
  :meth:`~ShopwatchClient.close` asks for it. Batches are posted one at a time, in the
  order their events were queued.
- **Bounded memory.** At most ``max_queue`` events are held (queued or in flight). An
  event sent while the client is full is dropped and counted in ``stats.dropped``;
  ``send`` still returns its id.
- **Overload and network failures** (``429``, ``503``, ``408``, ``500``, ``502``,
  ``504``, timeouts, connection errors): the same batch, with the same ids, is posted
  again after an exponential backoff with jitter (``backoff`` doubling up to
  ``max_backoff``), or, when the server sends ``Retry-After``, after that many seconds
  (plus a little jitter; ``max_backoff`` does not shorten it: retrying sooner would be
  refused again). After ``max_retries`` retries the batch is dropped and counted.
- **Requests the server refuses** (``400`` without per-event errors, ``401``, ``403``,
  ``415`` and any other ``4xx``): not retried, since the same request would be refused
  again; a warning with the server's message is logged and the events are counted as
  dropped. On ``413`` (body or event count over the server's limit) the batch is split in
  half and each half is posted once more (with the usual retries) before giving up.
- **Invalid events.** On ``200`` (and on a ``400`` that lists per-event errors because
  every event of the batch was invalid), ``accepted`` is added to ``stats.sent`` and each
  ``rejected`` entry to ``stats.rejected``, logged as a warning with its index and error.
- **Shutdown.** :meth:`~ShopwatchClient.close` (also called by ``with`` and, with a 5 s
  limit, at interpreter exit) flushes and stops the thread; what it cannot deliver in
  time is dropped and counted.

Warnings go to the ``shopwatch.client`` logger. The client is thread-safe; create one
per process (after a pre-forking server forks: threads do not survive ``fork``).
"""

from __future__ import annotations

import atexit
import email.utils
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, NamedTuple

import httpx

__all__ = ["ClientStats", "ShopwatchClient"]

log = logging.getLogger("shopwatch.client")

INGEST_PATH = "/api/v1/events"
USER_AGENT = "shopwatch-client/1"
# Statuses that say "not now" rather than "not this request": overload (429, 503), a
# proxy or gateway in trouble (502, 504), a request timeout (408), and 500, which may be
# a passing fault. Retries are bounded by max_retries, so a 500 that is not passing costs
# only time.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
ATEXIT_CLOSE_TIMEOUT = 5.0
# How long close() waits, beyond its timeout, for the thread to give up what it holds.
# Waking from a backoff and counting takes microseconds; only a request on the wire
# takes longer, and close() does not wait for that one.
ABORT_GRACE = 0.5


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's counters (taken under its lock, so consistent).

    - ``queued``: events accepted by ``send`` and not yet settled (waiting or in flight).
    - ``sent``: events the server accepted (its ``accepted`` counts; a duplicate of an
      already stored id counts as accepted).
    - ``rejected``: events the server refused as invalid (its ``rejected`` entries).
    - ``dropped``: events given up by the client: queue full, client closed, not
      encodable as JSON, retries exhausted, or a request the server refused as a whole.
    - ``retries``: requests posted again after a retryable failure.
    - ``last_error``: the most recent failure (kept after later successes), or ``None``.
    """

    queued: int
    sent: int
    rejected: int
    dropped: int
    retries: int
    last_error: str | None


class _Item(NamedTuple):
    seq: int  # position in the order of send(): 1, 2, 3, ...
    id: str
    body: bytes  # the event as JSON, encoded once in send()
    queued_at: float  # time.monotonic()


class ShopwatchClient:
    """Send events to one Shopwatch project from a background thread.

    ``base_url`` is the server's address (``https://shopwatch.example``; a path prefix
    is kept) and ``ingest_key`` the project's ingest key. ``transport`` is handed to the
    ``httpx.Client`` the thread uses (a proxy, custom TLS, or a recording transport in
    tests). Raises ``ValueError`` for a setting out of range; after construction no
    method raises because of the network, the server or an event's content.
    """

    def __init__(self, base_url: str, ingest_key: str, *, batch_size: int = 100,
                 flush_interval: float = 1.0, max_queue: int = 10_000, max_retries: int = 8,
                 backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        for name, value in (("flush_interval", flush_interval), ("backoff", backoff),
                            ("max_backoff", max_backoff), ("timeout", timeout)):
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"{name} must not be negative")
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._http = httpx.Client(
            base_url=base_url, transport=transport, timeout=timeout,
            headers={"Authorization": f"Bearer {ingest_key}", "User-Agent": USER_AGENT,
                     "Content-Type": "application/json"})

        # Everything below is guarded by _cond's lock. The worker never holds it during
        # I/O, so send() waits at most for a few list operations.
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._enqueued = 0  # seq of the last event accepted by send()
        self._settled = 0  # events settled (sent, rejected or dropped), in seq order
        self._flush_to = 0  # post at once, without waiting for a full batch, up to this seq
        self._closing = False  # close() started: send() drops, the worker drains the queue
        self._abort = False  # close() timed out: the worker gives up what it holds
        self._full = False  # the queue is full: warn once per episode, not per event
        self._warned_closed = False
        self._sent = 0
        self._rejected = 0
        self._dropped = 0
        self._retries = 0
        self._last_error: str | None = None
        # flush() must say whether *its* events were all delivered: while one waits, the
        # seqs of events that were not are kept here (and forgotten when none waits).
        self._flush_waiters = 0
        self._failed_seqs: list[int] = []

        self._thread = threading.Thread(target=self._run, name="shopwatch-client", daemon=True)
        self._thread.start()
        # A daemon thread dies silently at interpreter exit: flush what is queued first.
        # (The thread keeps the client alive until close() anyway, so the strong
        # reference atexit holds costs nothing; close() removes it.)
        atexit.register(self._close_at_exit)

    # --- the shop's side: never blocks on I/O, never raises -----------------------------

    def send(self, event: Mapping[str, Any]) -> str:
        """Queue one event (a dict as in docs/events.md) and return its id.

        An ``id`` is added (a UUID4) when the event has none; the event is copied and
        encoded as JSON now, so changing it afterwards changes nothing. Never blocks on
        the network and never raises: an event that cannot be queued (client full or
        closed, not a mapping, not encodable as JSON) is dropped, counted in
        ``stats.dropped`` and logged; its id is still returned.
        """
        event_id = ""
        try:
            if not isinstance(event, Mapping):
                raise TypeError(f"an event is a mapping, not {type(event).__name__}")
            data = dict(event)
            if data.get("id") is None:
                data["id"] = str(uuid.uuid4())
            event_id = data["id"] if isinstance(data["id"], str) else str(data["id"])
            # allow_nan=False: NaN is not JSON, and the server would refuse the whole batch.
            body = json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False, default=_json_default).encode()
        except Exception as exc:  # a bad event must not break the shop's request
            self._drop_unsendable(exc)
            return event_id
        warn = ""
        with self._cond:
            if self._closing:
                self._dropped += 1
                if not self._warned_closed:  # once: a loop sending after close() would flood
                    self._warned_closed = True
                    warn = "client closed: dropping events sent after close()"
            elif self._enqueued - self._settled >= self._max_queue:
                self._dropped += 1
                self._last_error = f"queue full ({self._max_queue} events)"
                if not self._full:
                    self._full = True
                    warn = (f"queue full ({self._max_queue} events): dropping new events "
                            "until the server catches up")
            else:
                self._full = False
                self._enqueued += 1
                self._queue.append(_Item(self._enqueued, event_id, body, time.monotonic()))
                if len(self._queue) == 1 or len(self._queue) >= self._batch_size:
                    self._cond.notify_all()
        if warn:  # logged outside the lock: a slow log handler must not stall the worker
            log.warning(warn)
        return event_id

    def track(self, name: str, *, ts: datetime | str | None = None,
              session_id: str | None = None, anonymous_id: str | None = None,
              user_id: str | None = None, page: str | None = None,
              referrer: str | None = None, utm: Mapping[str, str] | None = None,
              device: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
              id: str | None = None, ip: str | None = None,
              user_agent: str | None = None) -> str:
        """Build an event from keyword fields, :meth:`send` it and return its id.

        Fields that are ``None`` are left out. ``ts`` may be an RFC 3339 string or a
        ``datetime``, sent as RFC 3339 in UTC (a naive datetime is read as local time, as
        ``datetime.astimezone`` does). ``utm`` keys may be given with or without the
        ``utm_`` prefix (``{"source": "newsletter"}`` sends ``utm_source``). The client
        does not validate: the server does, and reports invalid events as rejected.
        ``ip`` and ``user_agent`` are the shopper's (from your own proxy's headers), for
        the security detections; Shopwatch keeps only the network and a keyed hash of
        the address (docs/security.md).
        """
        try:
            event: dict[str, Any] = {"name": name}
            if id is not None:
                event["id"] = id
            if ts is not None:
                event["ts"] = _rfc3339(ts) if isinstance(ts, datetime) else ts
            for key, value in (("session_id", session_id), ("anonymous_id", anonymous_id),
                               ("user_id", user_id), ("page", page), ("referrer", referrer),
                               ("ip", ip), ("user_agent", user_agent)):
                if value is not None:
                    event[key] = value
            for key, value in (utm or {}).items():
                if value is not None:
                    event[key if key.startswith("utm_") else f"utm_{key}"] = value
            if device is not None:
                event["device"] = dict(device)
            if params is not None:
                event["params"] = dict(params)
        except Exception as exc:  # e.g. utm that is not a mapping: still never raise
            self._drop_unsendable(exc)
            return id or ""
        return self.send(event)

    def _drop_unsendable(self, exc: Exception) -> None:
        log.warning("event dropped, it cannot be sent: %s", exc)
        with self._cond:
            self._dropped += 1
            self._last_error = f"event not sendable: {exc}"

    # --- waiting and stopping ---------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Post everything queued so far at once and wait until it is settled.

        Returns ``True`` when every event queued before the call was accepted by the
        server, ``False`` when one was rejected or dropped, or when ``timeout`` seconds
        passed first (delivery then goes on in the background). ``None`` waits as long
        as it takes (at most the retries of each batch).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            start, target = self._settled, self._enqueued
            if target == start:
                return True
            self._flush_to = max(self._flush_to, target)
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while self._settled < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return not any(start < seq <= target for seq in self._failed_seqs)
            finally:
                self._flush_waiters -= 1
                if not self._flush_waiters:
                    self._failed_seqs.clear()

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting events, deliver what is queued, and stop the thread.

        Waits up to ``timeout`` seconds for delivery. What is still undelivered then is
        dropped and counted: the thread is told to give up, and ``close`` waits a moment
        (:data:`ABORT_GRACE`) for it to put its batch down. A request already on the wire
        is left to finish, within the client's ``timeout``, in the daemon thread, and its
        events are counted when it does. Calling ``close`` again does nothing more.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            first = not self._closing
            self._closing = True
            self._cond.notify_all()
        if first:
            atexit.unregister(self._close_at_exit)
        self.flush(timeout)
        with self._cond:
            self._abort = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(max(0.0, deadline - time.monotonic()) + ABORT_GRACE)

    def _close_at_exit(self) -> None:
        self.close(timeout=ATEXIT_CLOSE_TIMEOUT)

    def __enter__(self) -> ShopwatchClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        """A consistent snapshot of the counters (see :class:`ClientStats`)."""
        with self._cond:
            return ClientStats(queued=self._enqueued - self._settled, sent=self._sent,
                               rejected=self._rejected, dropped=self._dropped,
                               retries=self._retries, last_error=self._last_error)

    # --- the background thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    self._deliver(batch, may_split=True)
                except Exception as exc:  # a bug here must not stop delivery for good
                    log.exception("unexpected error while sending events")
                    self._give_up(batch, f"{type(exc).__name__}: {exc}")
                with self._cond:
                    self._settled += len(batch)
                    self._cond.notify_all()
        finally:
            self._http.close()

    def _next_batch(self) -> list[_Item] | None:
        """Wait until a batch is due and take it; ``None`` when the thread should end."""
        with self._cond:
            while True:
                if self._abort:
                    # close() ran out of time: settle what is left as dropped.
                    left = list(self._queue)
                    self._queue.clear()
                    if left:
                        self._count_dropped(left, "client closed before delivery")
                        self._settled += len(left)
                        self._cond.notify_all()
                    return None
                if self._queue:
                    due = (len(self._queue) >= self._batch_size or self._closing
                           or self._queue[0].seq <= self._flush_to)
                    wait = self._queue[0].queued_at + self._flush_interval - time.monotonic()
                    if due or wait <= 0:
                        n = min(self._batch_size, len(self._queue))
                        return [self._queue.popleft() for _ in range(n)]
                    self._cond.wait(wait)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()

    def _deliver(self, batch: list[_Item], *, may_split: bool) -> None:
        """Post ``batch`` until it is settled: accepted, rejected, or given up."""
        body = b'{"events":[' + b",".join(item.body for item in batch) + b"]}"
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._http.post(INGEST_PATH, content=body)
            except httpx.TransportError as exc:  # timeouts, refused or lost connections
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                payload = _json_or_none(response)
                # A 400 with per-event errors is the server's answer to a batch of invalid
                # events only: the events were refused, not the request.
                if response.is_success or (status == 400 and isinstance(payload, dict)
                                           and isinstance(payload.get("rejected"), list)):
                    self._settle(batch, payload)
                    return
                message = _error_message(payload, response)
                error = f"HTTP {status}: {message}"
                if status == 413 and may_split and len(batch) > 1:
                    log.warning("server refused a batch of %d events as too large (%s); "
                                "sending it in two halves", len(batch), message)
                    with self._cond:
                        self._last_error = error
                    half = len(batch) // 2
                    self._deliver(batch[:half], may_split=False)
                    self._deliver(batch[half:], may_split=False)
                    return
                if status not in RETRYABLE_STATUSES:
                    log.warning("server refused %d events, not retrying: %s", len(batch), error)
                    self._give_up(batch, error)
                    return
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt >= self._max_retries:
                log.warning("giving up %d events after %d retries: %s",
                            len(batch), attempt, error)
                self._give_up(batch, error)
                return
            attempt += 1
            with self._cond:
                self._retries += 1
                self._last_error = error
            if not self._sleep(self._delay(attempt, retry_after)):
                self._give_up(batch, "client closed before delivery")
                return

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry number ``attempt`` (1, 2, ...)."""
        if retry_after is not None:
            # The server knows when it can take more: coming back sooner would only be
            # refused again (and burn a retry). A little jitter keeps many clients that
            # were refused together from coming back in the same instant.
            return retry_after + random.uniform(0, self._backoff / 2)
        # Exponential, with "equal jitter": at least half the step, so retries thin out
        # even when the random half is small.
        step = min(self._max_backoff, self._backoff * 2.0 ** min(attempt - 1, 62))
        return step / 2 + random.uniform(0, step / 2)

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; ``False`` if close() gave up waiting for us meanwhile."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._abort:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                self._cond.wait(remaining)
            return False

    def _settle(self, batch: list[_Item], payload: Any) -> None:
        """Count an answer with ``accepted`` and ``rejected`` (a 2xx, or a 400 like it)."""
        if not isinstance(payload, dict):  # a 2xx that is not JSON: the server took them
            payload = {}
        rejected = payload.get("rejected")
        rejected = rejected if isinstance(rejected, list) else []
        failed: list[int] = []
        for entry in rejected:
            index = entry.get("index") if isinstance(entry, dict) else None
            error = entry.get("error") if isinstance(entry, dict) else entry
            item = batch[index] if isinstance(index, int) and 0 <= index < len(batch) else None
            log.warning("server rejected event %s (id %s): %s", index,
                        item.id if item else "?", error)
            if item is not None:
                failed.append(item.seq)
        accepted = payload.get("accepted")
        if not isinstance(accepted, int):
            accepted = len(batch) - len(rejected)
        with self._cond:
            self._sent += accepted
            self._rejected += len(rejected)
            if rejected:
                self._last_error = f"{len(rejected)} events rejected as invalid"
            if self._flush_waiters:
                self._failed_seqs.extend(failed)

    def _give_up(self, batch: list[_Item], error: str) -> None:
        with self._cond:
            self._count_dropped(batch, error)

    def _count_dropped(self, items: list[_Item], error: str) -> None:
        # Caller holds the lock.
        self._dropped += len(items)
        self._last_error = error
        if self._flush_waiters:
            self._failed_seqs.extend(item.seq for item in items)


# --- helpers ---------------------------------------------------------------------------


def _rfc3339(value: datetime) -> str:
    """``2026-11-22T06:01:40.983Z``; a naive datetime is taken as local time."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    """JSON for the types a shop's code commonly puts in params."""
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):  # prices: the API takes numbers
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{value} is not a finite number")
        return number
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_message(payload: Any, response: httpx.Response) -> str:
    """The server's message from ``{"error": {"message": ...}}``, else the raw text."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return response.text[:300] or response.reason_phrase


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; ``None`` if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
