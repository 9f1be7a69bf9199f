"""A job run every ``interval`` seconds in a thread of its own, until stopped.

``shopwatch serve`` runs its alert evaluation and its scheduled reports this way. The
first run is one interval after :meth:`Periodic.start`; a run that raises is logged and
the next one tries again; :meth:`Periodic.stop` lets the run under way finish (up to
``timeout`` seconds) and starts no other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``work()`` every ``interval`` seconds in thread ``name``; ``what`` names the
    job in the log when a run fails."""

    def __init__(self, work: Callable[[], object], interval: float, *, name: str,
                 what: str) -> None:
        self.work = work
        self.interval = interval
        self.what = what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.work()
            except Exception:  # the next turn tries again
                log.exception("%s failed", self.what)
