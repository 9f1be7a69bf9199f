"""Backfill benchmark: how fast `shopwatch demo --backfill` writes history.

Starts `shopwatch serve` (a separate process, fresh data directory), then in one run:

- **generation**: the history model alone (`demo.history.backfill` into a sink that
  keeps nothing): the ceiling of the producer;
- **backfill**: the same days generated and sent through `shopwatch.client.ShopwatchClient`
  (batches of 1,000) to the server, until every event is acknowledged: what the demo did
  before it wrote its history in-process (issue 6), and what a shop's import over HTTP does;
- **baseline**: the same events, pre-encoded into 1,000-event bodies, posted one after
  the other with plain httpx to another project: the server's ingest rate for one
  sequential sender, with no generation and no client.

Usage: ``.venv/bin/python benchmarks/backfill.py [--days 7]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from shopwatch.client import ShopwatchClient
from shopwatch.demo import history
from shopwatch.demo.shop import catalogue

sys.path.insert(0, str(Path(__file__).parent))
from ingest import free_port, start_process, stop_process, wait_port


class Collect:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        return str(event.get("id", ""))


class Null:
    def send(self, event: dict[str, Any]) -> str:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()
    products = [history.Product(p.id, p.name, p.category, p.price) for p in catalogue.PRODUCTS]
    now = datetime.now(UTC)
    shopwatch = Path(sys.executable).with_name("shopwatch")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SHOPWATCH_MAX_EVENT_AGE": f"{int(args.days) + 2}d"}
        projects = [json.loads(subprocess.run(
            [str(shopwatch), "project", "create", name, "--json", "--data", tmp],
            capture_output=True, text=True, check=True, env=env).stdout)
            for name in ("backfill", "baseline")]
        port = free_port()
        server = start_process([str(shopwatch), "serve", "--data", tmp, "--port", str(port)],
                               Path(tmp), env)
        try:
            wait_port(port)
            base = f"http://127.0.0.1:{port}"

            t0 = time.perf_counter()
            generated = history.backfill(Null(), products, days=args.days, now=now)
            gen_rate = generated.events / (time.perf_counter() - t0)

            t0 = time.perf_counter()
            client = ShopwatchClient(base, projects[0]["ingest_key"], batch_size=1000,
                                     max_queue=200_000, flush_interval=0.2)
            sent = history.backfill(history.Throttled(client), products, days=args.days, now=now)
            client.close(300)
            backfill_s = time.perf_counter() - t0
            stats = client.stats

            collected = Collect()
            history.backfill(collected, products, days=args.days, now=now)
            encode = msgspec.json.Encoder().encode
            bodies = [encode({"events": collected.events[i:i + 1000]})
                      for i in range(0, len(collected.events), 1000)]
            with httpx.Client(base_url=base, timeout=60, headers={
                    "Authorization": f"Bearer {projects[1]['ingest_key']}",
                    "Content-Type": "application/json"}) as plain:
                t0 = time.perf_counter()
                for body in bodies:
                    response = plain.post("/api/v1/events", content=body)
                    assert response.status_code == 200, response.text
                baseline_s = time.perf_counter() - t0
        finally:
            stop_process(server)
    print(f"{args.days:g} days of history: {sent.events:,} events, {len(sent.orders):,} orders, "
          f"{sent.visits:,} visits")
    print(f"{'generation alone':28}{gen_rate:>12,.0f} events/s")
    print(f"{'backfill (demo)':28}{sent.events / backfill_s:>12,.0f} events/s   "
          f"({backfill_s:.1f} s; sent {stats.sent:,}, dropped {stats.dropped}, "
          f"retries {stats.retries})")
    print(f"{'baseline: sequential POSTs':28}{len(collected.events) / baseline_s:>12,.0f} "
          f"events/s   ({baseline_s:.1f} s)")
    ratio = (sent.events / backfill_s) / (len(collected.events) / baseline_s)
    print(f"backfill / baseline = {ratio:.2f}")


if __name__ == "__main__":
    main()
