"""``webhook``: POST the notification as JSON, signed with HMAC-SHA256.

Headers: ``X-Shopwatch-Timestamp`` (epoch seconds) and ``X-Shopwatch-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``f"{timestamp}.{body}"`` under the channel's secret
(generated when the channel is made). Receivers verify it and reject old timestamps
(docs/alerts.md has the snippet). Any 2xx answer is success; redirects are not
followed (a receiver that moved must be re-configured, not chased).

The connection goes through :class:`~shopwatch.checks.safety.Guard`: an address that is
loopback, private, link-local (cloud metadata) or otherwise not public is refused at
connect time unless ``checks_allow`` lists it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace
from typing import Any, ClassVar

import httpx

from shopwatch import __version__
from shopwatch.alerts.channels.base import (
    ChannelError,
    Environment,
    Notification,
    check_http_url,
    encode_notification,
    only_fields,
)
from shopwatch.checks.safety import Guard, GuardedTransport, TargetRefused
from shopwatch.errors import ConfigError

RUNNER = ("notifications reach only public addresses unless an admin allow-lists it "
          "(checks_allow)")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Shopwatch-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the one :func:`sign` makes (constant-time)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Webhook:
    kind: ClassVar[str] = "webhook"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    def __init__(self, config: dict[str, Any], env: Environment) -> None:
        self.url: str = config["url"]
        self.secret: str = config["secret"]
        self.env = env

    @classmethod
    def parse(cls, data: dict[str, Any], env: Environment) -> dict[str, Any]:
        only_fields(data, {"url", "secret"})
        secret = data.get("secret") or secrets.token_urlsafe(32)
        if not isinstance(secret, str) or len(secret) < 16:
            raise ConfigError("secret: at least 16 characters (leave it out to get one)")
        return {"url": check_http_url(data.get("url"), "url"), "secret": secret}

    @classmethod
    def redact(cls, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "secret": "…"}

    def notify(self, notification: Notification) -> None:
        body = encode_notification(notification)
        timestamp = str(int(self.env.clock()))
        headers = {"Content-Type": "application/json",
                   "User-Agent": f"shopwatch/{__version__}",
                   "X-Shopwatch-Event": notification.event,
                   "X-Shopwatch-Notification": notification.id,
                   "X-Shopwatch-Timestamp": timestamp,
                   "X-Shopwatch-Signature": sign(self.secret, timestamp, body)}
        transport = self.env.transport or GuardedTransport(
            Guard(replace(self.env.policy, runner=RUNNER), self.env.resolver))
        try:
            with httpx.Client(transport=transport, timeout=self.env.timeout,
                              follow_redirects=False) as client:
                response = client.post(self.url, content=body, headers=headers)
        except TargetRefused as exc:
            raise ChannelError(str(exc), permanent=True) from None
        except httpx.TimeoutException:
            raise ChannelError(f"no answer within {self.env.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise ChannelError(f"HTTP {response.status_code} from the receiver"
                               + (" (redirects are not followed)"
                                  if 300 <= response.status_code < 400 else ""))
