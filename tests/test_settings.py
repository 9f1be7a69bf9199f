"""The settings table: precedence, parsing errors, and that every row is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopwatch.errors import ConfigError
from shopwatch.settings import SETTINGS, defaults, load, markdown_table

CONFIGURATION_MD = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("SHOPWATCH_PORT=3003\nSHOPWATCH_HOST=0.0.0.0\nSHOPWATCH_LOG_LEVEL=debug\n")
    return path


def test_flag_beats_environment_beats_env_file_beats_default(env_file: Path) -> None:
    environ = {"SHOPWATCH_PORT": "2002", "SHOPWATCH_HOST": "10.0.0.1"}
    resolved = load({"port": 1001}, environ=environ, env_file=env_file)
    assert resolved.port == 1001  # flag
    assert resolved.host == "10.0.0.1"  # environment over .env
    assert resolved.log_level == "debug"  # .env over default
    assert resolved.max_body_bytes == 1024 * 1024  # default

    assert load({}, environ=environ, env_file=env_file).port == 2002
    assert load({}, environ={}, env_file=env_file).port == 3003
    assert load({}, environ={}, env_file=None).port == 8080


def test_unset_flags_fall_through(env_file: Path) -> None:
    resolved = load({"port": None, "host": None}, environ={}, env_file=env_file)
    assert resolved.port == 3003
    assert resolved.host == "0.0.0.0"


def test_missing_env_file_is_fine(tmp_path: Path) -> None:
    resolved = load(None, environ={}, env_file=tmp_path / "nope.env")
    assert resolved.values == defaults().values


def test_every_setting_reads_its_environment_variable() -> None:
    samples = {"path": "/srv/x", "string": "abc", "integer": "7", "size": "2KiB",
               "duration": "2m", "comma list": "a,b", "secret": "s3cret", "boolean": "no",
               "auto|always|never": "always", "none|starttls|tls": "tls",
               "integer 8-32": "16", "integer 16-128": "64",
               "integer 1-3650": "90", "weights": "recency=1,support=1",
               "fraction 0-1": "0.95"}
    for setting in SETTINGS:
        assert setting.env == "SHOPWATCH_" + setting.name.upper()
        raw = samples[setting.type_name]
        resolved = load(None, environ={setting.env: raw}, env_file=None)
        assert resolved.values[setting.name] == setting.parse(raw), setting.name
        assert resolved.values[setting.name] != setting.default, setting.name
        assert resolved.values == {**defaults().values, setting.name: setting.parse(raw)}


@pytest.mark.parametrize(("raw", "expected"), [
    ("1048576", 1048576), ("512KiB", 512 * 1024), ("1MiB", 1024 * 1024), ("1MB", 1_000_000),
    ("2 kb", 2000), ("100b", 100),
])
def test_sizes(raw: str, expected: int) -> None:
    assert load(None, environ={"SHOPWATCH_MAX_BODY_BYTES": raw}, env_file=None).max_body_bytes \
        == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("2h", 7200.0), ("7d", 604800.0), ("250ms", 0.25),
])
def test_durations(raw: str, expected: float) -> None:
    resolved = load(None, environ={"SHOPWATCH_MAX_FUTURE_SKEW": raw}, env_file=None)
    assert resolved.max_future_skew == pytest.approx(expected)


@pytest.mark.parametrize(("env", "raw"), [
    ("SHOPWATCH_PORT", "eighty"),
    ("SHOPWATCH_MAX_BODY_BYTES", "lots"),
    ("SHOPWATCH_COMMIT_TIMEOUT", "soon"),
    ("SHOPWATCH_WRITER_QUEUE_EVENTS", "1.5"),
])
def test_bad_environment_value_names_the_variable(env: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, environ={env: raw}, env_file=None)
    message = str(info.value)
    assert env in message
    assert repr(raw) in message
    assert "environment variable" in message


def test_bad_env_file_value_names_the_file_and_variable(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("SHOPWATCH_READ_LIMIT_MAX=many\n")
    with pytest.raises(ConfigError) as info:
        load(None, environ={}, env_file=path)
    assert "SHOPWATCH_READ_LIMIT_MAX" in str(info.value)
    assert str(path) in str(info.value)


def test_replace_rejects_unknown_settings() -> None:
    with pytest.raises(ConfigError, match="no_such_setting"):
        defaults().replace(no_such_setting=1)


def test_markdown_table_lists_every_setting() -> None:
    table = markdown_table()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in table
        assert f"`{setting.env}`" in table


def test_every_setting_is_documented() -> None:
    """docs/configuration.md names every setting and its environment variable."""
    assert CONFIGURATION_MD.is_file(), f"{CONFIGURATION_MD} is missing"
    text = CONFIGURATION_MD.read_text()
    missing = [s.name for s in SETTINGS if s.name not in text or s.env not in text]
    assert not missing, f"not documented in docs/configuration.md: {missing}"


def test_the_settings_table_in_the_docs_is_the_generated_one() -> None:
    from shopwatch.settings import markdown_table
    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    assert markdown_table() in doc, "regenerate it: shopwatch settings --markdown"
