"""The outbox: every notification to every channel is a ``deliveries`` row, sent by a
restartable worker that claims work with compare-and-set updates (no locks).

- :meth:`Outbox.enqueue` writes one ``pending`` row per channel, due now, and wakes the
  worker. Once it returns, the notification survives a crash or a restart.
- The worker (:meth:`Outbox.start`, one thread) claims due rows (``pending → sending``,
  attempts + 1, leased for ``lease`` seconds), sends them one by one, then marks each
  ``sent``, or ``pending`` again after a backoff, or ``failed``.
- A row left ``sending`` by a worker that died is due again when its lease ends: a
  notification may then arrive twice (at least once, never lost); receivers can
  de-duplicate on the notification's ``id``.

Retries: after a failed attempt the next one is due after 30 s, 2 min, 10 min, 30 min,
then 2 h (:data:`BACKOFF`); after the sixth failed attempt the delivery is ``failed``.
An error that retrying cannot fix (an address refused by the address rule, a recipient
the SMTP server refuses) fails the delivery at once.

Seams for tests: a clock (``clock``) and the channels' environment (``env``: resolver,
HTTP transport, address policy, SMTP server) — no patching.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from shopwatch.alerts.channels import (
    ChannelError,
    Environment,
    Notification,
    build,
    encode_notification,
)
from shopwatch.alerts.channels import decode_notification as decode
from shopwatch.errors import NotFound
from shopwatch.store import channels as store
from shopwatch.store.state import StateStore

log = logging.getLogger(__name__)

BACKOFF: Final[tuple[float, ...]] = (30.0, 120.0, 600.0, 1800.0, 7200.0)
MAX_ATTEMPTS: Final = len(BACKOFF) + 1
MAX_ERROR: Final = 1000


def next_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return BACKOFF[attempts - 1]


@dataclass(frozen=True)
class Outcome:
    """What one attempt did (what ``POST /api/v1/channels/{id}/test`` answers)."""

    delivery_id: int
    ok: bool
    status: str
    error: str | None = None


class Outbox:
    """Deliveries of one state store; see the module docstring."""

    def __init__(self, state: StateStore, env: Environment, *,
                 clock: Callable[[], float] = time.time, lease: float = 300.0,
                 batch: int = 50, poll: float = 5.0) -> None:
        self.state = state
        self.env = env
        self.clock = clock
        self.lease = lease  # longer than any one send can take (timeouts are shorter)
        self.batch = batch
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- producing -------------------------------------------------------------------------

    def enqueue(self, notification: Notification, channel_ids: Sequence[int]) -> list[int]:
        """One pending delivery of ``notification`` per channel (enabled channels of its
        project; NotFound otherwise), due now; their ids."""
        ids = store.add_deliveries(self.state, notification.project_id,
                                   encode_notification(notification).decode(),
                                   notification.alert, list(channel_ids), self.clock())
        self._wake.set()
        return ids

    def send_now(self, channel_id: int, notification: Notification) -> Outcome:
        """Send ``notification`` to one channel at once, in this thread, recorded as a
        delivery with a single attempt (no retries): the "send test" button."""
        now = self.clock()
        (delivery_id,) = store.add_deliveries(
            self.state, notification.project_id, encode_notification(notification).decode(),
            notification.alert, [channel_id], now, status="sending", attempts=1,
            next_attempt_at=now + self.lease)
        claimed = store.get_delivery(self.state, delivery_id)
        return self._attempt(claimed, retry=False)

    # --- consuming -------------------------------------------------------------------------

    def run_once(self) -> list[Outcome]:
        """Claim and attempt every delivery due now (up to ``batch``); what happened."""
        outcomes = []
        for seen in store.due(self.state, self.clock(), self.batch):
            claimed = store.claim(self.state, seen, self.clock(), self.lease)
            if claimed is None:
                continue  # another worker took it
            outcomes.append(self._attempt(claimed, retry=True))
        return outcomes

    def _attempt(self, claimed: store.Delivery, *, retry: bool) -> Outcome:
        error: ChannelError | None = None
        try:
            stored = store.get_channel(self.state, claimed.project_id, claimed.channel_id)
            build(stored.kind, stored.config, self.env).notify(decode(claimed.notification))
        except ChannelError as exc:
            error = exc
        except NotFound as exc:
            error = ChannelError(str(exc), permanent=True)
        except Exception as exc:  # a bug in a channel must not stop the worker
            log.exception("delivery %s: channel raised", claimed.id)
            error = ChannelError(f"{type(exc).__name__}: {exc}")
        now = self.clock()
        if error is None:
            store.finish(self.state, claimed, "sent", now)
            return Outcome(claimed.id, True, "sent")
        reason = str(error)[:MAX_ERROR]
        delay = next_delay(claimed.attempts) if retry and not error.permanent else None
        if delay is None:
            store.finish(self.state, claimed, "failed", now, reason)
            return Outcome(claimed.id, False, "failed", reason)
        store.finish(self.state, claimed, "pending", now, reason, now + delay)
        return Outcome(claimed.id, False, "pending", reason)

    # --- the worker thread -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="shopwatch-outbox",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current send (a claimed row left unfinished is retried after
        its lease)."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                outcomes = self.run_once()
            except Exception:  # the store was busy or failing: try again later
                log.exception("outbox round failed")
                outcomes = []
            if len(outcomes) < self.batch:  # a full batch: more may be due at once
                self._wake.wait(self.poll)
