"""Maintenance windows: their occurrences, the API, and availability without them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from shopwatch.checks.monitor import parse_monitors
from shopwatch.checks.record import CheckRow
from shopwatch.errors import ConfigError
from shopwatch.store import monitors as store
from shopwatch.store.maintenance import Window, add_window
from shopwatch.store.state import Project
from tests.conftest import SHOPWATCH, Live, clean_env
from tests.test_uptime import write

HOUR = 3600.0


def test_occurrences_of_one_off_daily_and_weekly_windows() -> None:
    once = Window(1, 1, 1000.0, 60.0, "", "")
    assert once.occurrences(0, 2000) == [(1000.0, 1060.0)]
    assert once.occurrences(1060, 2000) == []
    daily = Window(2, 1, 0.0, HOUR, "day", "")
    assert daily.occurrences(86400 * 3 + 10, 86400 * 5) == [
        (86400 * 3, 86400 * 3 + HOUR), (86400 * 4, 86400 * 4 + HOUR)]
    weekly = Window(3, 1, 86400.0, 2 * HOUR, "week", "")
    assert len(weekly.occurrences(0, 91 * 86400)) == 13


def test_window_values_are_checked(live: Live, project: Project) -> None:
    state = live.runtime.state
    with pytest.raises(ConfigError, match="every: 'month'"):
        add_window(state, project.id, 0, HOUR, "month")
    with pytest.raises(ConfigError, match="shorter than it"):
        add_window(state, project.id, 0, 86400, "day")
    with pytest.raises(ConfigError, match="duration"):
        add_window(state, project.id, 0, 0)


def test_runs_in_maintenance_count_in_no_availability(live: Live, project: Project) -> None:
    store.apply(live.runtime.state, project.id, parse_monitors(
        "monitors: [{name: home, kind: http, url: 'https://shop.example/'}]"))
    now = time.time()
    # Ten runs, the last hour; the four failures fall in a maintenance window.
    write(live, project.id, [
        CheckRow(ts=now - 3000 + i * 300, monitor="home", kind="http", location="local",
                 ok=not 3 <= i <= 6, attempts=1, duration_ms=50.0) for i in range(10)])
    api = live.client(project.secret_key)
    before = api.get("/api/v1/monitors").json()["monitors"][0]
    assert before["availability"]["24h"] == 0.6
    created = api.post("/api/v1/maintenance", json={
        "starts_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3000 + 850)),
        "duration": "20m", "note": "database upgrade"})
    assert created.status_code == 200, created.text
    after = api.get("/api/v1/monitors").json()["monitors"][0]
    assert after["availability"]["24h"] == 1.0 and after["status"] == "up"
    detail = api.get("/api/v1/monitors/home", params={"range": "24h"}).json()
    assert detail["incidents"] == [] and detail["runs"] == 6
    assert sum(1 for r in detail["latest"] if r["maintenance"]) == 4
    windows = api.get("/api/v1/maintenance").json()["windows"]
    assert [(w["note"], w["duration_s"], w["every"]) for w in windows] == [
        ("database upgrade", 1200.0, None)]
    # While a window is open, the monitor says so.
    api.post("/api/v1/maintenance", json={"starts_at": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)), "duration": "1h"})
    assert api.get("/api/v1/monitors").json()["monitors"][0]["status"] == "maintenance"
    bad = api.post("/api/v1/maintenance", json={"starts_at": "soon", "duration": "1h"})
    assert bad.status_code == 400 and "starts_at" in bad.text
    assert api.delete(f"/api/v1/maintenance/{windows[0]['id']}").status_code == 200
    assert api.delete(f"/api/v1/maintenance/{windows[0]['id']}").status_code == 404


def test_maintenance_cli_adds_lists_and_removes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SHOPWATCH), *args, "--data", str(data)],
                              capture_output=True, text=True, env=env, timeout=60)

    assert run("project", "create", "shop").returncode == 0
    added = run("maintenance", "add", "--start", "2026-11-29T02:00:00Z", "--duration", "1h",
                "--every", "week", "--note", "backups")
    assert added.returncode == 0 and "every week (backups)" in added.stdout
    bad = run("maintenance", "add", "--start", "2026-11-29T02:00:00", "--duration", "1h")
    assert bad.returncode == 1 and "has no time zone" in bad.stderr
    assert "backups" in run("maintenance", "list").stdout
    assert run("maintenance", "remove", "1").returncode == 0
    gone = run("maintenance", "remove", "1")
    assert gone.returncode == 1 and "no maintenance window 1" in gone.stderr
