"""The ASGI app factory and the one handler that renders every Shopwatch error."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shopwatch import __version__
from shopwatch.errors import HTTPError
from shopwatch.ingest.routes import router as ingest_router
from shopwatch.runtime import Runtime
from shopwatch.web.api import router as api_router
from shopwatch.web.frontdoor import FrontDoor
from shopwatch.web.ops import router as ops_router

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
    return FrontDoor(create_api(runtime, manage_runtime=manage_runtime), runtime)


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

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, and Shopwatch
    # must work offline. The spec itself is served at /openapi.json.
    app = FastAPI(title="Shopwatch", version=__version__, lifespan=lifespan,
                  description="Monitoring and support for online stores.",
                  docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.include_router(ingest_router)
    app.include_router(api_router)
    app.include_router(ops_router)

    @app.exception_handler(HTTPError)
    async def _http_error(_request: Request, exc: HTTPError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(_encode(exc.body()), status_code=exc.status,
                        media_type="application/json", headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(_request: Request, exc: StarletteHTTPException) -> Response:
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
