"""The demo's alert inbox: a webhook receiver and the page that lists what it got.

The demo makes a ``webhook`` channel, "demo inbox", whose URL is
``<shop>/_demo/inbox/hook``, and rules (in ``monitors.yml``) that notify it, so the
demo's injected incidents fire, notify and resolve where anyone can see them:
``<shop>/_demo/inbox`` lists the notifications, newest first.

Contract: ``POST …/hook`` takes a notification as Shopwatch's webhook sends it and checks
its signature (``X-Shopwatch-Signature: sha256=HMAC(secret, "<timestamp>.<body>")``)
with the channel's secret: 401 when it does not match (nothing kept), 200 otherwise.
The inbox keeps the latest ``KEEP`` notifications in memory (a demo, not a mail store).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import deque
from html import escape
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

KEEP: Final = 200
MAX_BODY: Final = 256 * 1024
HOOK_PATH: Final = "/_demo/inbox/hook"
PAGE_PATH: Final = "/_demo/inbox"


class Inbox:
    """See the module docstring."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.items: deque[dict[str, Any]] = deque(maxlen=KEEP)

    def verify(self, timestamp: str, body: bytes, signature: str) -> bool:
        expected = "sha256=" + hmac.new(self.secret, timestamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("too large", status_code=413)
        if not self.verify(request.headers.get("x-shopwatch-timestamp", ""), body,
                           request.headers.get("x-shopwatch-signature", "")):
            return PlainTextResponse("bad signature", status_code=401)
        try:
            notification = json.loads(body)
        except ValueError:
            return PlainTextResponse("not JSON", status_code=400)
        self.items.appendleft({"received_at": time.time(), "notification": notification})
        return PlainTextResponse("ok")

    async def page(self, request: Request) -> Response:
        rows = []
        for item in self.items:
            n = item["notification"]
            at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(item["received_at"]))
            link = (f' <a href="{escape(n["url"])}">open</a>' if n.get("url") else "")
            rows.append(
                f"<tr class=\"{escape(str(n.get('event', '')))}\"><td>{at}</td>"
                f"<td>{escape(str(n.get('event', '')))}</td>"
                f"<td>{escape(str(n.get('severity', '')))}</td>"
                f"<td><strong>{escape(str(n.get('title', '')))}</strong><br>"
                f"{escape(str(n.get('text', '')))}{link}</td></tr>")
        table = ("<table><thead><tr><th>Received</th><th>Event</th><th>Severity</th>"
                 "<th>Alert</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
                 if rows else "<p>No notification yet: the demo's incidents fire the rules "
                              "of <code>monitors.yml</code> within a few minutes.</p>")
        return HTMLResponse(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"refresh\" content=\"15\"><title>Demo alert inbox</title>"
            "<style>body{font:15px system-ui,sans-serif;margin:2rem;color:#1f2328}"
            "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #d0d7de;"
            "padding:.4rem;text-align:left;vertical-align:top}.firing td{background:#fff1f0}"
            ".resolved td{background:#effaf2}</style></head><body>"
            "<h1>Demo alert inbox</h1><p>Notifications Shopwatch sent to the demo's "
            "<em>demo inbox</em> webhook channel, signed and verified, newest first "
            "(refreshes every 15 s).</p>" + table + "</body></html>")

    def routes(self) -> list[Route]:
        return [Route(HOOK_PATH, self.hook, methods=["POST"]),
                Route(PAGE_PATH, self.page, methods=["GET"])]


def with_inbox(shop: Starlette, inbox: Inbox) -> Starlette:
    """The shop's app with the inbox's routes in front (the shop's state kept)."""
    app = Starlette(routes=[*inbox.routes()])
    app.mount("/", shop)
    app.state.shop = shop.state.shop
    app.state.faults = shop.state.faults
    return app
