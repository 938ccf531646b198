"""The ASGI application behind `cbir serve`: pages for people, ``/api/`` for programs, one set of rules.

Errors are cbir's typed errors turned into HTTP statuses in one place (``STATUS``):
a bad request is a 4xx with a one-line message, never a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

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
from cbir.web.jobs import Jobs, NoSuchJob, error_body
from cbir.web.library import Library
from cbir.web.security import CSRF_FIELD, CSRF_HEADER, TOKEN_COOKIE, Guard
from cbir.web.thumbnails import Thumbnails

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
MAX_UPLOAD_PIXELS = 100_000_000  # a 100-megapixel picture; anything larger is not a photo to search with
_FORM_ROOM = 64 * 1024  # multipart headers and fields beside the file


class ServerReadOnly(CbirError):
    """An action that moves files, asked of a server started with --read-only (HTTP 403)."""


class Forbidden(CbirError):
    """A request from another site, or without the form token (HTTP 403)."""


class TooLarge(CbirError):
    """A request body over the upload limit (HTTP 413)."""


STATUS: dict[type[CbirError], int] = {
    UsageError: 400, ImageNotFoundError: 404, NoSuchJob: 404, IndexEmptyError: 404, IndexBusyError: 409,
    IndexIncompatibleError: 409, ReadOnlyError: 409, ServerReadOnly: 403, Forbidden: 403, TooLarge: 413,
    WeightsUnavailableError: 503, ModelError: 500, IncompleteMoveError: 500, DiskFullError: 507,
    DamagedFileError: 500,
}


def http_status(exc: CbirError) -> int:
    if isinstance(exc, ImageDecodeError):
        return 413 if exc.reason in ("too many pixels", "file too large") else 400
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


@dataclass
class Server:
    """Everything a request handler needs, made once per server."""

    library: Library
    guard: Guard
    read_only: bool = False
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    thumbnails: Thumbnails = field(init=False)
    jobs: Jobs = field(default_factory=Jobs)

    def __post_init__(self) -> None:
        self.thumbnails = Thumbnails(self.library.index_dir)

    @property
    def index_dir(self) -> Path:
        return self.library.index_dir

    def writable(self) -> None:
        if self.read_only:
            raise ServerReadOnly("this server was started with --read-only: it does not move files")

    def act(self, csrf: str | None) -> Server:
        """This server, for an action that moves files: refused when read-only or without the form token."""
        self.writable()
        self.check_csrf(csrf)
        return self

    def check_csrf(self, offered: str | None) -> None:
        if not self.guard.csrf_ok(offered):
            raise Forbidden("missing or wrong form token: reload the page (programs: send the csrf_token of "
                            "GET /api/session as the X-CSRF-Token header)")

    def session_info(self) -> dict:
        return {"version": __version__, "index": str(self.index_dir), "read_only": self.read_only,
                "csrf_token": self.guard.csrf, "max_upload_bytes": self.max_upload_bytes,
                "max_upload_pixels": self.library.max_upload_pixels}

    def make_thumbnails_in_background(self) -> None:
        def rows():
            try:
                with self.library.reader() as reader:
                    return list(reader.rows_page(None, None, 0, 1 << 62)[1])
            except CbirError:
                return []

        self.thumbnails.make_missing(rows, lambda row, exc: log.info("no thumbnail for %s: %s", row.path, exc))

    def close(self) -> None:
        self.thumbnails.close()
        self.jobs.close()


def create_app(server: Server) -> FastAPI:
    from cbir.web import api, pages

    app = FastAPI(title="cbir", version=__version__, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Content-based image retrieval over your own photos; the same JSON as the CLI's "
                              "`--json`.")
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
    from cbir.web.pages import render

    return render(request, "error.html", {"status": status, "error": body}, status_code=status)


__all__ = ["CSRF_FIELD", "CSRF_HEADER", "Server", "create_app"]
