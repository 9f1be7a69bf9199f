"""``GET /rum.js``: the real-user-monitoring snippet, and the tag shops paste.

The source (``static/rum.js``) is hand-written and readable; it is served with its
comment lines and indentation removed (safe for it: it holds no multi-line strings),
gzip-compressed for clients that accept it, with an ETag and a day's cache (plus a
week of stale-while-revalidate): the tag's URL is not versioned, so an upgrade must
reach pages within a day. Its size is part of the contract (at most
:data:`MAX_GZIP_BYTES` compressed; the tests assert it).

``GET /rum-trace.js`` is served the same way: the tracing add-on that ``rum.js`` loads
only when its tag has ``data-traceparent="on"`` (docs/rum.md, "Browser to backend"),
and ``GET /rum-survey.js``: the post-purchase survey add-on it loads on
``shopwatch('survey', ...)`` when its tag has ``data-survey`` (docs/feedback.md).
"""

from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request, Response

router = APIRouter()
SOURCE: Final = Path(__file__).with_name("static") / "rum.js"
TRACE_SOURCE: Final = SOURCE.with_name("rum-trace.js")
SURVEY_SOURCE: Final = SOURCE.with_name("rum-survey.js")
MAX_GZIP_BYTES: Final = 3 * 1024
CACHE_CONTROL: Final = "public, max-age=86400, stale-while-revalidate=604800"


def served() -> tuple[bytes, bytes, str]:
    """``(body, gzip body, etag)`` of ``/rum.js``."""
    return _served(SOURCE)


@lru_cache(maxsize=4)
def _served(source: Path) -> tuple[bytes, bytes, str]:
    """``(body, gzip body, etag)`` of a snippet file, comment lines and indentation
    removed."""
    lines = (line.strip() for line in source.read_text().splitlines())
    body = "\n".join(ln for ln in lines if ln and not ln.startswith("//")).encode() + b"\n"
    packed = gzip.compress(body, 9, mtime=0)
    return body, packed, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def tag(base_url: str, ingest_key: str) -> str:
    """The HTML to paste into every page of the shop, before ``</head>``: a stub that
    queues ``shopwatch(...)`` calls made before the snippet loads, and the snippet."""
    base = escape(base_url.rstrip("/"))
    return ("<script>window.shopwatch=window.shopwatch||function(){"
            "(shopwatch.q=shopwatch.q||[]).push(arguments)}</script>\n"
            f'<script async src="{base}/rum.js" data-key="{escape(ingest_key)}"></script>')


@router.get("/rum.js", include_in_schema=False)
def rum_js(request: Request) -> Response:
    return _respond(request, served())


@router.get("/rum-trace.js", include_in_schema=False)
def rum_trace_js(request: Request) -> Response:
    return _respond(request, _served(TRACE_SOURCE))


@router.get("/rum-survey.js", include_in_schema=False)
def rum_survey_js(request: Request) -> Response:
    return _respond(request, _served(SURVEY_SOURCE))


def _respond(request: Request, file: tuple[bytes, bytes, str]) -> Response:
    """The file with its cache headers; 304 when the client has it; gzip when accepted."""
    body, packed, etag = file
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag, "Vary": "Accept-Encoding",
               "Cross-Origin-Resource-Policy": "cross-origin"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = packed
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)
