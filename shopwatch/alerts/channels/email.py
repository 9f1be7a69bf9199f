"""``email``: a plain-text message with a simple HTML alternative, through the
instance's SMTP server (settings ``smtp_host``, ``smtp_port``, ``smtp_username``,
``smtp_password``, ``smtp_from``, ``smtp_security``).

The SMTP server is chosen by the operator, not by whoever makes the channel, so it is
not subject to the address rule (it is usually on a private network).
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, ClassVar

from shopwatch.alerts.channels.base import (
    ChannelError,
    Environment,
    Notification,
    Smtp,
    check_email,
    only_fields,
    string_list,
)
from shopwatch.errors import ConfigError

_SUBJECT_MARK = {"firing": "FIRING", "resolved": "RESOLVED", "test": "TEST",
                 "acknowledged": "ACKNOWLEDGED", "reminder": "STILL FIRING"}


def message(notification: Notification, sender: str, to: list[str]) -> EmailMessage:
    """The e-mail for ``notification``: text first, HTML as the alternative."""
    msg = EmailMessage()
    msg["Subject"] = f"[{_SUBJECT_MARK.get(notification.event, notification.event)}] " \
                     f"{notification.title}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=notification.id, domain="shopwatch")
    labels = "".join(f"{k}: {v}\n" for k, v in sorted(notification.labels.items()))
    text = notification.text + ("\n\n" + labels if labels else "\n")
    if notification.url:
        text += f"\n{notification.url}\n"
    msg.set_content(text)
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in sorted(notification.labels.items()))
    link = (f"<p><a href='{html.escape(notification.url, quote=True)}'>Open in Shopwatch</a></p>"
            if notification.url else "")
    msg.add_alternative(
        f"<!doctype html><html><body><h2>{html.escape(notification.title)}</h2>"
        f"<p>{html.escape(notification.text).replace(chr(10), '<br>')}</p>"
        f"{'<table>' + rows + '</table>' if rows else ''}{link}</body></html>",
        subtype="html")
    return msg


class Email:
    kind: ClassVar[str] = "email"
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: dict[str, Any], env: Environment) -> None:
        self.to: list[str] = list(config["to"])
        self.env = env

    @classmethod
    def parse(cls, data: dict[str, Any], env: Environment) -> dict[str, Any]:
        only_fields(data, {"to"})
        if not env.smtp.host:
            raise ConfigError("kind: email channels need the instance's SMTP server; set "
                              "smtp_host (SHOPWATCH_SMTP_HOST) and restart")
        to = [check_email(v, f"to[{i}]") for i, v in enumerate(string_list(data, "to"))]
        return {"to": to}

    @classmethod
    def redact(cls, config: dict[str, Any]) -> dict[str, Any]:
        return dict(config)

    def notify(self, notification: Notification) -> None:
        smtp = self.env.smtp
        deliver(smtp, message(notification, smtp.sender, self.to), self.env.timeout)


def deliver(smtp: Smtp, msg: EmailMessage, timeout: float) -> None:
    """Send ``msg`` through the instance's SMTP server, or raise :class:`ChannelError`
    with the reason (``permanent`` when retrying cannot help). Also used by scheduled
    reports (:mod:`shopwatch.reports.mail`)."""
    if not smtp.host:
        raise ChannelError("smtp_host is not set: the instance has no SMTP server")
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password)
            refused = client.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        raise ChannelError("the SMTP server refused every recipient: " + "; ".join(
            f"{rcpt}: {code} {reason.decode(errors='replace')}"
            for rcpt, (code, reason) in exc.recipients.items()), permanent=True) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelError(f"SMTP sign-in refused ({exc.smtp_code}); check smtp_username "
                           "and smtp_password") from None
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise ChannelError(f"SMTP error {exc.smtp_code}: {detail}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ChannelError(f"SMTP {smtp.host}:{smtp.port}: {type(exc).__name__}: "
                           f"{exc}") from None
    if refused:
        # Some recipients got it; retrying would send it again to those.
        raise ChannelError("the SMTP server refused " + ", ".join(sorted(refused)),
                           permanent=True)
