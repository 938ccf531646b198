"""The pages people use: server-rendered HTML (Jinja2, autoescaped) with a little JavaScript."""

from __future__ import annotations

import io
import os
import time
from collections import defaultdict
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cbir.actions import clean as cleaning
from cbir.actions import search as searching
from cbir.actions import selection
from cbir.actions import undo as undoing
from cbir.actions.clean import CleanRequest
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.duplicates import LEVELS
from cbir.errors import ImageNotFoundError, UsageError
from cbir.search import MATCH_SCORE, RELATED_SCORE
from cbir.web.api import MAX_ID, Id, ImageId, read_upload, search_upload, server_of
from indexer.loader import decode, thumbnail

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=os.path.join(os.path.dirname(__file__), "templates"))
PER_PAGE = 60
GROUPS_PER_PAGE = 20  # duplicate groups on one page: each is looked at before anything moves
MAX_PAGE = 10**9  # past any library's last page, and far from overflowing an offset


def _display(path: str) -> str:
    """A path as a page shows it: bytes that are not UTF-8 as U+FFFD (the API keeps them exact)."""
    return os.fsencode(path).decode("utf-8", "replace")


def _by_month(items: list[dict], sort: str) -> list[tuple[str, list[dict]]]:
    """Consecutive pictures taken in one month, together (one group of all when not sorted by date)."""
    groups: list[tuple[str, list[dict]]] = []
    for item in items:
        month = (item.get("taken_at") or "")[:7] if sort == "taken" else ""
        if not groups or groups[-1][0] != month:
            groups.append((month, []))
        groups[-1][1].append(item)
    return groups


def _month_name(month: str) -> str:
    return time.strftime("%B %Y", time.strptime(month, "%Y-%m")) if month else "Date unknown"


templates.env.filters["display"] = _display
templates.env.filters["basename"] = lambda p: _display(os.path.basename(p))
templates.env.filters["percent"] = lambda x: f"{100 * float(x):.0f}%"
templates.env.filters["size"] = lambda n: f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
templates.env.filters["by_month"] = _by_month
templates.env.filters["month_name"] = _month_name
templates.env.filters["month_short"] = lambda m: time.strftime("%b", time.strptime(m, "%Y-%m"))
templates.env.filters["groupby_year"] = lambda months: [
    (year, [m for m in months if m["month"][:4] == year]) for year in dict.fromkeys(m["month"][:4] for m in months)]
templates.env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""
templates.env.filters["isotime"] = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) if t else ""


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    server = server_of(request)
    base = {"server": server, "csrf": server.guard.csrf, "read_only": server.read_only,
            "match_score": MATCH_SCORE, "related_score": RELATED_SCORE, "nav": name,
            # Pages with grids of pictures can select some and act on them.
            "folders": server.library.folders() if name in ("library.html", "search.html") else None}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _index_state(server) -> tuple[dict, str | None]:
    status = server.library.status()
    note = None if status["exists"] and status["images"] else (
        f"The index at {status['index_dir']} holds no images yet: run `cbir index DIR` and reload.")
    return status, note


@router.get("/", response_class=HTMLResponse)
def library(request: Request, category: Annotated[str | None, Query(max_length=200)] = None,
            tag: Annotated[str | None, Query(max_length=200)] = None,
            sort: Annotated[str, Query(max_length=10)] = "taken",
            month: Annotated[str | None, Query(max_length=7)] = None,
            place: Annotated[str | None, Query(max_length=100)] = None,
            taken: Annotated[str | None, Query(max_length=30)] = None,
            page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
            n: Annotated[int, Query(ge=4, le=200)] = PER_PAGE,
            part: bool = False) -> HTMLResponse:
    """The library as a timeline (newest first, a heading per month, a year and month scrubber), or by path or
    size; filters and position live in the URL. ``part`` answers only the next pictures, for endless scroll."""
    server = server_of(request)
    status, note = _index_state(server)
    found: dict = {"total": 0, "offset": 0, "images": []}
    months: list[dict] = []
    if not note:
        words = tag.split() if tag else None
        found = server.library.page(category, words, (page - 1) * n, n, sort, month, place, taken)
        if sort == "taken" and not part:
            months = server.library.months(category, words, place, taken)
    page = found["offset"] // n + 1
    pages = max(1, -(-found["total"] // n))
    context = {"status": status, "note": note, "found": found, "category": category, "tag": tag or "",
               "place": place or "", "taken": taken or "", "sort": sort, "page": page, "pages": pages, "n": n,
               "months": months}
    return render(request, "_timeline.html" if part else "library.html", context)


@router.get("/search", response_class=HTMLResponse)
async def search(request: Request, id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None, q: str | None = None,
                 upload: Annotated[str | None, Query(max_length=32)] = None,
                 ids: Annotated[str | None, Query(max_length=8000)] = None,
                 offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                 k: Annotated[int, Query(ge=1, le=500)] = 24) -> HTMLResponse:
    """Every search has a URL: by an indexed picture (``id``), by words (``q``), or by a picture uploaded
    earlier (``upload``, kept in memory while the server runs)."""
    server = server_of(request)
    context: dict[str, Any] = {"hits": None, "q": q or "", "k": k, "query_id": id, "upload": None}
    if id is not None:
        context["hits"] = await anyio.to_thread.run_sync(
            lambda: searching.query_id(server.index_dir, id, k, warm=server.warm))
        context["title"] = "More like this"
    elif q:
        try:
            page = await anyio.to_thread.run_sync(
                lambda: searching.find_page(server.index_dir, q.split(), k, offset=offset))
            context["hits"], context["total"], context["offset"] = page["images"], page["total"], offset
            context["below"], context["tags_current"] = page["below_bar"], page["tags_current"]
            context["readings"] = searching.readings(page)
            context["title"] = f"Tagged {q}"
        except UsageError as exc:  # a word with no tag (with suggestions), or nothing that is a word
            context["unknown"] = {"message": str(exc), "suggestions": getattr(exc, "suggestions", [])}
    elif ids:
        chosen = [_form_int(part, "ids") for part in ids.split(",")[:500] if part]
        context["hits"] = await anyio.to_thread.run_sync(
            lambda: searching.query_ids(server.index_dir, chosen, k, warm=server.warm))
        context["title"] = f"More like these {len(chosen)}"
    elif upload:
        data = server.uploads.get(upload)
        if data is None:
            context["gone"] = True
        else:
            context["hits"] = await search_upload(server, data, k)
            context["title"], context["upload"] = "Like your picture", upload
    status = await anyio.to_thread.run_sync(server.library.status)
    return render(request, "search.html", {**context, "status": status})


@router.post("/search")
async def search_by_upload(request: Request, image: Annotated[UploadFile, File()],
                           k: Annotated[int, Form(ge=1, le=500)] = 24) -> RedirectResponse:
    """A picture dropped, picked or pasted: kept for a while, then searched at its own URL."""
    server = server_of(request)
    data = await read_upload(server, image)
    # What cannot be searched (not a picture, too many pixels) is refused at once, not at its URL.
    await anyio.to_thread.run_sync(lambda: decode(data, max_pixels=server.max_upload_pixels),
                                   limiter=server.upload_limiter())
    return RedirectResponse(f"/search?upload={server.uploads.keep(data)}&k={k}", status_code=303)


@router.post("/selection/plan", response_class=HTMLResponse)
async def selection_plan(request: Request, csrf_token: Annotated[str, Form()], folder: Annotated[str, Form()],
                         id: Annotated[list[Id], Form()]) -> HTMLResponse:
    """What moving the selected pictures into ``folder`` would do, before anything moves."""
    server = server_of(request).act(csrf_token)
    plan = await anyio.to_thread.run_sync(lambda: selection.move_selected(server.index_dir, id, folder))
    return render(request, "selection.html", {"plan": plan, "folder": folder, "ids": id})


@router.post("/selection/apply")
def selection_apply(request: Request, csrf_token: Annotated[str, Form()], folder: Annotated[str, Form()],
                    id: Annotated[list[Id], Form()]) -> RedirectResponse:
    job = server_of(request).act(csrf_token).start_selection_move(id, folder)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/search/uploads/{token}", response_class=Response)
async def uploaded_picture(request: Request, token: Annotated[str, Path(max_length=32)]) -> Response:
    """The uploaded picture a search was made with, as a small WebP."""
    data = server_of(request).uploads.get(token)
    if data is None:
        raise ImageNotFoundError("that uploaded picture is no longer kept; upload it again")
    picture = await anyio.to_thread.run_sync(lambda: _webp(data))
    return Response(picture, media_type="image/webp", headers={"Cache-Control": "private, max-age=3600"})


def _webp(data: bytes) -> bytes:
    out = io.BytesIO()
    thumbnail(data, 480).save(out, "WEBP", quality=80)
    return out.getvalue()


@router.get("/images/{image_id}", response_class=HTMLResponse)
def image(request: Request, image_id: ImageId) -> HTMLResponse:
    server = server_of(request)
    details = server.library.image(image_id)
    neighbours = searching.query_id(server.index_dir, image_id, 13, exclude_self=True, warm=server.warm)
    return render(request, "image.html", {"image": details, "neighbours": neighbours})


@router.get("/clean", response_class=HTMLResponse)
def clean(request: Request) -> HTMLResponse:
    server = server_of(request)
    status, note = _index_state(server)
    runs = undoing.history(server.index_dir) if not note else []
    return render(request, "clean.html", {"status": status, "note": note, "runs": list(reversed(runs)),
                                          "min_confidence": DEFAULT_MIN_CONFIDENCE})


@router.post("/clean/plan", response_class=HTMLResponse)
def clean_plan(request: Request, csrf_token: Annotated[str, Form()],
               category: Annotated[list[str] | None, Form()] = None,
               min_confidence: Annotated[float, Form(ge=0, le=1)] = DEFAULT_MIN_CONFIDENCE) -> HTMLResponse:
    server = server_of(request).act(csrf_token)
    plan = cleaning.clean_plan(server.index_dir, CleanRequest(category or [], min_confidence=min_confidence))
    groups: dict[str, list[dict]] = defaultdict(list)
    for move in plan["moves"]:
        groups[os.path.dirname(move["destination"])].append(move)
    return render(request, "plan.html", {"plan": plan, "groups": dict(sorted(groups.items())),
                                         "categories": category or [], "min_confidence": min_confidence})


@router.post("/clean/apply")
def clean_apply(request: Request, csrf_token: Annotated[str, Form()],
                category: Annotated[list[str], Form()], min_confidence: Annotated[float, Form(ge=0, le=1)],
                id: Annotated[list[Id] | None, Form()] = None) -> RedirectResponse:
    server = server_of(request).act(csrf_token)
    job = server.start_clean(category, min_confidence, set(id or []))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/undo/{run_id}", response_class=HTMLResponse)
async def undo_preview(request: Request, run_id: ImageId) -> HTMLResponse:
    """What undoing a run would put back where, before anything moves."""
    server = server_of(request)
    plan = await anyio.to_thread.run_sync(lambda: undoing.undo_plan(server.index_dir, run_id))
    return render(request, "undo.html", {"plan": plan})


@router.post("/undo")
def undo(request: Request, csrf_token: Annotated[str, Form()], run_id: Annotated[Id, Form()]) -> RedirectResponse:
    server = server_of(request).act(csrf_token)
    job = server.start_undo(run_id)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/duplicates", response_class=HTMLResponse)
def duplicates(request: Request, job: Annotated[str | None, Query(max_length=64)] = None,
               page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1) -> HTMLResponse:
    """A scan's groups, ``GROUPS_PER_PAGE`` at a time; while the scan runs, the groups found so far."""
    server = server_of(request)
    status, note = _index_state(server)
    context: dict[str, Any] = {"status": status, "note": note, "scan": None}
    if job:
        found, groups = server.scan_groups(job)
        pages = max(1, -(-len(groups) // GROUPS_PER_PAGE))
        page = min(page, pages)
        shown = groups[(page - 1) * GROUPS_PER_PAGE: page * GROUPS_PER_PAGE]
        context["scan"] = {"job": found.as_dict() | {"result": None}, "report": found.result, "groups": shown,
                           "count": len(groups), "page": page, "pages": pages,
                           "moved": server.moved_groups.get(job, {})}
    return render(request, "duplicates.html", context)


@router.post("/duplicates/scan")
def duplicates_scan(request: Request, csrf_token: Annotated[str, Form()],
                    level: Annotated[str, Form()] = "near") -> RedirectResponse:
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    job = server_of(request).act(csrf_token).start_duplicates_scan(level)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/duplicates/move")
async def duplicates_move(request: Request) -> RedirectResponse:
    """Move the copies of the groups ticked on a page of a scan (or of the one group whose button was
    pressed), keeping in each the member chosen with its "keep" button."""
    form = await request.form()
    server = server_of(request).act(str(form.get("csrf_token") or ""))
    only = form.get("only")
    numbers = [_form_int(only, "group")] if only else [_form_int(v, "group") for v in form.getlist("group")]
    chosen = {n: _form_int(form.get(f"keep_{n}"), "keep", optional=True) for n in numbers}
    job = server.start_duplicates_move(str(form.get("job") or ""), chosen)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def _form_int(value: object, name: str, optional: bool = False) -> Any:
    if optional and (value is None or value == ""):
        return None
    if not isinstance(value, str) or not value.isdigit() or len(value) > 12:
        raise UsageError(f"{name} must be a whole number, not {str(value)[:20]!r}")
    return int(value)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(request: Request, job_id: str) -> HTMLResponse:
    return render(request, "job.html", {"job": server_of(request).jobs.get(job_id).as_dict()})


@router.get("/status", response_class=HTMLResponse)
def status(request: Request) -> HTMLResponse:
    server = server_of(request)
    thumbs = server.thumbnails
    return render(request, "status.html", {"status": server.library.status(), "runtime": server.runtime,
                                           "thumbnails": (thumbs.background_done, thumbs.background_total)})
