"""The ASGI application behind `cbir serve`: pages for people, ``/api/`` for programs, one set of rules.

Errors are cbir's typed errors turned into HTTP statuses in one place (``STATUS``):
a bad request is a 4xx with a one-line message, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from cbir import __version__
from cbir.errors import (
    CbirError,
    DamagedFileError,
    DiskFullError,
    ImageDecodeError,
    ImageNotFoundError,
    IncompleteMoveError,
    IndexBusyError,
    IndexEmptyError,
    IndexIncompatibleError,
    ModelError,
    ReadOnlyError,
    UsageError,
    WeightsUnavailableError,
)
from cbir.web import api, pages
from cbir.web.jobs import NoSuchJob, TooManyJobs, error_body
from cbir.web.pages import render
from cbir.web.security import TOKEN_COOKIE
from cbir.web.server import Forbidden, Server, ServerReadOnly, TooLarge

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
_FORM_ROOM = 64 * 1024  # multipart headers and fields beside the file

STATUS: dict[type[CbirError], int] = {
    UsageError: 400, ImageNotFoundError: 404, NoSuchJob: 404, IndexEmptyError: 404, IndexBusyError: 409,
    IndexIncompatibleError: 409, ReadOnlyError: 409, ServerReadOnly: 403, Forbidden: 403, TooLarge: 413,
    WeightsUnavailableError: 503, ModelError: 500, IncompleteMoveError: 500, DiskFullError: 507,
    DamagedFileError: 500, TooManyJobs: 429,
}


def http_status(exc: CbirError) -> int:
    if isinstance(exc, ImageDecodeError):
        return 413 if exc.reason in ("too many pixels", "file too large") else 400
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def create_app(server: Server) -> FastAPI:
    # The API docs' scripts come with the fastapi-offline package: they work without the internet.
    app = FastAPIOffline(title="cbir", version=__version__, docs_url="/api/docs", redoc_url=None,
                         static_url="/api/docs-assets", favicon_url="/static/favicon.svg",
                         openapi_url="/api/openapi.json",
                         description="Content-based image retrieval over your own photos; the same JSON as the "
                                     "CLI's `--json`.")
    app.state.server = server
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        g = server.guard
        host = request.headers.get("host", "")
        if not g.host_allowed(host):
            return _refuse(request, 400, "UsageError", f"this server answers to {g.host}, not to Host {host!r}")
        query_token = request.query_params.get("token")
        if not g.token_ok(request.headers.get("authorization"), request.cookies.get(TOKEN_COOKIE), query_token):
            return _refuse(request, 401, "Unauthorized", "this server needs its access token: open the address "
                           "it printed at start (?token=...), or send Authorization: Bearer TOKEN")
        if g.cross_site(request.method, host, request.headers.get("origin"),
                        request.headers.get("sec-fetch-site")):
            return _refuse(request, 403, "Forbidden", "requests from other sites may not change anything here")
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return _refuse(request, 411, "UsageError", "send a Content-Length with the request body")
            if not length.isdigit() or int(length) > server.max_upload_bytes + _FORM_ROOM:
                return _refuse(request, 413, "TooLarge",
                               f"request body over the {server.max_upload_bytes // (1 << 20)} MiB upload limit")
        response: Response = await call_next(request)
        if query_token is not None and g.token is not None:
            response.set_cookie(TOKEN_COOKIE, g.token, httponly=True, samesite="strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.exception_handler(CbirError)
    async def cbir_error(request: Request, exc: CbirError):
        return _error_response(request, http_status(exc), error_body(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return _error_response(request, exc.status_code, {"type": kind, "code": 2, "message": str(exc.detail)})

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
        return _error_response(request, 422, {"type": "UsageError", "code": 2, "message": problems})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return _error_response(request, 500, error_body(exc))

    return app


def _refuse(request: Request, status: int, kind: str, message: str) -> Response:
    return _error_response(request, status, {"type": kind, "code": 2, "message": message})


def _error_response(request: Request, status: int, body: dict) -> Response:
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": body}, status_code=status)
    return render(request, "error.html", {"status": status, "error": body}, status_code=status)
