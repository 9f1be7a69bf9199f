"""Acknowledged means committed: SIGKILL the server under load and lose nothing.

``shopwatch serve`` runs as a child process. Client threads post batches with unique
event ids and remember the ids of every batch answered 200. Once enough are
acknowledged (or RUM beacons, whose page view ids are remembered), the server is
killed with SIGKILL mid-stream, restarted on the same data
directory (it must start and accept writes), stopped cleanly, and the DuckDB file is
opened read-only: every acknowledged id must be there, once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import pytest

from shopwatch.runtime import open_state
from shopwatch.settings import defaults
from tests.conftest import ServeProcess

CLIENTS = 4
BATCH = 50
ACKED_BEFORE_KILL = 3000


def load_until_killed(server: ServeProcess, key: str, run: int, load_seconds: float,
                      rum: bool = False) -> tuple[list[str], Counter[str]]:
    """Post batches from several threads; SIGKILL the server after ``load_seconds`` of
    load, once at least ``ACKED_BEFORE_KILL`` events are acknowledged. With ``rum``, the
    batches are RUM beacons of page views (their ids are the page view ids).

    Returns the acknowledged ids and a count of the other outcomes seen.
    """
    acked: list[str] = []
    other: Counter[str] = Counter()
    lock = threading.Lock()
    enough = threading.Event()
    killed = threading.Event()

    def client(t: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            seq = 0
            while not killed.is_set():
                ids = [f"r{run}-c{t}-b{seq}-e{i}" for i in range(BATCH)]
                seq += 1
                events = [{"name": "add_to_cart", "id": i, "session_id": f"s{t}",
                           "params": {"value": 9.99, "currency": "EUR"}} for i in ids]
                beacon = {"sid": f"s{t}", "r": [{"k": "view", "pv": i, "ttfb": 120}
                                                 for i in ids]}
                try:
                    if rum:
                        response = http.post(f"/api/v1/rum?key={key}", json=beacon)
                    else:
                        response = http.post("/api/v1/events", json={"events": events})
                except httpx.HTTPError as exc:
                    with lock:
                        other[type(exc).__name__] += 1
                    if killed.is_set():
                        return
                    continue
                with lock:
                    if response.status_code == 200 and response.json()["accepted"] == BATCH:
                        acked.extend(ids)
                        if len(acked) >= ACKED_BEFORE_KILL:
                            enough.set()
                    else:
                        other[str(response.status_code)] += 1

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        assert enough.wait(timeout=120), f"only {len(acked)} events acknowledged: {other}"
        time.sleep(max(0.0, started + load_seconds - time.monotonic()))
    finally:
        server.proc.send_signal(signal.SIGKILL)  # mid-stream: requests are in flight
        server.proc.wait(timeout=30)
        killed.set()
        for thread in threads:
            thread.join(timeout=60)
    assert server.proc.returncode == -signal.SIGKILL
    with lock:
        return list(acked), other


@pytest.mark.slow
@pytest.mark.parametrize(("run", "rum"), [(0, False), (1, False), (2, False), (3, True)])
def test_no_acknowledged_event_is_lost_on_sigkill(
        tmp_path: Path, serve_process: Callable[[Path], ServeProcess], run: int,
        rum: bool) -> None:
    data = tmp_path / "data"
    state = open_state(defaults().replace(data_dir=str(data)))
    project = state.create_project("crash shop")
    state.close()

    server = serve_process(data)
    acked, other = load_until_killed(server, project.ingest_key, run, 1.0 + run % 3 / 2, rum)
    print(f"run {run}: {len(acked)} events acknowledged before SIGKILL; other: {dict(other)}")
    assert len(acked) >= ACKED_BEFORE_KILL
    assert len(set(acked)) == len(acked)

    # Restart on the same files: the server recovers and takes writes again.
    restarted = serve_process(data)
    with httpx.Client(base_url=restarted.base_url, timeout=30) as http:
        response = http.post("/api/v1/events", json={"events": [{"name": "a", "id": "after"}]},
                             headers={"Authorization": f"Bearer {project.ingest_key}"})
        assert response.status_code == 200, response.text
        read = http.get("/api/v1/events", params={"limit": 1},
                        headers={"Authorization": f"Bearer {project.secret_key}"})
        assert read.status_code == 200
    restarted.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM as its exit status.
    assert restarted.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in restarted.log.read_text()

    with duckdb.connect(str(data / "events.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT id FROM events WHERE project_id = ?", [project.id]).fetchall()
        views = con.execute("SELECT view_id FROM rum WHERE project_id = ?",
                            [project.id]).fetchall()
    stored = Counter(row[0] for row in rows + (views if rum else []))
    missing = set(acked) - set(stored)
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged events lost "
                         f"(e.g. {sorted(missing)[:5]}); other outcomes: {other}")
    assert "after" in stored
    duplicated = [i for i, n in stored.items() if n > 1]
    assert not duplicated, f"stored more than once: {duplicated[:5]}"

