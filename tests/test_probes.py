"""Remote probes end to end: a real server on loopback, its own scheduler at location
``local``, and a real probe client at ``eu-west`` sending results over HTTP; the
assignments and results endpoints, their auth and limits; status across locations;
the ``probes`` CLI; and the Uptime page in a real browser."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
import uvicorn
from click.testing import CliRunner
from playwright.sync_api import Browser

from shopwatch.checks.monitor import parse_monitors
from shopwatch.checks.probe import Probe
from shopwatch.checks.record import CheckRow
from shopwatch.checks.safety import AddressPolicy
from shopwatch.checks.scheduler import Scheduler, server_scheduler
from shopwatch.cli import main
from shopwatch.errors import ConfigError
from shopwatch.runtime import Runtime
from shopwatch.settings import Settings
from shopwatch.store import monitors as store
from shopwatch.store.probes import add_probe, revoke_probe
from shopwatch.store.state import Project, probes
from shopwatch.web.app import create_app
from tests.conftest import ADMIN_EMAIL, PASSWORD, Live, free_port, sign_in
from tests.test_uptime import write

ASSIGNMENTS = "/api/v1/probe/assignments"
RESULTS = "/api/v1/probe/results"


class Shop:
    """A loopback site: ``/`` answers 200; ``/hold`` answers once the test opens
    ``gate``. ``hits`` counts requests by path."""

    def __init__(self) -> None:
        shop = self
        self.hits: dict[str, int] = {}
        self.gate = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                shop.hits[self.path] = shop.hits.get(self.path, 0) + 1
                if self.path == "/hold":
                    shop.gate.wait(30)
                body = b"<h1>Shop</h1> Add to cart"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop() -> Iterator[Shop]:
    s = Shop()
    yield s
    s.close()


@pytest.fixture
def running() -> Iterator[list[Probe | Scheduler]]:
    """Probes and schedulers a test starts, stopped at teardown."""
    started: list[Probe | Scheduler] = []
    yield started
    for thing in reversed(started):
        thing.stop()


def make_probe(live_url: str, token: str, location: str = "eu-west",
               allow: tuple[str, ...] = (), **options: Any) -> Probe:
    """A probe with short waits: polls every 0.2 s, backs off at most 0.5 s, and runs a
    monitor as soon as it is assigned."""
    settings: dict[str, Any] = {"poll_s": 0.2, "send_every": 0.1, "backoff": 0.1,
                                "max_backoff": 0.5, "reload_s": 0.1, "flush_timeout": 5.0,
                                "offset": lambda interval: 0.0}
    settings.update(options)
    return Probe(live_url, token, location, AddressPolicy.parse(allow), **settings)


def local_scheduler(live: Live) -> Scheduler:
    """The server's scheduler, as ``shopwatch serve`` builds it, loopback allowed, running
    each monitor as soon as it sees it."""
    return server_scheduler(live.runtime.state, live.runtime.writer.submit,
                            AddressPolicy.parse(["127.0.0.1"]), location="local",
                            reload_s=0.1, offset=lambda interval: 0.0)


def stored(live: Live, project_id: int) -> list[tuple[Any, ...]]:
    return live.runtime.events.query(
        "SELECT monitor, location, ok, failure FROM check_results WHERE project_id = ? "
        "ORDER BY monitor, location", [project_id])


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


TWO_LOCATIONS = """
monitors:
  - {name: home, kind: http, url: /, interval: 20s, locations: [local, eu-west]}
  - {name: quorum, kind: http, url: /, interval: 20s, locations: [local, eu-west],
     min_failed_locations: 2}
  - {name: eu only, kind: http, url: /, interval: 20s, locations: [eu-west]}
  - {name: server only, kind: http, url: /, interval: 20s}
"""


def test_two_locations_judge_status_and_the_probe_keeps_to_its_allow_list(
        server: Callable[..., Live], shop: Shop, running: list[Any]) -> None:
    live = server(checks_enabled=False)
    project = live.create_project("shop")
    live.runtime.state.update_project(project.id, base_url=shop.url)
    store.apply(live.runtime.state, project.id, parse_monitors(TWO_LOCATIONS))
    _, token = add_probe(live.runtime.state, "eu-west", "local")
    # The server may reach the loopback shop (checks_allow); the probe's allow-list is
    # empty, so it refuses the same address: the shop "fails" from eu-west only.
    scheduler = local_scheduler(live)
    probe = make_probe(live.base_url, token)
    running.extend([scheduler, probe])
    scheduler.start()
    probe.start()
    expected = [("eu only", "eu-west"), ("home", "eu-west"), ("home", "local"),
                ("quorum", "eu-west"), ("quorum", "local"), ("server only", "local")]
    rows = wait_for(lambda: (r := stored(live, project.id)) and len(r) >= 6 and r,
                    "a result of every monitor at each of its locations")
    assert [(m, loc) for m, loc, *_ in rows] == expected
    by = {(m, loc): (ok, failure) for m, loc, ok, failure in rows}
    for name in ("home", "quorum", "eu only"):
        ok, failure = by[(name, "eu-west")]
        assert ok is False and failure == (
            "refused: 127.0.0.1 is a loopback address; checks run by this probe reach only "
            "public addresses unless its --allow lists it")
        if name != "eu only":
            assert by[(name, "local")] == (True, None)
    # The probe never opened a connection to the shop: only the server's 3 runs did.
    assert shop.hits == {"/": 3}
    assert probe.fatal is None and probe.stats.sent == 3 and probe.stats.rejected == 0

    api = live.client(project.secret_key)
    monitors = {m["name"]: m for m in api.get("/api/v1/monitors").json()["monitors"]}
    assert monitors["home"]["status"] == "down"  # min_failed_locations 1: one is enough
    assert monitors["quorum"]["status"] == "degraded"  # 1 of the 2 needed
    assert monitors["eu only"]["status"] == "down"
    assert monitors["server only"]["status"] == "up"
    home = monitors["home"]["locations"]
    assert [(loc["name"], loc["ok"], loc["stale"]) for loc in home] == [
        ("local", True, False), ("eu-west", False, False)]
    assert "loopback" in home[1]["failure"] and home[1]["at"].endswith("Z")
    assert [loc["name"] for loc in monitors["server only"]["locations"]] == ["local"]
    # Incidents stay per location.
    detail = api.get("/api/v1/monitors/home").json()
    assert [i["location"] for i in detail["incidents"]] == ["eu-west"]

    # The dashboard's probes list: when it was last seen, what it runs.
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    listed = sign_in(live).get("/api/v1/probes").json()
    assert listed["server_location"] == "local"
    (eu,) = listed["probes"]
    assert eu["location"] == "eu-west" and eu["last_seen_at"] is not None
    assert sorted(m["name"] for m in eu["monitors"]) == ["eu only", "home", "quorum"]
    assert api.get("/api/v1/probes").status_code == 403  # instance-wide: no secret key


def test_probe_endpoints_refuse_every_other_credential(live: Live, project: Project,
                                                       running: list[Any]) -> None:
    state = live.runtime.state
    _, token = add_probe(state, "eu-west", "local")
    bearer = live.client(token)
    assert bearer.get(ASSIGNMENTS, params={"location": "eu-west"}).status_code == 200
    cases = {
        "no token": live.client(),
        "wrong token": live.client("swprb_" + "x" * 43),
        "secret key": live.client(project.secret_key),
        "ingest key": live.client(project.ingest_key),
        "header other than Authorization": live.client(**{"X-Shopwatch-Key": token}),
    }
    for name, client in cases.items():
        for response in (client.get(ASSIGNMENTS, params={"location": "eu-west"}),
                         client.post(RESULTS, json={"results": []})):
            assert response.status_code == 401, name
            assert response.json()["error"]["code"] == "unauthorized", name
    # A token is bound to its location.
    wrong = bearer.get(ASSIGNMENTS, params={"location": "us-east"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["message"] == (
        "location: this token belongs to location 'eu-west', not 'us-east'; run the probe "
        "with --location eu-west")
    # A probe started with the wrong location stops with the server's message.
    probe = make_probe(live.base_url, token, location="us-east")
    probe.start()
    assert probe.wait(20) and probe.fatal is not None
    assert "belongs to location 'eu-west'" in str(probe.fatal)
    probe.stop()
    # Revoked: refused at once.
    revoke_probe(state, "eu-west")
    revoked = bearer.get(ASSIGNMENTS, params={"location": "eu-west"})
    assert revoked.status_code == 401
    assert "unknown or revoked probe token" in revoked.json()["error"]["message"]


def test_the_cli_probe_stops_with_the_servers_refusal(live: Live) -> None:
    result = CliRunner().invoke(main, [
        "probe", "--server", live.base_url, "--location", "eu-west",
        "--token", "swprb_not-a-token"], env={"SHOPWATCH_PROBE_TOKEN": None})
    assert result.exit_code == 1
    assert "the server refused this probe (401): unknown or revoked probe token" in (
        result.output.replace("\n", " "))
    bad = CliRunner().invoke(main, ["probe", "--server", live.base_url, "--location",
                                    "EU West", "--token", "t"])
    assert bad.exit_code == 2 and "--location: 'EU West' must be 1-32 lower-case" in bad.output


def row(monitor: str = "home", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"project_id": 1, "ts": time.time() - 5, "monitor": monitor,
                           "kind": "http", "location": "local", "ok": True, "attempts": 1,
                           "duration_ms": 12.5, "status": 200}
    out.update(fields)
    return out


def test_results_keep_valid_rows_reject_the_others_and_store_a_row_once(
        live: Live, project: Project) -> None:
    store.apply(live.runtime.state, project.id, parse_monitors("""
monitors:
  - {name: home, kind: http, url: https://shop.example/, locations: [eu-west]}
  - {name: server only, kind: http, url: https://shop.example/}
"""))
    _, token = add_probe(live.runtime.state, "eu-west", "local")
    probe = live.client(token)
    malformed = row()
    del malformed["ok"]
    batch = {"results": [
        row(),  # claims "local": stored as eu-west, the token's location
        row("server only"),
        malformed,
        row(kind="tcp"),
        row(ts=time.time() + 3600),
        row(project_id=99),
    ]}
    response = probe.post(RESULTS, json=batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["stored"], body["duplicates"]) == (1, 1, 0)
    assert {r["index"]: r["error"] for r in body["rejected"]} == {
        1: "monitor 'server only' of project 1 is not assigned to location 'eu-west'",
        2: "Object missing required field ok",
        3: "kind: 'tcp', but the monitor is 'http'",
        4: f"ts: {batch['results'][4]['ts']:.3f} is further than max_future_skew in the "
           "future",
        5: "monitor 'home' of project 99 is not assigned to location 'eu-west'",
    }
    assert stored(live, project.id) == [("home", "eu-west", True, None)]
    # Sent again (the answer was lost on the way): acknowledged, stored once.
    again = probe.post(RESULTS, json={"results": batch["results"][:1]}).json()
    assert (again["accepted"], again["stored"], again["duplicates"]) == (1, 0, 1)
    assert len(stored(live, project.id)) == 1
    # Nothing valid at all: 400, with the reasons.
    none = probe.post(RESULTS, json={"results": [row("nope")]})
    assert none.status_code == 400 and none.json()["accepted"] == 0
    assert none.json()["rejected"][0]["index"] == 0
    assert probe.post(RESULTS, content=b"not json").status_code == 400


def test_results_bodies_are_limited(live: Live, project: Project) -> None:
    _, token = add_probe(live.runtime.state, "eu-west", "local")
    probe = live.client(token)
    limit = live.settings.max_body_bytes
    big = probe.post(RESULTS, json={"results": [row(failure="x" * (limit + 1))]})
    assert big.status_code == 413
    assert "larger than 1048576 bytes (max_body_bytes" in big.json()["error"]["message"]
    many = probe.post(RESULTS, json={"results": [row()] * 1001})
    assert many.status_code == 413
    assert "1001 rows, more than 1000 (max_events_per_request)" in many.json()["error"][
        "message"]


def test_assignments_carry_a_version_to_poll_with(live: Live, project: Project) -> None:
    state = live.runtime.state
    state.update_project(project.id, base_url="https://shop.example")
    store.apply(state, project.id, parse_monitors("""
monitors:
  - {name: home, kind: http, url: /, locations: [local, eu-west], min_failed_locations: 2}
  - {name: server only, kind: http, url: /}
  - {name: elsewhere, kind: http, url: /, locations: [us-east]}
  - {name: paused, kind: http, url: /, locations: [eu-west], enabled: false}
"""))
    _, token = add_probe(state, "eu-west", "local")
    probe = live.client(token)
    first = probe.get(ASSIGNMENTS, params={"location": "eu-west"})
    assert first.status_code == 200
    body = first.json()
    assert body["location"] == "eu-west" and first.headers["etag"] == f'"{body["version"]}"'
    assert body["assignments"] == [{
        "project_id": project.id, "base_url": "https://shop.example",
        "monitor": {"name": "home", "kind": "http", "url": "/",
                    "locations": ["local", "eu-west"], "min_failed_locations": 2}}]
    same = probe.get(ASSIGNMENTS, params={"location": "eu-west"},
                     headers={"If-None-Match": first.headers["etag"]})
    assert same.status_code == 304 and same.content == b""
    # Without ?location= the token's is meant.
    assert probe.get(ASSIGNMENTS).json()["version"] == body["version"]
    store.put_monitor(state, project.id, parse_monitors(
        "monitors: [{name: new, kind: tcp, host: shop.example, port: 443, "
        "locations: [eu-west]}]")[0])
    changed = probe.get(ASSIGNMENTS, params={"location": "eu-west"},
                        headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.json()["version"] != body["version"]
    assert [a["monitor"]["name"] for a in changed.json()["assignments"]] == ["home", "new"]


def serve_on(settings: Settings, port: int) -> tuple[Live, Callable[[], None]]:
    """``shopwatch serve`` on a fixed port (to stop it and start it again there)."""
    runtime = Runtime.open(settings)
    srv = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started or not thread.is_alive(), "the server to start")
    assert srv.started, "uvicorn did not start"

    def stop() -> None:
        srv.should_exit = True
        thread.join(30)
        assert not thread.is_alive()
    return Live(f"http://127.0.0.1:{port}", runtime, settings), stop


def test_the_probe_buffers_while_the_server_is_down_and_sends_after_a_restart(
        settings: Settings, shop: Shop, running: list[Any]) -> None:
    settings = settings.replace(checks_enabled=False)
    port = free_port()
    live, stop = serve_on(settings, port)
    try:
        project = live.create_project("shop")
        store.apply(live.runtime.state, project.id, parse_monitors(
            f"monitors: [{{name: held, kind: http, url: '{shop.url}/hold', timeout: 60s,"
            " locations: [eu-west]}]"))
        _, token = add_probe(live.runtime.state, "eu-west", "local")
        # This probe may reach the loopback shop: its allow-list says so.
        probe = make_probe(live.base_url, token, allow=("127.0.0.1",))
        running.append(probe)
        probe.start()
        wait_for(lambda: shop.hits.get("/hold"), "the probe's check to reach the shop")
    finally:
        stop()
    # The server is gone; the check finishes now, and its result waits in the buffer.
    shop.gate.set()
    wait_for(lambda: probe.buffered == 1 and probe._unreachable, "the result to be buffered "
             "and the send to fail")
    live, stop = serve_on(settings, port)
    try:
        rows = wait_for(lambda: stored(live, project.id), "the buffered result to arrive")
        assert rows == [("held", "eu-west", True, None)]
        assert probe.buffered == 0 and probe.stats.sent == 1 and probe.fatal is None
    finally:
        probe.stop()
        running.remove(probe)
        stop()


def test_status_is_judged_across_locations_and_stale_ones_do_not_count(
        live: Live, project: Project) -> None:
    store.apply(live.runtime.state, project.id, parse_monitors("""
monitors:
  - {name: three, kind: http, url: /, locations: [local, eu-west, us-east],
     min_failed_locations: 2}
  - {name: waiting, kind: http, url: /, locations: [eu-west, us-east]}
"""))
    now = time.time()

    def run(location: str, ok: bool, ago: float) -> CheckRow:
        return CheckRow(ts=now - ago, monitor="three", kind="http", location=location, ok=ok,
                        attempts=1, duration_ms=10.0, failure=None if ok else "status 503")

    api = live.client(project.secret_key)

    def three() -> dict[str, Any]:
        monitors = api.get("/api/v1/monitors").json()["monitors"]
        item: dict[str, Any] = next(m for m in monitors if m["name"] == "three")
        return item

    # us-east failed 10 minutes ago, more than 3 intervals (60 s): stale, not counted.
    write(live, project.id, [run("local", True, 30), run("eu-west", False, 20),
                             run("us-east", False, 600)])
    item = three()
    assert item["status"] == "degraded"
    assert [(loc["name"], loc["ok"], loc["stale"]) for loc in item["locations"]] == [
        ("local", True, False), ("eu-west", False, False), ("us-east", False, True)]
    # us-east reports again, failing: two of three failed.
    write(live, project.id, [run("us-east", False, 5)])
    assert three()["status"] == "down"
    waiting = next(m for m in api.get("/api/v1/monitors").json()["monitors"]
                   if m["name"] == "waiting")
    assert waiting["status"] == "unknown"
    assert waiting["locations"] == [
        {"name": "eu-west", "ok": None, "at": None, "failure": None, "stale": False},
        {"name": "us-east", "ok": None, "at": None, "failure": None, "stale": False}]
    # The public status page says degraded for a monitor down at one location of two.
    live.runtime.state.update_project(project.id, status_slug="acme")
    store.apply(live.runtime.state, project.id, parse_monitors(
        "monitors: [{name: two, kind: http, url: /, locations: [local, eu-west], "
        "min_failed_locations: 2}]"))
    write(live, project.id, [
        CheckRow(ts=now - 3, monitor="two", kind="http", location=loc, ok=loc == "local",
                 attempts=1, duration_ms=10.0) for loc in ("local", "eu-west")])
    page = live.client().get("/api/v1/status/acme").json()
    assert page["status"] == "degraded"
    assert [c["status"] for c in page["components"]] == ["degraded"]


def test_all_stale_locations_are_still_judged(live: Live, project: Project) -> None:
    store.apply(live.runtime.state, project.id, parse_monitors(
        "monitors: [{name: home, kind: http, url: /}]"))
    write(live, project.id, [CheckRow(ts=time.time() - 3600, monitor="home", kind="http",
                                      location="local", ok=False, attempts=1,
                                      duration_ms=5.0, failure="timed out")])
    (item,) = live.client(project.secret_key).get("/api/v1/monitors").json()["monitors"]
    assert item["status"] == "down" and item["locations"][0]["stale"] is True


@pytest.mark.parametrize(("text", "error"), [
    ("{name: a, kind: http, url: /, locations: [local, eu-west], min_failed_locations: 3}",
     "m.yml: monitors[0].min_failed_locations: 3 is more than the 2 locations"),
    ("{name: a, kind: http, url: /, min_failed_locations: 2}",
     "m.yml: monitors[0].min_failed_locations: 2 is more than the 1 location (without "
     "locations: the server's own)"),
    ("{name: a, kind: http, url: /, min_failed_locations: 0}",
     "m.yml: monitors[0].min_failed_locations: expected int >= 1"),
    ("{name: a, kind: http, url: /, locations: [EU West]}",
     "m.yml: monitors[0].locations[0]: 'EU West' must be 1-32 lower-case letters"),
    ("{name: a, kind: http, url: /, locations: [eu, eu]}",
     "m.yml: monitors[0].locations[1]: 'eu' is listed twice"),
    ("{name: a, kind: http, url: /, locations: []}",
     "m.yml: monitors[0].locations: give at least one location"),
    ("{name: a, kind: heartbeat, period: 5m, locations: [eu-west]}",
     "m.yml: monitors[0].locations: a heartbeat monitor is pinged by the shop's jobs; it "
     "has no locations to run from"),
])
def test_locations_are_validated_with_their_place(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_monitors(f"monitors: [{text}]", "m.yml")
    assert str(caught.value).startswith(error), str(caught.value)


def test_probes_cli_adds_lists_and_revokes(tmp_path: Path) -> None:
    runner = CliRunner()
    data = str(tmp_path / "data")
    env: dict[str, str | None] = {"SHOPWATCH_HOST": None, "SHOPWATCH_PORT": None,
                                  "SHOPWATCH_CHECKS_LOCATION": None}

    def cli(*args: str) -> Any:
        return runner.invoke(main, [*args, "--data", data], env=env, catch_exceptions=False)

    added = cli("probes", "add", "eu-west", "--server-url", "https://sw.example")
    assert added.exit_code == 0, added.output
    token = next(w for w in added.output.split() if w.startswith("swprb_"))
    assert (f"shopwatch probe --server https://sw.example --location eu-west --token {token}"
            in added.output)
    again = cli("probes", "add", "eu-west")
    assert again.exit_code == 2 and "'eu-west' has a probe already (id 1)" in again.output
    own = cli("probes", "add", "local")
    assert own.exit_code == 2 and "'local' is this server's own location" in own.output
    bad = cli("probes", "add", "Eu_West")
    assert bad.exit_code == 2 and "'Eu_West' must be 1-32 lower-case" in bad.output
    default = cli("probes", "add", "us-east")
    assert "shopwatch probe --server http://127.0.0.1:8080 --location us-east" in (
        default.output)
    listed = cli("probes", "list", "--json")
    assert [(p["location"], p["revoked"], p["last_seen_at"])
            for p in msgspec.json.decode(listed.output)] == [
        ("eu-west", False, None), ("us-east", False, None)]
    # Only the token's hash is kept.
    engine = sa.create_engine(f"sqlite:///{data}/state.sqlite")
    with engine.connect() as conn:
        hashes = set(conn.execute(sa.select(probes.c.token_hash)).scalars())
    engine.dispose()
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    assert token.encode() not in (tmp_path / "data" / "state.sqlite").read_bytes()
    revoked = cli("probes", "revoke", "eu-west")
    assert revoked.exit_code == 0 and "probe 1 (eu-west) revoked" in revoked.output
    assert cli("probes", "revoke", "eu-west").exit_code == 1
    assert "eu-west" not in cli("probes", "list").output
    assert "revoked" in cli("probes", "list", "--all").output
    assert cli("probes", "revoke", "2").exit_code == 0  # by id
    assert cli("probes", "add", "eu-west").exit_code == 0  # a new token, once revoked


@pytest.mark.browser
def test_uptime_page_shows_locations_and_probes(browser: Browser, server: Callable[..., Live],
                                                shop: Shop, running: list[Any]) -> None:
    from tests.test_browser import SHOTS, Watched

    live = server(checks_enabled=False)
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    project = live.create_project("shop")
    live.runtime.state.update_project(project.id, base_url=shop.url)
    store.apply(live.runtime.state, project.id, parse_monitors(TWO_LOCATIONS))
    _, token = add_probe(live.runtime.state, "eu-west", "local")
    scheduler, probe = local_scheduler(live), make_probe(live.base_url, token)
    running.extend([scheduler, probe])
    scheduler.start()
    probe.start()
    wait_for(lambda: len(stored(live, project.id)) >= 6, "every location's results")
    context = browser.new_context(viewport={"width": 1360, "height": 1000}, locale="en-US",
                                  timezone_id="UTC")
    watched = Watched(context.new_page(), live.base_url)
    try:
        watched.sign_in()
        watched.open("/reliability/uptime")
        page = watched.page
        home = page.locator("[data-monitors] tbody tr", has_text="home")
        assert home.locator(".loc").all_inner_texts() == ["local ✓", "eu-west ✗"]
        quorum = page.locator("[data-monitors] tbody tr", has_text="quorum")
        assert "degraded" in quorum.inner_text()
        # One location only: no badges.
        only = page.locator("[data-monitors] tbody tr", has_text="server only")
        assert only.locator(".loc").count() == 0
        probes_rows = page.locator("[data-probes] tbody tr")
        assert probes_rows.count() == 1
        assert "eu-west" in probes_rows.inner_text() and "eu only" in probes_rows.inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        watched.shot("uptime-locations-and-probes")
        assert watched.problems == []
    finally:
        context.close()
