"""The ASGI app factory and the one handler that renders every Shopwatch error."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import msgspec
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopwatch import __version__
from shopwatch.errors import HTTPError, LoginRequired
from shopwatch.ingest.otlp import router as otlp_router
from shopwatch.ingest.routes import router as ingest_router
from shopwatch.ingest.rum import router as rum_router
from shopwatch.runtime import Runtime
from shopwatch.web import access
from shopwatch.web.alerts import router as alerts_router
from shopwatch.web.api import router as api_router
from shopwatch.web.apm import router as apm_router
from shopwatch.web.channels import router as channels_router
from shopwatch.web.customers import router as customers_router
from shopwatch.web.feedback import router as feedback_router
from shopwatch.web.findings import router as findings_router
from shopwatch.web.frontdoor import FrontDoor
from shopwatch.web.heartbeat import router as heartbeat_router
from shopwatch.web.incidents import router as incidents_router
from shopwatch.web.ops import router as ops_router
from shopwatch.web.pages import router as pages_router
from shopwatch.web.pages import templates
from shopwatch.web.probes import router as probes_router
from shopwatch.web.reports import router as reports_router
from shopwatch.web.security import router as security_router
from shopwatch.web.service_desk import router as service_desk_router
from shopwatch.web.slos import router as slos_router
from shopwatch.web.snippet import router as snippet_router
from shopwatch.web.status import router as status_router

STATIC = Path(__file__).with_name("static")
# Pages load scripts only from this server and are never framed (clickjacking).
# 'unsafe-inline' styles: uPlot and Swagger UI set style attributes.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'")
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the security headers to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_page(request: Request) -> bool:
    """Whether a request is for a page (HTML answers) rather than the API."""
    path = request.url.path
    return not (path.startswith("/api/v1/")
                or path in ("/openapi.json", "/healthz", "/metrics", "/rum.js",
                             "/rum-trace.js")
                or path.startswith("/static/"))


def _html_error(request: Request, status: int, message: str) -> Response:
    titles = {401: "Please sign in", 403: "Not allowed", 404: "Page not found",
              405: "Not allowed", 429: "Too many requests"}
    return templates.TemplateResponse(request, "error.html", {
        "status": status, "title": titles.get(status, "Something went wrong"),
        "message": message}, status_code=status)

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


def error_response(status: int, code: str, message: str,
                   retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(_encode({"error": {"code": code, "message": message}}), status_code=status,
                    media_type="application/json", headers=headers)


def create_app(runtime: Runtime, *, manage_runtime: bool = True) -> FrontDoor:
    """The ASGI app serving ``runtime``: the ingest front door over the FastAPI app.

    With ``manage_runtime`` the app's lifespan starts the writer and, at shutdown,
    commits what is queued and closes the stores.
    """
    return FrontDoor(SecurityHeaders(create_api(runtime, manage_runtime=manage_runtime)),
                     runtime)


def create_api(runtime: Runtime, *, manage_runtime: bool = True) -> FastAPI:
    """The FastAPI app alone (every route, ingest included, and the OpenAPI spec)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            runtime.start()
        # Everything alive now lives as long as the server: move it out of the cyclic
        # GC's sight so collections under load only scan what requests allocate.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # let the interpreter collect (and native libraries release) them
            if manage_runtime:
                runtime.close()

    # FastAPI's own /docs and /redoc load their scripts from a CDN; Shopwatch must work
    # offline, so its API page (/api/docs, pages.py) serves Swagger UI itself, and the
    # spec needs a session or a secret key like every other API route.
    app = FastAPI(title="Shopwatch", version=__version__, lifespan=lifespan,
                  description="Monitoring and support for online stores. Send events with "
                  "a project's public ingest key; read everything else with a dashboard "
                  "session or the project's secret key (`Authorization: Bearer swsec_…`).",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    app.include_router(ingest_router)
    app.include_router(rum_router)
    app.include_router(otlp_router)
    app.include_router(api_router)
    app.include_router(apm_router)
    app.include_router(heartbeat_router)
    app.include_router(probes_router)
    app.include_router(channels_router)
    app.include_router(alerts_router)
    app.include_router(incidents_router)
    app.include_router(slos_router)
    app.include_router(reports_router)
    app.include_router(security_router)
    app.include_router(customers_router)
    app.include_router(feedback_router)
    app.include_router(service_desk_router)
    app.include_router(findings_router)
    app.include_router(ops_router)
    app.include_router(pages_router)
    app.include_router(snippet_router)
    app.include_router(status_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if not (STATIC / "vendor" / "uPlot.iife.min.js").exists():
        log.warning("dashboard assets are missing (%s): run `make assets`", STATIC / "vendor")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> Response:
        access.require_api(request)
        return Response(_encode(app.openapi()), media_type="application/json")

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError) -> Response:
        if _is_page(request):
            if isinstance(exc, LoginRequired):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
            return _html_error(request, exc.status, str(exc))
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(_encode(exc.body()), status_code=exc.status,
                        media_type="application/json", headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_page(request) and "text/html" in request.headers.get("accept", ""):
            return _html_error(request, exc.status_code, str(exc.detail))
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors())
        return error_response(400, "bad_request", problems)

    return app
