"""Notification channels and the outbox, with real receivers: an SMTP server (aiosmtpd)
and an HTTP server on loopback that checks webhook signatures. Only the clock is ours
to move; nothing of Shopwatch is mocked."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from shopwatch.alerts import channels as kinds
from shopwatch.alerts.channels import Environment, Notification, Smtp
from shopwatch.alerts.delivery import BACKOFF, MAX_ATTEMPTS, Outbox
from shopwatch.checks.safety import AddressPolicy, resolving_to
from shopwatch.cli import main
from shopwatch.errors import ConfigError
from shopwatch.store import channels as store
from shopwatch.store.state import StateStore
from tests.conftest import PASSWORD, VIEWER_EMAIL, Live, csrf_of, free_port, sign_in

LOOPBACK = AddressPolicy.parse(["127.0.0.1"])


# --- receivers ------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on loopback recording every POST; answers ``statuses`` in turn
    (then 200), and counts every connection it accepts."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    connections: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.requests.append(Received(self.path, {k.lower(): v for k, v in
                                                       self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            state.connections += 1
            return True

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Inbox:
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    inbox = Inbox(free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state.sqlite")
    opened.create_project("shop")
    yield opened
    opened.close()


def env(**kw: Any) -> Environment:
    kw.setdefault("policy", LOOPBACK)
    return Environment(**kw)


def alert(event: str = "firing") -> Notification:
    return Notification(project_id=1, event=event, title="Checkout is down",
                        text="checkout failed from 2 of 2 locations", severity="critical",
                        url="http://shopwatch.local/alerts/7", labels={"monitor": "checkout"},
                        alert="monitor-down:checkout")


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    # Computed here from the documented recipe, not with Shopwatch's own function.
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                                hashlib.sha256).hexdigest()


# --- channels through the outbox --------------------------------------------------------------


def test_a_webhook_receives_the_notification_signed(state: StateStore,
                                                    receiver: Receiver) -> None:
    clock = Clock()
    outbox = Outbox(state, env(clock=clock), clock=clock)
    hook = kinds.create(state, 1, "ops", "webhook", {"url": receiver.url + "/hook"}, env())
    secret = hook.config["secret"]
    assert len(secret) >= 32
    (delivery_id,) = outbox.enqueue(alert(), [hook.id])
    [outcome] = outbox.run_once()
    assert outcome.ok and outcome.delivery_id == delivery_id
    [got] = receiver.requests
    assert got.path == "/hook" and got.headers["content-type"] == "application/json"
    timestamp = got.headers["x-shopwatch-timestamp"]
    assert got.headers["x-shopwatch-signature"] == expected_signature(secret, timestamp,
                                                                       got.body)
    body = json.loads(got.body)
    assert body["title"] == "Checkout is down" and body["event"] == "firing"
    assert body["labels"] == {"monitor": "checkout"} and body["alert"] == "monitor-down:checkout"
    assert got.headers["x-shopwatch-notification"] == body["id"]
    [row] = store.list_deliveries(state, 1)
    assert (row.status, row.attempts, row.sent_at, row.alert) == (
        "sent", 1, clock.now, "monitor-down:checkout")
    assert outbox.run_once() == []  # sent once


def test_an_email_reaches_a_real_smtp_server(state: StateStore, smtp_server: Inbox) -> None:
    smtp = Smtp(host="127.0.0.1", port=smtp_server.port, security="none",
                sender="Shopwatch <alerts@shop.example>")
    outbox = Outbox(state, env(smtp=smtp))
    mail = kinds.create(state, 1, "on-call", "email",
                        {"to": ["ops@shop.example", "cto@shop.example"]}, env(smtp=smtp))
    outbox.enqueue(alert(), [mail.id])
    [outcome] = outbox.run_once()
    assert outcome.ok, outcome.error
    [(sender, recipients, message)] = smtp_server.messages
    assert sender == "alerts@shop.example"
    assert recipients == ["ops@shop.example", "cto@shop.example"]
    assert message["Subject"] == "[FIRING] Checkout is down"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "checkout failed from 2 of 2 locations" in text.get_content()
    assert "http://shopwatch.local/alerts/7" in text.get_content()
    assert "<h2>Checkout is down</h2>" in html.get_content()


def test_apprise_json_reaches_the_receiver(state: StateStore, receiver: Receiver) -> None:
    outbox = Outbox(state, env())
    target = receiver.url.replace("http://", "json://") + "/apprise"
    channel = kinds.create(state, 1, "apprise", "apprise", {"urls": [target]}, env())
    outbox.enqueue(alert("resolved"), [channel.id])
    [outcome] = outbox.run_once()
    assert outcome.ok, outcome.error
    [got] = receiver.requests
    body = json.loads(got.body)
    assert got.path == "/apprise"
    assert body["title"] == "Checkout is down" and body["type"] == "success"
    assert "checkout failed" in body["message"]


def test_retries_back_off_and_deliver_on_the_third_attempt(state: StateStore,
                                                           receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    clock = Clock()
    outbox = Outbox(state, env(), clock=clock)
    hook = kinds.create(state, 1, "ops", "webhook", {"url": receiver.url}, env())
    (delivery_id,) = outbox.enqueue(alert(), [hook.id])
    start = clock.now

    [first] = outbox.run_once()
    assert (first.ok, first.status, first.error) == (False, "pending", "HTTP 500 from the receiver")
    row = store.get_delivery(state, delivery_id)
    assert (row.attempts, row.next_attempt_at) == (1, start + BACKOFF[0])
    clock.now = start + BACKOFF[0] - 1
    assert outbox.run_once() == []  # not due yet
    clock.now = start + BACKOFF[0]
    [second] = outbox.run_once()
    assert second.status == "pending"
    row = store.get_delivery(state, delivery_id)
    assert (row.attempts, row.next_attempt_at) == (2, clock.now + BACKOFF[1])
    clock.now += BACKOFF[1]
    [third] = outbox.run_once()
    assert third.ok
    row = store.get_delivery(state, delivery_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert len(receiver.requests) == 3
    # Every attempt carries the same notification id (receivers de-duplicate on it).
    assert len({r.headers["x-shopwatch-notification"] for r in receiver.requests}) == 1


def test_a_delivery_fails_after_the_last_attempt(state: StateStore, receiver: Receiver) -> None:
    receiver.statuses = [500] * 20
    clock = Clock()
    outbox = Outbox(state, env(), clock=clock)
    hook = kinds.create(state, 1, "ops", "webhook", {"url": receiver.url}, env())
    (delivery_id,) = outbox.enqueue(alert(), [hook.id])
    for _ in range(MAX_ATTEMPTS):
        outbox.run_once()
        clock.now += max(BACKOFF)
    row = store.get_delivery(state, delivery_id)
    assert (row.status, row.attempts, row.last_error) == (
        "failed", MAX_ATTEMPTS, "HTTP 500 from the receiver")
    assert outbox.run_once() == [] and len(receiver.requests) == MAX_ATTEMPTS


def test_a_delivery_left_sending_is_retried_after_its_lease(state: StateStore,
                                                            receiver: Receiver) -> None:
    clock = Clock()
    outbox = Outbox(state, env(), clock=clock, lease=300)
    hook = kinds.create(state, 1, "ops", "webhook", {"url": receiver.url}, env())
    (delivery_id,) = outbox.enqueue(alert(), [hook.id])
    # A worker claims it and dies before sending (a crash, a restart).
    [seen] = store.due(state, clock.now, 10)
    dead = store.claim(state, seen, clock.now, 300)
    assert dead is not None and store.claim(state, seen, clock.now, 300) is None  # CAS
    clock.now += 299
    assert outbox.run_once() == []  # still leased
    clock.now += 1
    [outcome] = Outbox(state, env(), clock=clock, lease=300).run_once()  # a new process
    assert outcome.ok
    row = store.get_delivery(state, delivery_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(receiver.requests) == 1
    # The dead worker's late answer changes nothing: its lease is gone.
    assert store.finish(state, dead, "failed", clock.now, "late") is False
    assert store.get_delivery(state, delivery_id).status == "sent"


def test_the_worker_thread_delivers_what_is_enqueued(state: StateStore,
                                                     receiver: Receiver) -> None:
    outbox = Outbox(state, env(), poll=30)
    hook = kinds.create(state, 1, "ops", "webhook", {"url": receiver.url}, env())
    outbox.start()
    try:
        (delivery_id,) = outbox.enqueue(alert(), [hook.id])  # wakes the worker
        deadline = time.monotonic() + 20
        while store.get_delivery(state, delivery_id).status != "sent":
            assert time.monotonic() < deadline, "not delivered"
            time.sleep(0.02)
    finally:
        outbox.stop()
    assert len(receiver.requests) == 1


# --- the address rule ------------------------------------------------------------------------


def test_a_webhook_to_loopback_is_refused_without_connecting(state: StateStore,
                                                             receiver: Receiver) -> None:
    strict = Environment()  # checks_allow empty
    hook = kinds.create(state, 1, "canary", "webhook", {"url": receiver.url}, strict)
    outcome = Outbox(state, strict).send_now(hook.id, alert("test"))
    assert not outcome.ok and outcome.status == "failed"
    assert outcome.error is not None and "127.0.0.1 is a loopback address" in outcome.error
    assert "checks_allow" in outcome.error
    # A public-looking name that resolves to loopback is judged by its address, at
    # connect time; the outbox does not retry a refusal.
    named = kinds.create(state, 1, "named", "webhook",
                         {"url": receiver.url.replace("127.0.0.1", "hooks.example.com")}, strict)
    rebinding = Environment(resolver=resolving_to({"hooks.example.com": ["127.0.0.1"]}))
    outbox = Outbox(state, rebinding)
    outbox.enqueue(alert(), [named.id])
    [refused] = outbox.run_once()
    assert refused.status == "failed" and "hooks.example.com (127.0.0.1)" in str(refused.error)
    # Apprise's user-hosted services get the same rule, checked before sending.
    target = receiver.url.replace("http://", "json://")
    ap = kinds.create(state, 1, "apprise", "apprise", {"urls": [target]}, strict)
    refused_ap = Outbox(state, strict).send_now(ap.id, alert("test"))
    assert not refused_ap.ok and "loopback" in str(refused_ap.error)
    assert receiver.connections == 0 and receiver.requests == []
    # Allow-listed: delivered.
    allowed = Environment(policy=AddressPolicy.parse(["127.0.0.1"]))
    assert Outbox(state, allowed).send_now(hook.id, alert("test")).ok
    assert receiver.connections == 1


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "config", "message"), [
    ("webhook", {"url": "ftp://example.com/x"}, "url: 'ftp://example.com/x' is not an http(s) URL"),
    ("webhook", {}, "url: required"),
    ("webhook", {"url": "https://x.example", "secret": "short"}, "secret: at least 16"),
    ("webhook", {"url": "https://x.example", "method": "PUT"}, "method: not a field"),
    ("email", {"to": ["ops@shop.example", "not-an-address"]},
     "to[1]: 'not-an-address' is not an e-mail address"),
    ("email", {"to": []}, "to: required"),
    ("apprise", {"urls": ["slack://T1/B1/C1", "nosuchservice://x"]},
     "urls[1]: 'nosuchservice://x' is not an Apprise URL"),
    ("pager", {}, "kind: 'pager' is not one of webhook, email, apprise"),
])
def test_bad_channel_configs_name_the_field(kind: str, config: dict[str, Any],
                                            message: str) -> None:
    with_smtp = Environment(smtp=Smtp(host="127.0.0.1"))
    with pytest.raises(ConfigError) as raised:
        kinds.parse_config(kind, config, with_smtp)
    assert str(raised.value).startswith(message), str(raised.value)


def test_email_channels_need_an_smtp_server_and_names_are_unique(state: StateStore) -> None:
    with pytest.raises(ConfigError, match="smtp_host"):
        kinds.create(state, 1, "mail", "email", {"to": ["a@b.example"]}, Environment())
    kinds.create(state, 1, "ops", "webhook", {"url": "https://hooks.example.com/x"}, env())
    with pytest.raises(ConfigError, match="name: the project has a channel 'ops'"):
        kinds.create(state, 1, "ops", "webhook", {"url": "https://hooks.example.com/y"}, env())


def test_secrets_are_redacted_unless_revealed(state: StateStore) -> None:
    hook = kinds.create(state, 1, "ops", "webhook", {"url": "https://hooks.example.com/x"},
                        env())
    ap = kinds.create(state, 1, "slack", "apprise",
                      {"urls": ["slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"]}, env())
    assert kinds.present(hook, reveal=False)["config"]["secret"] == "…"
    assert kinds.present(hook, reveal=True)["config"]["secret"] == hook.config["secret"]
    shown = json.dumps(kinds.present(ap, reveal=False))
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in shown and "slack://" in shown


# --- the HTTP API -----------------------------------------------------------------------------


def test_the_api_adds_tests_lists_and_removes_channels(
        server: Callable[..., Live], receiver: Receiver) -> None:
    live = server(checks_allow="127.0.0.1")
    project = live.create_project("shop")
    api = live.client(project.secret_key)
    bad = api.post("/api/v1/channels", json={"name": "ops", "kind": "webhook",
                                             "config": {"url": "gopher://x"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "config.url: 'gopher://x' is not an http(s) URL"
    bad = api.post("/api/v1/channels", json={"name": "", "kind": "webhook", "config": {}})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("name:")

    made = api.post("/api/v1/channels", json={"name": "ops", "kind": "webhook",
                                              "config": {"url": receiver.url + "/api"}})
    assert made.status_code == 201, made.text
    channel = made.json()
    secret = channel["config"]["secret"]

    tested = api.post(f"/api/v1/channels/{channel['id']}/test")
    assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
    [got] = receiver.requests
    assert got.headers["x-shopwatch-signature"] == expected_signature(
        secret, got.headers["x-shopwatch-timestamp"], got.body)
    assert json.loads(got.body)["event"] == "test"

    # Enqueued notifications go out through the server's own worker.
    assert live.runtime.outbox is not None
    live.runtime.outbox.enqueue(Notification(project_id=project.id, event="firing",
                                             title="t", text="x", alert="a1"), [channel["id"]])
    deadline = time.monotonic() + 20
    while len(receiver.requests) < 2:
        assert time.monotonic() < deadline, "the outbox worker did not deliver"
        time.sleep(0.02)

    history = api.get("/api/v1/deliveries", params={"channel": "ops"})
    assert history.status_code == 200
    deadline = time.monotonic() + 20
    while [d["status"] for d in history.json()["deliveries"]] != ["sent", "sent"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
        history = api.get("/api/v1/deliveries", params={"channel": "ops"})
    rows = history.json()["deliveries"]
    assert [r["event"] for r in rows] == ["firing", "test"] and rows[0]["alert"] == "a1"
    only = api.get("/api/v1/deliveries", params={"alert": "a1"}).json()["deliveries"]
    assert [r["id"] for r in only] == [rows[0]["id"]]
    assert api.get("/api/v1/deliveries", params={"channel": "nope"}).status_code == 400

    listed = api.get("/api/v1/channels").json()["channels"]
    assert [c["name"] for c in listed] == ["ops"] and listed[0]["config"]["secret"] == secret
    assert api.delete(f"/api/v1/channels/{channel['id']}").status_code == 200
    assert api.get("/api/v1/channels").json() == {"channels": []}
    assert api.post(f"/api/v1/channels/{channel['id']}/test").status_code == 404


def test_the_test_endpoint_answers_the_error(server: Callable[..., Live],
                                             receiver: Receiver) -> None:
    live = server()  # checks_allow empty: loopback is refused
    project = live.create_project("shop")
    api = live.client(project.secret_key)
    made = api.post("/api/v1/channels", json={"name": "canary", "kind": "webhook",
                                              "config": {"url": receiver.url}}).json()
    answer = api.post(f"/api/v1/channels/{made['id']}/test").json()
    assert answer["ok"] is False and "loopback" in answer["error"]
    assert receiver.connections == 0
    [row] = api.get("/api/v1/deliveries").json()["deliveries"]
    assert (row["status"], row["attempts"]) == ("failed", 1)


def test_viewers_see_channels_without_secrets_and_cannot_change_them(dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    admin = sign_in(dashboard)
    token = csrf_of(admin)
    made = admin.post(f"/api/v1/channels?project={project.id}", headers={"X-CSRF-Token": token},
                      json={"name": "ops", "kind": "webhook",
                            "config": {"url": "https://hooks.example.com/x"}})
    assert made.status_code == 201, made.text
    assert admin.post("/api/v1/channels", json={"name": "x", "kind": "webhook"}
                      ).status_code == 403  # no CSRF token
    viewer = sign_in(dashboard, VIEWER_EMAIL, PASSWORD)
    [seen] = viewer.get("/api/v1/channels").json()["channels"]
    assert seen["config"]["secret"] == "…"
    assert viewer.delete(f"/api/v1/channels/{made.json()['id']}",
                         headers={"X-CSRF-Token": csrf_of(viewer)}).status_code == 403
    [own] = admin.get("/api/v1/channels").json()["channels"]
    assert own["config"]["secret"] == made.json()["config"]["secret"]


# --- the command line -------------------------------------------------------------------------


def test_cli_adds_lists_tests_and_removes_channels(tmp_path: Path, receiver: Receiver,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    base = {k: None for k in os.environ if k.startswith("SHOPWATCH_")}

    def run(*args: str, allow: str = "127.0.0.1") -> Any:
        return runner.invoke(main, [*args, "--data", str(tmp_path / "d")],
                             env={**base, "SHOPWATCH_CHECKS_ALLOW": allow},
                             catch_exceptions=False)

    assert run("project", "create", "shop").exit_code == 0
    added = run("channels", "add", "ops", "--kind", "webhook", "--url", receiver.url + "/cli")
    assert added.exit_code == 0, added.output
    secret = added.output.split("\n")[2].strip()
    bad = run("channels", "add", "mail", "--kind", "email", "--to", "a@b.example", "--to", "x")
    assert bad.exit_code == 2
    bad = run("channels", "add", "ap", "--kind", "apprise", "--url", "bogus://x")
    assert bad.exit_code == 2 and "--url[0]: 'bogus://x' is not an Apprise URL" in bad.output
    listed = run("channels", "list", "--json")
    assert [c["name"] for c in json.loads(listed.output)] == ["ops"]
    assert secret not in listed.output
    assert secret in run("channels", "list", "--json", "--show-secrets").output

    tested = run("channels", "test", "ops")
    assert tested.exit_code == 0, tested.output
    assert "delivered" in tested.output
    [got] = receiver.requests
    assert got.headers["x-shopwatch-signature"] == expected_signature(
        secret, got.headers["x-shopwatch-timestamp"], got.body)
    refused = run("channels", "test", "ops", allow="")
    assert refused.exit_code == 1 and "loopback" in refused.output
    assert run("channels", "remove", "ops").exit_code == 0
    assert json.loads(run("channels", "list", "--json").output) == []
