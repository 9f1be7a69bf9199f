"""Business section benchmark: the Customers, Feedback and Service desk figures on the
demo's history.

``make bench-business``:

1. **Data**: ``--days`` days (default 28) of the demo shop's history
   (``shopwatch.demo.history.backfill``, without traces), written in-process through the
   ingest pipeline into a fresh data directory: visits, orders by returning customers,
   refunds, survey answers with comments, support contacts as the demo's desk records
   them, the weekly attacks.
2. **Reads** over the last 30 days, as the API computes them (the analytics functions
   the routes call, in this process): ``customers.customers`` (KPIs, cohorts, segments,
   lifetime value, acquisition cost) with the LTV estimate kept from the previous read
   of the same book, and again with it dropped first (what a read after a new order
   costs: both models refitted), ``customers.customer_list`` (first page),
   ``feedback.feedback``, ``feedback.comments`` (first page, no search) and
   ``service_desk.service_desk``; p50/p95 of ``--repeat`` reads after a warm-up, each
   interleaved with the **baseline**: one ``SELECT name, count(*) … GROUP BY name`` over
   the same 30 days (the cheapest read of the events they look at).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shopwatch.analytics import customers, feedback, service_desk
from shopwatch.analytics.timerange import parse_range
from shopwatch.demo import history
from shopwatch.demo.shop import catalogue
from shopwatch.runtime import Runtime
from shopwatch.settings import defaults


def timed(fn: Callable[[], Any], base: Callable[[], Any], repeat: int
          ) -> tuple[float, float, float]:
    fn()
    base()
    ours, theirs = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ours.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        base()
        theirs.append((time.perf_counter() - t) * 1000)
    ours.sort()
    return statistics.median(ours), ours[int(0.95 * (len(ours) - 1))], statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=28)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime.open(defaults().replace(
            data_dir=tmp, security_interval=0.0, alerts_interval=0.0, reports_interval=0.0,
            checks_enabled=False, store_process=False,
            max_event_age=(args.days + 2) * 86400.0))
        rt.writer.start()
        try:
            project = rt.state.create_project("bench", "EUR", "Europe/Paris")
            products = [history.Product(p.id, p.name, p.category, p.price)
                        for p in catalogue.PRODUCTS]
            started = time.perf_counter()
            sink = history.Ingest(rt, project.id)
            result = history.backfill(sink, products, days=args.days, now=datetime.now(UTC),
                                      timezone="Europe/Paris", currency="EUR", spans=False)
            sink.close()
            print(f"history: {result.events:,} events ({len(result.orders):,} orders, "
                  f"{result.counts['survey_response']:,} survey answers, "
                  f"{result.counts['support_contact']:,} contacts) written in "
                  f"{time.perf_counter() - started:.1f} s")
            now_us = time.time_ns() // 1000
            rng = parse_range("30d", None, None, now_us)
            weights = customers.parse_weights(rt.settings.customer_health_weights)

            def base() -> None:
                rt.events.query(
                    "SELECT name, count(*) FROM events WHERE project_id = ? AND ts >= "
                    "make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT) "
                    "GROUP BY name", (project.id, rng.start_us, rng.end_us))

            def fresh_customers() -> Any:
                customers._ESTIMATES.clear()  # as after a new order: the models refitted
                return customers.customers(
                    rt.events, rt.state, project, rng,
                    churn_days=rt.settings.customer_churn_days, weights=weights, months=12)

            reads: list[tuple[str, Callable[[], Any]]] = [
                ("customers (KPIs, cohorts, LTV, CAC)", lambda: customers.customers(
                    rt.events, rt.state, project, rng,
                    churn_days=rt.settings.customer_churn_days, weights=weights, months=12)),
                ("customers, LTV models refitted", fresh_customers),
                ("customers list (first 50)", lambda: customers.customer_list(
                    rt.events, project, rng, weights=weights)),
                ("feedback (NPS, CSAT, segments)", lambda: feedback.feedback(
                    rt.events, project.id, rng, [], feedback.MAX_SEGMENT_ROWS)),
                ("feedback comments (first page)", lambda: feedback.comments(
                    rt.events, project.id, rng, "", [])),
                ("service desk", lambda: service_desk.service_desk(
                    rt.events, project.id, rng, timezone="Europe/Paris", now_us=now_us)),
            ]
            print(f"\n{'read (30 days)':<38} {'p50 ms':>8} {'p95 ms':>8} {'base ms':>8} "
                  f"{'ratio':>6}")
            for label, fn in reads:
                p50, p95, b50 = timed(fn, base, args.repeat)
                print(f"{label:<38} {p50:>8.1f} {p95:>8.1f} {b50:>8.1f} {p50 / b50:>5.1f}x")
            found = customers.customers(rt.events, rt.state, project, rng,
                                        churn_days=rt.settings.customer_churn_days,
                                        weights=weights, months=12)
            print(f"\nLTV method: {found['ltv']['method']} ({found['ltv']['reason']})")
        finally:
            rt.close()


if __name__ == "__main__":
    main()
