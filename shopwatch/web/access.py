"""Who is asking: a dashboard session or a project's secret key, and what they may do.

Contract for every route except ingest, ``/healthz``, ``/metrics``, ``/login`` and
``/static``:

- A **secret key** (``Authorization: Bearer swsec_…`` or ``X-Shopwatch-Key``) reads the
  JSON API of its own project, without a session and without CSRF tokens (it is never
  sent by a browser on its own). It opens no page and manages nothing.
- A **session** (cookie ``sw_session``) of a *viewer* reads every page and the JSON API of
  every project; an *admin* also manages projects, keys and users. Every
  state-changing request made with a session must carry the session's CSRF token (form
  field ``csrf_token`` or header ``X-CSRF-Token``) and, when the browser sends one, an
  ``Origin`` of this server.
- A public ingest key reads nothing (403); no credential at all is 401 for the API and a
  redirect to ``/login`` for pages.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from shopwatch.accounts.sessions import Session
from shopwatch.accounts.users import User
from shopwatch.errors import BadRequest, Forbidden, LoginRequired, NotFound, Unauthorized
from shopwatch.runtime import Runtime
from shopwatch.store.state import Project
from shopwatch.web.auth import key_from_headers

SESSION_COOKIE = "sw_session"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: exactly one of ``session`` and ``key_project_id``."""

    session: Session | None = None
    key_project_id: int | None = None

    @property
    def user(self) -> User | None:
        return self.session.user if self.session else None

    @property
    def is_admin(self) -> bool:
        return self.session is not None and self.session.user.is_admin

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session else ""


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def current(request: Request) -> Principal | None:
    """The caller, or None when there is no credential; 401/403 for a bad key."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    rt = runtime(request)
    principal: Principal | None = None
    if key_from_headers(request.headers):
        info = rt.keys.require(request.headers, secret=True)
        principal = Principal(key_project_id=info.project_id)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        session = rt.sessions.lookup(token) if token else None
        if session is not None:
            principal = Principal(session=session)
    request.state.principal = principal
    return principal


def require_api(request: Request) -> Principal:
    """Any caller allowed to read the JSON API, or 401."""
    principal = current(request)
    if principal is None:
        raise Unauthorized("sign in, or send the project's secret key as "
                           "'Authorization: Bearer <secret_key>'")
    return principal


def require_page(request: Request) -> Principal:
    """A signed-in user (pages never take keys), or a redirect to the login page."""
    principal = current(request)
    if principal is None or principal.session is None:
        raise LoginRequired("sign in to see this page")
    return principal


def require_admin(request: Request) -> Principal:
    principal = require_page(request)
    if not principal.is_admin:
        raise Forbidden("only an admin can do this; ask one of your instance's admins")
    return principal


def check_csrf(request: Request, principal: Principal, form_token: str | None) -> None:
    """403 unless a session's state-changing request carries its CSRF token and comes
    from this origin. Key-authenticated requests pass: browsers never add keys."""
    if principal.session is None:
        return
    given = form_token or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(given.encode(), principal.session.csrf_token.encode()):
        raise Forbidden("csrf_token: missing or wrong; reload the page and try again")
    check_origin(request)


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != _own_origin(request):
        raise Forbidden(f"origin: {origin} is not this server")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def project_for(request: Request, principal: Principal, ref: str | None) -> Project:
    """The project a request is about: the key's own, or ``?project=`` for a session
    (the first project when absent). 403 when a key asks for another project."""
    state = runtime(request).state
    if principal.key_project_id is not None:
        if ref not in (None, "", str(principal.key_project_id)):
            raise Forbidden("project: this secret key belongs to project "
                            f"{principal.key_project_id}")
        return state.get_project(principal.key_project_id)
    if ref:
        try:
            return state.get_project(ref)
        except NotFound as exc:
            raise BadRequest(f"project: {exc}") from None
    projects = state.list_projects()
    if not projects:
        raise BadRequest("project: there is no project yet; an admin can create one in "
                         "Settings → Projects")
    return projects[0]


async def json_body(request: Request, limit: int) -> Any:
    """The request's body as JSON (``None`` when empty); BadRequest when it is larger
    than ``limit`` bytes or not JSON."""
    raw = await request.body()
    if len(raw) > limit:
        raise BadRequest(f"body: larger than {limit // 1024} KiB")
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None


def require_writer(request: Request, what: str) -> Principal:
    """A caller that may change things: a project's secret key, or an admin session with
    its CSRF token; Forbidden ("only an admin can <what>") for other sessions."""
    principal = require_api(request)
    if principal.session is not None:
        if not principal.is_admin:
            raise Forbidden(f"only an admin can {what}")
        check_csrf(request, principal, None)
    return principal
