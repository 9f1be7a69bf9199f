"""An alert's life: inactive → pending → firing → resolved, judged evaluation by evaluation.

Contract (docs/alerts.md, "Lifecycle"):

- Each evaluation gives a :class:`Reading`: the series' value (``None``: no data) at a
  time. A rule's :class:`Condition` says when a value is *breaching* (``value op
  threshold``) and when it is *clear*: past ``clear`` (the hysteresis bound, on the
  healthy side of ``threshold``; by default ``threshold`` itself). A value between the
  two is neither: whatever the alert was, it stays.
- **Pending**: the first breaching reading starts it. It becomes **firing** once the
  series has breached without a clear reading for ``for_s`` (at once when ``for_s`` is
  0); a clear reading first sends it back to inactive, and nothing is notified.
- **Firing** notifies once (``firing``), again every ``renotify_s`` while it lasts
  (``renotify``; never when 0), and **resolves** after clear readings for
  ``resolve_after_s`` (at once when 0): ``resolved`` is notified, and the next breach
  starts a new alert.
- **No data** (``value is None``) changes nothing, unless the condition is a no-data
  rule (``on_no_data="breach"``): then a missing value breaches and any value clears.
- Acknowledging a firing alert silences its renotifications; it still resolves.

The machine is pure: :func:`advance` takes the state and a reading and returns the new
state and what to notify, so rules are tested on crafted series without a clock.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Final, Literal

Op = Literal[">", ">=", "<", "<="]
Phase = Literal["inactive", "pending", "firing"]
Event = Literal["firing", "renotify", "resolved"]
_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Condition:
    """When a value breaches (``value op threshold``) and when it is clear (on the other
    side of ``clear``, which defaults to ``threshold``); ``on_no_data="breach"`` makes a
    missing value the breach (no-data rules)."""

    op: Op
    threshold: float
    clear: float | None = None
    on_no_data: Literal["keep", "breach"] = "keep"

    def __post_init__(self) -> None:
        if self.clear is not None:
            healthy_side = self.clear <= self.threshold if self.op in (">", ">=") \
                else self.clear >= self.threshold
            if not healthy_side:
                side = "at or below" if self.op in (">", ">=") else "at or above"
                raise ValueError(f"clear: {self.clear:g} must be {side} the threshold "
                                 f"{self.threshold:g} (the healthy side of {self.op})")

    def judge(self, value: float | None) -> Literal["breach", "clear", "between", "none"]:
        """What one reading says."""
        if value is None:
            return "breach" if self.on_no_data == "breach" else "none"
        if self.on_no_data == "breach":
            return "clear"
        if _OPS[self.op](value, self.threshold):
            return "breach"
        if self.clear is None:
            return "clear"
        # Clear at or past the clear bound, on the healthy side; in between, no change.
        healthy = value <= self.clear if self.op in (">", ">=") else value >= self.clear
        return "clear" if healthy else "between"


@dataclass(frozen=True)
class Reading:
    at: float  # epoch seconds
    value: float | None


@dataclass(frozen=True)
class State:
    """Where an alert is: its phase, since when (pending or firing), when it last
    notified, when its clear readings began (firing), whether it is acknowledged, and
    the worst value seen since it started."""

    phase: Phase = "inactive"
    since: float | None = None
    notified_at: float | None = None
    clear_since: float | None = None
    acknowledged: bool = False
    worst: float | None = None


@dataclass(frozen=True)
class Timing:
    """``for_s``: how long a breach must last to fire; ``resolve_after_s``: how long a
    firing alert must read clear to resolve; ``renotify_s``: how often a firing alert
    notifies again (0: never)."""

    for_s: float = 0.0
    resolve_after_s: float = 0.0
    renotify_s: float = 0.0


def _worse(condition: Condition, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b) if condition.op in (">", ">=") else min(a, b)


def advance(state: State, reading: Reading, condition: Condition,
            timing: Timing) -> tuple[State, Event | None]:
    """The state after ``reading``, and the notification it calls for (if any)."""
    verdict = condition.judge(reading.value)
    now = reading.at
    if verdict == "none":
        return state, None
    worst = _worse(condition, state.worst, reading.value)
    if state.phase == "inactive":
        if verdict != "breach":
            return state, None
        state = State("pending", since=now, worst=reading.value)
        if timing.for_s <= 0:
            return replace(state, phase="firing", notified_at=now), "firing"
        return state, None
    if state.phase == "pending":
        if verdict == "clear":
            return State(), None
        assert state.since is not None
        if now - state.since >= timing.for_s:
            return replace(state, phase="firing", notified_at=now, worst=worst), "firing"
        return replace(state, worst=worst), None
    # firing
    if verdict == "clear":
        clear_since = state.clear_since if state.clear_since is not None else now
        if now - clear_since >= timing.resolve_after_s:
            return State(), "resolved"
        return replace(state, clear_since=clear_since), None
    state = replace(state, clear_since=None, worst=worst)  # breach or between: still on
    if (timing.renotify_s > 0 and not state.acknowledged and state.notified_at is not None
            and now - state.notified_at >= timing.renotify_s):
        return replace(state, notified_at=now), "renotify"
    return state, None


def run(readings: Iterable[Reading], condition: Condition, timing: Timing,
        state: State | None = None) -> tuple[State, list[tuple[float, Event]]]:
    """Every reading in turn: the final state and the notifications, with their times."""
    current = state or State()
    events: list[tuple[float, Event]] = []
    for reading in readings:
        current, event = advance(current, reading, condition, timing)
        if event is not None:
            events.append((reading.at, event))
    return current, events
