"""``shopwatch probe``: run the monitors assigned to a location, from another machine or
region, and send their results to the server (docs/monitors.md, "Locations and probes").

Contract:

- **Assignments.** Every ``poll_s`` (30 s) the probe asks the server for the monitors
  whose ``locations`` include its own (``GET /api/v1/probe/assignments``, with the
  version it has in ``If-None-Match``: an unchanged set costs a ``304``). It runs them
  with the server's :class:`~shopwatch.checks.scheduler.Scheduler` (interval, jitter,
  concurrency, no pile-up, retries). While the server cannot be reached it keeps
  running the last set it got.
- **Addresses.** Checks follow the probe's own :class:`AddressPolicy`: public addresses,
  and what ``--allow`` lists (addresses, networks, host names). The server's allow-list
  does not apply here: a probe sits in another network.
- **Results** are buffered in memory and posted in batches of up to ``batch_size``
  (``POST /api/v1/probe/results``). A batch leaves the buffer once the server has
  answered it (it answers after committing); rows the server rejects are logged and
  dropped. When the server cannot be reached, or answers 408, 429 or 5xx, the batch is
  sent again after a backoff (1 s doubling to ``max_backoff``, 60 s, with jitter; a
  ``Retry-After`` is honoured). The server stores a row sent twice once. On 413 the batch
  is halved. The buffer holds at most ``max_buffer`` rows (10,000: hours of a few dozen
  monitors); beyond that the oldest are dropped and counted, and a warning says so.
- **Refusal.** A 401 or 403 (unknown or revoked token, a token of another location)
  stops the probe: retrying cannot help. :attr:`Probe.fatal` holds the server's message.
- **Stopping** (:meth:`Probe.stop`, on Ctrl-C or SIGTERM): scheduling stops, running
  checks finish, and the buffer is sent for up to ``flush_timeout`` seconds; what is
  still unsent then is counted as lost and logged.

Log lines are one per event worth knowing (assignments changed, server unreachable or
back, rows rejected or dropped), to the ``shopwatch.probe`` logger.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx
import msgspec

from shopwatch import __version__
from shopwatch.checks.monitor import Monitor
from shopwatch.checks.record import CheckRow
from shopwatch.checks.safety import AddressPolicy, Resolver, system_resolver
from shopwatch.checks.scheduler import Assignment, Scheduler
from shopwatch.errors import ShopwatchError

log = logging.getLogger("shopwatch.probe")
ASSIGNMENTS_PATH: Final = "/api/v1/probe/assignments"
RESULTS_PATH: Final = "/api/v1/probe/results"
RETRYABLE: Final = frozenset({408, 429, 500, 502, 503, 504})
PROBE_RUNNER: Final = ("checks run by this probe reach only public addresses unless its "
                       "--allow lists it")


class ProbeRefused(ShopwatchError):
    """The server refused this probe (401, 403): its token or location is wrong."""


@dataclass
class ProbeStats:
    """Counts since the probe started."""

    sent: int = 0  # rows the server acknowledged
    rejected: int = 0  # rows the server refused (logged)
    dropped: int = 0  # rows dropped from a full buffer, or unsent at stop


class Probe:
    """See the module docstring. :meth:`start`, then :meth:`stop`."""

    def __init__(self, server: str, token: str, location: str, policy: AddressPolicy, *,
                 concurrency: int = 10, poll_s: float = 30.0, send_every: float = 1.0,
                 batch_size: int = 200, max_buffer: int = 10_000, backoff: float = 1.0,
                 max_backoff: float = 60.0, flush_timeout: float = 10.0,
                 resolver: Resolver = system_resolver, reload_s: float = 1.0,
                 offset: Callable[[float], float] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.location = location
        self.stats = ProbeStats()
        self.fatal: ProbeRefused | None = None
        self._poll_s = poll_s
        self._send_every = send_every
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._backoff0 = backoff
        self._max_backoff = max_backoff
        self._flush_timeout = flush_timeout
        self._client = httpx.Client(
            base_url=server.rstrip("/"), timeout=15.0, transport=transport,
            headers={"Authorization": f"Bearer {token}",
                     "User-Agent": f"shopwatch-probe/{__version__}"})
        self._assignments: list[Assignment] = []
        self._version: str | None = None
        self._buffer: deque[tuple[int, int, CheckRow]] = deque()  # (seq, project, row)
        self._seq = 0
        self._lock = threading.Lock()
        self._overflowing = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        options: dict[str, Any] = {} if offset is None else {"offset": offset}
        # A refusal names what allows more here: the probe's --allow, not checks_allow.
        policy = dataclasses.replace(policy, runner=PROBE_RUNNER)
        self._scheduler = Scheduler(self._source, self._sink, policy,
                                    concurrency=concurrency, location=location,
                                    reload_s=reload_s, resolver=resolver, **options)
        self._link = threading.Thread(target=self._run, name="shopwatch-probe-link",
                                      daemon=True)
        self._unreachable = False
        self._delay = backoff

    # --- what the scheduler sees ------------------------------------------------------------

    def _source(self) -> list[Assignment]:
        return self._assignments

    def _sink(self, project_id: int, rows: list[CheckRow]) -> None:
        with self._lock:
            for row in rows:
                self._seq += 1
                self._buffer.append((self._seq, project_id, row))
            over = len(self._buffer) - self._max_buffer
            for _ in range(max(0, over)):
                self._buffer.popleft()
            if over > 0:
                self.stats.dropped += over
                if not self._overflowing:
                    log.warning("buffer full (%d results): dropping the oldest until the "
                                "server takes results again", self._max_buffer)
            self._overflowing = over > 0
        self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def monitors(self) -> list[Assignment]:
        return list(self._assignments)

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        log.info("probe %s: polling %s for its monitors", self.location, self._client.base_url)
        self._scheduler.start()
        self._link.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the probe stops by itself (refused by the server); True if it did."""
        return self._stop.wait(timeout)

    def stop(self) -> None:
        """Stop scheduling, let running checks finish, send what is buffered (for up to
        ``flush_timeout`` seconds), and close."""
        self._stop.set()
        self._wake.set()
        if self._link.is_alive():
            self._link.join()
        self._scheduler.stop()
        deadline = time.monotonic() + self._flush_timeout
        while self._buffer and self.fatal is None and time.monotonic() < deadline:
            try:
                sent = self._send_one()
            except ProbeRefused as exc:
                self.fatal = exc
                log.error("%s", exc)
                break
            if not sent:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        lost = len(self._buffer)
        if lost:
            self.stats.dropped += lost
            log.warning("stopping with %d results unsent: they are lost", lost)
        self._client.close()
        log.info("probe %s stopped: %d results sent, %d rejected, %d dropped", self.location,
                 self.stats.sent, self.stats.rejected, self.stats.dropped)

    def _run(self) -> None:
        next_poll = 0.0
        next_send = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_poll:
                    next_poll = now + (self._poll_s if self._poll() else self._failed())
                if self._buffer and now >= next_send:
                    while self._buffer and not self._stop.is_set():
                        if not self._send_one():
                            next_send = time.monotonic() + self._failed()
                            break
                    else:
                        next_send = time.monotonic() + self._send_every
            except ProbeRefused as exc:
                self.fatal = exc
                log.error("%s", exc)
                self._stop.set()
                return
            except Exception:  # an answer not as expected: try again later, keep going
                log.exception("talking to the server failed")
                next_poll = next_send = time.monotonic() + self._failed()
            self._wake.clear()
            wake = min(next_poll, next_send if self._buffer else next_poll)
            self._wake.wait(max(0.05, wake - time.monotonic()))

    def _failed(self) -> float:
        """The wait before the next attempt, after a failed one (backoff with jitter)."""
        delay = self._delay
        self._delay = min(self._max_backoff, self._delay * 2)
        return delay * random.uniform(0.8, 1.2)

    def _reached(self) -> None:
        self._delay = self._backoff0
        if self._unreachable:
            self._unreachable = False
            log.info("server reachable again; %d results buffered", len(self._buffer))

    def _unreachable_now(self, why: str) -> None:
        if not self._unreachable:
            self._unreachable = True
            log.warning("server unreachable (%s); running the last %d monitors assigned and "
                        "buffering results", why, len(self._assignments))

    def _refused(self, response: httpx.Response) -> ProbeRefused:
        return ProbeRefused(f"the server refused this probe ({response.status_code}): "
                            f"{_message(response)}")

    # --- assignments ----------------------------------------------------------------------------

    def _poll(self) -> bool:
        """Fetch the assignments if they changed; False when the server was not reached."""
        headers = {"If-None-Match": f'"{self._version}"'} if self._version else {}
        try:
            response = self._client.get(ASSIGNMENTS_PATH, params={"location": self.location},
                                        headers=headers)
        except httpx.TransportError as exc:
            self._unreachable_now(_why(exc))
            return False
        if response.status_code in (401, 403):
            raise self._refused(response)
        if response.status_code == 304:
            self._reached()
            return True
        if response.status_code != 200:
            self._unreachable_now(f"{response.status_code} {_message(response)}")
            return False
        self._reached()
        body = response.json()
        assignments = []
        for item in body["assignments"]:
            try:
                monitor = msgspec.convert(item["monitor"], Monitor)
            except msgspec.ValidationError as exc:
                log.warning("cannot run monitor %r: %s (is this probe older than the "
                            "server?)", item["monitor"].get("name"), exc)
                continue
            assignments.append(Assignment(int(item["project_id"]), monitor,
                                          item.get("base_url") or ""))
        self._assignments = assignments
        self._version = body["version"]
        names = ", ".join(f"{a.project_id}/{a.monitor.name}" for a in assignments)
        log.info("%d monitors assigned to %s%s", len(assignments), self.location,
                 f": {names}" if names else "")
        return True

    # --- results ----------------------------------------------------------------------------

    def _send_one(self) -> bool:
        """Post the oldest buffered rows once; False when they should be sent again later."""
        with self._lock:
            batch = list(self._buffer)[: self._batch_size]
        if not batch:
            return True
        payload = {"results": [{"project_id": project_id, **msgspec.to_builtins(row)}
                               for _, project_id, row in batch]}
        try:
            response = self._client.post(RESULTS_PATH, params={"location": self.location},
                                         content=msgspec.json.encode(payload),
                                         headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            self._unreachable_now(_why(exc))
            return False
        status = response.status_code
        if status in (401, 403):
            raise self._refused(response)
        if status in RETRYABLE:
            self._unreachable_now(f"{status} {_message(response)}")
            wait = _retry_after(response.headers.get("retry-after"))
            if wait is not None:
                self._delay = max(self._delay, wait)
            return False
        if status == 413 and len(batch) > 1:
            self._batch_size = max(1, len(batch) // 2)
            log.warning("the server found %d results too large a batch; sending %d at a time",
                        len(batch), self._batch_size)
            return True
        self._reached()
        body: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            body = response.json()
        if status in (200, 400) and "rejected" in body:
            for item in body["rejected"]:
                _, _, row = batch[int(item["index"])]
                log.warning("the server rejected the result of %s at %s: %s", row.monitor,
                            time.strftime("%H:%M:%S", time.localtime(row.ts)), item["error"])
            self.stats.rejected += len(body["rejected"])
            self.stats.sent += int(body.get("accepted", 0))
        else:  # refused whole (another 4xx): sending it again would be refused again
            self.stats.rejected += len(batch)
            log.warning("the server refused %d results (%d): %s", len(batch), status,
                        _message(response))
        last = batch[-1][0]
        with self._lock:
            while self._buffer and self._buffer[0][0] <= last:
                self._buffer.popleft()
        return True


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
