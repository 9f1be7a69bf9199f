"""Time ranges for dashboards and the API: presets, custom ranges, bucket sizes.

A :class:`TimeRange` is a half-open interval ``[start_us, end_us)`` of epoch microseconds
(UTC) plus the width of the buckets its series are drawn in.

Bucket size rule: among the nice steps (:data:`STEPS`: 1 min, 5 min, 15 min, 30 min,
1 h, 3 h, 6 h, 12 h, 1 d, 7 d) whose bucket count ``span / step`` lies in 24..120
(:data:`MIN_BUCKETS`, :data:`MAX_BUCKETS`), take the one whose count is nearest to
:data:`TARGET_BUCKETS` (60) by ratio (``|log(count / 60)|``; on a tie the larger step
wins). That gives 1h → 60 s (60 buckets), 24h → 30 min (48), 7d → 3 h (56) and
30d → 12 h (60). When no step lands in 24..120 (ranges under 24 minutes, or between
~120 and ~168 days, in the gap between 1 d and 7 d) the nearest step of all is taken.

Start and end are kept exact (a "24h" range ends at the request's ``now``), but buckets
are aligned to epoch multiples of ``bucket_s``: the first bucket starts at or before
``start_us``, so a refresh a few seconds later draws the same buckets with the same
edges, only the ends move.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shopwatch.errors import BadRequest

US: Final = 1_000_000
PRESETS: Final[dict[str, int]] = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
STEPS: Final = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
TARGET_BUCKETS: Final = 60
MIN_BUCKETS: Final = 24
MAX_BUCKETS: Final = 120
MAX_CUSTOM_SPAN_S: Final = 400 * 86400
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The latest instant we accept (as_dict must be able to print it): 9999-12-31T23:59:59Z.
_MAX_US: Final = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - EPOCH) // timedelta(
    microseconds=1)
# What an HTML <input type="datetime-local"> sends: no offset, seconds optional.
_LOCAL_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")
_EPOCH_MS_RE: Final = re.compile(r"\d{1,15}")


@dataclass(frozen=True)
class TimeRange:
    """``[start_us, end_us)`` in epoch microseconds, drawn in ``bucket_s``-second buckets.

    ``label`` is the preset name (``"24h"``...) or ``"custom"``.
    """

    start_us: int
    end_us: int
    bucket_s: int
    label: str

    @property
    def span_us(self) -> int:
        return self.end_us - self.start_us

    @property
    def bucket_us(self) -> int:
        return self.bucket_s * US

    def previous(self) -> TimeRange:
        """The range of the same length that ends where this one starts (same buckets)."""
        return TimeRange(self.start_us - self.span_us, self.start_us, self.bucket_s, self.label)

    def first_bucket_us(self) -> int:
        """Start of the bucket holding ``start_us``: an epoch multiple of ``bucket_s``."""
        return self.start_us // self.bucket_us * self.bucket_us

    def buckets(self) -> list[int]:
        """Bucket start times (epoch µs), oldest first, covering ``[start_us, end_us)``.

        The first bucket may start before ``start_us`` and the last end after ``end_us``
        (see the module docstring); an empty range has no buckets.
        """
        return list(range(self.first_bucket_us(), self.end_us, self.bucket_us))

    def as_dict(self) -> dict[str, Any]:
        """``{"from", "to"}`` as ISO 8601 UTC strings, ``bucket_seconds`` and ``label``."""
        return {"from": iso_utc(self.start_us), "to": iso_utc(self.end_us),
                "bucket_seconds": self.bucket_s, "label": self.label}


def iso_utc(us: int) -> str:
    """Epoch microseconds as ISO 8601 UTC, e.g. ``2024-05-15T08:30:00Z``."""
    # Integer arithmetic, not fromtimestamp(us / 1e6): a float loses microseconds.
    return (EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def bucket_seconds(span_s: float) -> int:
    """The nice step for a range of ``span_s`` seconds (rule: module docstring)."""
    if span_s <= 0:
        return STEPS[0]

    def distance(step: int) -> tuple[float, int]:
        # Rounded so that exact ties (a count of 30 vs 120, say) are ties; -step: larger wins.
        return round(abs(math.log(span_s / step / TARGET_BUCKETS)), 9), -step

    fitting = [s for s in STEPS if MIN_BUCKETS <= span_s / s <= MAX_BUCKETS]
    return min(fitting or STEPS, key=distance)


def parse_range(name: str, from_: str | None, to: str | None, now_us: int) -> TimeRange:
    """The range a request asks for.

    ``name`` is a key of :data:`PRESETS` (the range ends at ``now_us``; ``from_`` and
    ``to`` are ignored, as a form may send them anyway) or ``"custom"``: then ``from_``
    and ``to`` are required, each RFC 3339 (``2024-05-15T10:00:00+02:00``), an offset-less
    ``YYYY-MM-DDTHH:MM[:SS]`` as an HTML datetime-local input sends (read as UTC), or
    epoch milliseconds; ``from_`` must be before ``to`` and the span at most 400 days.

    Raises :class:`BadRequest` whose message starts with the field at fault:
    ``range: ...``, ``from: ...`` or ``to: ...``.
    """
    name = (name or "").strip()
    if name in PRESETS:
        preset_s = PRESETS[name]
        return TimeRange(now_us - preset_s * US, now_us, bucket_seconds(preset_s), name)
    if name != "custom":
        choices = ", ".join([*PRESETS, "custom"])
        raise BadRequest(f"range: {name!r} is not one of {choices}")
    start = _parse_instant("from", from_)
    end = _parse_instant("to", to)
    if start >= end:
        raise BadRequest(f"to: {to!r} must be after from ({from_!r})")
    span_s = (end - start) / US
    if span_s > MAX_CUSTOM_SPAN_S:
        raise BadRequest(f"to: the range spans {span_s / 86400:.1f} days; "
                         f"at most {MAX_CUSTOM_SPAN_S // 86400} days")
    return TimeRange(start, end, bucket_seconds(span_s), "custom")


def _parse_instant(field: str, text: str | None) -> int:
    """One end of a custom range as epoch µs; BadRequest naming ``field`` otherwise."""
    if text is None or not text.strip():
        raise BadRequest(f"{field}: required when range is custom "
                         "(RFC 3339, YYYY-MM-DDTHH:MM in UTC, or epoch milliseconds)")
    text = text.strip()
    if _EPOCH_MS_RE.fullmatch(text):
        us = int(text) * 1000
    else:
        try:
            # RFC 3339 allows lower-case "t" and "z"; fromisoformat does not.
            parsed = datetime.fromisoformat(text.upper())
        except ValueError:
            parsed = None
        if parsed is None or (parsed.tzinfo is None and not _LOCAL_RE.fullmatch(text.upper())):
            raise BadRequest(f"{field}: {text!r} is not RFC 3339 (2024-05-15T10:00:00Z), "
                             "YYYY-MM-DDTHH:MM (UTC) nor epoch milliseconds")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        us = (parsed - EPOCH) // timedelta(microseconds=1)
    if not 0 <= us <= _MAX_US:
        raise BadRequest(f"{field}: {text!r} is outside 1970-01-01 to 9999-12-31")
    return us
