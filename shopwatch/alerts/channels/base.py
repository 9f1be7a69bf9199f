"""What every channel kind shares: the notification, the error, the environment.

::

    ShopwatchError
    └── ChannelError        a notification could not be sent; ``permanent`` when
                            retrying cannot help (refused address, bad recipient)
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Protocol

import httpx
import msgspec

from shopwatch.checks.safety import AddressPolicy, Resolver, system_resolver
from shopwatch.errors import ConfigError, ShopwatchError

EVENTS: Final = ("firing", "resolved", "test", "acknowledged", "reminder")
SEVERITIES: Final = ("critical", "warning", "info")


class ChannelError(ShopwatchError):
    """A notification was not delivered; the message says why. ``permanent``: sending
    it again cannot succeed (the outbox marks it failed without retrying)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Notification(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One thing to tell people, the same for every channel.

    ``id`` is the same for every channel and every retry: receivers de-duplicate on it.
    ``alert`` is the alert's key (rule and labels) or id, ``incident`` the incident's id.
    """

    project_id: int
    event: str  # one of EVENTS
    title: str
    text: str  # plain text
    severity: str = "warning"  # one of SEVERITIES
    url: str = ""  # a link into the dashboard
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    alert: str | None = None
    incident: int | None = None
    created_at: str = msgspec.field(default_factory=_now_iso)  # RFC 3339, UTC
    id: str = msgspec.field(default_factory=lambda: secrets.token_hex(12))

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"event: {self.event!r} is not one of {', '.join(EVENTS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity: {self.severity!r} is not one of "
                             f"{', '.join(SEVERITIES)}")


encode_notification = msgspec.json.Encoder().encode
decode_notification = msgspec.json.Decoder(Notification).decode


@dataclass(frozen=True)
class Smtp:
    """The instance's SMTP server (settings ``smtp_*``); ``host`` '' when not set."""

    host: str = ""
    port: int = 587
    username: str = ""
    password: str = ""
    sender: str = "shopwatch@localhost"
    security: str = "starttls"  # none | starttls | tls


@dataclass(frozen=True)
class Environment:
    """What channels need from the instance: the address rule (``checks_allow``), the
    SMTP server, a timeout, and seams for tests (a resolver, an HTTP transport, a clock
    for the webhook timestamp)."""

    policy: AddressPolicy = field(default_factory=AddressPolicy)
    smtp: Smtp = field(default_factory=Smtp)
    timeout: float = 10.0
    resolver: Resolver = system_resolver
    transport: httpx.BaseTransport | None = None  # None: the SSRF-guarded one
    clock: Callable[[], float] = time.time


class Channel(Protocol):
    """One channel kind: built from its (validated) config, sends with :meth:`notify`."""

    kind: ClassVar[str]
    # Config keys that hold secrets: shown only to admins and secret keys.
    secret_fields: ClassVar[tuple[str, ...]]

    def __init__(self, config: dict[str, Any], env: Environment) -> None: ...

    @classmethod
    def parse(cls, data: dict[str, Any], env: Environment) -> dict[str, Any]:
        """The config to store, from user input; ConfigError naming the field."""
        ...

    @classmethod
    def redact(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The config as people without admin rights may see it."""
        ...

    def notify(self, notification: Notification) -> None:
        """Send it, or raise :class:`ChannelError` with the reason."""
        ...


def check_http_url(value: object, field_name: str) -> str:
    """An absolute http(s) URL with a host, or ConfigError naming ``field_name``."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{field_name}: required (an http(s) URL)")
    url = value.strip()
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise ConfigError(f"{field_name}: {url!r} is not an http(s) URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{field_name}: {url!r} is not an http(s) URL")
    return url


_EMAIL = re.compile(r"[^@\s<>,;\"']{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*")


def check_email(value: object, field_name: str) -> str:
    """One e-mail address (``local@domain``), or ConfigError naming ``field_name``."""
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        raise ConfigError(f"{field_name}: {value!r} is not an e-mail address")
    return value.strip()


def string_list(data: dict[str, Any], name: str, singular: str | None = None) -> list[object]:
    """``data[name]`` as a non-empty list (a lone string or ``data[singular]`` is taken
    as a list of one)."""
    value = data.get(name)
    if value is None and singular is not None:
        value = data.get(singular)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{name}: required (one or more)")
    if len(value) > 20:
        raise ConfigError(f"{name}: at most 20")
    return value


def only_fields(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a field of this kind (fields: "
                          f"{', '.join(sorted(allowed))})")
