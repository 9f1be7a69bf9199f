"""The dashboard's server-rendered pages: sign-in, the sections, account and settings.

Pages carry no figures of their own: each figure is fetched by the browser from a JSON
endpoint under ``/api/v1/`` (``static/app.js``), so the API and the page cannot
disagree. Forms post back here; every state-changing form carries the session's CSRF
token (access.py) and answers with a redirect (or, for htmx requests, the fragment that
changed).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import msgspec
import yaml
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from shopwatch import __version__
from shopwatch.analytics.funnel import DEFAULT_STEPS
from shopwatch.analytics.timerange import PRESETS
from shopwatch.checks.monitor import parse_monitors
from shopwatch.errors import ConfigError, NotFound, PageNotFound, RateLimited
from shopwatch.store.monitors import delete_monitor, get_monitor, put_monitor
from shopwatch.store.state import KeyKind, Project
from shopwatch.web import access, snippet
from shopwatch.web.access import SESSION_COOKIE, Principal
from shopwatch.web.sections import LAYERS, PAGES

# The cards of the KPI pages: (key in /api/v1/kpis, title, format, hint).
KPI_CARDS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "/behaviour/journeys": (
        ("sessions", "Sessions", "int", ""),
        ("visitors", "Visitors", "int", ""),
        ("new_visitors", "New visitors", "int", "first event in this period"),
        ("returning_visitors", "Returning visitors", "int", ""),
        ("bounce_rate", "Bounce rate", "pct", "one page, no action, under 10 s"),
        ("pages_per_session", "Pages per session", "dec", ""),
        ("avg_session_duration_s", "Session duration", "seconds", "average"),
        ("avg_time_on_page_s", "Time on page", "seconds", "average, last page excluded"),
        ("carts", "Sessions with a cart", "int", ""),
        ("cart_abandonment_rate", "Cart abandonment", "pct", "carts without a purchase"),
        ("abandoned_cart_value", "Abandoned cart value", "money", ""),
        ("checkout_abandonment_rate", "Checkout abandonment", "pct",
         "checkouts without a purchase"),
    ),
    "/business/orders": (
        ("orders", "Orders", "int", "one per transaction id"),
        ("aov", "Average order value", "money", "gross"),
        ("items_per_order", "Items per order", "dec", ""),
        ("conversion_rate", "Conversion rate", "pct", "sessions with a purchase"),
        ("refund_count", "Refunds", "int", ""),
        ("cancellation_count", "Cancellations", "int", ""),
    ),
    "/business/revenue": (
        ("revenue", "Net revenue", "money", "gross minus refunds and cancellations"),
        ("gross_revenue", "Gross revenue", "money", ""),
        ("refunds", "Refunded", "money", ""),
        ("cancellations", "Cancelled", "money", ""),
        ("aov", "Average order value", "money", "gross"),
        ("abandoned_cart_value", "Left in abandoned carts", "money", ""),
    ),
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.globals["rum_tag"] = snippet.tag
LOGIN_CSRF_COOKIE = "sw_login_csrf"
# Query parameters a page hands on to every link and to its API calls.
KEPT = ("project", "range", "from", "to", "compare")


def _secure(request: Request) -> bool:
    mode = access.runtime(request).settings.cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _kept(request: Request, **changes: str) -> str:
    params = {k: request.query_params[k] for k in KEPT if request.query_params.get(k)}
    params.update(changes)
    return urlencode(params)


def _context(request: Request, principal: Principal, **extra: Any) -> dict[str, Any]:
    rt = access.runtime(request)
    projects = rt.state.list_projects()
    current = _current_project(request, projects)
    return {
        "principal": principal, "user": principal.user, "csrf": principal.csrf_token,
        "projects": projects, "project": current, "layers": LAYERS,
        "presets": list(PRESETS), "range": request.query_params.get("range", "24h"),
        "from_": request.query_params.get("from", ""), "to": request.query_params.get("to", ""),
        "compare": request.query_params.get("compare", "1") != "0",
        "kept": _kept(request), "path": request.url.path, "version": __version__,
        "notice": request.query_params.get("notice", ""), **extra,
    }


def _current_project(request: Request, projects: list[Project] | None = None
                     ) -> Project | None:
    """The project of ``?project=``, or the first one."""
    ref = request.query_params.get("project")
    for p in projects if projects is not None else access.runtime(request).state.list_projects():
        if ref is None or str(p.id) == ref:
            return p
    return None


def _render(request: Request, name: str, context: dict[str, Any],
            status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


def _safe_next(target: str | None) -> str:
    # Only a path on this server: "//evil.example" or "https://…" would be an open redirect.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/overview"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- sign-in -------------------------------------------------------------------------------


def _login_page(request: Request, *, error: str = "", email: str = "", status: int = 200,
                next_: str = "") -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _render(request, "login.html", {
        "csrf": token, "error": error, "email": email, "version": __version__,
        "next": _safe_next(next_ or request.query_params.get("next")),
        "no_users": access.runtime(request).users.count() == 0}, status)
    # Double-submit token: a cross-site form cannot read the cookie to echo it.
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/login")
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    if (p := access.current(request)) is not None and p.session is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
    return _login_page(request)


@router.post("/login")
async def login(request: Request, email: Annotated[str, Form()] = "",
                password: Annotated[str, Form()] = "",
                csrf_token: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "") -> Response:
    rt = access.runtime(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_page(request, email=email, status=403, next_=next,
                           error="This sign-in form has expired. Please try again.")
    access.check_origin(request)
    client = _client(request)
    wait = rt.throttle.retry_after(email, client)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        response = _login_page(
            request, email=email, status=RateLimited.status, next_=next,
            error=f"Too many failed sign-ins for this account or from your network. "
                  f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = await asyncio.to_thread(rt.users.authenticate, email, password)
    if user is None:
        rt.throttle.record_failure(email, client)
        return _login_page(request, email=email, status=401, next_=next,
                           error="Wrong e-mail address or password.")
    rt.throttle.record_success(email)
    token, session = rt.sessions.open(user)
    done = RedirectResponse(_safe_next(next), 303)
    _set_session_cookie(request, done, token, session.expires_at.timestamp())
    done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return done


def _set_session_cookie(request: Request, response: Response, token: str,
                        expires_at: float) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max(0, int(expires_at - time.time())),
                        httponly=True, samesite="lax", secure=_secure(request), path="/")


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    principal = access.require_page(request)
    access.check_csrf(request, principal, csrf_token)
    access.runtime(request).sessions.end(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- sections ------------------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    access.require_page(request)
    query = _kept(request)
    return RedirectResponse("/overview" + (f"?{query}" if query else ""), 303)


def _section(request: Request) -> Response:
    principal = access.require_page(request)
    page = PAGES.get(request.url.path)
    if page is None:
        raise PageNotFound(f"no page {request.url.path}")
    template = {"/overview": "overview.html", "/behaviour/events": "events.html",
                "/behaviour/funnels": "funnel.html", "/behaviour/journeys": "kpis.html",
                "/business/orders": "kpis.html", "/business/revenue": "kpis.html",
                "/marketing/sources": "acquisition.html",
                "/marketing/campaigns": "acquisition.html",
                "/marketing/spend": "acquisition.html",
                "/behaviour/real-users": "vitals.html", "/reliability/errors": "errors.html",
                "/behaviour/session-journeys": "journeys.html",
                "/reliability/uptime": "uptime.html",
                "/reliability/checks": "checks.html", "/alerts": "alerts.html",
                "/reliability/backend": "backend.html",
                "/alerts/incidents": "incidents.html", "/alerts/slos": "slos.html",
                "/security": "security.html",
                "/business/customers": "customers.html",
                "/business/feedback": "feedback.html",
                "/business/service-desk": "service_desk.html",
                "/alerts/reports": "reports.html"}.get(
        page.path, "section.html")
    return _render(request, template, _context(
        request, principal, page=page, cards=KPI_CARDS.get(page.path, ()),
        monitor_yaml=_monitor_yaml(request, _current_project(request))
        if page.path == "/reliability/uptime" else "", monitor_error="",
        steps=request.query_params.get("steps", ",".join(DEFAULT_STEPS)),
        within=request.query_params.get("within", "session"),
        by=request.query_params.get(
            "by", {"/marketing/sources": "channel", "/marketing/campaigns": "campaign",
                   "/marketing/spend": "campaign", "/behaviour/real-users": "group"}.get(
                page.path, ""))))


for _page in PAGES.values():
    router.add_api_route(_page.path, _section, methods=["GET"], name=_page.path)


# --- monitors (admin): add, change, delete from the Uptime page ----------------------------

_EXAMPLE_MONITOR = """name: home
kind: http
url: /
interval: 60s
expect: {status: 200, contains: "Add to cart", max_ms: 2000}
"""


def _monitor_yaml(request: Request, project: Project | None) -> str:
    """The YAML of ``?edit=<name>`` (a stored monitor), or an example."""
    name = request.query_params.get("edit")
    if not name or project is None:
        return _EXAMPLE_MONITOR
    try:
        stored = get_monitor(access.runtime(request).state, project.id, name)
    except NotFound:
        return _EXAMPLE_MONITOR
    spec = msgspec.to_builtins(stored.monitor)
    text = str(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    if spec.pop("script_source", None) is not None:  # code: not editable here
        text = (f"# A Playwright script flow: its code is in {stored.monitor.script}, applied "
                "from files with\n# `shopwatch monitors apply`; change it there (the "
                "dashboard cannot save scripts).\n"
                + str(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)))
    return text


def _uptime_page(request: Request, principal: Principal, project: Project, text: str,
                 error: str, status: int) -> HTMLResponse:
    page = PAGES["/reliability/uptime"]
    return _render(request, "uptime.html", _context(
        request, principal, page=page, monitor_yaml=text, monitor_error=error), status)


@router.post("/reliability/uptime/monitors")
def save_monitors(request: Request, csrf_token: Annotated[str, Form()] = "",
                  project_id: Annotated[int, Form()] = 0,
                  spec: Annotated[str, Form()] = "") -> Response:
    """Save the monitor (or ``monitors:`` list) written in the form's YAML, as managed
    in the dashboard."""
    principal = access.require_admin(request)
    access.check_csrf(request, principal, csrf_token)
    project = _project(request, project_id)
    try:
        data = yaml.safe_load(spec) if spec.strip() else None
        if isinstance(data, dict) and "monitors" not in data:
            data = {"monitors": [data]}
        monitors = parse_monitors(yaml.safe_dump(data), "form") if data else []
        if not monitors:
            raise ConfigError("form: write one monitor (name, kind, url...) or a monitors: list")
    except (ConfigError, yaml.YAMLError) as exc:
        return _uptime_page(request, principal, project, spec, str(exc), 400)
    state = access.runtime(request).state
    for monitor in monitors:
        put_monitor(state, project.id, monitor, "ui")
    return RedirectResponse(f"/reliability/uptime?project={project.id}&notice=monitor-saved"
                            f"&monitor={quote(monitors[0].name)}", 303)


@router.post("/reliability/uptime/monitors/{name}/delete")
def remove_monitor(request: Request, name: str, csrf_token: Annotated[str, Form()] = "",
                   project_id: Annotated[int, Form()] = 0) -> Response:
    principal = access.require_admin(request)
    access.check_csrf(request, principal, csrf_token)
    project = _project(request, project_id)
    try:
        delete_monitor(access.runtime(request).state, project.id, name)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return RedirectResponse(f"/reliability/uptime?project={project.id}&notice=monitor-deleted",
                            303)


# --- account -------------------------------------------------------------------------------


@router.get("/account")
def account(request: Request) -> Response:
    principal = access.require_page(request)
    assert principal.user is not None
    return _render(request, "account.html", _context(
        request, principal, sessions=access.runtime(request).sessions.count(principal.user.id)))


@router.post("/account/password")
async def change_password(request: Request, csrf_token: Annotated[str, Form()] = "",
                          current: Annotated[str, Form()] = "",
                          new: Annotated[str, Form()] = "",
                          confirm: Annotated[str, Form()] = "") -> Response:
    principal = access.require_page(request)
    access.check_csrf(request, principal, csrf_token)
    rt = access.runtime(request)
    user = principal.user
    assert user is not None

    def fail(message: str, status: int = 400) -> HTMLResponse:
        return _render(request, "account.html", _context(
            request, principal, error=message, sessions=rt.sessions.count(user.id)), status)

    if await asyncio.to_thread(rt.users.authenticate, user.email, current) is None:
        return fail("current: the current password is wrong", 403)
    if new != confirm:
        return fail("confirm: the two new passwords differ")
    try:
        await asyncio.to_thread(rt.users.set_password, user.id, new)  # ends every session
    except ConfigError as exc:
        return fail(str(exc))
    token, session = rt.sessions.open(user)  # this browser stays signed in
    response = RedirectResponse("/account?notice=password-changed", 303)
    _set_session_cookie(request, response, token, session.expires_at.timestamp())
    return response


# --- settings: projects and keys (admin) ---------------------------------------------------


def _projects_page(request: Request, principal: Principal, error: str = "",
                   status: int = 200) -> HTMLResponse:
    base = str(request.base_url).rstrip("/")
    return _render(request, "projects.html", _context(
        request, principal, error=error, base_url=base), status)


@router.get("/settings/projects")
def projects_page(request: Request) -> Response:
    return _projects_page(request, access.require_admin(request))


def _done(request: Request, notice: str, fragment: str | None = None,
          **context: Any) -> Response:
    if fragment and request.headers.get("hx-request"):
        principal = access.require_admin(request)
        return _render(request, fragment, _context(request, principal, **context))
    return RedirectResponse(f"/settings/projects?notice={notice}", 303)


@router.post("/settings/projects")
def create_project(request: Request, csrf_token: Annotated[str, Form()] = "",
                   name: Annotated[str, Form()] = "",
                   currency: Annotated[str, Form()] = "USD",
                   timezone: Annotated[str, Form()] = "UTC") -> Response:
    principal = access.require_admin(request)
    access.check_csrf(request, principal, csrf_token)
    try:
        access.runtime(request).state.create_project(name, currency, timezone)
    except ConfigError as exc:
        return _projects_page(request, principal, error=str(exc), status=400)
    return _done(request, "project-created")


def _project(request: Request, project_id: int) -> Project:
    try:
        return access.runtime(request).state.get_project(project_id)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None


@router.post("/settings/projects/{project_id}")
def update_project(request: Request, project_id: int, csrf_token: Annotated[str, Form()] = "",
                   name: Annotated[str, Form()] = "", currency: Annotated[str, Form()] = "",
                   timezone: Annotated[str, Form()] = "", rum_form: Annotated[str, Form()] = "",
                   rum_origins: Annotated[str, Form()] = "",
                   rum_sample_rate: Annotated[str, Form()] = "",
                   checks_form: Annotated[str, Form()] = "",
                   base_url: Annotated[str, Form()] = "",
                   status_slug: Annotated[str, Form()] = "") -> Response:
    principal = access.require_admin(request)
    access.check_csrf(request, principal, csrf_token)
    _project(request, project_id)
    changes: dict[str, Any] = {}
    if checks_form:  # the monitors form: empty fields clear the values
        changes["base_url"], changes["status_slug"] = base_url, status_slug
    if rum_form:  # the RUM form: an empty origins field clears the list
        changes["rum_origins"] = rum_origins.replace(",", " ").split()
        try:
            changes["rum_sample_rate"] = float(rum_sample_rate or "1")
        except ValueError:
            return _projects_page(request, principal, status=400, error=(
                f"rum_sample_rate: {rum_sample_rate!r} is not a number between 0 and 1"))
    try:
        access.runtime(request).state.update_project(
            project_id, name=name or None, currency=currency or None, timezone=timezone or None,
            **changes)
    except ConfigError as exc:
        return _projects_page(request, principal, error=str(exc), status=400)
    return _done(request, "project-saved")


@router.post("/settings/projects/{project_id}/keys/{kind}/{action}")
def key_action(request: Request, project_id: int, kind: str, action: str,
               csrf_token: Annotated[str, Form()] = "") -> Response:
    principal = access.require_admin(request)
    access.check_csrf(request, principal, csrf_token)
    if kind not in ("ingest", "secret") or action not in ("rotate", "revoke"):
        raise PageNotFound(f"no key action {kind}/{action}")
    _project(request, project_id)
    state = access.runtime(request).state
    key_kind: KeyKind = "ingest" if kind == "ingest" else "secret"
    if action == "rotate":
        project = state.rotate_key(project_id, key_kind)
    else:
        project = state.revoke_key(project_id, key_kind)
    return _done(request, f"{kind}-key-{action}d", "project_card.html", p=project,
                 base_url=str(request.base_url).rstrip("/"))


# --- settings: users (admin) ---------------------------------------------------------------


def _users_page(request: Request, principal: Principal, error: str = "",
                status: int = 200) -> HTMLResponse:
    rt = access.runtime(request)
    rows = [(u, rt.sessions.count(u.id)) for u in rt.users.list()]
    return _render(request, "users.html", _context(request, principal, error=error,
                                                    users=rows), status)


@router.get("/settings/users")
def users_page(request: Request) -> Response:
    return _users_page(request, access.require_admin(request))


@router.post("/settings/users")
async def add_user(request: Request, csrf_token: Annotated[str, Form()] = "",
                   email: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "viewer",
                   password: Annotated[str, Form()] = "") -> Response:
    principal = access.require_admin(request)
    access.check_csrf(request, principal, csrf_token)
    try:
        await asyncio.to_thread(access.runtime(request).users.add, email, password, role)
    except ConfigError as exc:
        return _users_page(request, principal, error=str(exc), status=400)
    return RedirectResponse("/settings/users?notice=user-added", 303)


@router.post("/settings/users/{user_id}/{action}")
def user_action(request: Request, user_id: int, action: str,
                csrf_token: Annotated[str, Form()] = "",
                role: Annotated[str, Form()] = "") -> Response:
    principal = access.require_admin(request)
    access.check_csrf(request, principal, csrf_token)
    rt = access.runtime(request)
    try:
        rt.users.get(user_id)
        if action == "role":
            rt.users.set_role(user_id, role)
        elif action == "remove":
            rt.users.remove(user_id)
        elif action == "sign-out":
            rt.sessions.end_all(user_id)
        else:
            raise PageNotFound(f"no user action {action}")
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    except ConfigError as exc:
        return _users_page(request, principal, error=str(exc), status=400)
    return RedirectResponse(f"/settings/users?notice=user-{action}", 303)


# --- the API's own page --------------------------------------------------------------------


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    principal = access.require_page(request)
    return _render(request, "api_docs.html", _context(request, principal))
