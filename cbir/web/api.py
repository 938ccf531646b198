"""``/api/``: the CLI's commands over HTTP, answering the JSON their ``--json`` prints.

Files are named by index id only, never by a path from the request, so nothing
outside the index can be read. Actions that move files answer 202 with a job
(``/api/jobs/ID``) whose ``result`` is, once done, what the CLI's ``--json`` prints.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, File, Form, Header, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from cbir.actions import clean as cleaning
from cbir.actions import duplicates as dups
from cbir.actions import search
from cbir.actions import undo as undoing
from cbir.actions.clean import CleanRequest
from cbir.actions.status import status as status_action
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.web.server import Server, TooLarge

router = APIRouter(prefix="/api", tags=["api"])

Level = Literal["exact", "near", "similar"]
# Ids and offsets are SQLite integers: anything past 2^63 is no image (and must not reach SQLite, which
# would overflow), so every integer a request carries is range-checked (422).
MAX_ID = 2**63 - 1
ImageId = Annotated[int, Path(ge=0, le=MAX_ID, description="An indexed image's id")]
Id = Annotated[int, Field(ge=0, le=MAX_ID)]



def server_of(request: Request) -> Server:
    return request.app.state.server


async def read_upload(server: Server, upload: UploadFile) -> bytes:
    data = await upload.read(server.max_upload_bytes + 1)
    if len(data) > server.max_upload_bytes:
        raise TooLarge(f"upload over the {server.max_upload_bytes // (1 << 20)} MiB limit")
    return data


async def search_upload(server: Server, data: bytes, k: int, *, exclude_self: bool = False,
                        tags: list[str] | None = None) -> list[dict]:
    """A search by uploaded picture, decoded on one of the server's few upload threads: uploads that wait for
    one hold no request thread, so they can neither take the server's memory nor its other requests."""
    return await anyio.to_thread.run_sync(
        lambda: search.query_bytes(server.index_dir, data, k, exclude_self=exclude_self, tags=tags,
                                   warm=server.warm, max_pixels=server.max_upload_pixels),
        limiter=server.upload_limiter())


@router.get("/session")
def session(request: Request) -> dict:
    """This server: version, index, whether it is read-only, and the form token that actions need."""
    return server_of(request).session_info()


@router.get("/status")
def status(request: Request) -> dict:
    """`cbir status --json`."""
    return status_action(server_of(request).index_dir)


@router.post("/query")
async def query_upload(request: Request,
                       image: Annotated[UploadFile, File(description="The picture to search with")],
                       k: Annotated[int, Form(ge=1, le=500)] = 10, exclude_self: Annotated[bool, Form()] = False,
                       tag: Annotated[list[str] | None, Form()] = None) -> list[dict]:
    """`cbir query IMAGE --json` with an uploaded picture: the k most similar indexed images, best first."""
    server = server_of(request)
    return await search_upload(server, await read_upload(server, image), k, exclude_self=exclude_self, tags=tag)


@router.get("/query")
def query_id(request: Request, id: Annotated[int, Query(ge=0, le=MAX_ID, description="An indexed image's id")],
             k: Annotated[int, Query(ge=1, le=500)] = 10, exclude_self: bool = False,
             tag: Annotated[list[str] | None, Query()] = None) -> list[dict]:
    """More like an indexed image (from its stored vector), as `cbir query --json` answers."""
    server = server_of(request)
    return search.query_id(server.index_dir, id, k, exclude_self=exclude_self, tags=tag, warm=server.warm)


@router.get("/find")
def find(request: Request, response: Response,
         word: Annotated[list[str] | None, Query(description="Every one of these words")] = None,
         k: Annotated[int, Query(ge=1, le=500)] = 10,
         taken: Annotated[str | None, Query(max_length=30, description="2023, 2023-06, 2023-06..2023-08")] = None,
         offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> list[dict]:
    """`cbir find WORD... [--taken WHEN] [--offset N] --json`: images tagged with every word (or taken at a
    place a word names), taken when asked, best first; the total is in the X-Total-Count header, and
    X-Tags-Current is "false" when the stored tags predate this cbir's vocabulary (`cbir index` remakes them)."""
    page = search.find_page(server_of(request).index_dir, word or [], k, taken, offset)
    response.headers["X-Total-Count"] = str(page["total"])
    response.headers["X-Tags-Current"] = "true" if page["tags_current"] else "false"
    return page["images"]


@router.get("/images")
def images(request: Request, category: str | None = None, tag: Annotated[list[str] | None, Query()] = None,
           offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 60,
           sort: Annotated[str, Query(description="path, taken (newest first) or size (largest first)")] = "path",
           month: Annotated[str | None, Query(max_length=7, description="YYYY-MM: start where it starts")] = None
           ) -> dict:
    """The library, a page at a time (path order unless ``sort`` says), each image with when and where it was
    taken; optionally of one category and with every tag."""
    return server_of(request).library.page(category, tag, offset, limit, sort, month)


@router.get("/words")
def words(request: Request, prefix: Annotated[str, Query(max_length=60)] = "") -> list[str]:
    """Words a search by word understands that start with ``prefix`` (tags, categories, places), for a box that
    suggests them as you type."""
    return server_of(request).library.words(prefix)


@router.get("/months")
def months(request: Request, category: str | None = None, tag: Annotated[list[str] | None, Query()] = None
           ) -> list[dict]:
    """Every month with images taken (of the category and tags), newest first, and how many."""
    return server_of(request).library.months(category, tag)


@router.get("/images/{image_id}")
def image(request: Request, image_id: ImageId) -> dict:
    """One indexed image: path, category and probabilities, tags, and whether its file is still as indexed."""
    return server_of(request).library.image(image_id)


@router.get("/images/{image_id}/thumbnail", response_class=Response)
async def thumbnail(request: Request, image_id: ImageId) -> Response:
    """A small WebP of the image, upright."""
    return await _picture(request, image_id, "thumb")


@router.get("/images/{image_id}/preview", response_class=Response)
async def preview(request: Request, image_id: ImageId) -> Response:
    """A large WebP of the image, upright."""
    return await _picture(request, image_id, "preview")


async def _picture(request: Request, image_id: int, size: str) -> Response:
    server = server_of(request)
    row = await _files(server, server.library.row, image_id)
    etag = f'"{row.hash}-{size}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    data = await _files(server, server.thumbnails.get, row, size)
    return Response(data, media_type="image/webp", headers={"ETag": etag, "Cache-Control": "private, no-cache"})


async def _files(server: Server, work, *args):
    """Work that reads the user's files, on the server's few file threads: a slow or stuck file holds one of
    those, never a request thread, so the rest of the server keeps answering."""
    return await anyio.to_thread.run_sync(work, *args, limiter=server.file_limiter())


@router.get("/images/{image_id}/file", response_class=Response)
async def original(request: Request, image_id: ImageId) -> Response:
    """The indexed file itself, only while its bytes are still the ones indexed."""
    server = server_of(request)
    row = await _files(server, server.library.row, image_id)
    data = await _files(server, server.thumbnails.original, row)
    kind = mimetypes.guess_type(os.fsencode(row.path).decode("utf-8", "replace"))[0] or "application/octet-stream"
    if not kind.startswith("image/") or kind == "image/svg+xml":
        kind = "application/octet-stream"
    return Response(data, media_type=kind, headers={"Cache-Control": "private, no-cache",
                                                   "Content-Security-Policy": "default-src 'none'"})


@router.get("/history")
def history(request: Request) -> list[dict]:
    """`cbir history --json`."""
    return undoing.history(server_of(request).index_dir)


class CleanBody(BaseModel):
    categories: list[str] = Field(description="Categories to move out; 'all' for every one")
    min_confidence: float = Field(DEFAULT_MIN_CONFIDENCE, ge=0, le=1)
    ids: list[Id] | None = Field(None, description="Only these image ids of the plan (the ones left ticked)")


class UndoBody(BaseModel):
    run_id: Id | None = Field(None, description="The run to put back (default: the last with files to put back)")
    dry_run: bool = False


class DuplicatesBody(BaseModel):
    level: Level = "near"


class ChosenGroup(BaseModel):
    group: int = Field(ge=1, le=10**9, description="A group's number in the scan")
    keep: Id | None = Field(None, description="The id of the member to keep (default: the one the scan suggests)")


class MoveCopiesBody(BaseModel):
    job: str = Field(max_length=64, description="The duplicates scan job whose groups were looked at")
    groups: list[ChosenGroup] = Field(min_length=1, max_length=100_000,
                                      description="The groups whose copies move; nothing else does")


CsrfHeader = Annotated[str | None, Header(alias="X-CSRF-Token", description="csrf_token of GET /api/session")]



@router.post("/clean/plan")
def clean_plan(request: Request, body: CleanBody, x_csrf_token: CsrfHeader = None) -> dict:
    """`cbir clean --json` without --yes: what would move where (new or changed files are indexed first)."""
    server = server_of(request).act(x_csrf_token)
    return cleaning.clean_plan(server.index_dir, CleanRequest(body.categories, min_confidence=body.min_confidence))


@router.post("/clean", status_code=202)
def clean(request: Request, body: CleanBody, x_csrf_token: CsrfHeader = None) -> JSONResponse:
    """`cbir clean --yes --json` as a job: move the planned files (only ``ids``, when given)."""
    server = server_of(request).act(x_csrf_token)
    job = server.start_clean(body.categories, body.min_confidence, set(body.ids) if body.ids is not None else None)
    return _accepted(job)


@router.post("/undo")
def undo(request: Request, body: UndoBody, x_csrf_token: CsrfHeader = None) -> Any:
    """`cbir undo --json`: the dry run at once, or (dry_run false) a job that puts the files back."""
    server = server_of(request).act(x_csrf_token)
    if body.dry_run:
        return undoing.undo_plan(server.index_dir, body.run_id)
    return _accepted(server.start_undo(body.run_id))


@router.get("/duplicates")
def duplicates(request: Request, level: Level = "near", x_csrf_token: CsrfHeader = None) -> dict:
    """`cbir duplicates --json`: groups of copies, the one to keep first (work that takes a while: it needs the
    form token, and a --read-only server refuses it)."""
    return dups.duplicates(server_of(request).act(x_csrf_token).index_dir, level)


@router.post("/duplicates/scan", status_code=202)
def duplicates_scan(request: Request, body: DuplicatesBody, x_csrf_token: CsrfHeader = None) -> JSONResponse:
    """`cbir duplicates --json` as a job with progress, for large libraries."""
    return _accepted(server_of(request).act(x_csrf_token).start_duplicates_scan(body.level))


@router.post("/duplicates/move", status_code=202)
def duplicates_move(request: Request, body: MoveCopiesBody, x_csrf_token: CsrfHeader = None) -> JSONResponse:
    """Move the copies of the chosen groups of a scan job (each group's keeper stays; `cbir undo` puts them
    back), as a job answering like `cbir duplicates --move-extras --yes --json`. Only the groups named move."""
    server = server_of(request).act(x_csrf_token)
    return _accepted(server.start_duplicates_move(body.job, {g.group: g.keep for g in body.groups}))


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str) -> dict:
    """A job's progress, and once done its result (the CLI's --json) or its error."""
    return server_of(request).jobs.get(job_id).as_dict()


def _accepted(job) -> JSONResponse:
    return JSONResponse(job.as_dict(), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})
