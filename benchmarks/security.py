"""Security detections benchmark: precision and recall on labelled scenarios, and the
cost of a detection pass.

``make bench-security``:

1. **Labelled sets** (``tests/security_scenarios.py``): for each seed, three days of
   ordinary traffic, then eight hours with honest situations that look suspicious (a
   busy sale, a shared office network, customers who change address and order, one who
   forgets a password) and nine attacks (brute force, credential stuffing from one
   network and spread over 150, card testing from one session and spread over 40
   networks, an account takeover, a headless scraper, a bot with a browser's user
   agent, sign-up abuse). Events go through the ingest pipeline into a real DuckDB
   file; the detections run with their built-in rules every 10 minutes of event time,
   as ``shopwatch serve`` would; findings are scored against the labels. The same with
   the two *hard* situations added (a brute force slower than any window; a traveller
   abroad), which the detections are known to get wrong.
2. **Cost**: one whole pass (six detections, one project) at the end of the period, on
   the labelled world and on one with ``--events`` ordinary events (default 1,000,000);
   p50/p95 over ``--repeat`` passes after a warm-up, against its **baseline**: one
   ``SELECT name, count(*) ... GROUP BY name`` over each detection's window (the
   cheapest read of the rows a detection looks at) and against the 60 s
   ``security_interval``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from shopwatch.checks.monitor import seconds
from shopwatch.ingest import pipeline
from shopwatch.runtime import Runtime
from shopwatch.security.detections import DEFAULT_WINDOWS
from shopwatch.settings import defaults
from shopwatch.store import findings as store
from tests.security_scenarios import World, build, rum_batches, run_watch, score


def load(world: World, data: Path) -> tuple[Runtime, int]:
    """A runtime on a fresh data directory holding the world's events and RUM rows."""
    rt = Runtime.open(defaults().replace(data_dir=str(data), security_interval=0.0,
                                         alerts_interval=0.0, reports_interval=0.0,
                                         checks_enabled=False, store_process=False))
    rt.writer.start()
    project = rt.state.create_project("bench")
    now_us = time.time_ns() // 1000
    pending = []
    for i in range(0, len(world.events), 1000):
        body = msgspec.json.encode({"events": world.events[i:i + 1000]})
        outcome = pipeline.process(body, pipeline.Format.JSON, project.id, now_us, rt.pipeline)
        if outcome.rejected:
            raise SystemExit(f"rejected: {outcome.rejected[:2]}")
        pending.append(rt.writer.submit(outcome.rows))
        if len(pending) > 20:
            pending.pop(0).result(timeout=120)
    for future in pending:
        future.result(timeout=120)
    for batch in rum_batches(project.id, world):
        rt.writer.submit(batch).result(timeout=120)
    return rt, project.id


def labelled(seeds: list[int], hard: bool) -> None:
    print(f"\n{'labelled set' + (' + hard situations' if hard else ''):<40} "
          f"{'attacks':>8} {'found':>6} {'findings':>9} {'true':>5} {'false':>6} "
          f"{'precision':>10} {'recall':>7}")
    tp = fp = attacks = found = 0
    for seed in seeds:
        world = build(time.time() - 120, seed, hard=hard)
        with tempfile.TemporaryDirectory() as tmp:
            rt, project_id = load(world, Path(tmp))
            try:
                run_watch(rt, world)
                result = score(world, store.list_findings(rt.state, project_id, limit=5000))
            finally:
                rt.close()
        n_found = sum(1 for f in result.found.values() if f)
        print(f"{'seed ' + str(seed):<40} {len(result.found):>8} {n_found:>6} "
              f"{len(result.true_positives) + len(result.false_positives):>9} "
              f"{len(result.true_positives):>5} {len(result.false_positives):>6} "
              f"{result.precision:>10.3f} {result.recall:>7.3f}")
        for name, hits in result.found.items():
            if not hits:
                print(f"    missed: {name}")
        for f in result.false_positives:
            print(f"    false positive: {f.kind} {f.subject}: {f.title}")
        tp += len(result.true_positives)
        fp += len(result.false_positives)
        attacks += len(result.found)
        found += n_found
    print(f"{'all seeds':<40} {attacks:>8} {found:>6} {tp + fp:>9} {tp:>5} {fp:>6} "
          f"{tp / (tp + fp) if tp + fp else 1:>10.3f} {found / attacks:>7.3f}")


def cost(world: World, repeat: int, label: str) -> None:
    from shopwatch.security.watch import Watch

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rt, project_id = load(world, Path(tmp))
        loaded = time.perf_counter() - t0
        try:
            watch = Watch(rt.state, rt.events, lambda: [], lambda n, ids: None)
            end_us = int(world.end * 1_000_000)
            windows = sorted({int(seconds(w, "window") * 1_000_000)
                              for w in DEFAULT_WINDOWS.values()})

            def baseline() -> None:
                for kind, w in DEFAULT_WINDOWS.items():
                    width = int(seconds(w, kind) * 1_000_000)
                    rt.events.query(
                        "SELECT name, count(*) FROM events WHERE project_id = ? AND ts >= "
                        "make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT) "
                        "GROUP BY name", (project_id, end_us - width, end_us))

            watch.run(world.end)
            baseline()
            passes, bases = [], []
            for _ in range(repeat):
                t = time.perf_counter()
                watch.run(world.end)
                passes.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                baseline()
                bases.append((time.perf_counter() - t) * 1000)
        finally:
            rt.close()
    p50, p95 = statistics.median(passes), sorted(passes)[int(0.95 * (len(passes) - 1))]
    b50 = statistics.median(bases)
    print(f"{label:<34} {len(world.events):>10,} {loaded:>8.1f} s {p50:>8.1f} {p95:>8.1f} "
          f"{b50:>9.1f} {p50 / b50:>6.1f}x {p50 / 60_000:>9.3%}   ({len(windows)} windows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="labelled sets to score")
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="ordinary events of the cost run (about)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    seeds = list(range(1, args.seeds + 1))
    labelled(seeds, hard=False)
    labelled(seeds, hard=True)
    print(f"\n{'detection pass (6 kinds)':<34} {'events':>10} {'load':>10} {'p50 ms':>8} "
          f"{'p95 ms':>8} {'base ms':>9} {'ratio':>7} {'of 60 s':>9}")
    cost(build(time.time() - 120, 1), args.repeat, "labelled world")
    # Visits average about 3.4 events; the period and the 3 days before hold 8 hours at
    # per_hour visits an hour and 72 at two thirds of it.
    per_hour = args.events / 3.4 / (8 + 72 * 2 / 3)
    cost(build(time.time() - 120, 1, per_hour=per_hour), args.repeat,
         f"~{args.events:,} ordinary events")


if __name__ == "__main__":
    main()
