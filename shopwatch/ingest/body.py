"""Reading an ingest request body within the size limit, gzip included.

The limit applies to the decompressed bytes, and decompression stops as soon as the
output passes it, so a gzip bomb is refused after inflating at most ``limit + 1``
bytes, never the whole bomb.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from shopwatch.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from shopwatch.ingest.pipeline import Format

# curl -d sends form-urlencoded by default; a JSON body sent that way is still JSON.
JSON_TYPES = frozenset({"application/json", "text/plain", "application/x-www-form-urlencoded", ""})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/jsonlines", "application/x-jsonlines"})


def body_format(content_type: str | None) -> Format:
    """JSON or NDJSON from the Content-Type; 415 for anything else.

    ``text/plain`` is read as JSON because ``navigator.sendBeacon`` sends strings so.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in JSON_TYPES:
        return Format.JSON
    if media in NDJSON_TYPES:
        return Format.NDJSON
    raise UnsupportedMediaType(
        f"Content-Type {media!r} is not read here; send application/json "
        "or application/x-ndjson")


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body is larger than {limit} bytes (max_body_bytes, measured "
                           "after decompression); split it into smaller requests")


async def read_body(chunks: AsyncIterator[bytes], content_encoding: str | None,
                    content_length: str | None, limit: int) -> bytes:
    """The whole (decompressed) body, or 413 / 415 / 400 as the module docstring says."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; "
                                   "send gzip or no encoding")
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise _too_large(limit)
    inflater = zlib.decompressobj(wbits=31) if encoding != "identity" else None
    parts: list[bytes] = []
    size = 0
    received = 0
    async for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > limit:  # compressed bytes are bounded by the limit too
            raise _too_large(limit)
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, limit - size + 1)
            except zlib.error as exc:
                raise BadRequest(f"body is not valid gzip: {exc}") from None
            if inflater.unconsumed_tail:
                raise _too_large(limit)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    if inflater is not None:
        if not inflater.eof and received:
            raise BadRequest("gzip body is truncated (no end of stream)")
        if inflater.unused_data:
            raise BadRequest("gzip body has trailing bytes after the end of stream")
    return b"".join(parts)
