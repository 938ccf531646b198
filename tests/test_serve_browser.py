"""`cbir serve` in a real Chromium, driven by Playwright: what a person does, checked on disk each time.

The browser is Debian's ``chromium`` (``.ci/run`` installs it); the tests skip, saying why, where it is
missing. Screenshots of the main pages go to ``$SERVE_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cbir
from tests.test_serve_api import make_tree, snapshot

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("no Chromium here: install Debian's chromium package to run the browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def served(tmp_path_factory, photos, weights_file):
    """A real `cbir serve` process over a freshly indexed tree: (base URL, photo tree)."""
    base = tmp_path_factory.mktemp("browser")
    root, index = make_tree(base / "pictures", photos), base / "index"
    env = {**os.environ, "CBIR_HOME": str(base / "home"), "CBIR_WEIGHTS": str(weights_file),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "cbir"]
    indexed = run_cbir(["index", str(root), "--index", str(index), "-q"], env)
    assert indexed.returncode == 0, indexed.stderr
    log = open(base / "serve.log", "w+")
    server = subprocess.Popen([*cmd, "serve", "--index", str(index), "--port", "0"], env=env, stderr=log,
                              stdout=subprocess.DEVNULL)
    url = None
    deadline = time.monotonic() + 300
    while url is None and time.monotonic() < deadline and server.poll() is None:
        log.seek(0)
        found = re.search(r"at (http://127\.0\.0\.1:\d+/)", log.read())
        url = found.group(1) if found else None
        time.sleep(0.2)
    log.seek(0)
    assert url, f"cbir serve did not start: {log.read()}"
    yield url, root
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SERVE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def names(page) -> list[str]:
    return [n.strip() for n in page.locator(".grid .cell .name").all_inner_texts()]


def test_library_shows_every_image_and_filters_by_category(served, page, shots):
    url, root = served
    page.goto(url)
    page.wait_for_load_state("networkidle")
    files = [p for p in root.rglob("*") if p.is_file()]
    assert page.locator(".grid .cell").count() == len(files)
    assert int(page.locator("#total").inner_text()) == len(files)
    assert all(page.locator(".grid img").evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"))
    page.screenshot(path=str(shots / "library.png"))
    page.select_option("select[name=category]", "receipt")
    page.wait_for_url(re.compile(r"category=receipt"))
    assert set(names(page)) >= {"invoice.png", "letter.png"}
    assert "chelsea.jpg" not in names(page)


def test_search_by_upload_puts_the_photo_first_then_more_like_this(served, page, shots):
    url, root = served
    page.goto(url + "search")
    page.set_input_files("#image", str(root / "pets" / "chelsea.jpg"))  # picking a file submits the form
    page.wait_for_selector(".grid .cell")
    first = page.locator(".grid .cell").first
    assert first.locator(".name").inner_text() == "chelsea.jpg"
    assert first.locator(".judgement").inner_text() == "this picture"
    second = page.locator(".grid .cell").nth(1)
    assert second.locator(".name").inner_text() == "chelsea-small.jpg"
    assert second.locator(".judgement").inner_text() == "match"
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "search.png"))
    second.locator("a.more").click()
    page.wait_for_url(re.compile(r"/search\?id=\d+"))
    assert names(page)[:2] == ["chelsea-small.jpg", "chelsea.jpg"]


def test_image_page_shows_path_category_tags_and_neighbours(served, page, shots):
    url, root = served
    page.goto(url)
    page.locator(".grid .cell", has_text="rotated.jpg").locator("img").click()
    page.wait_for_url(re.compile(r"/images/\d+"))
    assert page.locator("#path").inner_text() == str(root / "food" / "rotated.jpg")
    assert page.locator("#category").inner_text() in {"food", "other"}
    assert "#food" in page.locator(".tags").inner_text() or "#cup" in page.locator(".tags").inner_text()
    size = page.locator("#preview").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size[1] > size[0]  # upright, as the camera's orientation tag says
    assert page.locator(".grid .cell").count() == sum(1 for p in root.rglob("*") if p.is_file()) - 1  # all others
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "image.png"))


def test_clean_from_the_page_then_undo_from_the_history(served, page, shots):
    url, root = served
    before = snapshot(root)
    page.goto(url + "clean")
    page.check("input[name=category][value=receipt]")
    page.fill("input[name=min_confidence]", "0.5")
    page.click("#plan")
    page.wait_for_selector("#apply")
    planned = {caption.split()[0] for caption in page.locator("#apply-form .cell .caption").all_inner_texts()}
    assert planned == {"invoice.png", "letter.png", "note.png"}
    page.screenshot(path=str(shots / "clean-plan.png"), full_page=True)
    page.locator(".cell", has_text="note.png").locator("input[type=checkbox]").uncheck()  # a mistake, kept
    page.click("#apply")
    page.wait_for_selector("#job[data-state=done]")
    assert "Moved 2 file(s) as run 1" in page.locator("#job-result").inner_text()
    assert not (root / "scans" / "invoice.png").exists() and (root / "receipt" / "invoice.png").is_file()
    assert (root / "receipt" / "letter.png").is_file() and (root / "note.png").is_file()

    page.goto(url + "clean")
    row = page.locator("tr[data-run='1']")
    assert row.locator(".state").inner_text() == "done"
    row.locator("button.undo").click()
    page.wait_for_selector("#job[data-state=done]")
    assert "Put back 2 of 2 file(s) of run 1" in page.locator("#job-result").inner_text()
    assert snapshot(root) == before
    page.goto(url + "clean")
    assert page.locator("tr[data-run='1'] .state").inner_text() == "undone"
    assert page.locator("tr[data-run='1'] button.undo").count() == 0


def test_duplicates_page_moves_the_extra_copy_and_undo_puts_it_back(served, page, shots):
    url, root = served
    before = snapshot(root)
    page.goto(url + "duplicates")
    page.click("#scan")
    page.wait_for_url(re.compile(r"/duplicates\?job="))
    assert page.locator("#groups").inner_text() == "1"
    assert page.locator(".cell.keep").inner_text().strip().endswith("chelsea.jpg")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "duplicates.png"))
    page.click("#move-extras")
    page.wait_for_selector("#job[data-state=done]")
    assert (root / "duplicates" / "chelsea-small.jpg").is_file() and not (root / "pets" / "chelsea-small.jpg").exists()
    page.goto(url + "clean")
    page.locator("tr", has_text="duplicates").locator("button.undo").click()
    page.wait_for_selector("#job[data-state=done]")
    assert snapshot(root) == before
