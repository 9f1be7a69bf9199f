"""Security rules as code, findings' lifecycle in the state store, the watch's
notifications, and the findings API — on real SQLite and DuckDB files, a running server
and a webhook receiver on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopwatch.alerts import channels as kinds
from shopwatch.alerts.channels.base import Notification
from shopwatch.alerts.rules import parse_rules
from shopwatch.errors import ConfigError
from shopwatch.security.watch import Watch, builtin_rules, effective_rules
from shopwatch.store import findings as store
from shopwatch.store.rules import apply_rules
from shopwatch.store.silences import add_silence
from shopwatch.store.state import StateStore
from tests.conftest import ADMIN_EMAIL, PASSWORD, Live, csrf_of, sign_in
from tests.test_channels import Receiver, env, receiver  # noqa: F401


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state.sqlite")
    opened.create_project("shop")
    yield opened
    opened.close()


# --- rules ---------------------------------------------------------------------------


def test_security_rules_parse_with_their_kinds_defaults_and_tunables() -> None:
    rules = parse_rules("""
rules:
  - {name: slow brute force, kind: brute_force, window: 1h, params: {failures: 30},
     channels: [ops]}
  - {name: cards, kind: card_testing}
  - {name: no bots, kind: bot_traffic, enabled: false}
""", "security.yml")
    brute, cards, bots = rules
    assert (brute.window_s, brute.params, brute.severity) == (3600, {"failures": 30}, "warning")
    assert (cards.window_s, cards.severity) == (1800, "critical")  # the kind's defaults
    assert not bots.enabled
    kinds_run = {r.kind: r.name for r in effective_rules(rules) if r.enabled}
    assert kinds_run["brute_force"] == "slow brute force"
    assert "bot_traffic" not in kinds_run  # a disabled rule turns its kind off
    assert kinds_run["account_takeover"] == "account takeover"  # built in
    assert len(builtin_rules()) == 6


@pytest.mark.parametrize(("text", "error"), [
    ("{name: a, kind: brute_force, params: {failure: 3}}",
     "rules[0].params.failure: not a brute_force parameter (it takes: failures)"),
    ("{name: a, kind: card_testing, series: orders}",
     "rules[0].series: a card_testing rule has no series"),
    ("{name: a, kind: signup_abuse, params: {signups: -1}}",
     "rules[0].params.signups: must not be negative"),
    ("{name: a, kind: threshold, series: orders, op: '>', threshold: 1, params: {x: 1}}",
     "rules[0].params: only security rules have params"),
])
def test_bad_security_rules_name_the_field(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_rules(f"rules:\n  - {text}\n", "s.yml")
    assert str(raised.value).startswith(f"s.yml: {error}")


# --- findings in the store -----------------------------------------------------------


def _record(state: StateStore, ids: list[str], last: float, now: float,
            severity: str = "warning", title: str = "t") -> tuple[store.Finding | None, bool]:
    return store.record(state, 1, kind="brute_force", subject="account:a", rule="brute force",
                        severity=severity, title=title, first_seen=last - 60, last_seen=last,
                        evidence={"event_ids": ids, "accounts": ["a"]}, now=now)


def test_a_subject_has_one_finding_while_the_attack_goes_on(state: StateStore) -> None:
    first, created = _record(state, ["e1", "e2", "e3"], 100.0, 100.0, title="3 failures")
    assert created and first is not None and first.status == "open"
    # A later window sees the tail of the attack: ids gathered, the peak's title kept.
    again, created = _record(state, ["e3", "e4"], 160.0, 160.0, title="2 failures")
    assert not created and again is not None and again.id == first.id
    assert again.evidence["event_ids"] == ["e1", "e2", "e3", "e4"]
    assert (again.title, again.last_seen) == ("3 failures", 160.0)
    # A bigger window takes over the title; a higher severity is told again.
    store.mark_notified(state, first.id, 161.0)
    bigger, _ = _record(state, ["e4", "e5", "e6", "e7"], 200.0, 200.0, "critical", "4 failures")
    assert bigger is not None and (bigger.title, bigger.severity) == ("4 failures", "critical")
    assert bigger.notified_at is None
    assert len(store.list_findings(state, 1)) == 1


def test_false_positives_stay_quiet_and_resolutions_reopen_only_on_new_activity(
        state: StateStore) -> None:
    finding, _ = _record(state, ["e1"], 100.0, 100.0)
    assert finding is not None
    store.set_status(state, 1, finding.id, "false_positive", "ann@example.com", 110.0)
    same, created = _record(state, ["e1", "e2"], 150.0, 150.0, "critical", "louder")
    assert not created and same is not None
    assert (same.status, same.title, same.severity) == ("false_positive", "t", "warning")
    store.set_status(state, 1, finding.id, "resolved", "ann@example.com", 200.0)
    old, created = _record(state, ["e2"], 150.0, 210.0)  # activity the resolution covered
    assert (old, created) == (None, False)
    new, created = _record(state, ["e9"], 260.0, 260.0)
    assert created and new is not None and new.id != finding.id and new.status == "open"
    assert store.count_by_status(state, 1) == {"open": 1, "acknowledged": 0,
                                               "false_positive": 0, "resolved": 1}
    with pytest.raises(ConfigError, match="status: 'closed' is not one of"):
        store.set_status(state, 1, new.id, "closed", "x", 270.0)


def test_merged_event_ids_keep_how_the_attack_began_and_its_latest_events() -> None:
    merged = store.merge_ids([f"a{i}" for i in range(450)], [f"b{i}" for i in range(100)])
    assert len(merged) == store.MAX_EVENT_IDS
    assert merged[:store.KEEP_FIRST] == [f"a{i}" for i in range(store.KEEP_FIRST)]
    assert merged[-1] == "b99"


# --- the watch: findings told through the channels ------------------------------------


def _failures(live: Live, key: str, account: str, at: float, n: int = 12) -> None:
    events = [{"name": "login_failed", "ts": int((at + i) * 1000), "user_id": account,
               "ip": "198.51.100.7", "params": {"reason": "wrong_password"}} for i in range(n)]
    assert live.post_events(key, events).status_code == 200


def test_the_watch_tells_new_findings_once_grouped_and_waits_out_silences(
        server: Any) -> None:
    live: Live = server(security_interval=0.0)
    project = live.create_project("shop")
    state = live.runtime.state
    sent: list[tuple[Notification, list[int]]] = []
    ops = kinds.create(state, project.id, "ops", "webhook", {"url": "https://hooks.example/x"},
                       env())
    watch = Watch(state, live.runtime.events, lambda: [],
                  lambda n, ids: sent.append((n, ids)),
                  link=lambda pid, fid: f"https://sw.example/security?finding={fid}")
    base = time.time()
    _failures(live, project.ingest_key, "a", base - 300)
    _failures(live, project.ingest_key, "b", base - 200)
    add_silence(state, project.id, "brute*", base - 1000, base + 5, "pen test", "ann", base)
    watch.run(base)
    assert len(store.list_findings(state, project.id)) == 2 and not sent  # silenced: waits
    watch.run(base + 10)
    assert len(sent) == 1
    notification, channel_ids = sent[0]
    assert channel_ids == [ops.id]  # a built-in rule tells every channel of the project
    assert notification.title == "[security] 2 findings: Brute force; Brute force"
    assert "Brute force on account a: 12 failed sign-ins in 15 min" in notification.text
    watch.run(base + 20)
    assert len(sent) == 1  # told once
    _failures(live, project.ingest_key, "c", base - 100)
    watch.run(base + 30)
    assert sent[-1][0].title == "[security] Brute force on account c: 12 failed sign-ins in 15 min"
    assert sent[-1][0].url.endswith("?finding=3")


# --- in a running server: rules as code, the loop, a webhook, the API ------------------


def test_a_running_server_finds_brute_force_notifies_and_serves_the_finding(
        server: Any, receiver: Receiver) -> None:  # noqa: F811
    live: Live = server(security_interval=0.3, checks_allow="127.0.0.1",
                        public_url="https://sw.example")
    project = live.create_project("shop")
    state = live.runtime.state
    kinds.create(state, project.id, "ops", "webhook", {"url": receiver.url}, env())
    apply_rules(state, project.id, parse_rules("""
rules:
  - {name: brute force, kind: brute_force, params: {failures: 5}, channels: [ops]}
"""))
    now_ms = int(time.time() * 1000)
    attempts = [{"id": f"f{i}", "name": "login_failed", "ts": now_ms - 1000 * (10 - i),
                 "user_id": "cust-7", "session_id": "s1", "ip": "203.0.113.9",
                 "user_agent": "curl/8.5.0", "params": {"reason": "wrong_password"}}
                for i in range(6)]
    assert live.post_events(project.ingest_key, attempts).status_code == 200
    deadline = time.monotonic() + 30
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    body = json.loads(receiver.requests[0].body)
    assert body["title"] == ("[security] Brute force on account cust-7: 6 failed sign-ins "
                             "in 15 min")
    assert body["url"] == f"https://sw.example/security?project={project.id}&finding=1"

    api = live.client(project.secret_key)
    listed = api.get("/api/v1/security/findings", params={"status": "open"}).json()
    assert listed["counts"]["open"] == 1
    finding = listed["findings"][0]
    assert (finding["kind"], finding["subject"], finding["severity"]) == (
        "brute_force", "account:cust-7", "warning")
    assert finding["evidence"]["networks"] == ["203.0.113.0/24"]
    detail = api.get(f"/api/v1/security/findings/{finding['id']}").json()
    assert [e["id"] for e in detail["events"]] == [f"f{i}" for i in range(6)]
    assert detail["events"][0]["net_prefix"] == "203.0.113.0/24"
    assert "203.0.113.9" not in json.dumps(detail)  # the address itself is never kept

    card = api.get("/api/v1/overview").json()["security_findings"]
    assert (card["value"], card["critical"], card["latest"][0]["id"]) == (1, 0, finding["id"])

    assert api.post(f"/api/v1/security/findings/{finding['id']}", json={"status": "done"}
                    ).json()["error"]["message"].startswith("status: 'done' is not one of")
    assert api.post(f"/api/v1/security/findings/{finding['id']}",
                    json={"status": "resolved", "x": 1}).status_code == 400
    assert api.get("/api/v1/security/findings/999").status_code == 404
    # An admin session acknowledges with its CSRF token; the ingest key reads nothing.
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    admin = sign_in(live)
    token = csrf_of(admin)
    changed = admin.post(f"/api/v1/security/findings/{finding['id']}",
                         params={"project": project.id}, json={"status": "acknowledged"},
                         headers={"X-CSRF-Token": token})
    assert changed.status_code == 200, changed.text
    assert changed.json()["finding"]["status_by"] == ADMIN_EMAIL
    assert live.client(project.ingest_key).get(
        "/api/v1/security/findings").status_code == 403
    assert api.get("/api/v1/overview").json()["security_findings"]["value"] == 0
