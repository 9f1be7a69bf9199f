"""A report as an e-mail: a plain-text summary, an HTML body of tables, the PDF attached.

Contract (docs/reports.md, "E-mail"):

- The HTML body is the report's ``email`` page (:func:`.render.html`): tables only, CSS
  in the page, no script, no SVG, no remote image. Mail clients drop scripts and many
  (Gmail among them) drop SVG, so the body reads the same without any chart; the charts
  are in the attached PDF (``shopwatch-<audience>-<period key>.pdf``).
- Without Chromium there is no PDF: the e-mail goes without attachment and its body
  says why.
- It is sent through the instance's SMTP server (settings ``smtp_*``) by
  :func:`shopwatch.alerts.channels.email.deliver`, which raises
  :class:`~shopwatch.alerts.channels.ChannelError` with the reason. The SMTP server is
  the operator's choice, so the address policy for outgoing requests does not apply to
  it; recipients are only ever e-mail addresses given to that server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from shopwatch.alerts.channels.base import Smtp
from shopwatch.alerts.channels.email import deliver
from shopwatch.errors import ConfigError
from shopwatch.reports.render import Rendered, fmt_duration, fmt_pct, fmt_value, html


def subject(report: dict[str, Any]) -> str:
    return f"{report['title']}: {report['period']['label']} · {report['project']['name']}"


def filename(report: dict[str, Any], extension: str) -> str:
    """``shopwatch-business-2026-W47.pdf``: the audience and period key, safe as a name."""
    key = re.sub(r"[^0-9A-Za-z-]+", "-", report["period"]["key"]).strip("-")
    return f"shopwatch-{report['audience']}-{key}.{extension}"


def summary(report: dict[str, Any]) -> str:
    """The report's main figures as plain text (the e-mail's text part)."""
    lines = [subject(report), ""]
    currency = report["project"]["currency"]
    if report["audience"] == "technical":
        av = report["availability"]
        lines.append(f"Availability: {fmt_pct(av['overall']['availability'], 2)} "
                     f"(previous {fmt_pct(av['overall']['previous'], 2)})")
        lines += [f"  {m['name']}: {fmt_pct(m['availability'], 2)}, {m['failed']} failed "
                  f"of {m['runs']} runs" for m in av["monitors"]]
        metrics = report["vitals"]["metrics"]
        lines.append("Web Vitals at p75: " + ", ".join(
            f"{name.upper()} {fmt_value(metrics[name]['p75'], 'cls' if name == 'cls' else 'ms')}"
            for name in ("lcp", "inp", "cls")))
        inc = report["incidents"]
        lines.append(f"Incidents: {inc['count']} (previous {inc['previous']['count']}), "
                     f"MTTR {fmt_duration(inc['mttr_s'])}")
    else:
        lines += [f"{k['label']}: {fmt_value(k['value'], k['format'], currency)} "
                  f"(previous {fmt_value(k['previous'], k['format'], currency)})"
                  for k in report["kpis"]]
        top = report["top_products"][:5]
        if top:
            lines.append("Top products: " + ", ".join(
                f"{p.get('name') or p['product']} ({fmt_value(p['revenue'], 'money', currency)})"
                for p in top))
        impact = report["impact"]
        if impact["count"]:
            lines.append(f"Incidents: {impact['count']}, about "
                         f"{fmt_value(impact['lost_orders'], 'int')} orders and "
                         f"{fmt_value(impact['lost_revenue'], 'money', currency)} lost")
    return "\n".join(lines) + "\n"


def message(report: dict[str, Any], rendered: Rendered, sender: str,
            to: Sequence[str]) -> EmailMessage:
    """The e-mail of a rendered report (module docstring)."""
    msg = EmailMessage()
    msg["Subject"] = subject(report)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="shopwatch")
    note = None if rendered.pdf is not None else (
        f"No PDF is attached: {rendered.reason or 'it could not be made'}")
    text = summary(report) + (f"\n{note}\n" if note else "\nThe full report is attached as "
                              "a PDF.\n")
    msg.set_content(text)
    msg.add_alternative(html(report, "email", note=note), subtype="html")
    if rendered.pdf is not None:
        msg.add_attachment(rendered.pdf, maintype="application", subtype="pdf",
                           filename=filename(report, "pdf"))
    return msg


def send(smtp: Smtp, timeout: float, report: dict[str, Any], rendered: Rendered,
         to: Sequence[str]) -> None:
    """E-mail the report to ``to``; ChannelError with the reason when it was not sent."""
    deliver(smtp, message(report, rendered, smtp.sender, to), timeout)


def check_smtp(host: str) -> None:
    """ConfigError unless the instance has an SMTP server: schedules e-mail reports."""
    if not host:
        raise ConfigError("smtp_host: report schedules e-mail through the instance's SMTP "
                          "server; set smtp_host (SHOPWATCH_SMTP_HOST) and restart")
