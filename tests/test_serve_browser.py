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


MONTHS = {"astronaut.jpg": (2021, 3), "pets/chelsea.jpg": (2022, 7), "food/coffee.jpg": (2023, 1),
          "trips/china.jpg": (2023, 1), "rocket.jpg": (2020, 11)}


@pytest.fixture(scope="module")
def served(tmp_path_factory, photos, weights_file):
    """A real `cbir serve` process over a freshly indexed tree: (base URL, photo tree)."""
    base = tmp_path_factory.mktemp("browser")
    root, index = make_tree(base / "pictures", photos), base / "index"
    for rel, (year, month) in MONTHS.items():  # no EXIF here: the files' times date them, months apart
        stamp = time.mktime((year, month, 15, 12, 0, 0, 0, 0, -1))
        os.utime(root / rel, (stamp, stamp))
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
    context = browser.new_context(viewport={"width": 1440, "height": 900})
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
    page.wait_for_url(re.compile(r"/search\?upload=[\w-]+&k=24$"))  # a URL of its own, to reload or bookmark
    page.wait_for_selector(".grid .cell")
    assert page.locator("#query-picture img").evaluate("i => i.complete && i.naturalWidth > 0")
    page.reload()
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
    page.locator(".grid .cell", has_text="rotated.jpg").locator("img").click()  # opens the viewer
    page.locator("#viewer a.open").click()  # and from there the picture's own page
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
    row.locator("a.undo").click()
    page.wait_for_url(re.compile(r"/undo/\d+$"))
    assert int(page.locator("#to-restore").inner_text()) >= 1  # the plan first; nothing moved yet
    page.click("#undo-confirm")
    page.wait_for_selector("#job[data-state=done]")
    assert "Put back 2 of 2 file(s) of run 1" in page.locator("#job-result").inner_text()
    assert snapshot(root) == before
    page.goto(url + "clean")
    assert page.locator("tr[data-run='1'] .state").inner_text() == "undone"
    assert page.locator("tr[data-run='1'] a.undo").count() == 0


def test_duplicates_page_moves_the_extra_copy_and_undo_puts_it_back(served, page, shots):
    url, root = served
    before = snapshot(root)
    page.goto(url + "duplicates")
    page.click("#scan")
    page.wait_for_url(re.compile(r"/duplicates\?job="))
    assert page.locator("#groups").inner_text() == "2"  # the cat and its copy; the espresso and its turned copy
    cat = page.locator("section.group", has_text="chelsea-small.jpg")
    assert cat.locator(".cell.keep .name").inner_text() == "chelsea.jpg"
    assert cat.locator(".cell.keep input[type=radio]").is_checked()  # the suggested keeper
    assert page.locator("input.tick:checked").count() == 0  # nothing is ticked to move before the person looks
    assert cat.locator(".cell.copy a").get_attribute("href").endswith("/file")  # each member opens full size
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "duplicates.png"))
    cat.locator("button.move-group").click()
    page.wait_for_selector("#job[data-state=done]")
    assert (root / "duplicates" / "chelsea-small.jpg").is_file() and not (root / "pets" / "chelsea-small.jpg").exists()
    page.goto(url + "clean")
    page.locator("tr", has_text="duplicates").locator("a.undo").click()
    page.click("#undo-confirm")
    page.wait_for_selector("#job[data-state=done]")
    assert snapshot(root) == before


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def test_every_page_fits_a_phone_with_three_thumbnails_a_row_and_a_menu(served, phone, shots):
    url, _ = served
    phone.goto(url)
    image = phone.locator(".grid .cell a").first.get_attribute("href")
    for path in ("", "?category=receipt", "search", "search?q=cat", "clean", "duplicates", "status", image.lstrip("/")):
        phone.goto(url + path)
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (path, width)  # nothing scrolls sideways
        assert phone.locator("header").bounding_box()["height"] < 0.12 * 844, path  # a compact header
        if phone.locator(".grid").count():
            columns = phone.locator(".grid").first.evaluate(
                "g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
            assert columns >= 3, (path, columns)
    phone.goto(url)
    phone.screenshot(path=str(shots / "library-phone.png"))
    assert not phone.locator("nav#site-nav").is_visible()
    phone.click("button.menu")
    phone.locator("nav#site-nav a", has_text="Duplicates").click()
    phone.wait_for_url(re.compile(r"/duplicates$"))


def test_a_pasted_picture_is_searched_and_the_upload_is_reachable_by_keyboard(served, page):
    url, root = served
    page.goto(url + "search")
    page.keyboard.press("Tab")
    for _ in range(12):  # the file picker is reachable with Tab
        if page.evaluate("document.activeElement && document.activeElement.id") == "image":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "image"
    data = list((root / "pets" / "chelsea.jpg").read_bytes())
    page.evaluate("""bytes => {
        const file = new File([new Uint8Array(bytes)], "pasted.jpg", {type: "image/jpeg"});
        const clipboard = new DataTransfer();
        clipboard.items.add(file);
        document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: clipboard}));
    }""", data)
    page.wait_for_url(re.compile(r"/search\?upload="))
    assert page.locator(".grid .cell .name").first.inner_text() == "chelsea.jpg"


def test_the_api_docs_work_offline_and_the_pages_have_an_icon(served, page):
    url, _ = served
    page.goto(url + "api/docs")
    page.wait_for_selector(".swagger-ui .info .title")  # drawn by scripts the server itself serves
    assert "cbir" in page.locator(".swagger-ui .info .title").inner_text()
    page.goto(url)
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(url + icon.lstrip("/")).ok


def test_a_word_with_no_tag_offers_its_suggestions_as_links_and_the_box_keeps_the_query(served, page):
    url, _ = served
    page.goto(url)
    page.fill("header input[name=q]", "caat")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=caat"))
    assert "no tag for 'caat'" in page.locator("#unknown-word").inner_text().lower()
    assert page.locator("header input[name=q]").input_value() == "caat"
    page.locator("#unknown-word a", has_text="cat").first.click()
    page.wait_for_url(re.compile(r"/search\?q=cat$"))
    assert page.locator(".grid .cell .name").first.inner_text() == "chelsea.jpg"
    assert "tag scores" in page.locator(".legend").inner_text()


def test_the_viewer_moves_with_the_keys_shows_details_zooms_and_closes(served, page, shots):
    url, _ = served
    page.goto(url)
    page.wait_for_load_state("networkidle")
    ids = page.locator(".grid .cell").evaluate_all("cells => cells.map(c => c.dataset.id)")
    page.locator(".grid .cell > a").nth(1).click()
    viewer = page.locator("#viewer")
    assert viewer.is_visible() and viewer.get_attribute("data-id") == ids[1]
    page.wait_for_function("document.querySelector('#viewer .stage img').naturalWidth > 0")
    page.keyboard.press("ArrowRight")
    assert viewer.get_attribute("data-id") == ids[2]
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert viewer.get_attribute("data-id") == ids[0]
    page.keyboard.press("ArrowLeft")  # wraps round to the last
    assert viewer.get_attribute("data-id") == ids[-1]
    page.keyboard.press("i")
    page.wait_for_selector("#viewer aside.info dl")
    assert "Category" in page.locator("#viewer aside.info").inner_text()
    page.wait_for_selector("#viewer .neighbours img")  # its nearest pictures
    page.screenshot(path=str(shots / "viewer.png"))
    page.keyboard.press("z")
    page.wait_for_function("document.querySelector('#viewer .stage img').src.endsWith('/file')")
    page.keyboard.press("Escape")
    assert not viewer.is_visible()


def test_the_viewer_swipes_on_a_phone(served, phone):
    url, _ = served
    phone.goto(url)
    ids = phone.locator(".grid .cell").evaluate_all("cells => cells.map(c => c.dataset.id)")
    phone.locator(".grid .cell > a").first.tap()
    stage = phone.locator("#viewer .stage")
    for start, end, expected in ((300, 60, ids[1]), (60, 300, ids[0])):
        stage.evaluate("""(el, [start, end]) => {
            const touch = (x) => new Touch({identifier: 1, target: el, clientX: x, clientY: 300});
            el.dispatchEvent(new TouchEvent("touchstart", {touches: [touch(start)], bubbles: true}));
            el.dispatchEvent(new TouchEvent("touchend", {changedTouches: [touch(end)], bubbles: true}));
        }""", [start, end])
        assert phone.locator("#viewer").get_attribute("data-id") == expected


def test_selected_pictures_move_after_a_preview_and_the_history_undoes_it(served, page, shots):
    url, root = served
    before = snapshot(root)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.click("#select")
    cells = page.locator(".grid .cell")
    by_name = {cells.nth(k).locator(".name").inner_text(): k for k in range(cells.count())}
    page.locator(".grid .cell > a").nth(by_name["rocket.jpg"]).click()
    page.locator(".grid .cell > a").nth(by_name["astronaut.jpg"]).focus()
    page.keyboard.press(" ")  # the keyboard picks too
    assert page.locator("#selected-count").inner_text() == "2"
    assert not page.locator("#viewer").is_visible()  # selecting, not viewing
    page.screenshot(path=str(shots / "selection.png"))
    page.select_option("#selection select[name=folder]", "duplicates")
    page.click("#move-selected")
    page.wait_for_url(re.compile(r"/selection/plan$"))
    assert page.locator("#planned").inner_text() == "2" and snapshot(root) == before  # the plan; nothing moved
    page.click("#apply-selection")
    page.wait_for_selector("#job[data-state=done]")
    assert (root / "duplicates" / "rocket.jpg").is_file() and (root / "duplicates" / "astronaut.jpg").is_file()
    assert not (root / "rocket.jpg").exists()
    page.goto(url + "clean")
    page.locator("table.history tr[data-run]").first.locator("a.undo").click()  # the newest run comes first
    page.click("#undo-confirm")
    page.wait_for_selector("#job[data-state=done]")
    assert snapshot(root) == before


def test_more_like_several_selected_pictures(served, page):
    url, _ = served
    page.goto(url)
    page.wait_for_load_state("networkidle")
    cells = page.locator(".grid .cell")
    names = [cells.nth(k).locator(".name").inner_text() for k in range(cells.count())]
    page.locator(".grid .cell > a").nth(names.index("chelsea.jpg")).click(modifiers=["Shift"])
    page.locator(".grid .cell > a").nth(names.index("coffee.jpg")).click(modifiers=["Control"])
    page.click("#more-like-these")
    page.wait_for_url(re.compile(r"/search\?ids=\d+,\d+$"))
    found = [n.strip() for n in page.locator(".grid .cell .name").all_inner_texts()]
    assert found and "chelsea.jpg" not in found and "coffee.jpg" not in found
    assert found[0] in ("chelsea-small.jpg", "rotated.jpg")  # their own copies first


PAGES = ("", "?category=receipt", "search", "search?q=cat", "search?q=caat", "clean", "duplicates", "status")


@pytest.mark.parametrize("size", [(1440, 900), (390, 844)], ids=["desktop", "phone"])
def test_no_page_has_a_serious_accessibility_violation(served, browser, size):
    """axe-core (through axe-playwright-python) on every page, both sizes: no serious or critical findings."""
    from axe_playwright_python.sync_playwright import Axe

    url, _ = served
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.goto(url)
    image = page.locator(".grid .cell > a").first.get_attribute("href")
    found = []
    for path in (*PAGES, image.lstrip("/")):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        results = Axe().run(page)
        found += [(path, v["id"], v["impact"], v["nodes"][0]["target"]) for v in results.response["violations"]
                  if v["impact"] in ("serious", "critical")]
    context.close()
    assert found == [], found



def test_the_library_is_a_timeline_with_a_scrubber_endless_scroll_and_sorts(served, page, shots):
    url, root = served
    page.goto(url)
    page.wait_for_load_state("networkidle")
    months = page.locator("#timeline section.month").evaluate_all("s => s.map(x => x.dataset.month)")
    assert months == sorted(months, reverse=True) and len(months) >= 4  # newest first, a section a month
    jan = page.locator("#timeline section.month[data-month='2023-01']")
    assert jan.locator("h2").inner_text() == "January 2023"
    assert sorted(n.strip() for n in jan.locator(".name").all_inner_texts()) == ["china.jpg", "coffee.jpg"]
    page.screenshot(path=str(shots / "library-timeline.png"))
    page.locator("#scrubber a[data-month='2021-03']").click()
    page.wait_for_url(re.compile(r"month=2021-03"))
    assert "2021-03" in page.locator("#timeline section.month").evaluate_all("s => s.map(x => x.dataset.month)")
    # Endless scroll: four pictures a page, every picture once as the end comes into view.
    page.goto(url + "?n=4")
    total = int(page.locator("#total").inner_text())
    for _ in range(10):
        page.mouse.wheel(0, 5000)
        page.wait_for_timeout(300)
        if page.locator(".grid .cell").count() == total:
            break
    shown = page.locator(".grid .cell").evaluate_all("cells => cells.map(c => c.dataset.id)")
    assert len(shown) == total == len(set(shown))
    page.select_option("#sort", "size")
    page.wait_for_url(re.compile(r"sort=size"))
    sizes = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    assert page.locator(".grid .cell .name").first.inner_text() == Path(max(sizes, key=sizes.get)).name


def test_every_page_at_both_sizes_has_a_screenshot(served, browser, shots):
    """The pictures in docs/screens come from here (SERVE_SCREENSHOTS=docs/screens): every page, 1440 and 390."""
    url, _ = served
    for size, suffix in (((1440, 900), "desktop"), ((390, 844), "phone")):
        context = browser.new_context(viewport={"width": size[0], "height": size[1]})
        page = context.new_page()
        for name, path in (("library", ""), ("search", "search?q=cat"), ("clean", "clean"),
                           ("duplicates", "duplicates"), ("status", "status")):
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(shots / f"{name}-{suffix}.png"))
            assert (shots / f"{name}-{suffix}.png").stat().st_size > 5_000
        page.goto(url)
        page.locator(".grid .cell > a").first.click()
        page.wait_for_function("document.querySelector('#viewer .stage img').naturalWidth > 0")
        page.screenshot(path=str(shots / f"viewer-{suffix}.png"))
        context.close()


def test_the_word_box_suggests_words_and_the_library_filters_by_place_and_time(served, page):
    url, _ = served
    page.goto(url)
    box = page.locator("header input[name=q]")
    box.fill("ca")
    page.wait_for_function("document.querySelectorAll('#word-suggestions option').length > 0")
    suggestions = page.locator("#word-suggestions option").evaluate_all("os => os.map(o => o.value)")
    assert "cat" in suggestions and all(s.startswith("ca") for s in suggestions)
    box.fill("dog golden re")  # a term of several words is completed too, after what came before it
    page.wait_for_function("[...document.querySelectorAll('#word-suggestions option')]"
                           ".some(o => o.value === 'dog golden retriever')")
    page.goto(url + "?taken=2023-01")
    assert sorted(names(page)) == ["china.jpg", "coffee.jpg"]
    page.goto(url + "?taken=2021..2022")
    assert sorted(names(page)) == ["astronaut.jpg", "chelsea.jpg"]
    page.goto(url + "?place=atlantis")
    assert page.locator("#total").inner_text() == "0"
