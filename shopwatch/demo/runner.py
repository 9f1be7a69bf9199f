"""`shopwatch demo`: Shopwatch, the demo shop and its shoppers in one process, one loop.

Start-up: the data directory gets an ordinary project "Demo shop" (EUR,
Europe/Paris) and an admin login, both remembered in ``demo.json`` so a second run
reuses them (and the data) unless ``--reset``. Shopwatch serves on ``--port``, the shop
on the next port; the shop sends its events to Shopwatch with the project's public
ingest key through :class:`shopwatch.client.ShopwatchClient`, exactly as a real shop
would. Its pages carry Shopwatch's RUM snippet with that key (the project lists the
shop's origin in its RUM origins), and when a system Chromium is installed a scripted
browser (:mod:`shopwatch.demo.browser`) shops there too, sending real beacons. With
``--backfill DAYS`` (first run only) weeks of history — events and real-user data —
go in through Shopwatch's ingest pipeline before the live shoppers start.

The shop also sends its traces (OpenTelemetry SDK, OTLP to ``/v1/traces``; see
:mod:`shopwatch.demo.shop.tracing`).

Stopping (Ctrl-C or SIGTERM), in an order that loses nothing: the shoppers (and the
scripted browser, after the visit under way) stop, the shop stops and its client
delivers what it still holds, its tracer providers flush their spans, then Shopwatch
commits and closes. ``demo-summary.json``
then holds what the simulator (and the scripted browser) did: orders completed,
declines, incidents; ``demo-incidents.jsonl`` every incident with start and end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from shopwatch.accounts.users import Users
from shopwatch.alerts.objectives import load_objectives
from shopwatch.alerts.rules import Rule, load_rules
from shopwatch.checks.browser_flow import unavailable as browser_flow_unavailable
from shopwatch.checks.monitor import load_monitors
from shopwatch.errors import ConfigError
from shopwatch.runtime import Runtime, ensure_data_dir, open_state
from shopwatch.settings import Settings
from shopwatch.store.monitors import apply as apply_monitors
from shopwatch.store.rules import apply_rules
from shopwatch.store.slos import apply_slos
from shopwatch.store.state import StateStore

DEMO_FILE = "demo.json"
PROJECT = "Demo shop"
ADMIN = "demo@example.com"
CURRENCY = "EUR"
TIMEZONE = "Europe/Paris"


@dataclass(frozen=True)
class DemoOptions:
    port: int = 8080
    data: Path = Path("./shopwatch-demo")
    seed: int = 0
    speed: float = 1.0
    backfill: float = 0.0
    open_browser: bool = True
    reset: bool = False
    visits_per_minute: float = 3.0
    incident_every: float = 300.0
    duration: float | None = None  # stop by itself after this many seconds (tests)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the demo, which stops every part in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def shop_origins(port: int) -> list[str]:
    """The demo shop's web origins (as browsers name them) when Shopwatch is on ``port``."""
    return [f"http://127.0.0.1:{port + 1}", f"http://localhost:{port + 1}"]


MONITORS_FILE = Path(__file__).with_name("monitors.yml")
BROWSER_MONITORS_FILE = Path(__file__).with_name("monitors-browser.yml")
INBOX_CHANNEL = "demo inbox"


def prepare(settings: Settings, opts: DemoOptions) -> dict[str, Any]:
    """Create (or reuse) the demo's project and admin; returns the ``demo.json`` record.
    The project's RUM origins and base URL are set to the shop's (its port may differ
    between runs), and the demo's monitors (``monitors.yml``) applied."""
    data = settings.data_path
    marker = data / DEMO_FILE
    if opts.reset and data.exists():
        if not marker.exists() and any(data.iterdir()):
            raise ConfigError(f"--reset: {data} is not a demo data directory (no {DEMO_FILE});"
                              " refusing to delete it")
        shutil.rmtree(data)
    ensure_data_dir(data)
    record: dict[str, Any] = json.loads(marker.read_text()) if marker.exists() else {}
    state = open_state(settings)
    try:
        if not record:
            if any(p.name == PROJECT for p in state.list_projects()):
                raise ConfigError(f"{data} already has a project {PROJECT!r} but no "
                                  f"{DEMO_FILE}: use another --data, or --reset")
            state.create_project(PROJECT, CURRENCY, TIMEZONE)
            password = secrets.token_urlsafe(12)
            Users(state).add(ADMIN, password, "admin")
            record = {"email": ADMIN, "password": password,
                      "created_at": datetime.now(UTC).isoformat(), "backfilled_days": 0}
            _write_private(marker, record)
        if not record.get("card_secret"):  # the shop's key for card fingerprints
            record["card_secret"] = secrets.token_hex(32)
            _write_private(marker, record)
        project = state.update_project(PROJECT, rum_origins=shop_origins(opts.port),
                                       base_url=f"http://127.0.0.1:{opts.port + 1}")
        monitors = load_monitors(MONITORS_FILE)
        if browser_flow_unavailable() is None:  # the browser checkout needs Chromium
            monitors += load_monitors(BROWSER_MONITORS_FILE)
        apply_monitors(state, project.id, monitors)
        # The rules of monitors.yml notify the demo's inbox (a webhook on the demo shop);
        # so do its SLOs' burn-rate alerts.
        apply_rules(state, project.id, [*load_rules(MONITORS_FILE), *speed_rules(opts.speed)])
        apply_slos(state, project.id, load_objectives(MONITORS_FILE))
        record["inbox_secret"] = _inbox_channel(state, project.id, opts.port + 1)
    finally:
        state.close()
    record["project_id"] = project.id
    record["ingest_key"] = project.ingest_key
    record["secret_key"] = project.secret_key
    return record


# The demo's paid campaigns and what they cost a day (EUR), as an ad platform's export
# would say; uploaded for every day the demo has history for.
DAILY_SPEND = (("google", "winter-sale", 120.0), ("facebook", "new-arrivals", 75.0),
               ("newsletter", "weekly-deals", 8.0), ("idealo", "feed", 15.0),
               ("tiktok", "brand-video", 40.0))


def upload_spend(base: str, secret_key: str, days: float, seed: int) -> int:
    """Upload the campaigns' daily spend for the last ``days`` days and today, through
    ``POST /api/v1/spend`` as a shop's marketing team would (CSV); returns the rows."""
    import random
    from datetime import timedelta

    import httpx

    rng = random.Random(f"spend-{seed}")
    today = datetime.now(UTC).date()
    lines = ["date,channel,campaign,cost,currency"]
    for back in range(int(days) + 1):
        day = today - timedelta(days=back)
        for channel, campaign, cost in DAILY_SPEND:
            lines.append(f"{day.isoformat()},{channel},{campaign},"
                         f"{cost * rng.uniform(0.8, 1.2):.2f},{CURRENCY}")
    response = httpx.post(f"{base}/api/v1/spend", content="\n".join(lines) + "\n",
                          headers={"Authorization": f"Bearer {secret_key}",
                                   "Content-Type": "text/csv"}, timeout=60)
    response.raise_for_status()
    return int(response.json()["accepted"])


def _write_private(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record, indent=2) + "\n")
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)


def speed_rules(speed: float) -> list[Rule]:
    """Security rules that time scales: faster than life, honest shoppers click faster
    too, so the bot detection's "impossible speed" gap shrinks with ``speed`` (the other
    detections count events per window and keep their built-in rules)."""
    if speed <= 1:
        return []
    return [Rule(name="bot traffic", kind="bot_traffic", channels=[INBOX_CHANNEL],
                 params={"min_gap_s": round(0.5 / speed, 4)})]


def _inbox_channel(state: StateStore, project_id: int, shop_port: int) -> str:
    """The demo's "demo inbox" webhook channel (made once, its URL kept up to date with
    the shop's port); its signing secret."""
    from shopwatch.alerts import channels as kinds
    from shopwatch.alerts.channels import Environment
    from shopwatch.checks.safety import AddressPolicy
    from shopwatch.demo.inbox import HOOK_PATH
    from shopwatch.store import channels as channel_store

    url = f"http://127.0.0.1:{shop_port}{HOOK_PATH}"
    for channel in channel_store.list_channels(state, project_id):
        if channel.name == INBOX_CHANNEL:
            if channel.config.get("url") == url:
                return str(channel.config["secret"])
            channel_store.remove_channel(state, project_id, channel.id)
    made = kinds.create(state, project_id, INBOX_CHANNEL, "webhook", {"url": url},
                        Environment(policy=AddressPolicy.parse(["127.0.0.1"])))
    return str(made.config["secret"])


def run(settings: Settings, opts: DemoOptions, say: Callable[[str], None] = print) -> None:
    """Run the demo until Ctrl-C / SIGTERM (or ``opts.duration``); see the module docstring."""
    record = prepare(settings, opts)
    if not record.get("ingest_key"):
        raise ConfigError(f"the demo project has no ingest key (revoked): issue one with "
                          f"`shopwatch project rotate-key {record['project_id']} --kind ingest "
                          f"--data {settings.data_path}`")
    asyncio.run(_main(settings, opts, record, say))


async def _main(settings: Settings, opts: DemoOptions, record: dict[str, Any],
                say: Callable[[str], None]) -> None:
    from shopwatch.client import ShopwatchClient
    from shopwatch.demo import history
    from shopwatch.demo.browser import ScriptedBrowser
    from shopwatch.demo.inbox import PAGE_PATH, Inbox, with_inbox
    from shopwatch.demo.incidents import ShopFaults
    from shopwatch.demo.model import Customers, regulars
    from shopwatch.demo.shop import BrowserTag, catalogue, create_shop
    from shopwatch.demo.shop.tracing import ShopTracing
    from shopwatch.demo.simulator import Simulator
    from shopwatch.web.app import create_app

    data = settings.data_path
    base = f"http://127.0.0.1:{opts.port}"
    shop_url = f"http://127.0.0.1:{opts.port + 1}"
    # The demo's own shop is on loopback: allow-listed explicitly for its monitors.
    allow = ",".join(a for a in (settings.checks_allow, "127.0.0.1") if a)
    runtime = Runtime.open(settings.replace(checks_allow=allow))
    shopwatch = _Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=opts.port,
                                       log_level="warning", access_log=False,
                                       server_header=False))
    client = ShopwatchClient(base, record["ingest_key"])
    faults = ShopFaults()
    tag = BrowserTag(base, record["ingest_key"])
    inbox = Inbox(record["inbox_secret"])
    # The shop's spans go to Shopwatch's OTLP receiver, as a real shop's SDK would send them.
    tracing = ShopTracing.otlp(base, record["ingest_key"])
    card_secret = bytes.fromhex(record["card_secret"])
    shop_app = create_shop(client, faults=faults, seed=opts.seed, currency=CURRENCY,
                           browser_tag=tag, tracing=tracing, card_secret=card_secret)
    known = regulars(opts.seed)
    await _register(shop_app.state.shop, known)
    shop = _Server(uvicorn.Config(with_inbox(shop_app, inbox),
                                  host="127.0.0.1", port=opts.port + 1, log_level="warning",
                                  access_log=False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    shopwatch_task = asyncio.create_task(shopwatch.serve())
    await _started(shopwatch, shopwatch_task, f"Shopwatch on port {opts.port}")
    shop_task = asyncio.create_task(shop.serve())
    await _started(shop, shop_task, f"the demo shop on port {opts.port + 1}")

    say(f"Shopwatch demo — dashboard {base}/  (sign in as {record['email']}, password "
        f"{record['password']})")
    say(f"  demo shop:  {shop_url}/   (data: {data.resolve()}, project {record['project_id']})")
    say(f"  incidents are logged to {data / 'demo-incidents.jsonl'}; alerts they fire "
        f"notify {shop_url}{PAGE_PATH}; Ctrl-C stops everything")
    if opts.open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(f"{base}/login")

    products = [history.Product(p.id, p.name, p.category, p.price)
                for p in catalogue.PRODUCTS]
    simulator = Simulator(
        shop_url, faults, products=[p.id for p in products],
        categories=sorted({p.category for p in products}), seed=opts.seed, speed=opts.speed,
        visits_per_minute=opts.visits_per_minute, incident_every=opts.incident_every,
        timezone=TIMEZONE, incidents_log=data / "demo-incidents.jsonl", say=say,
        customers=Customers([(email, password) for _, email, password in known]))
    browser = ScriptedBrowser(shop_url, summary=simulator.summary, seed=opts.seed,
                              log_path=data / "demo-browser.log", say=say)
    backfilled: history.HistoryResult | None = None
    try:
        days_left = opts.backfill - float(record.get("backfilled_days", 0))
        if days_left > 0:
            backfilled = await _backfill(runtime, record, products, days_left, opts, say,
                                         data, shop_url, stop, card_secret)
        if record.get("secret_key"):
            rows = await asyncio.to_thread(upload_spend, base, record["secret_key"],
                                           max(opts.backfill, 1.0), opts.seed)
            say(f"  marketing spend uploaded: {rows} rows (see Marketing → Spend)")
        if not stop.is_set():
            sim_task = asyncio.create_task(simulator.run())
            browser_stop = asyncio.Event()
            browser_task = asyncio.create_task(browser.run(browser_stop))
            waits = [asyncio.create_task(stop.wait()), sim_task]
            if opts.duration is not None:
                waits.append(asyncio.create_task(asyncio.sleep(opts.duration)))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            simulator.stop()  # requests in flight complete and are counted
            browser_stop.set()  # the visit under way ends, its order is counted
            await asyncio.gather(sim_task, browser_task, return_exceptions=True)
            for task in waits:
                task.cancel()
    finally:
        say("stopping: shoppers, then the shop (delivering its last events), then Shopwatch")
        shop.should_exit = True
        await asyncio.gather(shop_task, return_exceptions=True)
        await asyncio.to_thread(client.close, 30.0)
        # Spans are flushed while Shopwatch still listens: the last requests' traces too.
        await asyncio.to_thread(tracing.shutdown)
        shopwatch.should_exit = True
        await asyncio.gather(shopwatch_task, return_exceptions=True)
        summary = simulator.summary.as_dict()
        summary["client"] = _stats(client)
        summary["browser"] = browser.report.as_dict()
        if backfilled is not None:
            summary["backfill"] = {"days": opts.backfill, "visits": backfilled.visits,
                                   "events": backfilled.events, "orders": len(backfilled.orders),
                                   "counts": dict(backfilled.counts),
                                   "rum": dict(backfilled.rum_counts),
                                   "spans": backfilled.spans}
        _write_private(data / "demo-summary.json", summary)
        say(f"stopped. {len(simulator.summary.orders)} orders in this run; summary in "
            f"{data / 'demo-summary.json'}")


def _stats(client: Any) -> dict[str, Any]:
    stats = client.stats
    return {k: getattr(stats, k) for k in ("sent", "rejected", "dropped", "retries")}


async def _started(server: uvicorn.Server, task: asyncio.Task[None], what: str) -> None:
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            await task  # raises what failed (port in use…)
            raise ConfigError(f"could not start {what} (is the port in use? try --port)")
        if time.monotonic() > deadline:
            raise ConfigError(f"{what} did not start within 30 s")
        await asyncio.sleep(0.05)


async def _register(shop: Any, accounts: list[tuple[str, str, str]]) -> None:
    """Give the shop its regular customers (name, e-mail, password) as accounts made
    before the demo started (no events), with the ids the history knows them by."""
    from shopwatch.demo.model import customer_id
    from shopwatch.demo.shop.customers import hash_password

    hashes = await asyncio.to_thread(lambda: [hash_password(pw) for *_, pw in accounts])
    for (name, email, _), password_hash in zip(accounts, hashes, strict=True):
        shop.customers.add(name, email, password_hash, customer_id=customer_id(email))


async def _backfill(runtime: Runtime, record: dict[str, Any], products: list[Any],
                    days: float, opts: DemoOptions, say: Callable[[str], None], data: Path,
                    shop_url: str, stop: asyncio.Event, card_secret: bytes) -> Any:
    """Write ``days`` of history; Ctrl-C ends it early (what was written is kept, and
    the days count as done: a second run must not write them again)."""
    from shopwatch.demo import history

    say(f"backfilling {days:g} days of history (events, real-user data and traces) ...")
    started = time.monotonic()
    shown = [0]

    def progress(done: int, total: int) -> None:
        percent = done * 100 // total
        if percent >= shown[0] + 25:
            shown[0] = percent
            say(f"  backfill {percent}%")

    def work() -> tuple[history.HistoryResult, history.Ingest]:
        sink = history.Ingest(runtime, int(record["project_id"]))
        result = history.backfill(sink, products, days=days, now=datetime.now(UTC),
                                  seed=opts.seed, visits_per_minute=opts.visits_per_minute,
                                  timezone=TIMEZONE, currency=CURRENCY, origin=shop_url,
                                  progress=progress, should_stop=stop.is_set,
                                  card_secret=card_secret)
        sink.close()
        return result, sink

    result, sink = await asyncio.to_thread(work)
    ended = "interrupted" if result.interrupted else "done"
    say(f"  backfill {ended}: {result.events:,} events, {len(result.orders):,} orders, "
        f"{result.rum:,} real-user rows, {result.spans:,} spans in "
        f"{time.monotonic() - started:.1f} s "
        f"(rejected {sink.rejected})")
    incidents_log = data / "demo-incidents.jsonl"
    with incidents_log.open("a") as out:
        for entry in result.incidents:
            out.write(json.dumps(entry) + "\n")
    marker = data / DEMO_FILE
    saved = json.loads(marker.read_text())
    saved["backfilled_days"] = float(saved.get("backfilled_days", 0)) + days
    _write_private(marker, saved)
    return result
