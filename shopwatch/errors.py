"""Shopwatch's exception tree.

Every error the product raises on purpose is a :class:`ShopwatchError`. Errors that
reach an HTTP client carry the status they map to; one handler in ``web/app.py``
renders them as ``{"error": {"code": ..., "message": ...}}``.

::

    ShopwatchError
    ├── ConfigError               bad setting or CLI input (CLI exit 2)
    ├── NotFound                  404: no such project / resource
    ├── HTTPError                 carries .status and .code
    │   ├── BadRequest            400: undecodable body, bad query parameter
    │   ├── Unauthorized          401: missing or unknown key
    │   ├── Forbidden             403: key may not do this (ingest key reading)
    │   ├── PayloadTooLarge       413: body or event count over the limit
    │   ├── UnsupportedMediaType  415: content type or encoding we do not read
    │   ├── RateLimited           429: project over its ingest rate (Retry-After)
    │   └── Unavailable           503: writer queue full or store failing (Retry-After)
    └── StoreError                a store could not do what was asked
"""

from __future__ import annotations


class ShopwatchError(Exception):
    """Base class of every deliberate Shopwatch error."""


class ConfigError(ShopwatchError):
    """A setting or a command-line argument is invalid; the message says which and why."""


class NotFound(ShopwatchError):
    """The named thing does not exist."""


class StoreError(ShopwatchError):
    """A store failed to read or write."""


class HTTPError(ShopwatchError):
    """An error with an HTTP status; ``retry_after`` (seconds) is sent when set."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict[str, dict[str, str]]:
        """The JSON body every Shopwatch error answer has."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(HTTPError):
    status = 400
    code = "bad_request"


class Unauthorized(HTTPError):
    status = 401
    code = "unauthorized"


class Forbidden(HTTPError):
    status = 403
    code = "forbidden"


class PageNotFound(HTTPError):
    status = 404
    code = "not_found"


class LoginRequired(Unauthorized):
    """A page asked for without a session: pages answer with a redirect to /login."""


class PayloadTooLarge(HTTPError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(HTTPError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(HTTPError):
    status = 429
    code = "rate_limited"


class Unavailable(HTTPError):
    status = 503
    code = "unavailable"
