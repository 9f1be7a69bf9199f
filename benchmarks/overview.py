"""Overview benchmark: how fast the overview's figures come back on millions of events.

Fills a fresh DuckDB event store (the real schema, through its migrations) with N events
of one project spread over the last 35 days (plus as many of a second project, which
every query must skip), then times, for each period preset, in one run:

- **shopwatch**: ``analytics.overview.overview()`` — every figure of the overview page
  (four GROUP BY queries and their assembly), as ``GET /api/v1/overview`` computes it;
- **baseline**: one scan that any answer must at least make — events and distinct
  sessions of the project in the period, one query, no buckets, no series.

Prints the median and max of ``--repeat`` runs after one warm-up, and the ratio.
Usage: ``.venv/bin/python benchmarks/overview.py [--events 1000000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from shopwatch.analytics.overview import overview
from shopwatch.analytics.timerange import PRESETS, parse_range
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import StateStore

# Weighted event names of a shop's traffic: mostly page and product views, ~2 % purchases;
# six events per session.
_FILL = """
INSERT INTO events (project_id, id, name, ts, received_at, session_id, page, country,
                    device_category, value, currency, transaction_id, params, flags)
SELECT ?::INTEGER, uuid()::VARCHAR, name, ts, ts, 's' || (i // 6)::VARCHAR,
       '/p/' || (i % 500)::VARCHAR, 'FR', 'mobile',
       CASE WHEN name = 'purchase' THEN 20 + (i % 180) END,
       CASE WHEN name = 'purchase' THEN 'EUR' END,
       CASE WHEN name = 'purchase' THEN 'T' || i::VARCHAR END,
       '{}', []
FROM (
  SELECT i,
    make_timestamp((? - (hash(i) % (35::UBIGINT * 86400 * 1000000)))::BIGINT) AS ts,
    CASE WHEN r < 0.45 THEN 'page_view' WHEN r < 0.75 THEN 'view_item'
         WHEN r < 0.88 THEN 'add_to_cart' WHEN r < 0.95 THEN 'begin_checkout'
         WHEN r < 0.98 THEN 'add_payment_info' ELSE 'purchase' END AS name
  FROM (SELECT range AS i, (hash(range * 7919) % 10000) / 10000.0 AS r FROM range(?))
)
ORDER BY ts  -- events arrive roughly in time order, which DuckDB's zone maps rely on
"""
_BASELINE = """
SELECT count(*), count(DISTINCT COALESCE(session_id, anonymous_id, user_id))
FROM events WHERE project_id = ? AND ts >= make_timestamp(?::BIGINT)
  AND ts < make_timestamp(?::BIGINT)
"""


def timed(repeat: int, run: object) -> tuple[float, float]:
    assert callable(run)
    run()  # warm-up: the first read of a column pays for loading it
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events of the measured project (the other project gets as many)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = StateStore(Path(tmp) / "state.sqlite")
        shop = state.create_project("shop", "EUR", "Europe/Paris")
        other = state.create_project("other shop")
        store = DuckDBEventStore(Path(tmp) / "events.duckdb")
        now_us = time.time_ns() // 1000
        t0 = time.perf_counter()
        for project in (shop, other):
            store.query(_FILL, [project.id, now_us, args.events])
        store.checkpoint()
        print(f"filled {2 * args.events:,} events in {time.perf_counter() - t0:.1f} s "
              f"({store.size_bytes() / 2**20:.0f} MiB); measuring {args.events:,} of project "
              f"'{shop.name}', DuckDB threads=1 (the server's default)\n")
        print(f"{'period':8}{'overview p50 ms':>17}{'max':>8}{'baseline p50 ms':>18}{'max':>8}"
              f"{'ratio':>8}")
        for name in PRESETS:
            rng = parse_range(name, None, None, now_us)
            full = timed(args.repeat, lambda rng=rng: overview(store, shop, rng, now_us))
            base = timed(args.repeat, lambda rng=rng: store.query(
                _BASELINE, [shop.id, rng.start_us, rng.end_us]))
            print(f"{name:8}{full[0]:>17.1f}{full[1]:>8.1f}{base[0]:>18.1f}{base[1]:>8.1f}"
                  f"{full[0] / base[0]:>8.1f}")
        store.close()
        state.close()


if __name__ == "__main__":
    main()
