"""The public status page: opt-in, public, and showing only status and availability."""

from __future__ import annotations

import time

import pytest

from shopwatch.checks.monitor import parse_monitors
from shopwatch.checks.record import CheckRow
from shopwatch.errors import ConfigError
from shopwatch.store import monitors as store
from shopwatch.store.state import Project
from tests.conftest import Live
from tests.test_uptime import write


def test_status_page_is_opt_in_public_and_discreet(live: Live, project: Project) -> None:
    store.apply(live.runtime.state, project.id, parse_monitors("""
monitors:
  - {name: Shop, kind: http, url: "https://shop.example/secret-path"}
  - {name: Checkout, kind: http, url: "https://shop.example/checkout"}
"""))
    now = time.time()
    write(live, project.id, [
        CheckRow(ts=now - 600, monitor="Checkout", kind="http", location="local", ok=False,
                 attempts=1, duration_ms=5, failure="status 500, expected 2xx or 3xx"),
        CheckRow(ts=now - 300, monitor="Checkout", kind="http", location="local", ok=True,
                 attempts=1, duration_ms=5, status=200),
        CheckRow(ts=now - 60, monitor="Shop", kind="http", location="local", ok=False,
                 attempts=1, duration_ms=5, failure="timed out (ReadTimeout)")])
    anonymous = live.client()
    assert anonymous.get("/status/acme").status_code == 404  # not published
    live.runtime.state.update_project(project.id, status_slug="Acme")
    time.sleep(0.1)
    page = anonymous.get("/status/acme")
    assert page.status_code == 200
    assert "Some systems are having problems" in page.text
    assert "secret-path" not in page.text and "ReadTimeout" not in page.text
    body = anonymous.get("/api/v1/status/acme").json()
    assert body["status"] == "degraded"
    assert {c["name"]: c["status"] for c in body["components"]} == {"Checkout": "up",
                                                                    "Shop": "down"}
    assert [(i["component"], i["ended"] is None) for i in body["incidents"]] == [
        ("Shop", True), ("Checkout", False)]
    assert "failure" not in str(body) and "url" not in str(body)
    live.runtime.state.update_project(project.id, status_slug="")
    assert anonymous.get("/status/acme").status_code == 404


def test_status_slugs_are_checked_and_unique(live: Live, project: Project) -> None:
    with pytest.raises(ConfigError, match="status_slug: 'a b' must be"):
        live.runtime.state.update_project(project.id, status_slug="a b")
    live.runtime.state.update_project(project.id, status_slug="shop")
    other = live.create_project("other")
    with pytest.raises(ConfigError, match="used by another project"):
        live.runtime.state.update_project(other.id, status_slug="shop")
