"""The per-project token bucket, on a clock the test turns by hand."""

from __future__ import annotations

import pytest

from shopwatch.ingest.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_zero_means_unlimited(clock: Clock) -> None:
    limiter = RateLimiter(0, clock=clock)
    assert all(limiter.take(1, 1_000_000) == 0 for _ in range(10))


def test_burst_of_one_second_then_refused_with_the_wait(clock: Clock) -> None:
    limiter = RateLimiter(10, clock=clock)
    assert limiter.take(1, 6) == 0
    assert limiter.take(1, 4) == 0
    wait = limiter.take(1, 5)
    assert wait == 1
    clock.now += 0.3
    assert limiter.take(1, 5) == 1  # 3 tokens: still short
    clock.now += wait
    assert limiter.take(1, 5) == 0


def test_retrying_after_retry_after_succeeds(clock: Clock) -> None:
    limiter = RateLimiter(5, clock=clock)
    for project, n in enumerate((1, 3, 5, 12)):
        assert limiter.take(project, 5) == 0  # empty the bucket
        wait = limiter.take(project, n)
        assert wait >= 1
        clock.now += wait
        assert limiter.take(project, n) == 0, f"{n} events refused again after {wait}s"


def test_a_request_larger_than_the_burst_is_not_refused_forever(clock: Clock) -> None:
    limiter = RateLimiter(10, clock=clock)
    assert limiter.take(1, 50) == 0  # a full bucket admits it, leaving 40 events of debt
    wait = limiter.take(1, 1)
    assert wait == 5  # the debt is paid back at the rate: the average holds
    clock.now += 4.0  # 41 tokens short, 40 refilled
    assert limiter.take(1, 1) >= 1
    clock.now += 1.0
    assert limiter.take(1, 1) == 0


def test_refused_requests_take_nothing(clock: Clock) -> None:
    limiter = RateLimiter(10, clock=clock)
    assert limiter.take(1, 8) == 0
    for _ in range(5):
        assert limiter.take(1, 5) == 1
    assert limiter.take(1, 2) == 0  # the 2 tokens left were not spent by the refusals


def test_projects_have_their_own_buckets(clock: Clock) -> None:
    limiter = RateLimiter(3, clock=clock)
    assert limiter.take(1, 3) == 0
    assert limiter.take(1, 1) == 1
    assert limiter.take(2, 3) == 0
