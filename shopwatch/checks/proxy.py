"""A forward proxy that holds a browser to the server's address policy.

Chromium makes its own connections, so the guard of :mod:`.safety` cannot sit in its
network stack. Instead a ``browser_flow`` run by the server starts Chromium with this
proxy as its only way out (``--proxy-server``, with ``<-loopback>`` so loopback
addresses are proxied too). For every connection the browser asks for, the proxy
resolves the host, judges each address against the policy and connects to exactly the
address it judged, as :func:`~shopwatch.checks.safety.vetted` does for HTTP checks: DNS
rebinding, redirects and numeric forms are covered the same way, because every hop of
a redirect and every subresource is a new request through here.

Contract:

- ``CONNECT host:port`` (HTTPS, WebSockets over TLS): ``200`` then a byte tunnel to the
  vetted address; ``403`` with the reason when the policy refuses every address; ``502``
  when the name does not resolve or the connection fails.
- A plain ``http://`` request in absolute form: forwarded in origin form with
  ``Connection: close``, so each proxied connection carries one request and a second
  request on it can never reach another host than the one judged.
- Refusals are kept in :attr:`GuardedProxy.refusals` (the runner reports them on the
  step that met them); a refused plain-HTTP request is answered ``403`` with an
  ``X-Shopwatch-Refused`` header, so the runner knows the answer is not the site's.
- Request heads are limited to 64 KiB; anything else is ``400``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final
from urllib.parse import urlsplit

import httpcore

from shopwatch.checks.safety import AddressPolicy, Resolver, TargetRefused, system_resolver, vetted

MAX_HEAD: Final = 64 * 1024
REFUSED_HEADER: Final = "X-Shopwatch-Refused"
HEAD_TIMEOUT_S: Final = 30.0
_HOP_BY_HOP: Final = ("proxy-connection:", "connection:", "keep-alive:", "proxy-authorization:")


class GuardedProxy:
    """See the module docstring. ``start`` binds 127.0.0.1 on a free port."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver
        self.refusals: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen; the port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                  limit=MAX_HEAD)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            await _answer(writer, 400, "request head too large or incomplete")
            return
        request_line, *lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3:
            await _answer(writer, 400, "malformed request line")
            return
        method, target, version = parts
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            host = host.strip("[]")
            if not host or not port_text.isdigit():
                await _answer(writer, 400, f"CONNECT needs host:port, not {target!r}")
                return
            upstream = await self._open(writer, host, int(port_text))
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await _splice(reader, writer, *upstream)
            return
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            await _answer(writer, 400, f"only http:// URLs and CONNECT are proxied, not "
                                       f"{target[:100]!r}")
            return
        try:
            port = url.port or 80
        except ValueError:
            await _answer(writer, 400, f"invalid port in {target[:100]!r}")
            return
        upstream = await self._open(writer, url.hostname, port)
        if upstream is None:
            return
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [line for line in lines if line and not line.lower().startswith(_HOP_BY_HOP)]
        head_out = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close",
                                "", ""])
        upstream[1].write(head_out.encode("latin-1"))
        await _splice(reader, writer, *upstream)

    async def _open(self, writer: asyncio.StreamWriter, host: str, port: int
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the vetted address of ``host``, or None once answered."""
        loop = asyncio.get_running_loop()
        try:
            address = await loop.run_in_executor(None, vetted, self.policy, self.resolver,
                                                 host, port)
            return await asyncio.wait_for(asyncio.open_connection(address, port),
                                          HEAD_TIMEOUT_S)
        except TargetRefused as exc:
            self.refusals.append(str(exc))
            await _answer(writer, 403, str(exc))
        except (httpcore.ConnectError, OSError, TimeoutError) as exc:
            await _answer(writer, 502, f"cannot connect to {host}:{port}: {exc}")
        return None


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    body = reason.encode()
    phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    # The header tells the browser runner this answer is the proxy's, not the site's.
    marker = f"{REFUSED_HEADER}: 1\r\n" if status == 403 else ""
    writer.write(f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"{marker}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                 .encode() + body)
    with contextlib.suppress(OSError):
        await writer.drain()


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    """Copy both ways until both sides are done."""
    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except (OSError, RuntimeError):
            pass

    try:
        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
    finally:
        up_writer.close()
