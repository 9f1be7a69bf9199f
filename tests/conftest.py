"""Shared fixtures: settings on a temporary data directory, a real server on loopback.

Everything is real: uvicorn serving ``create_app(Runtime.open(settings))`` on
127.0.0.1, DuckDB and SQLite files under ``tmp_path``, httpx as the client. Tests
that need other settings call the ``server`` factory with overrides, e.g.
``server(writer_queue_events=5)``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from shopwatch.ingest.pipeline import Format, Outcome, PipelineConfig, process
from shopwatch.ingest.writer import Writer
from shopwatch.runtime import Runtime
from shopwatch.settings import Settings, defaults
from shopwatch.store.base import EventQuery
from shopwatch.store.duckdb import DuckDBEventStore, duckdb_config
from shopwatch.store.state import Project
from shopwatch.web.app import create_api, create_app

REPO = Path(__file__).resolve().parent.parent
SHOPWATCH = Path(sys.executable).with_name("shopwatch")


def open_event_store(path: Path, settings: Settings | None = None) -> DuckDBEventStore:
    """A DuckDB event store configured from settings, as :class:`Runtime` opens it."""
    s = settings or defaults()
    return DuckDBEventStore(path, threads=s.duckdb_threads,
                            checkpoint_threshold=s.duckdb_checkpoint_threshold,
                            memory_limit=s.duckdb_memory_limit)


def second_connection(path: Path, settings: Settings | None = None) -> duckdb.DuckDBPyConnection:
    """Another client of the database a store in this process has open.

    Within one process DuckDB shares a database between connections whose configuration
    matches, so this must open it as :func:`open_event_store` does. Tests use it to look
    at what was really committed, or to break the store as a failing disk would.
    """
    s = settings or defaults()
    return duckdb.connect(str(path), config=duckdb_config(
        threads=s.duckdb_threads, checkpoint_threshold=s.duckdb_checkpoint_threshold,
        memory_limit=s.duckdb_memory_limit))


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-default-apps", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system's headless Chromium (never a downloaded one), driven by Playwright."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("no system Chromium: `make test` installs the Debian package `chromium`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings on a fresh data directory under ``tmp_path``."""
    return defaults().replace(data_dir=str(tmp_path / "data"))


@dataclass
class Live:
    """One running server: its URL, its runtime (stores, writer, metrics) and settings."""

    base_url: str
    runtime: Runtime
    settings: Settings
    _clients: list[httpx.Client] = field(default_factory=list)

    def create_project(self, name: str = "shop") -> Project:
        return self.runtime.state.create_project(name)

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        """An httpx client for this server, sending ``key`` as a bearer token."""
        hdrs = dict(headers)
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        client = httpx.Client(base_url=self.base_url, headers=hdrs, timeout=30)
        self._clients.append(client)
        return client

    def post_events(self, key: str, events: list[dict[str, Any]]) -> httpx.Response:
        return self.client(key).post("/api/v1/events", json={"events": events})

    def read_events(self, secret_key: str, **params: Any) -> list[dict[str, Any]]:
        """Every stored event of the key's project (oldest first), via the API."""
        params.setdefault("limit", 1000)
        params.setdefault("order", "asc")
        response = self.client(secret_key).get("/api/v1/events", params=params)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events


def _start(settings: Settings, api_only: bool = False,
           ) -> tuple[Live, uvicorn.Server, threading.Thread]:
    runtime = Runtime.open(settings)
    # api_only: the FastAPI app alone, without the ingest front door in front of it.
    app = create_api(runtime) if api_only else create_app(runtime)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during startup")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Live(f"http://127.0.0.1:{port}", runtime, settings), server, thread


@pytest.fixture
def server(settings: Settings) -> Iterator[Callable[..., Live]]:
    """Factory: ``server(**overrides)`` starts a server and returns its :class:`Live`.

    Overrides are setting values (already typed). Each server gets its own data
    directory unless ``data_dir`` is passed. Every server is shut down cleanly (the
    app's lifespan commits what is queued and closes the stores) at teardown.
    """
    running: list[tuple[Live, uvicorn.Server, threading.Thread]] = []

    def start(api_only: bool = False, **overrides: Any) -> Live:
        if "data_dir" not in overrides and running:
            overrides["data_dir"] = f"{settings.data_dir}-{len(running)}"
        started = _start(settings.replace(**overrides), api_only)
        running.append(started)
        return started[0]

    yield start
    for live, srv, thread in reversed(running):
        for client in live._clients:
            client.close()
        srv.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "server thread did not stop"


@pytest.fixture
def live(server: Callable[..., Live]) -> Live:
    """A server with default settings."""
    return server()


@pytest.fixture
def project(live: Live) -> Project:
    """A project on ``live``, with its ingest and secret keys."""
    return live.create_project("shop-a")


# --- subprocess servers (slow tests) -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment without SHOPWATCH_* variables, so only our flags count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOPWATCH_")}


@dataclass
class ServeProcess:
    """``shopwatch serve`` running as a child process."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shopwatch serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"shopwatch serve not ready:\n{self.log.read_text()}")


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[[Path], ServeProcess]]:
    """Factory: ``serve_process(data_dir)`` runs ``shopwatch serve`` and waits until it
    answers. Every child still alive at teardown is killed."""
    children: list[subprocess.Popen[bytes]] = []

    def start(data_dir: Path) -> ServeProcess:
        port = free_port()
        log = tmp_path / f"serve-{len(children)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(SHOPWATCH), "serve", "--data", str(data_dir), "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=clean_env())
        children.append(proc)
        child = ServeProcess(proc, f"http://127.0.0.1:{port}", log)
        child.wait_ready()
        return child

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


# --- the pipeline and the store without HTTP -----------------------------------------------


class Sink:
    """The pipeline, the writer and a real DuckDB store, without HTTP.

    :meth:`ingest` runs ``pipeline.process`` over a body exactly as the ingest route
    does, commits what it accepted through a :class:`Writer`, and returns the outcome
    with the stored rows. Each call uses a fresh project id, so one store serves a whole
    module (hypothesis runs hundreds of examples).
    """

    def __init__(self, path: Path, config: PipelineConfig) -> None:
        self.store = open_event_store(path)
        self.writer = Writer(self.store)
        self.writer.start()
        self.config = config
        self._project_ids = itertools.count(1000)

    def ingest(self, body: bytes, fmt: Format = Format.JSON, now_us: int | None = None,
               config: PipelineConfig | None = None) -> tuple[Outcome, list[dict[str, Any]]]:
        project_id = next(self._project_ids)
        now = time.time_ns() // 1000 if now_us is None else now_us
        outcome = process(body, fmt, project_id, now, config or self.config)
        if outcome.rows.n:
            self.writer.submit(outcome.rows).result(timeout=60)
        rows = self.store.query_events(EventQuery(project_id, limit=10_000, newest_first=False))
        return outcome, rows

    def close(self) -> None:
        self.writer.stop()
        self.store.close()


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sink]:
    sink = Sink(tmp_path_factory.mktemp("sink") / "events.duckdb",
                PipelineConfig(pseudonym_key=b"k" * 32,
                               query_allow=frozenset({"page", "sort"})))
    yield sink
    sink.close()


# --- dashboard users and sessions ------------------------------------------------------------

ADMIN_EMAIL = "admin@example.com"
VIEWER_EMAIL = "viewer@example.com"
PASSWORD = "correct horse battery"


def sign_in(live: Live, email: str = ADMIN_EMAIL, password: str = PASSWORD,
            **headers: str) -> httpx.Client:
    """A client signed in through the real login form (CSRF cookie and field included)."""
    client = live.client(**headers)
    form = client.get("/login")
    assert form.status_code == 200, form.text
    token = client.cookies.get("sw_login_csrf")
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token, "next": "/overview"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/overview"
    return client


def csrf_of(client: httpx.Client, page: str = "/account") -> str:
    """The session's CSRF token, read from a form as a browser would."""
    import re

    html = client.get(page).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no csrf_token field on {page}"
    return match.group(1)


@pytest.fixture
def dashboard(live: Live) -> Live:
    """``live`` with an admin and a viewer (password :data:`PASSWORD`) and a project."""
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    live.runtime.users.add(VIEWER_EMAIL, PASSWORD, "viewer")
    live.create_project("shop-a")
    return live
