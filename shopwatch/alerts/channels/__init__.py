"""Notification channels: one small class per kind, registered in :data:`KINDS`.

Each kind has one :meth:`~base.Channel.notify` method that sends a
:class:`~base.Notification` or raises :class:`~base.ChannelError` with the reason,
``parse`` (user input → the config to store, errors naming the field) and ``redact``
(the config without secrets). Channels are stored per project (``shopwatch.store.channels``)
and sent through the outbox (:mod:`shopwatch.alerts.delivery`). See docs/alerts.md.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Final

from shopwatch.alerts.channels.apprise import AppriseChannel
from shopwatch.alerts.channels.base import (
    Channel,
    ChannelError,
    Environment,
    Notification,
    Smtp,
    decode_notification,
    encode_notification,
)
from shopwatch.alerts.channels.email import Email
from shopwatch.alerts.channels.webhook import Webhook
from shopwatch.errors import ConfigError
from shopwatch.store.channels import StoredChannel, add_channel, check_name
from shopwatch.store.state import StateStore

KINDS: Final[dict[str, type[Channel]]] = {
    "webhook": Webhook,
    "email": Email,
    "apprise": AppriseChannel,
}

__all__ = ["KINDS", "Channel", "ChannelError", "Environment", "Notification", "Smtp",
           "build", "create", "decode_notification", "encode_notification", "iso", "kind_of",
           "parse_config", "present", "sample_notification"]


def kind_of(kind: str) -> type[Channel]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ConfigError(f"kind: {kind!r} is not one of {', '.join(KINDS)}") from None


def parse_config(kind: str, data: Any, env: Environment) -> dict[str, Any]:
    """The config to store for a new channel of ``kind``; ConfigError naming the field."""
    if not isinstance(data, dict):
        raise ConfigError("config: an object with the kind's fields")
    return kind_of(kind).parse(data, env)


def build(kind: str, config: dict[str, Any], env: Environment) -> Channel:
    """A ready channel of ``kind`` from its stored config."""
    return kind_of(kind)(config, env)


def create(state: StateStore, project_id: int, name: str, kind: str, data: Any,
           env: Environment) -> StoredChannel:
    """Validate and store a new channel (a webhook gets a fresh signing secret unless
    one is given); ConfigError naming the field."""
    name = check_name(name)
    config = parse_config(kind, data, env)
    return add_channel(state, project_id, name, kind, config, time.time())


def present(channel: StoredChannel, *, reveal: bool) -> dict[str, Any]:
    """A channel as the API and the CLI show it; secrets only with ``reveal``."""
    kind = KINDS.get(channel.kind)
    config = channel.config if reveal or kind is None else kind.redact(channel.config)
    return {"id": channel.id, "name": channel.name, "kind": channel.kind,
            "enabled": channel.enabled, "config": config,
            "created_at": iso(channel.created_at)}


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def sample_notification(project_id: int, channel_name: str, url: str = "") -> Notification:
    """The "send test" notification."""
    return Notification(project_id=project_id, event="test", severity="info",
                        title=f"Test notification from Shopwatch ({channel_name})",
                        text="This is a test. If you can read it, the channel "
                             f"{channel_name!r} works.", url=url,
                        labels={"channel": channel_name})
