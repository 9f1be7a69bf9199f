"""API keys on requests: where they are read from, and a short-lived lookup cache.

A key comes in ``Authorization: Bearer <key>`` or ``X-Shopwatch-Key: <key>``. Ingest
keys (``swpub_``) may only write events; secret keys (``swsec_``) may also read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from shopwatch.errors import Forbidden, Unauthorized
from shopwatch.store.state import KeyInfo, Project, StateStore

CACHE_SECONDS = 2.0


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-shopwatch-key")
    return key.strip() if key else None


class KeyCache:
    """Resolves keys through the state store, remembering answers for a moment.

    Revocation (``project rotate-key``) reaches a running server within
    ``CACHE_SECONDS``. Unknown keys are looked up every time: they are rare and
    caching them would let random keys fill memory.
    """

    def __init__(self, state: StateStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._state = state
        self._clock = clock
        self._cache: dict[str, tuple[KeyInfo, float]] = {}
        self._projects: dict[int, tuple[Project, float]] = {}

    def resolve(self, key: str) -> KeyInfo | None:
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        info = self._state.resolve_key(key)
        if info is None:
            self._cache.pop(key, None)
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (info, now + CACHE_SECONDS)
        return info

    def project(self, project_id: int) -> Project:
        """A project's settings, remembered for ``CACHE_SECONDS`` like keys (the RUM
        ingest reads its origins and sample rate on every beacon)."""
        now = self._clock()
        hit = self._projects.get(project_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        project = self._state.get_project(project_id)
        self._projects[project_id] = (project, now + CACHE_SECONDS)
        return project

    def require(self, headers: Mapping[str, str], *, secret: bool) -> KeyInfo:
        """The key's project, or 401 (missing/unknown) / 403 (ingest key used to read)."""
        key = key_from_headers(headers)
        if not key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' "
                               "or 'X-Shopwatch-Key: <key>'")
        info = self.resolve(key)
        if info is None:
            raise Unauthorized("unknown or revoked API key (see `shopwatch project list`)")
        if secret and info.kind != "secret":
            raise Forbidden("this is a public ingest key, which can only send events; "
                            "reading needs the project's secret key")
        return info
