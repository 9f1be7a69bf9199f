"""Monitors in the state store: ``shopwatch monitors apply`` and its plan."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shopwatch.checks.monitor import parse_monitors
from shopwatch.runtime import open_state
from shopwatch.settings import defaults
from shopwatch.store import monitors as store
from tests.conftest import SHOPWATCH, clean_env

FIRST = """
monitors:
  - {name: home, kind: http, url: /, interval: 60s}
  - {name: cart, kind: http, url: /cart}
  - name: checkout
    kind: api_flow
    steps: [{name: add, method: POST, url: /cart/add, extract: {cart: "$.id"}},
            {name: pay, method: POST, url: "/pay/{cart}"}]
"""
SECOND = """
monitors:
  - {name: home, kind: http, url: /, interval: 30s}
  - name: checkout
    kind: api_flow
    steps: [{name: add, method: POST, url: /cart/add, extract: {cart: "$.id"}},
            {name: pay, method: POST, url: "/pay/{cart}"}]
  - {name: search, kind: http, url: "/search?q=tea"}
"""


def test_apply_creates_updates_removes_and_leaves_dashboard_monitors(tmp_path: Path) -> None:
    state = open_state(defaults().replace(data_dir=str(tmp_path)))
    project = state.create_project("shop")
    handmade = parse_monitors("monitors: [{name: status, kind: http, url: /status}]")[0]
    store.put_monitor(state, project.id, handmade, source="ui")
    first = store.apply(state, project.id, parse_monitors(FIRST))
    assert [(c.action, c.name) for c in first] == [
        ("create", "cart"), ("create", "checkout"), ("create", "home"), ("skip", "status")]
    planned = store.plan(state, project.id, parse_monitors(SECOND))
    assert [(c.action, c.name, c.fields) for c in planned] == [
        ("keep", "checkout", ()), ("update", "home", ("interval",)),
        ("create", "search", ()), ("remove", "cart", ()), ("skip", "status", ())]
    assert len(store.list_monitors(state, project.id)) == 4  # a plan changes nothing
    store.apply(state, project.id, parse_monitors(SECOND))
    stored = {s.monitor.name: s for s in store.list_monitors(state, project.id)}
    assert sorted(stored) == ["checkout", "home", "search", "status"]
    assert stored["home"].monitor.interval == "30s" and stored["status"].source == "ui"
    assert stored["checkout"].monitor.steps is not None
    assert stored["checkout"].monitor.steps[1].url == "/pay/{cart}"
    # A file naming a dashboard monitor takes it over.
    takeover = store.plan(state, project.id, parse_monitors(
        "monitors: [{name: status, kind: http, url: /status}]"))
    assert ("update", "status") in [(c.action, c.name) for c in takeover]
    state.close()


def test_monitors_apply_cli_dry_run_then_apply(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env()
    subprocess.run([str(SHOPWATCH), "project", "create", "shop", "--data", str(data)],
                   check=True, capture_output=True, env=env)
    file = tmp_path / "monitors.yml"
    file.write_text(FIRST)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SHOPWATCH), "monitors", *args, "--data", str(data)],
                              capture_output=True, text=True, env=env, timeout=60)

    dry = run("apply", str(file), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ home (http)" in dry.stdout and "would create 3" in dry.stdout
    assert "home" not in run("list").stdout
    done = run("apply", str(file))
    assert "create 3, update 0, remove 0" in done.stdout
    listed = run("list")
    assert "home" in listed.stdout and "code" in listed.stdout
    file.write_text("monitors: [{name: x, kind: http}]")
    bad = run("apply", str(file))
    assert bad.returncode == 2 and "an http monitor needs a url" in bad.stderr
