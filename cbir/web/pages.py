"""The pages people use: server-rendered HTML (Jinja2, autoescaped) with a little JavaScript."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from cbir.actions import clean as cleaning
from cbir.actions import search as searching
from cbir.actions import undo as undoing
from cbir.actions.clean import CleanRequest
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.duplicates import LEVELS
from cbir.errors import UsageError
from cbir.search import MATCH_SCORE, RELATED_SCORE
from cbir.web.api import MAX_ID, Id, ImageId, read_upload, search_upload, server_of

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=os.path.join(os.path.dirname(__file__), "templates"))
PER_PAGE = 60
MAX_PAGE = 10**9  # past any library's last page, and far from overflowing an offset


def _display(path: str) -> str:
    """A path as a page shows it: bytes that are not UTF-8 as U+FFFD (the API keeps them exact)."""
    return os.fsencode(path).decode("utf-8", "replace")


templates.env.filters["display"] = _display
templates.env.filters["basename"] = lambda p: _display(os.path.basename(p))
templates.env.filters["percent"] = lambda x: f"{100 * float(x):.0f}%"
templates.env.filters["size"] = lambda n: f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    server = server_of(request)
    base = {"server": server, "csrf": server.guard.csrf, "read_only": server.read_only,
            "match_score": MATCH_SCORE, "related_score": RELATED_SCORE, "nav": name}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _index_state(server) -> tuple[dict, str | None]:
    status = server.library.status()
    note = None if status["exists"] and status["images"] else (
        f"The index at {status['index_dir']} holds no images yet: run `cbir index DIR` and reload.")
    return status, note


@router.get("/", response_class=HTMLResponse)
def library(request: Request, category: str | None = None, tag: str | None = None,
            page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1) -> HTMLResponse:
    server = server_of(request)
    status, note = _index_state(server)
    found: dict = {"total": 0, "images": []}
    if not note:
        words = tag.split() if tag else None
        found = server.library.page(category, words, (page - 1) * PER_PAGE, PER_PAGE)
    pages = max(1, -(-found["total"] // PER_PAGE))
    return render(request, "library.html", {"status": status, "note": note, "found": found, "category": category,
                                            "tag": tag or "", "page": page, "pages": pages})


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None, q: str | None = None,
           k: Annotated[int, Query(ge=1, le=500)] = 24) -> HTMLResponse:
    server = server_of(request)
    context: dict[str, Any] = {"hits": None, "q": q or "", "k": k, "query_id": id}
    if id is not None:
        context["hits"] = searching.query_id(server.index_dir, id, k, warm=server.warm)
        context["title"] = "More like this"
    elif q:
        context["hits"] = searching.find(server.index_dir, q.split(), k)
        context["title"] = f"Tagged {q}"
    return render(request, "search.html", {**context, "status": server.library.status()})


@router.post("/search", response_class=HTMLResponse)
async def search_by_upload(request: Request, image: Annotated[UploadFile, File()],
                           k: Annotated[int, Form(ge=1, le=500)] = 24) -> HTMLResponse:
    server = server_of(request)
    hits = await search_upload(server, await read_upload(server, image), k)
    return render(request, "search.html", {"hits": hits, "q": "", "k": k, "query_id": None,
                                           "title": f"Like {_display(image.filename or 'your picture')}",
                                           "status": server.library.status()})


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


@router.post("/undo")
def undo(request: Request, csrf_token: Annotated[str, Form()], run_id: Annotated[Id, Form()]) -> RedirectResponse:
    server = server_of(request).act(csrf_token)
    job = server.start_undo(run_id)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/duplicates", response_class=HTMLResponse)
def duplicates(request: Request, job: str | None = None) -> HTMLResponse:
    server = server_of(request)
    status, note = _index_state(server)
    report = None
    if job:
        found = server.jobs.get(job)
        if found.kind == "duplicates" and found.state == "done":
            report = found.result
    return render(request, "duplicates.html", {"status": status, "note": note, "report": report})


@router.post("/duplicates/scan")
def duplicates_scan(request: Request, csrf_token: Annotated[str, Form()],
                    level: Annotated[str, Form()] = "near") -> RedirectResponse:
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    job = server_of(request).act(csrf_token).start_duplicates_scan(level)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/duplicates/move")
def duplicates_move(request: Request, csrf_token: Annotated[str, Form()], level: Annotated[str, Form()],
                    id: Annotated[list[Id] | None, Form()] = None) -> RedirectResponse:
    server = server_of(request).act(csrf_token)
    job = server.start_duplicates_move(level, set(id or []))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(request: Request, job_id: str) -> HTMLResponse:
    return render(request, "job.html", {"job": server_of(request).jobs.get(job_id).as_dict()})


@router.get("/status", response_class=HTMLResponse)
def status(request: Request) -> HTMLResponse:
    server = server_of(request)
    thumbs = server.thumbnails
    return render(request, "status.html", {"status": server.library.status(), "runtime": server.runtime,
                                           "thumbnails": (thumbs.background_done, thumbs.background_total)})
