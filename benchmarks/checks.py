"""Checks benchmark: ``http`` monitors on a 60 s schedule in one process, next to
Prometheus's blackbox exporter probing the same targets, one run.

    python benchmarks/checks.py [--monitors 5000] [--minutes 2] [--warmup 60]

What it does, all on this machine:

1. **Targets**: ``--targets`` uvicorn processes (uvloop, httptools) serving a tiny ASGI
   app on loopback that answers every path with 200 and a small body. Their CPU is read
   from ``/proc`` during each measured window, to show they are not the limit.
2. **Shopwatch**: a fresh data directory; ``--monitors`` ``http`` monitors (interval
   60 s, URL ``/m/<i>``, spread over the targets) parsed from YAML and stored with
   ``shopwatch.store.monitors.apply``. The real :class:`~shopwatch.checks.scheduler.Scheduler`
   runs in a process of its own (loopback allow-listed, the server's default
   concurrency), handing its batches to the real writer, which commits them to a DuckDB
   event store *in the same process* (the server puts DuckDB in a child process; here
   its cost is counted with the scheduler's). After ``--warmup`` seconds (one interval:
   every monitor has had its first, randomly placed run) it measures for ``--minutes``:
   checks started per minute, schedule drift (when the check began running in its worker
   thread minus when it was due, recorded by a subclass: the scheduler itself is
   unchanged), and the process's CPU time (``getrusage``; per thread from
   ``/proc/self/task``). At the end every result must be in the event store.
3. **Baseline**: ``prometheus-blackbox-exporter`` (Debian package) with an ``http_2xx``
   module, driven the way Prometheus scrapes it: every target once a minute at a fixed
   offset spread over the minute, ``GET /probe?module=http_2xx&target=...`` over
   keep-alive connections from a separate load process, the same number of probes of the
   same targets. Its CPU time is read from ``/proc/<pid>/stat``.

It prints both side by side, with CPU seconds per 1,000 checks / probes. The bar
(issue 7): 5,000 checks per minute with p99 schedule drift under 1 s, under one core
(under 60 CPU seconds per minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import free_port, start_process, stop_process, wait_port  # noqa: E402
from shopwatch.checks.monitor import Monitor  # noqa: E402
from shopwatch.checks.scheduler import Scheduler  # noqa: E402

INTERVAL_S = 60.0
TICK = os.sysconf("SC_CLK_TCK")
BLACKBOX = "prometheus-blackbox-exporter"

TARGET_APP = '''
BODY = b"<!doctype html><title>Shop</title><p>Add to cart</p>\\n"
HEADERS = [(b"content-type", b"text/html; charset=utf-8"),
           (b"content-length", str(len(BODY)).encode())]
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"}); return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
'''

BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
"""


# --- CPU time from /proc ---------------------------------------------------------------


def proc_cpu(pid: int | str, task: int | None = None) -> float:
    """User + system CPU seconds of a process (or of one of its threads)."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    with open(path) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def threads_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by native thread id."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            out[int(tid)] = proc_cpu("self", int(tid))
    return out


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mib(pid: int | str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


# --- Shopwatch: the scheduler in a process of its own -----------------------------------


class MeasuredScheduler(Scheduler):
    """The scheduler, unchanged, recording when each check began running in its worker
    thread and how late that was after it was due."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.due: dict[tuple[int, str], float] = {}
        self.runs: list[tuple[float, float, float]] = []  # started, drift, finished

    def _fire(self, entry: Any, now: float) -> None:
        # Set before the check is submitted: the worker may start at once.
        self.due[(entry.project_id, entry.monitor.name)] = entry.due
        super()._fire(entry, now)

    def _check(self, project_id: int, monitor: Monitor, base_url: str) -> None:
        started = self._clock()
        due = self.due.get((project_id, monitor.name), started)
        try:
            super()._check(project_id, monitor, base_url)
        finally:
            self.runs.append((started, started - due, self._clock()))


def _scheduler_entry(data: str, warmup: float, seconds: float, concurrency: int,
                     target_pids: list[int], out: Any) -> None:
    from prometheus_client import CollectorRegistry

    from shopwatch.checks.safety import AddressPolicy
    from shopwatch.checks.scheduler import SchedulerMetrics, StoredMonitors, writer_sink
    from shopwatch.ingest.writer import Writer
    from shopwatch.store.base import EventBatch
    from shopwatch.store.duckdb import DuckDBEventStore
    from shopwatch.store.state import StateStore

    state = StateStore(Path(data) / "state.sqlite")
    events = DuckDBEventStore(Path(data) / "events.duckdb")
    # As the server builds it (shopwatch/runtime.py), less the metrics.
    writer = Writer(events, on_idle=events.checkpoint, rollup=events.refresh_rollups)
    writer.start()
    handed = [0]

    def submit(batch: EventBatch) -> object:
        handed[0] += batch.n_checks
        return writer.submit(batch)

    metrics = SchedulerMetrics(CollectorRegistry())
    scheduler = MeasuredScheduler(StoredMonitors(state), writer_sink(submit),
                                  AddressPolicy.parse(["127.0.0.1"]),
                                  concurrency=concurrency, metrics=metrics)

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    def snapshot() -> dict[str, Any]:
        return {"t": time.monotonic(), "cpu": self_cpu(), "threads": threads_cpu(),
                "targets": sum(proc_cpu(p) for p in target_pids),
                "drift_le_1": sample("shopwatch_check_drift_seconds_bucket", le="1.0"),
                "drift_n": sample("shopwatch_check_drift_seconds_count"),
                "skipped": sample("shopwatch_checks_skipped_total"),
                "failed": sample("shopwatch_checks_total", outcome="failed"),
                "ok": sample("shopwatch_checks_total", outcome="ok")}

    scheduler.start()
    time.sleep(warmup)
    a = snapshot()
    time.sleep(seconds)
    b = snapshot()
    scheduler.stop()
    writer.stop()
    stored = events.query("SELECT count(*), count(*) FILTER (WHERE ok), "
                          "quantile_cont(duration_ms, [0.5, 0.99]) FROM check_results")[0]
    events.close()
    state.close()

    loop_tid = scheduler._thread.native_id
    writer_tid = writer._thread.native_id

    def thread_cpu(tid: int | None) -> float:
        if tid is None:
            return 0.0
        return float(b["threads"].get(tid, 0.0) - a["threads"].get(tid, 0.0))

    window = [r for r in scheduler.runs if a["t"] <= r[0] < b["t"]]
    cpu = b["cpu"] - a["cpu"]
    out.put({
        "seconds": b["t"] - a["t"],
        "monitors": scheduler.monitors,
        "started": len(window),
        "finished": sum(1 for r in scheduler.runs if a["t"] <= r[2] < b["t"]),
        "drift": [r[1] for r in window],
        "cpu": cpu,
        "cpu_loop": thread_cpu(loop_tid),
        "cpu_writer": thread_cpu(writer_tid),
        "targets_cpu": b["targets"] - a["targets"],
        "hist_le_1": b["drift_le_1"] - a["drift_le_1"],
        "hist_n": b["drift_n"] - a["drift_n"],
        "skipped": b["skipped"] - a["skipped"],
        "failed": b["failed"] - a["failed"],
        "ok": b["ok"] - a["ok"],
        "runs_total": len(scheduler.runs),
        "handed_total": handed[0],
        "stored_total": int(stored[0]),
        "stored_ok": int(stored[1]),
        "duration_ms": list(stored[2]) if stored[2] is not None else [],
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })


def in_process(target: Any, args: tuple[Any, ...], timeout: float) -> dict[str, Any]:
    """``target(*args, queue)`` in a spawned process; what it puts on the queue."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    try:
        result: dict[str, Any] = out.get(timeout=timeout)
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    return result


def run_scheduler(data: Path, args: argparse.Namespace, target_pids: list[int]
                  ) -> dict[str, Any]:
    seconds = args.minutes * 60
    return in_process(_scheduler_entry, (str(data), args.warmup, seconds, args.concurrency,
                                         target_pids), args.warmup + seconds + 180)


# --- Baseline: blackbox exporter, scraped like Prometheus -------------------------------


# What Prometheus sends with a scrape (2.x): it asks for gzip and says its timeout.
SCRAPE_HEAD = (
    "GET /probe?module=http_2xx&target={target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    "User-Agent: Prometheus/2.45.0\r\nAccept: application/openmetrics-text;version=1.0.0;"
    "q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,"
    "*/*;q=0.2\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
               ) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 exchange (Content-Length or chunked; gzip undone)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)}
    if headers.get(b"transfer-encoding") == b"chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()  # no trailers from Go's server
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(parts)
    else:
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    if headers.get(b"content-encoding") == b"gzip":
        body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
    return status, body


async def _scrape(port: int, targets: list[str], warmup: float, seconds: float,
                  concurrency: int, exporter_pid: int, target_pids: list[int]
                  ) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    requests = [SCRAPE_HEAD.format(target=quote(t, safe=""), port=port).encode()
                for t in targets]
    connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
        asyncio.Queue())
    for _ in range(concurrency):  # Prometheus keeps its connections to an exporter open
        connections.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    records: list[tuple[float, float, float, bool]] = []  # started, late, finished, success
    errors = 0
    marks: dict[str, dict[str, float]] = {}
    t0 = loop.time() + 0.5
    window = (t0 + warmup, t0 + warmup + seconds)

    def snapshot() -> dict[str, float]:
        return {"t": loop.time(), "exporter": proc_cpu(exporter_pid),
                "targets": sum(proc_cpu(p) for p in target_pids), "self": self_cpu()}

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - loop.time()))
        marks[name] = snapshot()

    async def probe(i: int, due: float) -> None:
        nonlocal errors
        started = loop.time()
        conn = await connections.get()
        try:
            status, body = await asyncio.wait_for(_get(*conn, requests[i]), 30)
            success = status == 200 and b"\nprobe_success 1" in body
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            success = False
            conn[1].close()
            conn = await asyncio.open_connection("127.0.0.1", port)
        connections.put_nowait(conn)
        records.append((started, started - due, loop.time(), success))

    tasks: set[asyncio.Task[None]] = set()
    marking = [asyncio.create_task(mark("a", window[0])),
               asyncio.create_task(mark("b", window[1]))]
    n, k = len(targets), 0
    while True:
        cycle, i = divmod(k, n)
        # Each target at a fixed offset in the interval, as Prometheus spreads them.
        due = t0 + cycle * INTERVAL_S + i * INTERVAL_S / n
        if due >= window[1]:
            break
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(probe(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        k += 1
    await asyncio.gather(*marking)
    await asyncio.gather(*tasks)
    while not connections.empty():
        connections.get_nowait()[1].close()
    a, b = marks["a"], marks["b"]
    inside = [r for r in records if a["t"] <= r[0] < b["t"]]
    return {"seconds": b["t"] - a["t"], "started": len(inside),
            "finished": sum(1 for r in records if a["t"] <= r[2] < b["t"]),
            "success": sum(1 for r in inside if r[3]), "errors": errors,
            "late": [r[1] for r in inside], "latency": [r[2] - r[0] for r in inside],
            "cpu": b["exporter"] - a["exporter"], "targets_cpu": b["targets"] - a["targets"],
            "scraper_cpu": b["self"] - a["self"], "rss_mib": rss_mib(exporter_pid)}


def _scrape_entry(*args: Any) -> None:
    *rest, out = args
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_scrape(*rest)))


def run_blackbox(binary: str, tmp: Path, targets: list[str], args: argparse.Namespace,
                 target_pids: list[int]) -> dict[str, Any]:
    config = tmp / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    port = free_port()
    exporter = start_process([binary, f"--config.file={config}",
                              f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                             tmp)
    try:
        wait_port(port)
        seconds = args.minutes * 60
        return in_process(_scrape_entry, (port, targets, args.baseline_warmup, seconds,
                                          args.concurrency, exporter.pid, target_pids),
                          args.baseline_warmup + seconds + 120)
    finally:
        stop_process(exporter)


# --- main ------------------------------------------------------------------------------


def monitors_yaml(urls: list[str]) -> str:
    lines = ["monitors:"]
    lines += [f'  - {{name: m{i:05d}, kind: http, url: "{url}", interval: 60s}}'
              for i, url in enumerate(urls)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--monitors", type=int, default=5000)
    parser.add_argument("--minutes", type=float, default=2.0,
                        help="measured minutes, for each of Shopwatch and the baseline")
    parser.add_argument("--warmup", type=float, default=INTERVAL_S,
                        help="seconds before Shopwatch is measured (one interval)")
    parser.add_argument("--baseline-warmup", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50,
                        help="checks in flight at most (the server's default), and the "
                             "scraper's connections to the exporter")
    parser.add_argument("--targets", type=int, default=1, help="target server processes")
    parser.add_argument("--blackbox", help=f"path of {BLACKBOX} (default: on PATH)")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    from shopwatch.checks.monitor import parse_monitors
    from shopwatch.store.monitors import apply
    from shopwatch.store.state import StateStore

    # `make bench-checks` installs the Debian package when it is missing.
    binary = None if args.no_baseline else shutil.which(args.blackbox or BLACKBOX)
    if binary is None and not args.no_baseline:
        sys.exit(f"{BLACKBOX} not found: apt-get install {BLACKBOX}, or pass --no-baseline")

    tmp = Path(tempfile.mkdtemp(prefix="shopwatch-bench-checks-"))
    (tmp / "target_app.py").write_text(TARGET_APP)
    ports = [free_port() for _ in range(args.targets)]
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/m/{i}" for i in range(args.monitors)]
    targets = [start_process([sys.executable, "-m", "uvicorn", "target_app:app", "--port",
                              str(port), "--loop", "uvloop", "--http", "httptools",
                              "--log-level", "warning", "--no-access-log"], tmp)
               for port in ports]
    target_pids = [t.pid for t in targets]
    try:
        for port in ports:
            wait_port(port)
        print(f"storing {args.monitors:,} http monitors ...", flush=True)
        t0 = time.perf_counter()
        data = tmp / "data"
        data.mkdir()
        state = StateStore(data / "state.sqlite")
        project = state.create_project("bench")
        apply(state, project.id, parse_monitors(monitors_yaml(urls), "bench.yml"))
        state.close()
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
        print(f"shopwatch scheduler: {args.warmup:g} s warm-up, {args.minutes:g} min "
              "measured ...", flush=True)
        sw = run_scheduler(data, args, target_pids)
        bb = None
        if binary is not None:
            print(f"baseline: {binary}, {args.baseline_warmup:g} s warm-up, "
                  f"{args.minutes:g} min measured ...", flush=True)
            try:
                bb = run_blackbox(binary, tmp, urls, args, target_pids)
            except Exception as exc:  # keep Shopwatch's figures
                print(f"baseline failed: {exc!r}", flush=True)
    finally:
        for t in targets:
            stop_process(t)
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, sw, bb)


def report(args: argparse.Namespace, sw: dict[str, Any], bb: dict[str, Any] | None) -> None:
    def per_min(count: float, seconds: float) -> float:
        return count / seconds * 60

    def per_k(cpu: float, count: int) -> float:
        return cpu / count * 1000 if count else float("nan")

    def both(f: Any) -> tuple[str, str]:
        return f(sw), (f(bb) if bb else "-")

    rows: list[tuple[str, tuple[str, str]]] = [
        ("runs started per minute", both(lambda r: f"{per_min(r['started'], r['seconds']):,.0f}")),
        ("runs finished per minute",
         both(lambda r: f"{per_min(r['finished'], r['seconds']):,.0f}")),
        ("successful (in window)",
         (f"{sw['ok']:,.0f} of {sw['ok'] + sw['failed']:,.0f}",
          f"{bb['success']:,} of {bb['started']:,}" if bb else "-")),
        ("CPU s per minute", both(lambda r: f"{per_min(r['cpu'], r['seconds']):.2f}")),
        ("CPU s per 1,000 runs", both(lambda r: f"{per_k(r['cpu'], r['finished']):.3f}")),
        ("memory (max RSS / RSS), MiB", both(lambda r: f"{r['rss_mib']:.0f}")),
        ("targets' CPU, share of a core",
         both(lambda r: f"{r['targets_cpu'] / r['seconds']:.1%}")),
    ]
    print()
    print(f"machine: {os.cpu_count()} cores; {sw['monitors']:,} http monitors every "
          f"{INTERVAL_S:g} s; concurrency {args.concurrency}; {args.targets} target "
          f"process(es); {sw['seconds']:.0f} s measured (Shopwatch after {args.warmup:g} s "
          "warm-up)")
    print(f"{'':32}{'shopwatch scheduler':>22}{'blackbox exporter':>22}")
    for label, (a, b) in rows:
        print(f"{label:32}{a:>22}{b:>22}")
    drift = sw["drift"]
    print()
    print("shopwatch  schedule drift (check began in its thread - due), s: "
          f"p50 {pct(drift, 0.5):.3f}  p99 {pct(drift, 0.99):.3f}  "
          f"max {max(drift, default=float('nan')):.3f}")
    share = sw["hist_le_1"] / sw["hist_n"] if sw["hist_n"] else float("nan")
    print(f"           shopwatch_check_drift_seconds: {share:.2%} of {sw['hist_n']:,.0f} runs "
          f"at most 1 s late; skipped (previous still running): {sw['skipped']:.0f}")
    rest = sw["cpu"] - sw["cpu_loop"] - sw["cpu_writer"]
    print(f"           CPU s per 1,000 by thread: scheduler loop "
          f"{per_k(sw['cpu_loop'], sw['finished']):.3f}, writer (DuckDB commits, rollups) "
          f"{per_k(sw['cpu_writer'], sw['finished']):.3f}, check threads and the rest "
          f"{per_k(rest, sw['finished']):.3f}")
    if sw["duration_ms"]:
        print(f"           check duration (whole run), ms: p50 {sw['duration_ms'][0]:.1f}  "
              f"p99 {sw['duration_ms'][1]:.1f}")
    complete = sw["stored_total"] == sw["handed_total"] == sw["runs_total"]
    print(f"           in the event store: {sw['stored_total']:,} rows for "
          f"{sw['runs_total']:,} runs ({'all' if complete else 'ROWS MISSING'})")
    if bb:
        print(f"blackbox   probe latency (scrape), s: p50 {pct(bb['latency'], 0.5):.4f}  "
              f"p99 {pct(bb['latency'], 0.99):.4f}; scraper late p99 "
              f"{pct(bb['late'], 0.99):.3f} s, its CPU "
              f"{bb['scraper_cpu'] / bb['seconds']:.1%} of a core; errors {bb['errors']}")
        ratio = per_k(sw["cpu"], sw["finished"]) / per_k(bb["cpu"], bb["finished"])
        print(f"\nCPU per 1,000: shopwatch / blackbox exporter = {ratio:.2f}")
    rate = per_min(sw["started"], sw["seconds"])
    cpu_min = per_min(sw["cpu"], sw["seconds"])
    p99 = pct(drift, 0.99)
    # On schedule: each monitor ran once per interval (exact for whole measured minutes;
    # 1 % slack for the window's edges).
    kept = rate >= 0.99 * sw["monitors"] * 60 / INTERVAL_S
    met = kept and rate >= 0.99 * 5000 and p99 < 1.0 and cpu_min < 60
    print(f"bar: >= 5,000 checks/min on schedule, p99 drift < 1 s, under one core: "
          f"{rate:,.0f}/min ({'on' if kept else 'BEHIND'} schedule), p99 {p99:.3f} s, "
          f"{cpu_min / 60:.1%} of a core -> {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
