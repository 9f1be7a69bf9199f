"""The overview KPIs and time ranges, on real DuckDB and SQLite files.

Events go through the real ingest pipeline (decode, validate, scrub, enrich) into a
real DuckDB event store; every expectation below is worked out by hand from the events
listed in the test. Each scenario also writes the same events, and more, to a second
project, which must never leak into the first one's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shopwatch.analytics.overview import overview
from shopwatch.analytics.timerange import PRESETS, TimeRange, bucket_seconds, parse_range
from shopwatch.errors import BadRequest
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import Project, StateStore

# Old enough for last week's events: by default the pipeline clamps events older than
# 7 days to their receive time, which would move last week's orders to today.
CONFIG = PipelineConfig(pseudonym_key=b"k" * 32, max_event_age_s=60 * 86400.0)
NOW = "2024-05-15T08:30:00Z"  # a Wednesday; 10:30 in Paris (CEST, UTC+2)


def us(text: str) -> int:
    """Epoch microseconds of an RFC 3339 time."""
    return int(datetime.fromisoformat(text).timestamp()) * 1_000_000


def at(text: str, minutes: float = 0) -> str:
    """``text`` shifted by ``minutes``, as RFC 3339 UTC."""
    moved = datetime.fromisoformat(text) + timedelta(minutes=minutes)
    return moved.astimezone(UTC).isoformat().replace("+00:00", "Z")


def purchase(ts: str, value: float | None = None, currency: str | None = None,
             txn: str | None = None, **ids: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if value is not None:
        params["value"] = value
    if currency is not None:
        params["currency"] = currency
    if txn is not None:
        params["transaction_id"] = txn
    return {"name": "purchase", "ts": ts, "params": params, **ids}


def view(ts: str, **ids: str) -> dict[str, Any]:
    return {"name": "page_view", "ts": ts, "page": "https://shop.example/", **ids}


@dataclass
class Env:
    events: DuckDBEventStore
    state: StateStore
    shop: Project  # the project under test
    other: Project  # its neighbour, always given more events

    def ingest(self, project: Project, events: list[dict[str, Any]], now: str = NOW) -> None:
        body = json.dumps({"events": events}).encode()
        outcome = process(body, Format.JSON, project.id, us(now), CONFIG)
        # A clamped ts would silently move an event to "now": refuse it.
        assert not outcome.rejected and not outcome.warnings, (outcome.rejected,
                                                               outcome.warnings)
        assert outcome.rows.n == len(events)
        self.events.write([outcome.rows])

    def both(self, events: list[dict[str, Any]], now: str = NOW) -> None:
        """The events to the shop, and to the other project along with more of its own."""
        self.ingest(self.shop, events, now)
        self.ingest(self.other, events, now)

    def overview(self, now: str = NOW, rng: TimeRange | None = None,
                 project: Project | None = None) -> dict[str, Any]:
        rng = rng or parse_range("24h", None, None, us(now))
        return overview(self.events, project or self.shop, rng, us(now))


def noise(now: str = NOW) -> list[dict[str, Any]]:
    """Sessions and orders of the other project, in every window the tests look at."""
    out: list[dict[str, Any]] = []
    for minutes in (-1, -3, -90, -60 * 20, -60 * 30, -60 * 24 * 7 + 10, -60 * 24 * 7 - 10):
        out.append(view(at(now, minutes), session_id=f"noise{minutes}"))
        out.append(purchase(at(now, minutes), 999.0, "EUR", f"N{minutes}",
                            session_id=f"noise{minutes}"))
        out.append(purchase(at(now, minutes), 5.0, "USD", session_id=f"noise{minutes}"))
    return out


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    events = DuckDBEventStore(tmp_path / "e.duckdb")
    state = StateStore(tmp_path / "s.sqlite")
    shop = state.create_project("shop", currency="EUR", timezone="Europe/Paris")
    other = state.create_project("neighbour", currency="EUR", timezone="Europe/Paris")
    yield Env(events, state, shop, other)
    events.close()
    state.close()


# --- time ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "bucket_s", "n"), [
    ("1h", 60, 60), ("24h", 1800, 48), ("7d", 3 * 3600, 56), ("30d", 12 * 3600, 60)])
def test_presets_pick_nice_buckets(name: str, bucket_s: int, n: int) -> None:
    midnight = us("2024-05-15T00:00:00Z")  # a multiple of every step: exact bucket counts
    rng = parse_range(name, None, None, midnight)
    assert (rng.start_us, rng.end_us) == (midnight - PRESETS[name] * 1_000_000, midnight)
    assert rng.bucket_s == bucket_s
    assert len(rng.buckets()) == n
    assert rng.label == name


@pytest.mark.parametrize("name", list(PRESETS))
def test_buckets_are_epoch_aligned_and_stable_across_refreshes(name: str) -> None:
    first = parse_range(name, None, None, us("2024-05-15T08:31:17Z"))
    later = parse_range(name, None, None, us("2024-05-15T08:31:47Z"))
    step = first.bucket_s * 1_000_000
    buckets = first.buckets()
    # Exact ends, floor-aligned buckets: the first bucket holds start, the last holds end.
    assert buckets[0] <= first.start_us < buckets[0] + step
    assert buckets[-1] < first.end_us <= buckets[-1] + step
    assert all(b % step == 0 for b in buckets)
    assert len(buckets) == PRESETS[name] // first.bucket_s + 1  # an unaligned range
    assert later.buckets() == buckets
    assert later.end_us - first.end_us == 30_000_000


def test_previous_range_and_as_dict() -> None:
    rng = parse_range("24h", None, None, us(NOW))
    prev = rng.previous()
    assert prev == TimeRange(us("2024-05-13T08:30:00Z"), us("2024-05-14T08:30:00Z"), 1800, "24h")
    assert rng.as_dict() == {"from": "2024-05-14T08:30:00Z", "to": "2024-05-15T08:30:00Z",
                             "bucket_seconds": 1800, "label": "24h"}
    assert len(prev.buckets()) == len(rng.buckets()) == 48


@pytest.mark.parametrize(("from_", "to", "start", "end"), [
    ("2024-05-15T10:00:00+02:00", "2024-05-15T12:00:00+02:00",
     "2024-05-15T08:00:00Z", "2024-05-15T10:00:00Z"),
    ("2024-05-15t08:00:00z", "2024-05-15T10:00:00Z", "2024-05-15T08:00:00Z",
     "2024-05-15T10:00:00Z"),
    ("2024-05-15T08:00", "2024-05-15T10:00", "2024-05-15T08:00:00Z", "2024-05-15T10:00:00Z"),
    ("1715760000000", "1715767200000", "2024-05-15T08:00:00Z", "2024-05-15T10:00:00Z"),
])
def test_custom_range_formats(from_: str, to: str, start: str, end: str) -> None:
    rng = parse_range("custom", from_, to, us(NOW))
    assert (rng.start_us, rng.end_us, rng.label) == (us(start), us(end), "custom")
    assert rng.bucket_s == 60  # 2 hours: 120 one-minute buckets
    assert rng.as_dict()["from"] == start.replace("+00:00", "Z")


def test_custom_bucket_sizes_stay_within_24_to_120() -> None:
    for hours in (0.4, 1, 2, 2.3, 3, 6, 12, 48, 24 * 14, 24 * 60, 24 * 100, 24 * 400):
        step = bucket_seconds(hours * 3600)
        assert 24 <= hours * 3600 / step <= 120, (hours, step)
    assert bucket_seconds(2.3 * 3600) == 300  # 138 one-minute buckets would be too many


@pytest.mark.parametrize(("name", "from_", "to", "field"), [
    ("week", None, None, "range"),
    ("", None, None, "range"),
    ("custom", None, "2024-05-15T10:00:00Z", "from"),
    ("custom", "yesterday", "2024-05-15T10:00:00Z", "from"),
    ("custom", "2024-05-15", "2024-05-16T10:00:00Z", "from"),  # a date is not a time
    ("custom", "2024-05-15T08:00:00Z", None, "to"),
    ("custom", "2024-05-15T08:00:00Z", "15/05/2024 10:00", "to"),
    ("custom", "2024-05-15T08:00:00Z", "2024-05-15T08:00:00Z", "to"),
    ("custom", "2024-05-15T10:00:00Z", "2024-05-15T08:00:00Z", "to"),
    ("custom", "2023-01-01T00:00:00Z", "2024-05-15T00:00:00Z", "to"),  # over 400 days
])
def test_parse_range_errors_name_the_field(name: str, from_: str | None, to: str | None,
                                           field: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_range(name, from_, to, us(NOW))
    assert info.value.status == 400
    assert info.value.message.startswith(f"{field}: "), info.value.message


def test_400_days_is_allowed() -> None:
    rng = parse_range("custom", "2023-01-01T00:00:00Z", "2024-02-05T00:00:00Z", us(NOW))
    assert rng.span_us == 400 * 86400 * 1_000_000
    assert rng.bucket_s == 7 * 86400


# --- overview ----------------------------------------------------------------------------------


def test_active_sessions_and_live_series(env: Env) -> None:
    env.both([
        view(at(NOW, -1), session_id="s1"),  # 08:29:00
        view(at(NOW, -2), session_id="s1"),
        view(at(NOW, -0.5), anonymous_id="a2"),  # 08:29:30, same minute as s1
        view(at(NOW, -5), session_id="s4"),  # exactly 5 minutes ago: still active
        view(at(NOW, -10), user_id="u3"),  # in the series, not active
        view(at(NOW, -0.25)),  # no session key: never a session
        view(at(NOW, -61), session_id="s5"),  # before the series' first minute
        view(NOW, session_id="s6"),  # at now: windows end before now
    ])
    env.ingest(env.other, noise())
    live = env.overview()["active_sessions"]
    assert live["value"] == 3  # s1, a2, s4
    assert live["window_seconds"] == 300
    assert live["series_from"] == "2024-05-15T07:30:00Z"
    assert live["series_step_seconds"] == 60
    expected = [0] * 60
    expected[59] = 2  # 08:29: s1, a2
    expected[58] = 1  # 08:28: s1
    expected[55] = 1  # 08:25: s4
    expected[50] = 1  # 08:20: u3
    assert live["series"] == expected

    # 30 s later the current minute is partial and last: s6 shows up there.
    later = env.overview(now=at(NOW, 0.5))["active_sessions"]
    assert later["series_from"] == "2024-05-15T07:31:00Z"
    assert later["series"][-1] == 1
    assert later["series"][-2] == 2
    assert later["value"] == 3  # s1, a2 and s6; s4 (08:25:00) is now over 5 minutes ago


def test_orders_and_revenue_today_in_paris_vs_same_day_last_week(env: Env) -> None:
    # Today in Paris is 2024-05-15 from 2024-05-14T22:00Z; now is 10:30 local.
    today = [
        purchase("2024-05-14T21:30:00Z", 500.0, "EUR", "T0"),  # 23:30 yesterday: not today
        purchase("2024-05-14T22:30:00Z", 100.0, "EUR", "T1", session_id="s1"),  # 00:30, h0
        purchase("2024-05-15T06:00:00Z", 100.0, "EUR", "T1", session_id="s1"),  # T1 again
        purchase("2024-05-14T23:15:00Z", 20.0, "EUR", session_id="s2"),  # 01:15, h1
        purchase("2024-05-14T23:45:00Z", 30.0, "EUR", session_id="s3"),  # 01:45, h1
        purchase("2024-05-15T07:10:00Z", 10.0, session_id="s4"),  # no currency: EUR, h9
        purchase("2024-05-15T07:00:00Z", 12.5, "USD", "T2"),  # other currency, h9
        purchase("2024-05-15T08:31:00Z", 1000.0, "EUR", "T9"),  # after now
        {"name": "add_to_cart", "ts": "2024-05-15T07:00:00Z",
         "params": {"value": 999.0, "currency": "EUR"}},  # not a purchase
    ]
    # Same weekday last week: 2024-05-08 from 2024-05-07T22:00Z; cut at 10:30 local.
    last_week = [
        purchase("2024-05-07T21:59:00Z", 1000.0, "EUR", "P0"),  # the day before
        purchase("2024-05-07T22:05:00Z", 40.0, "EUR", "P1"),  # 00:05, h0
        purchase("2024-05-08T01:00:00Z", 40.0, "EUR", "P1"),  # P1 again
        purchase("2024-05-08T02:00:00Z", 5.0, "GBP"),  # h4, other currency
        purchase("2024-05-08T08:00:00Z", 7.0, "EUR"),  # 10:00, h10, before the cut
        purchase("2024-05-08T09:00:00Z", 3.0, "EUR"),  # 11:00, h11, after the cut
    ]
    env.both(today + last_week)
    env.ingest(env.other, noise())
    result = env.overview()

    hours = result["today"].pop("hours")
    assert result["today"] == {
        "date": "2024-05-15", "from": "2024-05-14T22:00:00Z", "to": "2024-05-15T08:30:00Z",
        "previous_date": "2024-05-08", "previous_from": "2024-05-07T22:00:00Z",
        "previous_to": "2024-05-08T08:30:00Z"}
    assert hours[0] == "2024-05-14T22:00:00Z" and hours[23] == "2024-05-15T21:00:00Z"

    orders = result["orders_today"]
    assert orders["value"] == 5  # T1 once, two without id, one without currency, T2 in USD
    assert orders["previous"] == 3  # P1 once, GBP, 7.0
    series: list[int | None] = [0] * 11 + [None] * 13  # local hours 0..10 are past
    series[0], series[1], series[9] = 1, 2, 2
    assert orders["series"] == series
    previous_series = [0] * 24
    previous_series[0] = previous_series[4] = previous_series[10] = previous_series[11] = 1
    assert orders["previous_series"] == previous_series

    revenue = result["revenue_today"]
    assert revenue["currency"] == "EUR"
    assert revenue["value"] == 160.0  # 100 + 20 + 30 + 10; USD not added
    assert revenue["other_currencies"] == {"USD": 12.5}
    assert revenue["previous"] == 47.0  # 40 + 7; 3.0 is after 10:30, GBP not added
    assert revenue["previous_other_currencies"] == {"GBP": 5.0}
    money: list[float | None] = [0.0] * 11 + [None] * 13
    money[0], money[1], money[9] = 100.0, 50.0, 10.0
    assert revenue["series"] == money
    previous_money = [0.0] * 24
    previous_money[0], previous_money[10], previous_money[11] = 40.0, 7.0, 3.0
    assert revenue["previous_series"] == previous_money


def test_today_on_a_dst_change_day(env: Env) -> None:
    # 2024-03-31: Paris skips 02:00-03:00. Now is 12:00 local (CEST, 10:00Z); last week
    # was still CET, so its same time of day is 11:00Z, not 10:00Z.
    now = "2024-03-31T10:00:00Z"
    env.both([
        purchase("2024-03-31T00:30:00Z", 1.0, "EUR"),  # 01:30 CET, h1
        purchase("2024-03-31T01:30:00Z", 2.0, "EUR"),  # 03:30 CEST, h3
        purchase("2024-03-24T10:30:00Z", 4.0, "EUR"),  # 11:30 CET: before 12:00 local
        purchase("2024-03-24T11:30:00Z", 8.0, "EUR"),  # 12:30 CET: after the cut
    ], now=now)
    result = env.overview(now=now)
    assert result["today"]["from"] == "2024-03-30T23:00:00Z"
    assert result["today"]["previous_to"] == "2024-03-24T11:00:00Z"
    revenue = result["revenue_today"]
    assert revenue["value"] == 3.0
    assert revenue["previous"] == 4.0
    assert len(revenue["series"]) == 24
    assert revenue["series"][:4] == [0.0, 1.0, 0.0, 2.0]  # the skipped hour is 0
    assert revenue["series"][12] == 0.0 and revenue["series"][13] is None
    assert revenue["previous_series"][11:13] == [4.0, 8.0]


def test_conversion_and_traffic_against_the_previous_period(env: Env) -> None:
    # rng: 2024-05-14T08:30Z to now, 48 buckets of 30 minutes; bucket 0 starts at 08:30Z.
    env.both([
        view("2024-05-15T08:05:00Z", session_id="s1"),  # bucket 47
        purchase("2024-05-15T08:10:00Z", 10.0, "EUR", session_id="s1"),
        view("2024-05-14T08:40:00Z", session_id="s2"),  # bucket 0
        view("2024-05-14T09:10:00Z", session_id="s2"),  # bucket 1
        view("2024-05-14T09:20:00Z", anonymous_id="a3"),  # bucket 1: a3 starts here
        purchase("2024-05-14T09:40:00Z", 5.0, "EUR", anonymous_id="a3"),  # bucket 2
        view("2024-05-14T09:45:00Z"),  # bucket 2, no session key
        # a8 idles 45 minutes: two visits, as in the sessions module.
        view("2024-05-14T10:05:00Z", anonymous_id="a8"),  # bucket 3
        view("2024-05-14T10:50:00Z", anonymous_id="a8"),  # bucket 4
        # The previous period: 2024-05-13T08:30Z to 2024-05-14T08:30Z.
        view("2024-05-13T08:35:00Z", session_id="s4"),  # previous bucket 0
        purchase("2024-05-13T08:50:00Z", 5.0, "EUR", session_id="s4"),
        view("2024-05-13T20:00:00Z", session_id="s5"),  # previous bucket 23
        view("2024-05-14T08:29:00Z", session_id="s2"),  # previous bucket 47 (s2 again)
        view("2024-05-13T08:29:00Z", session_id="s6"),  # before both periods
        view(NOW, session_id="s7"),  # at now: after both
    ])
    env.ingest(env.other, noise())
    result = env.overview()
    assert len(result["buckets"]) == 48
    assert result["buckets"][0] == "2024-05-14T08:30:00Z"
    assert result["previous_range"]["from"] == "2024-05-13T08:30:00Z"

    conversion = result["conversion_rate"]
    assert (conversion["sessions"], conversion["converted_sessions"]) == (5, 2)
    assert conversion["value"] == pytest.approx(2 / 5)
    assert (conversion["previous_sessions"], conversion["previous_converted_sessions"]) == (3, 1)
    assert conversion["previous"] == pytest.approx(1 / 3)
    rates: list[float | None] = [None] * 48
    # s2, a3 (converted later), a8's two visits, s1
    rates[0], rates[1], rates[3], rates[4], rates[47] = 0.0, 1.0, 0.0, 0.0, 1.0
    assert conversion["series"] == rates
    previous_rates: list[float | None] = [None] * 48
    previous_rates[0], previous_rates[23], previous_rates[47] = 1.0, 0.0, 0.0
    assert conversion["previous_series"] == previous_rates

    traffic = result["traffic"]
    assert (traffic["events"], traffic["sessions"]) == (9, 5)
    assert (traffic["previous_events"], traffic["previous_sessions"]) == (4, 3)
    events, sessions = [0] * 48, [0] * 48
    events[0], events[1], events[2], events[3], events[4], events[47] = 1, 2, 2, 1, 1, 2
    sessions[0], sessions[1], sessions[2], sessions[3], sessions[4], sessions[47] = (
        1, 2, 1, 1, 1, 1)
    assert traffic["series"]["events"] == events
    assert traffic["series"]["sessions"] == sessions
    previous_events, previous_sessions = [0] * 48, [0] * 48
    previous_events[0], previous_events[23], previous_events[47] = 2, 1, 1
    previous_sessions[0] = previous_sessions[23] = previous_sessions[47] = 1
    assert traffic["series"]["previous_events"] == previous_events
    assert traffic["series"]["previous_sessions"] == previous_sessions


def test_previous_period_is_shifted_onto_the_ranges_buckets(env: Env) -> None:
    # An unaligned hour: 61 one-minute buckets from 07:00:00, the first and last partial.
    rng = parse_range("custom", "2024-05-15T07:00:30Z", "2024-05-15T08:00:30Z", us(NOW))
    env.both([
        view("2024-05-15T07:00:35Z", session_id="s1"),  # bucket 0
        view("2024-05-15T08:00:10Z", session_id="s1"),  # bucket 60
        view("2024-05-15T06:00:40Z", session_id="p1"),  # +1 h: 07:00:40, bucket 0
        view("2024-05-15T06:59:50Z", session_id="p2"),  # +1 h: 07:59:50, bucket 59
        view("2024-05-15T06:00:20Z", session_id="p3"),  # before the previous period
    ])
    result = env.overview(rng=rng)
    assert result["buckets"][0] == "2024-05-15T07:00:00Z" and len(result["buckets"]) == 61
    traffic = result["traffic"]["series"]
    assert [i for i, n in enumerate(traffic["events"]) if n] == [0, 60]
    assert [i for i, n in enumerate(traffic["previous_events"]) if n] == [0, 59]
    assert result["traffic"]["previous_sessions"] == 2
    assert result["conversion_rate"]["previous_series"][0] == 0.0


def test_empty_project_gives_zeros_and_nulls(env: Env) -> None:
    env.ingest(env.other, noise())  # a busy neighbour changes nothing
    result = env.overview(rng=parse_range("7d", None, None, us(NOW)))
    json.dumps(result, allow_nan=False)  # JSON-ready as it is
    assert result["currency"] == "EUR" and result["timezone"] == "Europe/Paris"
    assert result["generated_at"] == "2024-05-15T08:30:00Z"
    assert result["range"]["label"] == "7d" and result["range"]["bucket_seconds"] == 10800
    assert result["active_sessions"]["value"] == 0
    assert result["active_sessions"]["series"] == [0] * 60
    assert result["orders_today"]["value"] == result["orders_today"]["previous"] == 0
    assert result["orders_today"]["series"] == [0] * 11 + [None] * 13
    assert result["revenue_today"]["value"] == result["revenue_today"]["previous"] == 0.0
    assert result["revenue_today"]["other_currencies"] == {}
    assert result["revenue_today"]["previous_series"] == [0.0] * 24
    n = len(result["buckets"])
    assert n == 57  # 7 days in 3 h buckets, the range unaligned (08:30)
    conversion = result["conversion_rate"]
    assert conversion["value"] is None and conversion["previous"] is None
    assert conversion["series"] == [None] * n
    assert conversion["sessions"] == conversion["converted_sessions"] == 0
    traffic = result["traffic"]
    assert traffic["events"] == traffic["sessions"] == traffic["previous_events"] == 0
    assert traffic["series"]["events"] == [0] * n
    assert traffic["series"]["previous_sessions"] == [0] * n


def test_neighbour_sees_only_its_own_events(env: Env) -> None:
    env.ingest(env.other, noise())
    result = env.overview(project=env.other)
    # noise(): sessions at -1 and -3 minutes are active; each minute holds one order in
    # EUR (999, once per transaction) and one in USD (5).
    assert result["active_sessions"]["value"] == 2
    assert result["orders_today"]["value"] == 2 * 3  # -1', -3', -90' (08:30 local is today)
    assert result["revenue_today"]["value"] == 999.0 * 3
    assert result["revenue_today"]["other_currencies"] == {"USD": 15.0}
    assert result["orders_today"]["previous"] == 2  # 10 minutes before 10:30 last week


def test_availability_and_open_alerts_from_monitors_and_alerts() -> None:
    from shopwatch.analytics.overview import availability_now, open_alerts
    from shopwatch.store.alerts import StoredAlert

    def monitor(name: str, status: str) -> dict[str, Any]:
        return {"name": name, "status": status}

    assert availability_now([monitor("home", "up"), monitor("checkout", "down"),
                             monitor("cdn", "degraded"), monitor("new", "unknown"),
                             monitor("old", "paused")]) == {
        "status": "ok", "value": round(1 / 3, 6), "up": 1, "judged": 3,
        "down": ["checkout"], "degraded": ["cdn"]}
    none = availability_now([monitor("new", "unknown")])
    assert none["status"] == "none" and "docs/monitors.md" in none["message"]

    def alert(rule: str, phase: str) -> StoredAlert:
        return StoredAlert(1, 1, rule, phase, "warning", 0.0, None, None, None, None, None,
                           None, None, None, 0.0)

    assert open_alerts([alert("payments", "firing"), alert("slow", "pending")], 3) == {
        "status": "ok", "value": 1, "firing": ["payments"], "pending": ["slow"], "rules": 3}
    assert open_alerts([], 0)["status"] == "none"
    assert open_alerts([], 2) == {"status": "ok", "value": 0, "firing": [], "pending": [],
                                  "rules": 2}


def test_today_hours_follow_the_local_clock_on_a_dst_day() -> None:
    """On the day Paris moves its clocks back, 02:00 comes twice and 03:00 local starts
    two hours after 01:00 local: the hours list says where each local hour starts."""
    from zoneinfo import ZoneInfo

    from shopwatch.analytics.overview import _Today

    noon = int(datetime(2026, 10, 25, 11, 0, tzinfo=UTC).timestamp() * 1_000_000)
    hours = _Today(ZoneInfo("Europe/Paris"), noon).as_dict()["hours"]
    assert len(hours) == 24
    assert hours[0] == "2026-10-24T22:00:00Z"  # local midnight, still summer time (+02)
    assert hours[1] == "2026-10-24T23:00:00Z"
    assert hours[3] == "2026-10-25T02:00:00Z"  # 03:00 local, winter time (+01)
