"""Per-project ingest rate limit: a token bucket in events per second.

The bucket holds at most one second's worth of events (the burst). A request that
needs more tokens than the bucket holds is refused whole with the seconds to wait,
so a client retrying after Retry-After succeeds. A request larger than the whole
burst is admitted when the bucket is full and leaves it in debt (negative), so it is
not refused forever and the average rate still holds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """``rate`` events/s per project; ``rate <= 0`` disables the limit."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, project_id: int, n: int) -> int:
        """Take ``n`` tokens; return 0 when allowed, else the whole seconds to wait."""
        if self.rate <= 0 or n <= 0:
            return 0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(project_id, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - last) * self.rate)
            need = min(n, self.rate)  # a full bucket admits any one request
            if need <= tokens:
                self._buckets[project_id] = (tokens - n, now)
                return 0
            self._buckets[project_id] = (tokens, now)
        missing = need - tokens
        return max(1, math.ceil(missing / self.rate))
