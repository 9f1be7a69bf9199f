"""The ``shopwatch`` command line, through click's runner and as the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shopwatch import __version__
from shopwatch.cli import main
from shopwatch.settings import SETTINGS, markdown_table
from tests.conftest import SHOPWATCH, Live, clean_env

KEYS = {"id", "name", "ingest_key", "secret_key"}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``cli(*args, env={...})``: run shopwatch in ``tmp_path`` (no stray .env), with
    SHOPWATCH_* variables of the outer environment removed."""
    runner = CliRunner()
    base_env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SHOPWATCH_")}
    monkeypatch.chdir(tmp_path)  # the working directory only: .env is read from there

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(main, list(args), env={**base_env, **(env or {})},
                             catch_exceptions=False)
    yield invoke


@pytest.fixture
def data(tmp_path: Path) -> str:
    return str(tmp_path / "data")


def create(cli: Any, data: str, name: str, *extra: str) -> dict[str, Any]:
    result = cli("project", "create", name, "--data", data, "--json", *extra)
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def test_project_create_json_prints_exactly_one_object(cli: Any, data: str) -> None:
    result = cli("project", "create", "My shop", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # one line ...
    created = json.loads(result.stdout)  # ... holding exactly one JSON value
    assert isinstance(created, dict)
    assert set(created) == KEYS
    assert created["name"] == "My shop"
    assert isinstance(created["id"], int)
    assert created["ingest_key"].startswith("swpub_")
    assert created["secret_key"].startswith("swsec_")
    assert created["ingest_key"] != created["secret_key"]


def test_project_create_without_json_shows_the_keys(cli: Any, data: str) -> None:
    result = cli("project", "create", "Shop", "--data", data)
    assert result.exit_code == 0
    [project] = json.loads(cli("project", "list", "--data", data, "--json").stdout)
    assert project["ingest_key"] in result.stdout
    assert project["secret_key"] in result.stdout


def test_duplicate_project_name_fails_clearly(cli: Any, data: str) -> None:
    first = create(cli, data, "Shop")
    result = cli("project", "create", "shop", "--data", data, "--json")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert "exists already" in result.stderr
    again = create(cli, data, "Shop", "--exist-ok")
    assert again == first


def test_project_list_json(cli: Any, data: str) -> None:
    assert json.loads(cli("project", "list", "--data", data, "--json").stdout) == []
    created = [create(cli, data, name) for name in ("A shop", "B shop", "C shop")]
    result = cli("project", "list", "--data", data, "--json")
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert listed == created
    assert all(set(p) == KEYS for p in listed)
    table = cli("project", "list", "--data", data)
    assert all(p["name"] in table.stdout for p in created)


def test_data_dir_from_the_environment(cli: Any, data: str) -> None:
    result = cli("project", "create", "Env shop", "--json", env={"SHOPWATCH_DATA_DIR": data})
    assert result.exit_code == 0
    assert (Path(data) / "state.sqlite").is_file()
    assert json.loads(cli("project", "list", "--data", data, "--json").stdout)[0]["name"] == \
        "Env shop"


def test_env_file_in_the_working_directory(cli: Any, tmp_path: Path, data: str) -> None:
    (tmp_path / ".env").write_text(f"SHOPWATCH_DATA_DIR={data}\n")
    assert cli("project", "create", "Dotenv shop", "--json").exit_code == 0
    assert [p["name"] for p in json.loads(
        cli("project", "list", "--data", data, "--json").stdout)] == ["Dotenv shop"]
    flag_wins = str(tmp_path / "other")
    assert cli("project", "create", "Flag shop", "--data", flag_wins).exit_code == 0
    assert (Path(flag_wins) / "state.sqlite").is_file()


def test_bad_setting_in_the_environment_is_a_usage_error(cli: Any, data: str) -> None:
    result = cli("project", "list", "--data", data, env={"SHOPWATCH_PORT": "eighty"})
    assert result.exit_code == 2
    assert "SHOPWATCH_PORT" in result.output


def test_rotate_key_revokes_the_old_keys_on_a_running_server(
        cli: Any, live: Live) -> None:
    data = live.settings.data_dir
    old = create(cli, data, "Rotating shop")
    assert live.post_events(old["ingest_key"], [{"name": "a", "id": "before"}]).status_code == 200
    assert live.client(old["secret_key"]).get("/api/v1/events").status_code == 200

    result = cli("project", "rotate-key", "Rotating shop", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    new = json.loads(result.stdout)
    assert new["id"] == old["id"]
    assert new["ingest_key"] != old["ingest_key"]
    assert new["secret_key"] != old["secret_key"]
    assert json.loads(cli("project", "list", "--data", data, "--json").stdout) == [new]

    # The server caches keys briefly (2 s): poll until the old key is refused.
    deadline = time.monotonic() + 20
    status = 200
    while time.monotonic() < deadline:
        status = live.post_events(old["ingest_key"], [{"name": "a", "id": "after"}]).status_code
        if status != 200:
            break
        time.sleep(0.2)
    assert status == 401
    # The secret key was cached later than the ingest key, so it may outlive it a moment.
    reader = live.client(old["secret_key"])
    while (status := reader.get("/api/v1/events").status_code) == 200:
        assert time.monotonic() < deadline, "the old secret key still reads"
        time.sleep(0.2)
    assert status == 401
    assert live.post_events(new["ingest_key"], [{"name": "a", "id": "new"}]).status_code == 200
    assert {e["id"] for e in live.read_events(new["secret_key"])} >= {"before", "new"}


def test_rotate_only_the_ingest_key(cli: Any, data: str) -> None:
    old = create(cli, data, "Shop")
    result = cli("project", "rotate-key", str(old["id"]), "--kind", "ingest", "--data", data,
                 "--json")
    assert result.exit_code == 0
    new = json.loads(result.stdout)
    assert new["ingest_key"] != old["ingest_key"]
    assert new["secret_key"] == old["secret_key"]


def test_rotate_key_of_an_unknown_project_fails(cli: Any, data: str) -> None:
    create(cli, data, "Shop")
    result = cli("project", "rotate-key", "nope", "--data", data)
    assert result.exit_code != 0
    assert "no project 'nope'" in result.stderr
    assert "Shop" in result.stderr


def test_project_update_sets_and_clears_rum_origins_and_sample_rate(
        cli: Any, data: str) -> None:
    created = create(cli, data, "RUM shop")
    result = cli("project", "update", "RUM shop", "--data", data,
                 "--rum-origin", "https://Shop.example/", "--rum-origin", "http://localhost:3000",
                 "--rum-sample-rate", "0.25")
    assert result.exit_code == 0, result.output
    assert "https://shop.example, http://localhost:3000" in result.stdout
    assert "25% of sessions" in result.stdout
    from shopwatch.store.state import StateStore

    state = StateStore(Path(data) / "state.sqlite")
    project = state.get_project(created["id"])
    assert project.rum_origins == ("https://shop.example", "http://localhost:3000")
    assert project.rum_sample_rate == 0.25
    # Wide enough for an origin on one line (a narrow table folds it, never cuts it).
    table = cli("project", "list", "--data", data, env={"COLUMNS": "200"}).stdout
    assert "https://shop.example" in table and "sample 25%" in table
    # The --json contract does not grow.
    listed = json.loads(cli("project", "list", "--data", data, "--json").stdout)
    assert listed == [created] and set(listed[0]) == KEYS

    # Given again, the list is replaced; the sample rate is left as it is.
    again = cli("project", "update", str(created["id"]), "--data", data, "--json",
                "--rum-origin", "https://www.shop.example")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == created
    project = state.get_project(created["id"])
    assert project.rum_origins == ("https://www.shop.example",)
    assert project.rum_sample_rate == 0.25

    cleared = cli("project", "update", "rum shop", "--data", data, "--clear-rum-origins",
                  "--rum-sample-rate", "1")
    assert cleared.exit_code == 0, cleared.output
    assert "RUM origins: any" in cleared.stdout
    project = state.get_project(created["id"])
    assert (project.rum_origins, project.rum_sample_rate) == ((), 1.0)
    assert "any" in cli("project", "list", "--data", data).stdout
    state.close()


def test_project_update_name_currency_and_timezone(cli: Any, data: str) -> None:
    created = create(cli, data, "Old name")
    result = cli("project", "update", "Old name", "--data", data, "--name", "New name",
                 "--currency", "eur", "--timezone", "Europe/Paris")
    assert result.exit_code == 0, result.output
    assert "New name" in result.stdout and "EUR" in result.stdout
    [listed] = json.loads(cli("project", "list", "--data", data, "--json").stdout)
    assert listed == {**created, "name": "New name"}


@pytest.mark.parametrize(("args", "message"), [
    (["--rum-origin", "shop.example"], "rum_origins: 'shop.example' is not an origin"),
    (["--rum-origin", "https://shop.example/checkout"], "is not an origin like"),
    (["--rum-origin", "https://shop.example:99999"], "has an invalid port"),
    (["--rum-sample-rate", "1.5"], "rum_sample_rate: 1.5 is not between 0 and 1"),
    (["--rum-sample-rate", "-0.1"], "rum_sample_rate: -0.1 is not between 0 and 1"),
    (["--rum-sample-rate", "nan"], "rum_sample_rate: nan is not between 0 and 1"),
    (["--currency", "euro"], "currency: 'EURO' is not a three-letter"),
    (["--timezone", "Mars/Base"], "timezone: 'Mars/Base' is not an IANA time zone"),
    (["--name", "Other"], "name: a project named 'Other' exists already"),
])
def test_project_update_says_what_is_wrong_and_changes_nothing(
        cli: Any, data: str, args: list[str], message: str) -> None:
    create(cli, data, "Shop")
    create(cli, data, "Other")
    result = cli("project", "update", "Shop", "--data", data, "--rum-origin",
                 "https://ok.example", *args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert message in result.stderr
    from shopwatch.store.state import StateStore

    state = StateStore(Path(data) / "state.sqlite")
    project = state.get_project("Shop")
    state.close()
    assert (project.rum_origins, project.rum_sample_rate, project.currency) == ((), 1.0, "USD")


@pytest.mark.parametrize(("args", "message"), [
    ([], "nothing to change"),
    (["--rum-origin", "https://shop.example", "--clear-rum-origins"], "exclude each other"),
    (["--rum-origin", ""], "--clear-rum-origins empties the list"),
    (["--rum-sample-rate", "half"], "'half' is not a valid float"),
])
def test_project_update_usage_errors(cli: Any, data: str, args: list[str],
                                     message: str) -> None:
    create(cli, data, "Shop")
    result = cli("project", "update", "Shop", "--data", data, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_project_update_of_an_unknown_project_fails(cli: Any, data: str) -> None:
    create(cli, data, "Shop")
    result = cli("project", "update", "nope", "--data", data, "--rum-sample-rate", "0.5")
    assert result.exit_code == 1
    assert "no project 'nope'" in result.stderr and "Shop" in result.stderr


def test_project_update_rum_origins_reach_a_running_server(cli: Any, live: Live) -> None:
    data = live.settings.data_dir
    project = create(cli, data, "Live RUM shop")
    url = f"/api/v1/rum?key={project['ingest_key']}"
    body = json.dumps({"sid": "s1", "r": [{"k": "view", "pv": "p1",
                                           "url": "https://shop.example/"}]})

    def send(origin: str) -> Any:
        return live.client().post(url, content=body, headers={
            "content-type": "text/plain", "origin": origin})

    assert send("https://elsewhere.example").status_code == 200  # none listed: any origin
    result = cli("project", "update", "Live RUM shop", "--data", data,
                 "--rum-origin", "https://shop.example")
    assert result.exit_code == 0, result.output
    # The server caches a project's settings briefly (2 s): poll until it refuses.
    deadline = time.monotonic() + 20
    while (status := send("https://elsewhere.example").status_code) == 200:
        assert time.monotonic() < deadline, "the server still takes any origin"
        time.sleep(0.2)
    assert status == 403
    allowed = send("https://shop.example")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"


def test_events_tail_prints_recent_events(cli: Any, live: Live) -> None:
    data = live.settings.data_dir
    project = create(cli, data, "Tail shop")
    base = time.time_ns() // 1_000_000 - 60_000
    events = [{"name": "page_view", "id": "t1", "ts": base, "page": "/home"},
              {"name": "add_to_cart", "id": "t2", "ts": base + 1000},
              {"name": "purchase", "id": "t3", "ts": base + 2000,
               "params": {"value": 42.5, "currency": "EUR", "transaction_id": "T-9"}}]
    assert live.post_events(project["ingest_key"], events).status_code == 200

    result = cli("events", "tail", "--url", live.base_url, "--data", data)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert [line.split()[-1] for line in lines] == ["[t1]", "[t2]", "[t3]"]  # oldest first
    assert "page=/home" in lines[0]
    assert "purchase" in lines[2]
    assert "value=42.5" in lines[2] and "transaction_id=T-9" in lines[2]

    as_json = cli("events", "tail", "--url", live.base_url, "--data", data, "--json", "-n", "2")
    assert [json.loads(line)["id"] for line in as_json.stdout.splitlines()] == ["t2", "t3"]
    named = cli("events", "tail", "--url", live.base_url, "--data", data, "--json",
                "--name", "page_view", "--project", "Tail shop")
    assert [json.loads(line)["id"] for line in named.stdout.splitlines()] == ["t1"]


def test_events_tail_without_a_server_says_so(cli: Any, data: str) -> None:
    create(cli, data, "Shop")
    result = cli("events", "tail", "--url", "http://127.0.0.1:9", "--data", data)
    assert result.exit_code != 0
    assert "cannot reach" in result.stderr


def test_events_tail_needs_a_project_when_there_are_several(cli: Any, data: str) -> None:
    create(cli, data, "One")
    create(cli, data, "Two")
    result = cli("events", "tail", "--url", "http://127.0.0.1:9", "--data", data)
    assert result.exit_code != 0
    assert "--project" in result.stderr


def test_settings_markdown(cli: Any) -> None:
    result = cli("settings", "--markdown")
    assert result.exit_code == 0
    assert result.stdout == markdown_table() + "\n"
    for setting in SETTINGS:
        assert setting.env in result.stdout


def test_settings_shows_current_values_and_hides_secrets(cli: Any) -> None:
    result = cli("settings", env={"SHOPWATCH_PORT": "9999", "SHOPWATCH_METRICS_TOKEN": "hush"})
    assert result.exit_code == 0
    assert "9999" in result.stdout
    assert "hush" not in result.stdout


def test_version(cli: Any) -> None:
    assert __version__ in cli("--version").stdout


def test_installed_script_prints_only_the_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = subprocess.run([str(SHOPWATCH), "project", "create", "Script shop", "--data",
                             str(data), "--json"], capture_output=True, text=True, cwd=tmp_path,
                            env=clean_env(), timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == KEYS
    assert result.stdout.strip().count("\n") == 0


def test_events_tail_follow_prints_new_and_late_events(cli: Any, live: Live) -> None:
    data = live.settings.data_dir
    project = create(cli, data, "Follow shop")
    now_ms = time.time_ns() // 1_000_000
    assert live.post_events(project["ingest_key"],
                            [{"name": "page_view", "id": "old", "ts": now_ms}]).status_code == 200
    proc = subprocess.Popen(
        [str(SHOPWATCH), "events", "tail", "-f", "--json", "-n", "1", "--url", live.base_url,
         "--data", data], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(json.loads(line)["id"] for line in proc.stdout or []),
        daemon=True)
    reader.start()
    try:
        _wait_for(lambda: seen == ["old"])
        # A late event (its ts an hour back) and a page of new ones, after the follow began.
        late = {"name": "purchase", "id": "late", "ts": now_ms - 3_600_000}
        new = [{"name": "page_view", "id": f"n{i}"} for i in range(30)]
        assert live.post_events(project["ingest_key"], [late, *new]).status_code == 200
        _wait_for(lambda: len(seen) >= 32)
        assert sorted(seen) == sorted(["old", "late", *[e["id"] for e in new]])
        assert len(seen) == len(set(seen))  # nothing printed twice
    finally:
        proc.kill()
        proc.wait(10)


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- users ---------------------------------------------------------------------------------


def test_user_add_reads_the_password_from_stdin(data: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["user", "add", "Ops@Example.com", "--role", "admin",
                                  "--password-stdin", "--data", data],
                           input="a long enough password\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Added ops@example.com (admin)." in result.output
    assert "a long enough password" not in result.output
    from shopwatch.accounts.users import Users
    from shopwatch.store.state import StateStore

    users = Users(StateStore(Path(data) / "state.sqlite"))
    assert users.authenticate("ops@example.com", "a long enough password") is not None


def test_user_add_generates_a_password_once_and_exist_ok_keeps_it(cli: Any, data: str) -> None:
    first = cli("user", "add", "a@example.com", "--role", "viewer", "--generate-password",
                "--exist-ok", "--data", data)
    assert first.exit_code == 0 and "password: " in first.output
    again = cli("user", "add", "a@example.com", "--role", "viewer", "--generate-password",
                "--exist-ok", "--data", data)
    assert again.exit_code == 0 and "exists already" in again.output
    assert "password: " not in again.output
    listed = json.loads(cli("user", "list", "--json", "--data", data).output)
    assert [(u["email"], u["role"]) for u in listed] == [("a@example.com", "viewer")]


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--role", "admin", "--password-stdin"], "short\n", "password: at least 10 characters"),
    (["--role", "admin", "--password-stdin"], "", "standard input held no password"),
    (["--role", "admin"], "", "no terminal to ask for the password"),
    (["--role", "owner", "--password-stdin"], "long enough pw\n", "Invalid value for '--role'"),
])
def test_user_add_says_what_is_wrong(data: str, args: list[str], stdin: str,
                                     message: str) -> None:
    result = CliRunner().invoke(main, ["user", "add", "b@example.com", *args, "--data", data],
                                input=stdin)
    assert result.exit_code != 0
    assert message in result.output


def test_last_admin_cannot_be_removed_from_the_cli(cli: Any, data: str) -> None:
    cli("user", "add", "a@example.com", "--role", "admin", "--generate-password", "--data", data)
    removed = cli("user", "remove", "a@example.com", "--data", data)
    assert removed.exit_code == 1 and "last admin" in removed.output
    assert cli("user", "add", "b@example.com", "--role", "admin", "--generate-password",
               "--data", data).exit_code == 0
    assert cli("user", "set-role", "a@example.com", "viewer", "--data", data).exit_code == 0
    assert cli("user", "remove", "a@example.com", "--data", data).exit_code == 0
    changed = cli("user", "set-password", "b@example.com", "--generate-password", "--data", data)
    assert changed.exit_code == 0 and "sessions are signed out" in changed.output
