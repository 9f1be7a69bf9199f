"""``apprise``: one or more Apprise URLs (``slack://…``, ``msteams://…``, ``tgram://…``,
``discord://…``, ``pagerduty://…``, ``mailto://…``, ``json://…`` and 90+ more; see
https://github.com/caronc/apprise/wiki).

The address rule, as far as Apprise lets us: Apprise makes its own connections (with
``requests``), so they cannot go through Shopwatch's connect-time guard. Before sending,
the host each URL names is resolved and the notification is refused when any of its
addresses is not public and not allow-listed (``checks_allow``). This covers the services
whose host the user picks (``json://``, ``xml://``, ``form://``, ``ntfy://``,
``gotify://``, ``mattermost://``, ``matrix://``…); services at a fixed address (Slack,
Teams, Telegram, Discord, PagerDuty…) name no host to judge. Not covered: a name that
resolves differently between the check and Apprise's own lookup (DNS rebinding),
redirects Apprise follows, and SMTP servers given in ``mailto://`` parameters.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from urllib.parse import urlsplit

from shopwatch.alerts.channels.base import (
    ChannelError,
    Environment,
    Notification,
    only_fields,
    string_list,
)
from shopwatch.alerts.channels.webhook import RUNNER
from shopwatch.errors import ConfigError

# Apprise's NotifyType values (its icons and colours).
_TYPES = {"firing": "failure", "resolved": "success", "reminder": "warning"}


def _instance(url: str) -> Any:
    # Imported when first used: Apprise and its plugins cost the server about 15 MB and
    # 0.1 s at start, which instances without Apprise channels should not pay.
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


class AppriseChannel:
    kind: ClassVar[str] = "apprise"
    secret_fields: ClassVar[tuple[str, ...]] = ("urls",)

    def __init__(self, config: dict[str, Any], env: Environment) -> None:
        self.urls: list[str] = list(config["urls"])
        self.env = env

    @classmethod
    def parse(cls, data: dict[str, Any], env: Environment) -> dict[str, Any]:
        only_fields(data, {"urls", "url"})
        urls = []
        for i, raw in enumerate(string_list(data, "urls", "url")):
            if not isinstance(raw, str) or "://" not in raw or _instance(raw.strip()) is None:
                raise ConfigError(f"urls[{i}]: {raw!r} is not an Apprise URL (e.g. "
                                  "slack://…, tgram://…, json://host/path; see "
                                  "https://github.com/caronc/apprise/wiki)")
            urls.append(raw.strip())
        return {"urls": urls}

    @classmethod
    def redact(cls, config: dict[str, Any]) -> dict[str, Any]:
        shown = []
        for url in config["urls"]:
            plugin = _instance(url)
            shown.append(plugin.url(privacy=True) if plugin is not None
                         else url.split("://", 1)[0] + "://…")
        return {"urls": shown}

    def _refusal(self, url: str) -> str | None:
        host = urlsplit(url).hostname
        if not host:
            return None
        try:
            addresses = self.env.resolver(host, 443)
        except (OSError, UnicodeError):
            return None  # a token in the host's place (slack://T1/...): a fixed service
        policy = self.env.policy
        for address in addresses:
            reason = policy.refusal(host, address)
            if reason is not None:
                return reason.replace(policy.runner, RUNNER)
        return None

    def notify(self, notification: Notification) -> None:
        import apprise

        sender = apprise.Apprise()
        for url in self.urls:
            reason = self._refusal(url)
            if reason is not None:
                raise ChannelError(reason, permanent=True)
            if not sender.add(url):
                raise ChannelError(f"{url.split('://', 1)[0]}://…: Apprise cannot load this "
                                   "URL", permanent=True)
        body = notification.text + (f"\n{notification.url}" if notification.url else "")
        capture = apprise.LogCapture(  # type: ignore[no-untyped-call]
            level=logging.WARNING, fmt="%(message)s")
        with capture as log:
            ok = sender.notify(body=body, title=notification.title,
                               notify_type=apprise.NotifyType(
                                   _TYPES.get(notification.event, "info")))
            if not ok:
                lines = [line.strip() for line in log.getvalue().splitlines() if line.strip()]
                raise ChannelError("Apprise: " + ("; ".join(lines[-3:])[:500]
                                                  or "a service did not accept it"))
