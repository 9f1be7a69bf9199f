"""The ``shopwatch`` command line: a thin shell over the runtime and the stores."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from rich.console import Console
from rich.table import Table

from shopwatch import __version__
from shopwatch import settings as settings_mod
from shopwatch.errors import ConfigError, NotFound, ShopwatchError
from shopwatch.runtime import open_state
from shopwatch.store.state import Project, StateStore

F = TypeVar("F", bound=Callable[..., Any])
console = Console()
err_console = Console(stderr=True)


def data_option(func: F) -> F:
    return click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
                        help="Data directory [env SHOPWATCH_DATA_DIR; default ./shopwatch-data].")(
        func)


def load_settings(**overrides: Any) -> settings_mod.Settings:
    try:
        return settings_mod.load(overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shopwatch")
def main() -> None:
    """Shopwatch: monitoring and support for online stores."""
    # Everything Shopwatch writes (stores, WAL files) holds keys or sales data: private.
    os.umask(0o077)


# --- serve ---------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Listen address [env SHOPWATCH_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [env SHOPWATCH_PORT; 8080].")
@data_option
def serve(host: str | None, port: int | None, data_dir: str | None) -> None:
    """Run Shopwatch: ingest, API and writer in one process."""
    import uvicorn

    from shopwatch.runtime import Runtime
    from shopwatch.web.app import create_app

    settings = load_settings(host=host, port=port, data_dir=data_dir)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        runtime = Runtime.open(settings)
    except ShopwatchError as exc:
        fail(str(exc))
    base = f"http://{settings.host}:{settings.port}"
    projects = runtime.state.list_projects()
    console.print(f"[bold]Shopwatch {__version__}[/] on [link={base}]{base}[/]  "
                  f"(data: {settings.data_path.resolve()})", highlight=False)
    console.print(f"  dashboard: {base}/  (sign in)", highlight=False)
    if runtime.users.count() == 0:
        console.print("  No dashboard user yet: add one with "
                      "`shopwatch user add you@example.com --role admin`.", highlight=False)
    if not projects:
        console.print("No project yet: create one with `shopwatch project create NAME`.")
    for p in projects:
        console.print(f"  project {p.id} [bold]{p.name}[/]: ingest key {p.ingest_key}",
                      highlight=False, soft_wrap=True)
    if projects:
        console.print(f"  try: curl -X POST {base}/api/v1/events -H 'Authorization: Bearer "
                      f"{projects[0].ingest_key}' -d '{{\"events\":[{{\"name\":\"page_view\","
                      "\"page\":\"/\"}]}'", highlight=False, soft_wrap=True)
    app = create_app(runtime)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, server_header=False)


# --- demo ----------------------------------------------------------------------------------


@main.command()
@click.option("--port", type=int, default=8080, show_default=True,
              help="Shopwatch's port; the demo shop listens on the next one.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="./shopwatch-demo",
              show_default=True, help="Data directory of the demo (reused by the next run).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the shoppers' random choices.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="How much faster than real life shoppers arrive and act (10 = ten times).")
@click.option("--backfill", type=float, default=0.0, show_default=True, metavar="DAYS",
              help="Write DAYS of past history first (once per data directory).")
@click.option("--no-browser", is_flag=True, help="Do not open the dashboard in a browser.")
@click.option("--reset", is_flag=True, help="Delete the demo's data directory first.")
@click.option("--duration", type=float, default=None, metavar="SECONDS",
              help="Stop by itself after SECONDS of live shoppers.")
def demo(port: int, data_dir: str, seed: int, speed: float, backfill: float, no_browser: bool,
         reset: bool, duration: float | None) -> None:
    """Run Shopwatch with a demo shop and simulated shoppers, incidents included.

    One command, one terminal: the dashboard on --port (sign-in printed), a small
    instrumented shop on the next port, shoppers and incidents driving it. Ctrl-C stops
    everything; the next run reuses the data (--reset starts over).
    """
    from shopwatch.demo.runner import DemoOptions, run

    if speed <= 0 or backfill < 0 or not 0 < port < 65535:
        raise click.UsageError("--speed must be > 0, --backfill >= 0, --port 1-65534")
    default_age = settings_mod.defaults().max_event_age
    settings = load_settings(data_dir=data_dir, port=port,
                             max_event_age=max(default_age, (backfill + 1) * 86400))
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per simulated request would drown what the demo says.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = DemoOptions(port=port, data=settings.data_path, seed=seed, speed=speed,
                          backfill=backfill, open_browser=not no_browser, reset=reset,
                          duration=duration)
    try:
        run(settings, options, say=lambda line: console.print(line, highlight=False,
                                                              soft_wrap=True))
    except ShopwatchError as exc:
        fail(str(exc))


# --- projects ------------------------------------------------------------------------------


@main.group()
def project() -> None:
    """Create, list and change projects (shops) and their keys."""


def _print_projects(projects: list[Project], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in projects]))
        return
    table = Table("id", "name", "ingest key (public)", "secret key", "RUM origins, sample")
    for column in table.columns[2:]:
        column.overflow = "fold"  # a key or origin cut short with "…" cannot be copied
    for p in projects:
        table.add_row(str(p.id), p.name, p.ingest_key or "(revoked)", p.secret_key or "(revoked)",
                      _rum_summary(p))
    console.print(table)


def _rum_summary(p: Project) -> str:
    """The project's RUM origins, one a line ("any" when none is listed), and the share
    of sessions kept."""
    origins = "\n".join(p.rum_origins) if p.rum_origins else "any"
    return f"{origins}\nsample {p.rum_sample_rate * 100:g}%"


@project.command("create")
@click.argument("name")
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--exist-ok", is_flag=True, help="Print the existing project if NAME is taken.")
@click.option("--currency", default="USD", show_default=True,
              help="ISO 4217 code revenue is reported in.")
@click.option("--timezone", default="UTC", show_default=True,
              help="IANA time zone of the shop (when its days start).")
def project_create(name: str, data_dir: str | None, as_json: bool, exist_ok: bool,
                   currency: str, timezone: str) -> None:
    """Create project NAME and print its ingest and secret keys."""
    state = open_state(load_settings(data_dir=data_dir))
    try:
        created = state.create_project(name, currency, timezone)
    except ConfigError as exc:
        if not exist_ok or "exists already" not in str(exc):
            fail(str(exc))
        created = state.get_project(name)
    if as_json:
        click.echo(json.dumps(created.as_dict()))
        return
    # soft_wrap: a key broken over two lines cannot be copied.
    console.print(f"Project {created.id} [bold]{created.name}[/]", highlight=False)
    console.print(f"  ingest key (public, write-only): {created.ingest_key}", highlight=False,
                  soft_wrap=True)
    console.print(f"  secret key (keep private):       {created.secret_key}", highlight=False,
                  soft_wrap=True)


@project.command("list")
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def project_list(data_dir: str | None, as_json: bool) -> None:
    """List projects with their current keys."""
    _print_projects(open_state(load_settings(data_dir=data_dir)).list_projects(), as_json)


@project.command("update")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--name", default=None, help="New name.")
@click.option("--currency", default=None, help="ISO 4217 code revenue is reported in.")
@click.option("--timezone", default=None, help="IANA time zone of the shop.")
@click.option("--rum-origin", "rum_origins", multiple=True, metavar="ORIGIN",
              help="Browser origin (https://shop.example[:port]) whose pages may send RUM "
                   "beacons; repeat for several. Replaces the list.")
@click.option("--clear-rum-origins", is_flag=True,
              help="Empty the list: beacons from any origin are taken (none gets CORS headers).")
@click.option("--rum-sample-rate", type=float, default=None, metavar="RATE",
              help="Share of sessions whose RUM telemetry is kept, 0 to 1 (1: all).")
@click.option("--base-url", default=None, metavar="URL",
              help="The shop's address (https://shop.example), which relative monitor URLs "
                   "join; '' clears it.")
@click.option("--status-page", default=None, metavar="SLUG",
              help="Publish a public status page at /status/SLUG (its monitors' status and "
                   "availability, for customers); '' takes it down.")
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def project_update(project_ref: str, name: str | None, currency: str | None,
                   timezone: str | None, rum_origins: tuple[str, ...], clear_rum_origins: bool,
                   rum_sample_rate: float | None, base_url: str | None,
                   status_page: str | None, data_dir: str | None, as_json: bool) -> None:
    """Change PROJECT's (id or name) name, currency, time zone, RUM origins or RUM sample
    rate; what is not given stays as it is.

    A running server applies new RUM origins and sample rate within 2 seconds.
    """
    if clear_rum_origins and rum_origins:
        raise click.UsageError("--rum-origin and --clear-rum-origins exclude each other")
    if any(not origin.strip() for origin in rum_origins):
        raise click.UsageError("--rum-origin: an empty origin; --clear-rum-origins empties "
                               "the list")
    if (name is None and currency is None and timezone is None and not rum_origins
            and not clear_rum_origins and rum_sample_rate is None and base_url is None
            and status_page is None):
        raise click.UsageError("nothing to change: pass --name, --currency, --timezone, "
                               "--rum-origin, --clear-rum-origins, --rum-sample-rate, "
                               "--base-url or --status-page")
    origins = [] if clear_rum_origins else list(rum_origins) or None
    state = open_state(load_settings(data_dir=data_dir))
    try:
        updated = state.update_project(project_ref, name=name, currency=currency,
                                       timezone=timezone, rum_origins=origins,
                                       rum_sample_rate=rum_sample_rate, base_url=base_url,
                                       status_slug=status_page)
    except (NotFound, ConfigError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(updated.as_dict()))
        return
    console.print(f"Project {updated.id} [bold]{updated.name}[/]: currency {updated.currency}, "
                  f"time zone {updated.timezone}", highlight=False)
    listed = ", ".join(updated.rum_origins) or "any (none listed: no CORS headers)"
    console.print(f"  RUM origins: {listed}", highlight=False, soft_wrap=True)
    console.print(f"  RUM sample rate: {updated.rum_sample_rate:g} "
                  f"({updated.rum_sample_rate * 100:g}% of sessions kept)", highlight=False)
    console.print(f"  base URL (for monitors): {updated.base_url or '(none)'}",
                  highlight=False, soft_wrap=True)
    page = f"/status/{updated.status_slug}" if updated.status_slug else "off"
    console.print(f"  public status page: {page}", highlight=False)


@project.command("rotate-key")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--kind", type=click.Choice(["ingest", "secret", "both"]), default="both",
              show_default=True, help="Which key to replace.")
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def project_rotate_key(project_ref: str, kind: str, data_dir: str | None, as_json: bool) -> None:
    """Revoke PROJECT's key(s) (id or name) and issue new ones.

    A running server stops accepting the old key within 2 seconds.
    """
    state = open_state(load_settings(data_dir=data_dir))
    kinds = ["ingest", "secret"] if kind == "both" else [kind]
    try:
        for k in kinds:
            rotated = state.rotate_key(project_ref, k)  # type: ignore[arg-type]
    except NotFound as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(rotated.as_dict()))
    else:
        _print_projects([rotated], False)


# --- users ---------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Dashboard users: admins manage, viewers look."""


def _read_password(password_stdin: bool, generate: bool, prompt: str) -> str:
    if generate:
        import secrets

        return secrets.token_urlsafe(15)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("--password-stdin: standard input held no password")
        return password
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password: pass --password-stdin (and pipe it) "
             "or --generate-password")
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return value


@user.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "viewer"]), required=True,
              help="admin manages projects, keys and users; viewer only looks.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate-password", is_flag=True,
              help="Make up a strong password and print it once.")
@click.option("--exist-ok", is_flag=True, help="Succeed without change if EMAIL exists.")
@data_option
def user_add(email: str, role: str, password_stdin: bool, generate_password: bool,
             exist_ok: bool, data_dir: str | None) -> None:
    """Add a dashboard user (the password is asked for twice unless given otherwise)."""
    from shopwatch.accounts.users import Users, normalize_email

    users = Users(open_state(load_settings(data_dir=data_dir)))
    try:
        address = normalize_email(email)
        if exist_ok:
            try:
                existing = users.find(address)
            except NotFound:
                pass
            else:
                console.print(f"User {existing.email} exists already ({existing.role}); "
                              "unchanged. `shopwatch user set-password` sets a new password.",
                              highlight=False)
                return
        password = _read_password(password_stdin, generate_password, "Password")
        added = users.add(address, password, role)
    except ConfigError as exc:
        fail(str(exc))
    console.print(f"Added {added.email} ({added.role}).", highlight=False)
    if generate_password:
        console.print(f"  password: {password}   (shown once; change it under Your account)",
                      highlight=False, soft_wrap=True)


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@data_option
def user_list(as_json: bool, data_dir: str | None) -> None:
    """List dashboard users."""
    from shopwatch.accounts.users import Users

    found = Users(open_state(load_settings(data_dir=data_dir))).list()
    if as_json:
        click.echo(json.dumps([{"id": u.id, "email": u.email, "role": u.role,
                                "created_at": u.created_at.isoformat()} for u in found]))
        return
    table = Table("id", "email", "role", "added")
    for u in found:
        table.add_row(str(u.id), u.email, u.role, u.created_at.strftime("%Y-%m-%d"))
    console.print(table)


@user.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate-password", is_flag=True,
              help="Make up a strong password and print it once.")
@data_option
def user_set_password(email: str, password_stdin: bool, generate_password: bool,
                      data_dir: str | None) -> None:
    """Set a user's password; every session of theirs is signed out."""
    from shopwatch.accounts.users import Users

    users = Users(open_state(load_settings(data_dir=data_dir)))
    try:
        found = users.find(email)
        password = _read_password(password_stdin, generate_password, "New password")
        users.set_password(found.id, password)
    except (NotFound, ConfigError) as exc:
        fail(str(exc))
    console.print(f"Password of {found.email} changed; their sessions are signed out.",
                  highlight=False)
    if generate_password:
        console.print(f"  password: {password}", highlight=False, soft_wrap=True)


@user.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["admin", "viewer"]))
@data_option
def user_set_role(email: str, role: str, data_dir: str | None) -> None:
    """Make a user an admin or a viewer."""
    from shopwatch.accounts.users import Users

    users = Users(open_state(load_settings(data_dir=data_dir)))
    try:
        changed = users.set_role(users.find(email).id, role)
    except (NotFound, ConfigError) as exc:
        fail(str(exc))
    console.print(f"{changed.email} is now {changed.role}.", highlight=False)


@user.command("remove")
@click.argument("email")
@data_option
def user_remove(email: str, data_dir: str | None) -> None:
    """Remove a user and sign out their sessions."""
    from shopwatch.accounts.users import Users

    users = Users(open_state(load_settings(data_dir=data_dir)))
    try:
        found = users.find(email)
        users.remove(found.id)
    except (NotFound, ConfigError) as exc:
        fail(str(exc))
    console.print(f"Removed {found.email}.", highlight=False)


# --- events --------------------------------------------------------------------------------


@main.group()
def events() -> None:
    """Look at stored events."""


@events.command("tail")
@click.option("--project", "project_ref", default=None,
              help="Project id or name (default: the only project).")
@click.option("-n", "--lines", "limit", type=int, default=20, show_default=True,
              help="How many recent events.")
@click.option("--name", "names", multiple=True, help="Only events with this name (repeatable).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--url", default=None, help="Server URL [default http://HOST:PORT from settings].")
@data_option
def events_tail(project_ref: str | None, limit: int, names: tuple[str, ...], follow: bool,
                as_json: bool, url: str | None, data_dir: str | None) -> None:
    """Print a project's most recent events, oldest first (like tail)."""
    settings = load_settings(data_dir=data_dir)
    state = open_state(settings)
    projects = state.list_projects()
    if project_ref is None:
        if len(projects) != 1:
            fail("pass --project (id or name); projects: "
                 + (", ".join(f"{p.id} ({p.name})" for p in projects) or "none yet"))
        chosen = projects[0]
    else:
        try:
            chosen = state.get_project(project_ref)
        except NotFound as exc:
            fail(str(exc))
    if chosen.secret_key is None:
        fail(f"project {chosen.id} has no secret key (revoked): issue one with "
             f"`shopwatch project rotate-key {chosen.id} --kind secret`")
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    client = httpx.Client(base_url=base, timeout=10,
                          headers={"Authorization": f"Bearer {chosen.secret_key}"})
    def fetch(params: dict[str, Any]) -> list[dict[str, Any]]:
        if names:
            params["name"] = list(names)
        try:
            response = client.get("/api/v1/events", params=params)
        except httpx.TransportError:
            fail(f"cannot reach Shopwatch at {base}: is `shopwatch serve` running? "
                 "(use --url to point elsewhere)")
        if response.status_code != 200:
            fail(f"{base} answered {response.status_code}: {response.text[:300]}")
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    recent = list(reversed(fetch({"limit": limit, "sort": "received_at", "order": "desc"})))
    for event in recent:
        _print_event(event, as_json)
    if not follow:
        return
    # Follow by receive time (it only grows), not event time, so late events are not
    # missed; remember only the ids at the latest receive time, to skip them next poll.
    since = recent[-1]["received_at"] if recent else None
    shown = {e["id"] for e in recent if e["received_at"] == since}
    while True:
        time.sleep(1.0)
        while True:
            params: dict[str, Any] = {"limit": 1000, "sort": "received_at", "order": "asc"}
            if since:
                params["received_from"] = since
            batch = [e for e in fetch(params) if e["id"] not in shown]
            for event in batch:
                _print_event(event, as_json)
                if event["received_at"] != since:
                    since, shown = event["received_at"], set()
                shown.add(event["id"])
            if len(batch) < 1000:
                break


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(event))
        return
    extra = []
    for key in ("page", "session_id", "user_id"):
        if event.get(key):
            extra.append(f"{key}={event[key]}")
    params = event.get("params") or {}
    for key in ("value", "currency", "transaction_id", "reason"):
        if key in params:
            extra.append(f"{key}={params[key]}")
    click.echo(f"{event['ts']}  {event['name']:<18} {' '.join(extra)}  [{event['id']}]")


# --- settings ------------------------------------------------------------------------------


@main.group()
def monitors() -> None:
    """Monitors of a project: apply them from YAML, list them (docs/monitors.md)."""


def _project_of(state: StateStore, ref: str | None) -> Project:
    if ref is not None:
        return state.get_project(ref)
    projects = state.list_projects()
    if len(projects) != 1:
        names = ", ".join(f"{p.id} ({p.name})" for p in projects) or "none yet"
        raise click.UsageError(f"--project: which project? projects: {names}")
    return projects[0]


_MARKS = {"create": "+", "update": "~", "remove": "-", "keep": "=", "skip": " "}


@monitors.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--project", "project_ref", help="Project id or name (needed when there are "
              "several).")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@data_option
def monitors_apply(path: Path, project_ref: str | None, dry_run: bool,
                   data_dir: str | None) -> None:
    """Make the project's monitors-as-code match PATH (a YAML file or a directory):
    create, update and remove them. Monitors made in the dashboard are left alone.
    The alert rules (rules:) and SLOs (slos:) of the same files are applied too, exactly.
    A running server picks the changes up within its next scheduling round."""
    from shopwatch.alerts.objectives import load_objectives
    from shopwatch.alerts.rules import load_rules
    from shopwatch.checks.monitor import load_monitors
    from shopwatch.store import monitors as store
    from shopwatch.store.rules import apply_rules
    from shopwatch.store.slos import apply_slos

    try:
        wanted = load_monitors(path)
        wanted_rules = load_rules(path)
        wanted_slos = load_objectives(path)
    except ConfigError as exc:
        fail(str(exc), 2)
    state = open_state(load_settings(data_dir=data_dir))
    try:
        chosen = _project_of(state, project_ref)
    except NotFound as exc:
        fail(str(exc))
    changes = (store.plan if dry_run else store.apply)(state, chosen.id, wanted)
    for change in changes:
        detail = f" ({', '.join(change.fields)})" if change.fields else ""
        note = " — made in the dashboard, kept" if change.action == "skip" else ""
        click.echo(f"{_MARKS[change.action]} {change.name} ({change.kind}){detail}{note}")
    counts = {a: sum(1 for c in changes if c.action == a)
              for a in ("create", "update", "remove")}
    verb = "would " if dry_run else ""
    rule_changes = apply_rules(state, chosen.id, wanted_rules, dry_run=dry_run)
    for rc in rule_changes:
        if rc.action != "keep":
            detail = f" ({', '.join(rc.fields)})" if rc.fields else ""
            click.echo(f"{_MARKS[rc.action]} rule {rc.name} ({rc.kind}){detail}")
    rule_counts = {a: sum(1 for c in rule_changes if c.action == a)
                   for a in ("create", "update", "remove")}
    slo_changes = apply_slos(state, chosen.id, wanted_slos, dry_run=dry_run)
    for sc in slo_changes:
        if sc.action != "keep":
            detail = f" ({', '.join(sc.fields)})" if sc.fields else ""
            click.echo(f"{_MARKS[sc.action]} slo {sc.name} ({sc.sli}){detail}")
    slo_counts = {a: sum(1 for c in slo_changes if c.action == a)
                  for a in ("create", "update", "remove")}
    click.echo(f"project {chosen.name}: {verb}create {counts['create']}, {verb}update "
               f"{counts['update']}, {verb}remove {counts['remove']}"
               + (f"; rules: {verb}create {rule_counts['create']}, {verb}update "
                  f"{rule_counts['update']}, {verb}remove {rule_counts['remove']}"
                  if rule_changes else "")
               + (f"; slos: {verb}create {slo_counts['create']}, {verb}update "
                  f"{slo_counts['update']}, {verb}remove {slo_counts['remove']}"
                  if slo_changes else "")
               + (" (dry run: nothing changed)" if dry_run else ""))


@monitors.command("list")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--json", "as_json", is_flag=True, help="Print the monitors as JSON.")
@data_option
def monitors_list(project_ref: str | None, as_json: bool, data_dir: str | None) -> None:
    """The project's monitors, with who manages them."""
    from shopwatch.checks.heartbeat import instance_key, push_path
    from shopwatch.store import monitors as store

    state = open_state(load_settings(data_dir=data_dir))
    try:
        chosen = _project_of(state, project_ref)
    except NotFound as exc:
        fail(str(exc))
    stored = store.list_monitors(state, chosen.id)
    key = instance_key(state)
    if as_json:
        import msgspec

        click.echo(json.dumps([{"name": s.monitor.name, "kind": s.monitor.kind,
                                "source": s.source, "spec": msgspec.to_builtins(s.monitor),
                                **({"push_path": push_path(key, chosen.id, s.monitor.name)}
                                   if s.monitor.kind == "heartbeat" else {})}
                               for s in stored], indent=2))
        return
    table = Table("name", "kind", "target", "interval", "managed in")
    for s in stored:
        m = s.monitor
        target = m.target
        if m.kind == "heartbeat":
            target += f"; push URL path: {push_path(key, chosen.id, m.name)}"
        table.add_row(m.name, m.kind, target, str(m.interval),
                      "code" if s.source == "code" else "dashboard")
    console.print(table)


@main.group()
def maintenance() -> None:
    """Maintenance windows: planned downtime, left out of availability (docs/monitors.md)."""


@maintenance.command("add")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--start", required=True, help="RFC 3339 start, e.g. 2026-11-29T02:00:00Z.")
@click.option("--duration", required=True, help="How long, e.g. 45m or 2h (at most 7d).")
@click.option("--every", type=click.Choice(["day", "week"]), default=None,
              help="Repeat every day or every week from the start.")
@click.option("--note", default="", help="What the window is for (shown in lists).")
@data_option
def maintenance_add(project_ref: str | None, start: str, duration: str, every: str | None,
                    note: str, data_dir: str | None) -> None:
    """Add a maintenance window to the project."""
    from datetime import datetime

    from shopwatch.store.maintenance import add_window

    state = open_state(load_settings(data_dir=data_dir))
    try:
        chosen = _project_of(state, project_ref)
        try:
            starts = datetime.fromisoformat(start.strip().upper())
        except ValueError:
            raise ConfigError(f"--start: {start!r} is not an RFC 3339 time") from None
        if starts.tzinfo is None:
            raise ConfigError(f"--start: {start!r} has no time zone (add Z for UTC)")
        window = add_window(state, chosen.id, starts.timestamp(),
                            settings_mod.parse_duration(duration), every or "", note)
    except (NotFound, ConfigError, ValueError) as exc:
        fail(str(exc))
    click.echo(f"window {window.id}: {window.as_dict()['starts_at']} for {duration}"
               + (f", every {every}" if every else "") + (f" ({note})" if note else ""))


@maintenance.command("list")
@click.option("--project", "project_ref", help="Project id or name.")
@data_option
def maintenance_list(project_ref: str | None, data_dir: str | None) -> None:
    """The project's maintenance windows."""
    from shopwatch.store.maintenance import list_windows

    state = open_state(load_settings(data_dir=data_dir))
    try:
        chosen = _project_of(state, project_ref)
    except NotFound as exc:
        fail(str(exc))
    table = Table("id", "starts", "lasts", "repeats", "note")
    for w in list_windows(state, chosen.id):
        table.add_row(str(w.id), str(w.as_dict()["starts_at"]), f"{w.duration_s:g} s",
                      w.every or "once", w.note)
    console.print(table)


@maintenance.command("remove")
@click.argument("window_id", type=int)
@click.option("--project", "project_ref", help="Project id or name.")
@data_option
def maintenance_remove(window_id: int, project_ref: str | None, data_dir: str | None) -> None:
    """Remove a maintenance window (by the id `maintenance list` shows)."""
    from shopwatch.store.maintenance import remove_window

    state = open_state(load_settings(data_dir=data_dir))
    try:
        remove_window(state, _project_of(state, project_ref).id, window_id)
    except NotFound as exc:
        fail(str(exc))
    click.echo(f"window {window_id} removed")


@main.group()
def channels() -> None:
    """Notification channels of a project: webhook, email, Apprise (docs/alerts.md)."""


def _notify_env(settings: settings_mod.Settings) -> Any:
    from shopwatch.checks.safety import AddressPolicy
    from shopwatch.runtime import notify_environment

    policy = AddressPolicy.parse(a for a in settings.checks_allow.split(",") if a.strip())
    return notify_environment(settings, policy)


@channels.command("add")
@click.argument("name")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--kind", type=click.Choice(["webhook", "email", "apprise"]), required=True)
@click.option("--url", "urls", multiple=True, metavar="URL",
              help="webhook: the receiver's http(s) URL; apprise: an Apprise URL "
              "(repeatable).")
@click.option("--to", "to", multiple=True, metavar="ADDRESS",
              help="email: a recipient (repeatable).")
@click.option("--secret", default=None,
              help="webhook: the signing secret (default: a new random one, printed).")
@data_option
def channels_add(name: str, project_ref: str | None, kind: str, urls: tuple[str, ...],
                 to: tuple[str, ...], secret: str | None, data_dir: str | None) -> None:
    """Add a notification channel NAME to the project."""
    from shopwatch.alerts.channels import create

    settings = load_settings(data_dir=data_dir)
    state = open_state(settings)
    config: dict[str, Any] = {}
    if kind == "webhook":
        if len(urls) != 1:
            fail("--url: a webhook channel takes exactly one URL", 2)
        config = {"url": urls[0]}
        if secret:
            config["secret"] = secret
    elif kind == "email":
        config = {"to": list(to)}
    else:
        config = {"urls": list(urls)}
    try:
        made = create(state, _project_of(state, project_ref).id, name, kind, config,
                      _notify_env(settings))
    except (NotFound, ConfigError) as exc:
        message = str(exc)  # name the flag where the API names the field
        for field, flag in (("urls", "--url"), ("url", "--url"), ("to", "--to")):
            if message.startswith((f"{field}:", f"{field}[")):
                message = flag + message[len(field):]
                break
        fail(message, 2)
    click.echo(f"channel {made.id} {made.name} ({made.kind}) added")
    if made.kind == "webhook":
        click.echo("Signing secret (verify X-Shopwatch-Signature with it; "
                   "`channels list --show-secrets` shows it again):")
        click.echo(f"  {made.config['secret']}")


@channels.command("list")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--json", "as_json", is_flag=True, help="Print the channels as JSON.")
@click.option("--show-secrets", is_flag=True, help="Show signing secrets and Apprise URLs.")
@data_option
def channels_list(project_ref: str | None, as_json: bool, show_secrets: bool,
                  data_dir: str | None) -> None:
    """The project's notification channels."""
    from shopwatch.alerts.channels import present
    from shopwatch.store.channels import list_channels

    state = open_state(load_settings(data_dir=data_dir))
    try:
        chosen = _project_of(state, project_ref)
    except NotFound as exc:
        fail(str(exc))
    shown = [present(c, reveal=show_secrets) for c in list_channels(state, chosen.id)]
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    table = Table("id", "name", "kind", "config", "enabled")
    for c in shown:
        table.add_row(str(c["id"]), c["name"], c["kind"], json.dumps(c["config"]),
                      "yes" if c["enabled"] else "no")
    console.print(table)


@channels.command("remove")
@click.argument("ref", metavar="NAME|ID")
@click.option("--project", "project_ref", help="Project id or name.")
@data_option
def channels_remove(ref: str, project_ref: str | None, data_dir: str | None) -> None:
    """Remove a channel and its delivery history."""
    from shopwatch.store.channels import remove_channel

    state = open_state(load_settings(data_dir=data_dir))
    try:
        gone = remove_channel(state, _project_of(state, project_ref).id, ref)
    except NotFound as exc:
        fail(str(exc))
    click.echo(f"channel {gone.id} {gone.name} removed")


@channels.command("test")
@click.argument("ref", metavar="NAME|ID")
@click.option("--project", "project_ref", help="Project id or name.")
@data_option
def channels_test(ref: str, project_ref: str | None, data_dir: str | None) -> None:
    """Send a test notification through a channel now; exit 1 with the reason if it
    was not delivered."""
    from shopwatch.alerts.channels import sample_notification
    from shopwatch.alerts.delivery import Outbox
    from shopwatch.store.channels import get_channel

    settings = load_settings(data_dir=data_dir)
    state = open_state(settings)
    try:
        chosen = _project_of(state, project_ref)
        found = get_channel(state, chosen.id, ref)
    except NotFound as exc:
        fail(str(exc))
    outcome = Outbox(state, _notify_env(settings)).send_now(
        found.id, sample_notification(chosen.id, found.name))
    if not outcome.ok:
        fail(f"channel {found.name}: not delivered: {outcome.error}")
    click.echo(f"channel {found.name}: test notification delivered")


@main.group()
def probes() -> None:
    """Remote probes: tokens for `shopwatch probe` at other locations (docs/monitors.md)."""


@probes.command("add")
@click.argument("location")
@click.option("--server-url", default=None,
              help="The address probes reach this server at (for the printed command).")
@data_option
def probes_add(location: str, server_url: str | None, data_dir: str | None) -> None:
    """Make a probe token for LOCATION (e.g. eu-west) and print the command to run the
    probe there. The token is shown once; only its hash is stored."""
    from shopwatch.store.probes import add_probe

    settings = load_settings(data_dir=data_dir)
    state = open_state(settings)
    try:
        made, token = add_probe(state, location, settings.checks_location)
    except ConfigError as exc:
        fail(str(exc), 2)
    server = server_url or f"http://{settings.host}:{settings.port}"
    click.echo(f"probe {made.id} for location {made.location}; its token (shown only now):")
    click.echo(f"  {token}")
    click.echo("Run on the machine at that location:")
    click.echo(f"  shopwatch probe --server {server} --location {made.location} "
               f"--token {token}")
    if server_url is None:
        click.echo("(with this server's address as the probe reaches it; --server-url "
                   "prints it here)")
    click.echo(f"Monitors run there when their locations list {made.location}.")


@probes.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the probes as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Revoked probes too.")
@data_option
def probes_list(as_json: bool, show_all: bool, data_dir: str | None) -> None:
    """The probes: location, when made and last seen."""
    from shopwatch.store.probes import list_probes

    state = open_state(load_settings(data_dir=data_dir))
    found = list_probes(state, revoked=show_all)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in found], indent=2))
        return
    table = Table("id", "location", "created", "last seen", "state")
    for p in found:
        item = p.as_dict()
        table.add_row(str(p.id), p.location, str(item["created_at"]),
                      str(item["last_seen_at"] or "never"), "revoked" if p.revoked else "live")
    console.print(table)


@probes.command("revoke")
@click.argument("ref", metavar="LOCATION|ID")
@data_option
def probes_revoke(ref: str, data_dir: str | None) -> None:
    """Revoke a probe's token (by location or id): the server refuses it at once."""
    from shopwatch.store.probes import revoke_probe

    state = open_state(load_settings(data_dir=data_dir))
    try:
        revoked = revoke_probe(state, ref)
    except NotFound as exc:
        fail(str(exc))
    click.echo(f"probe {revoked.id} ({revoked.location}) revoked")


@main.command("probe")
@click.option("--server", required=True, help="The Shopwatch server's address.")
@click.option("--token", envvar="SHOPWATCH_PROBE_TOKEN", required=True,
              help="The probe's token (`shopwatch probes add`) [env SHOPWATCH_PROBE_TOKEN].")
@click.option("--location", required=True, help="This probe's location (the token's).")
@click.option("--allow", multiple=True, metavar="CIDR_OR_HOST",
              help="A private or loopback address, network or host name checks may reach "
              "(repeat for several); others that are not public are refused.")
@click.option("--concurrency", type=click.IntRange(1, 500), default=10, show_default=True,
              help="Most checks running at once.")
def probe_command(server: str, token: str, location: str, allow: tuple[str, ...],
                  concurrency: int) -> None:
    """Run the monitors assigned to LOCATION and send their results to --server, until
    Ctrl-C or SIGTERM (then the buffered results are sent)."""
    import signal
    import threading

    from shopwatch.checks.monitor import check_location
    from shopwatch.checks.probe import Probe
    from shopwatch.checks.safety import AddressPolicy

    try:
        check_location(location, "--location")
        policy = AddressPolicy.parse(a for entry in allow for a in entry.split(","))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if not server.startswith(("http://", "https://")):
        raise click.UsageError(f"--server: {server!r} is not an address like "
                               "https://shopwatch.example")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    runner = Probe(server, token, location, policy, concurrency=concurrency)
    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stopping.set())
    try:
        runner.start()
        while not stopping.is_set() and not runner.wait(0.2):
            pass
        runner.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if runner.fatal is not None:
        fail(str(runner.fatal))


@main.group()
def check() -> None:
    """Run monitors once: the pre-release gate (docs/monitors.md)."""


@check.command("run")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--base-url", help="Joined to relative monitor URLs, e.g. a staging site.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results as JUnit XML (for CI systems).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--artifacts", type=click.Path(file_okay=False, path_type=Path),
              default=Path("shopwatch-artifacts"), show_default=True,
              help="Where failing browser steps leave a screenshot and the page's HTML "
                   "(a folder per monitor).")
def check_run(path: Path, base_url: str | None, junit_path: Path | None, as_json: bool,
              artifacts: Path) -> None:
    """Run the monitors of PATH (a YAML file or a directory of them) once against
    --base-url. Exits 0 when all pass, 1 when any fails, 2 for a bad monitor file.

    The gate runs with your authority: unlike the server, it may reach private and
    loopback addresses (staging sites often live there)."""
    from shopwatch.checks.gate import run_all, summary_lines, write_junit
    from shopwatch.checks.http import Context
    from shopwatch.checks.monitor import load_monitors
    from shopwatch.checks.safety import UNRESTRICTED

    try:
        monitors = load_monitors(path)
    except ConfigError as exc:
        fail(str(exc), 2)
    if not monitors:
        fail(f"{path}: no monitors", 2)

    def show(result: Any) -> None:
        if not as_json:
            for line in summary_lines(result):
                click.echo(line)

    def skip(monitor: Any, reason: str) -> None:
        if not as_json:
            click.echo(f"SKIP  {monitor.name} ({monitor.kind}): {reason}")

    context = Context(base_url=base_url, policy=UNRESTRICTED, artifacts=artifacts)
    results = run_all(monitors, context, show, skip)
    if junit_path is not None:
        write_junit(junit_path, results)
    passed = sum(1 for r in results if r.ok)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        kept = any(s.details.get("screenshot") for r in results for s in r.steps)
        click.echo(f"{len(results)} monitors: {passed} passed, {len(results) - passed} failed"
                   + (f"; JUnit XML in {junit_path}" if junit_path else "")
                   + (f"; screenshots and HTML of failures in {artifacts}/" if kept else ""))
    sys.exit(0 if passed == len(results) else 1)


@main.group()
def reports() -> None:
    """Technical and business reports: schedules that e-mail them, and one-off
    downloads (docs/reports.md)."""


def _reporter(settings: settings_mod.Settings) -> Any:
    """A :class:`~shopwatch.reports.loop.Reporter` over the data directory's stores."""
    from shopwatch.errors import StoreError
    from shopwatch.reports.loop import Reporter
    from shopwatch.runtime import ensure_data_dir
    from shopwatch.store.duckdb import DuckDBEventStore

    data = ensure_data_dir(settings.data_path)
    try:
        events = DuckDBEventStore(data / "events.duckdb", threads=settings.duckdb_threads,
                                  memory_limit=settings.duckdb_memory_limit)
    except StoreError as exc:
        fail(f"{exc} While the server runs, download reports from its API "
             "(GET /api/v1/reports/{audience}); it sends the scheduled ones itself.")
    return Reporter(events, open_state(settings), _notify_env(settings))


@reports.command("add")
@click.argument("name")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--audience", type=click.Choice(["technical", "business"]), required=True)
@click.option("--period", type=click.Choice(["daily", "weekly"]), required=True,
              help="daily: yesterday's report; weekly: last week's, on Mondays.")
@click.option("--hour", type=int, default=8, show_default=True,
              help="When to send it, 0-23 in the project's time zone.")
@click.option("--to", "to", multiple=True, required=True, metavar="ADDRESS",
              help="A recipient (repeatable, at most 20).")
@click.option("--disabled", is_flag=True, help="Store it paused.")
@data_option
def reports_add(name: str, project_ref: str | None, audience: str, period: str, hour: int,
                to: tuple[str, ...], disabled: bool, data_dir: str | None) -> None:
    """Schedule the project's AUDIENCE report of each PERIOD to be e-mailed at HOUR,
    from the next such hour on."""
    from shopwatch.reports.mail import check_smtp
    from shopwatch.store.reports import add_schedule

    settings = load_settings(data_dir=data_dir)
    state = open_state(settings)
    try:
        check_smtp(settings.smtp_host)
        made = add_schedule(state, _project_of(state, project_ref).id, {
            "name": name, "audience": audience, "period": period, "hour": hour,
            "recipients": list(to), "enabled": not disabled}, time.time())
    except (NotFound, ConfigError) as exc:
        message = str(exc)  # name the flag where the API names the field
        for field, flag in (("recipients", "--to"), ("hour", "--hour"), ("smtp_host", "smtp_host")):
            if message.startswith((f"{field}:", f"{field}[")):
                message = flag + message[len(field):]
                break
        fail(message, 2)
    when = "Mondays" if made.period == "weekly" else "every day"
    click.echo(f"report schedule {made.id} {made.name}: the {made.audience} report, "
               f"{when} at {made.hour:02d}:00, to {', '.join(made.recipients)}")


@reports.command("list")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as JSON.")
@data_option
def reports_list(project_ref: str | None, as_json: bool, data_dir: str | None) -> None:
    """The project's report schedules, when each sends next and what it sent last."""
    from shopwatch.store.reports import list_schedules
    from shopwatch.web.reports import present

    state = open_state(load_settings(data_dir=data_dir))
    try:
        chosen = _project_of(state, project_ref)
    except NotFound as exc:
        fail(str(exc))
    now = time.time()
    shown = [present(s, chosen, now) for s in list_schedules(state, chosen.id)]
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    table = Table("id", "name", "report", "when", "recipients", "last sent", "next")
    for s in shown:
        nxt = (s["due"] and f"{s['due']} due now") or (
            f"{s['next']['period']} at {s['next']['at']}" if s["next"] else "paused")
        table.add_row(str(s["id"]), s["name"], s["audience"],
                      f"{s['period']} at {s['hour']:02d}:00 {s['timezone']}",
                      ", ".join(s["recipients"]),
                      (s["last_sent_for"] or "never") + (f" ({s['last_error']})"
                                                        if s["last_error"] else ""), nxt)
    console.print(table)


@reports.command("remove")
@click.argument("ref", metavar="NAME|ID")
@click.option("--project", "project_ref", help="Project id or name.")
@data_option
def reports_remove(ref: str, project_ref: str | None, data_dir: str | None) -> None:
    """Remove a report schedule."""
    from shopwatch.store.reports import remove_schedule

    state = open_state(load_settings(data_dir=data_dir))
    try:
        gone = remove_schedule(state, _project_of(state, project_ref).id, ref)
    except NotFound as exc:
        fail(str(exc))
    click.echo(f"report schedule {gone.id} {gone.name} removed")


@reports.command("send")
@click.argument("ref", metavar="NAME|ID")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--now", "now_", is_flag=True,
              help="Send the latest ended period at once, whatever the schedule's hour, "
              "without changing what the schedule sends next (a test, or an extra copy).")
@data_option
def reports_send(ref: str, project_ref: str | None, now_: bool, data_dir: str | None) -> None:
    """E-mail a scheduled report: with --now, the latest period at once; without, the
    period it is due for, if any (as `shopwatch serve` would, and recorded as sent).
    Exits 1 with the reason when it was not sent."""
    from shopwatch.alerts.channels import ChannelError
    from shopwatch.store.reports import get_schedule

    settings = load_settings(data_dir=data_dir)
    state = open_state(settings)
    try:
        chosen = _project_of(state, project_ref)
        schedule = get_schedule(state, chosen.id, ref)
    except NotFound as exc:
        fail(str(exc))
    reporter = _reporter(settings)
    try:
        if now_:
            try:
                period = reporter.send_now(schedule)
            except ChannelError as exc:
                fail(f"report {schedule.name}: not sent: {exc}")
            click.echo(f"report {schedule.name}: {period.key} sent to "
                       f"{', '.join(schedule.recipients)}")
            return
        outcome = reporter.send_if_due(schedule, chosen.timezone, time.time())
        if outcome is None:
            click.echo(f"report {schedule.name}: nothing due (see `shopwatch reports list`)")
        elif not outcome.sent:
            fail(f"report {schedule.name}: {outcome.period} not sent: {outcome.error}")
        else:
            click.echo(f"report {schedule.name}: {outcome.period} sent to "
                       f"{', '.join(schedule.recipients)}")
    finally:
        reporter.events.close()


@reports.command("render")
@click.option("--project", "project_ref", help="Project id or name.")
@click.option("--audience", type=click.Choice(["technical", "business"]), required=True)
@click.option("--period", type=click.Choice(["daily", "weekly"]), default="daily",
              show_default=True)
@click.option("--key", default=None, metavar="DAY|WEEK",
              help="Which day (2026-11-21) or ISO week (2026-W47); default the latest ended.")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf", "json"]), default="html",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="The file to write.")
@data_option
def reports_render(project_ref: str | None, audience: str, period: str, key: str | None,
                   fmt: str, output: Path, data_dir: str | None) -> None:
    """Write a report to a file: HTML with static charts, a PDF, or its data as JSON.
    Charts and PDFs need Chromium on the PATH; without it the HTML has tables and a
    PDF exits 1 with the reason."""
    from zoneinfo import ZoneInfo

    from shopwatch.reports import content, render
    from shopwatch.reports.periods import by_key, latest

    settings = load_settings(data_dir=data_dir)
    reporter = _reporter(settings)
    try:
        chosen = _project_of(reporter.state, project_ref)
        tz = ZoneInfo(chosen.timezone)
        span = (by_key(period, key, tz) if key else
                latest(period, tz, int(time.time() * 1_000_000)))
        report = content.gather(reporter.events, reporter.state, chosen, audience, span)
    except (NotFound, ConfigError) as exc:
        fail(str(exc), 2)
    finally:
        reporter.events.close()
    if fmt == "json":
        output.write_text(json.dumps(report, indent=2) + "\n")
    else:
        rendered = render.render(report, pdf=fmt == "pdf")
        if fmt == "pdf":
            if rendered.pdf is None:
                fail(f"no PDF: {rendered.reason}")
            output.write_bytes(rendered.pdf or b"")
        else:
            output.write_text(rendered.html)
            if rendered.reason:
                err_console.print(rendered.reason, highlight=False)
    click.echo(f"{report['title']}, {report['period']['label']}: {output}")


# --- import --------------------------------------------------------------------------------


@main.group("import")
def import_group() -> None:
    """Import history from CSV or Parquet files (docs/import.md).

    Stop `shopwatch serve` on the data directory first: the event store takes one
    writing process. Importing a file again stores nothing twice.
    """


_IMPORT_HELP = {
    "contacts": "Service-desk contacts: one support_contact event per row (contact_id, "
                "queued_at, channel, answered_at or abandoned_at, talk_s, hold_s, acw_s, "
                "first_contact_resolved, agent, reason, customer/user_id, order_id).",
    "orders": "Orders: a purchase event per row (order_id, ordered_at, value, currency, "
              "customer/user_id, payment_method, channel/utm_source) and a refund event "
              "when refunded_at (and refunded_value) is given.",
    "customers": "Customers: a sign_up event per row dated created_at or first_seen "
                 "(user_id, optional channel).",
    "spend": "Marketing spend (date, channel, campaign, cost, currency), as the Spend "
             "page's upload: a row replaces the stored one of its date, channel, campaign.",
}


def _import(kind: str, path: Path, project_ref: str | None, data_dir: str | None,
            as_json: bool, errors_csv: Path | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from shopwatch import importer
    from shopwatch.errors import StoreError
    from shopwatch.runtime import Runtime

    settings = load_settings(data_dir=data_dir)
    state = open_state(settings)
    try:
        project_ = _project_of(state, project_ref)
    except NotFound as exc:
        state.close()
        raise click.UsageError(f"--project: {exc}") from None
    except click.UsageError:
        state.close()
        raise
    try:
        total = importer.count_rows(path)
    except (OSError, ValueError) as exc:
        state.close()
        fail(f"cannot read {path}: {exc}")
    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeRemainingColumn(), console=err_console,
                        disable=as_json or not err_console.is_terminal)
    runtime = None
    try:
        with progress:
            task = progress.add_task(f"{kind} from {path.name}", total=total)

            def advance(n: int) -> None:
                progress.advance(task, n)

            if kind == "spend":
                report = importer.import_spend(state, project_, path, progress=advance)
            else:
                state.close()
                try:
                    # Only the writer runs: no checks, alerts, reports or detections.
                    runtime = Runtime.open(settings.replace(
                        store_process=False, checks_enabled=False, alerts_interval=0.0,
                        reports_interval=0.0, security_interval=0.0))
                except StoreError as exc:
                    fail(f"the event store of {settings.data_path} is in use ({exc}). "
                         "Stop `shopwatch serve` (or any other Shopwatch process on this data "
                         "directory) and run the import again: the event store (DuckDB) "
                         "takes one writing process.")
                assert runtime is not None
                runtime.writer.start()
                report = importer.import_events(runtime, project_, kind, path,
                                                progress=advance)
    except (importer.FileRejected, ValueError) as exc:
        fail(str(exc))
    finally:
        if runtime is not None:
            runtime.close()
        elif kind == "spend":
            state.close()
    if errors_csv is not None:
        import csv as csv_mod

        with errors_csv.open("w", newline="", encoding="utf-8") as f:
            writer = csv_mod.writer(f)
            writer.writerow(["line", "field", "reason"])
            writer.writerows([b.line, b.field, b.reason] for b in report.bad)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        noun = "rows" if kind == "spend" else "events"
        console.print(
            f"{report.rows} rows read from {path}: {report.stored} {noun} stored, "
            f"{report.skipped} already imported, {report.bad_count} bad rows "
            f"(project {project_.id} {project_.name}).", highlight=False)
        if report.bad:
            table = Table("line", "field", "reason", title="Bad rows (not imported)")
            for bad in report.bad[:50]:
                table.add_row(str(bad.line), bad.field, bad.reason)
            console.print(table)
            if report.bad_count > 50:
                console.print(f"… and {report.bad_count - 50} more"
                              + ("" if errors_csv else " (--errors FILE lists them all)"),
                              highlight=False)
    if report.bad_count:
        sys.exit(3)


def _import_command(kind: str) -> None:
    @import_group.command(kind, help=_IMPORT_HELP[kind] + " Exit status 3 when some rows "
                          "were bad (the good ones are imported).")
    @click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False,
                                                             path_type=Path))
    @click.option("--project", "project_ref", help="Project id or name (needed when there "
                  "are several).")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.option("--errors", "errors_csv", type=click.Path(dir_okay=False, path_type=Path),
                  default=None, help="Write every bad row (line, field, reason) to this CSV.")
    @data_option
    def command(path: Path, project_ref: str | None, as_json: bool, errors_csv: Path | None,
                data_dir: str | None) -> None:
        _import(kind, path, project_ref, data_dir, as_json, errors_csv)


for _kind in ("contacts", "orders", "customers", "spend"):
    _import_command(_kind)


@main.command("settings")
@click.option("--markdown", is_flag=True, help="Print the table as in docs/configuration.md.")
def show_settings(markdown: bool) -> None:
    """Show every setting with its current value and where to set it."""
    if markdown:
        click.echo(settings_mod.markdown_table())
        return
    current = load_settings()
    table = Table("setting", "env", "value", "meaning")
    for s in settings_mod.SETTINGS:
        value = current.values[s.name]
        if s.type_name == "secret" and value:
            value = "***"
        table.add_row(s.name, s.env, repr(value), s.help)
    console.print(table)


if __name__ == "__main__":
    main()
