"""`cbir serve`'s HTTP API through the framework's test client, with the real model, index and files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import run_cbir, save_photo
from tests.datasets import render_document

PHOTOS = {"astronaut": "astronaut.jpg", "chelsea": "pets/chelsea.jpg", "coffee": "food/coffee.jpg",
          "china": "trips/china.jpg", "camera": "camera.png", "rocket": "rocket.jpg"}
DOCUMENTS = ("scans/invoice.png", "scans/letter.png", "note.png")


def cbir(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return run_cbir(args, env)


def make_tree(root: Path, photos) -> Path:
    for name, rel in PHOTOS.items():
        save_photo(photos[name], root / rel)
    rng = np.random.default_rng(6)
    for rel in DOCUMENTS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        render_document(rng).save(root / rel)
    # A copy of the cat, smaller and re-encoded: a near duplicate, and an EXIF-rotated photo.
    Image.fromarray(photos["chelsea"]).resize((225, 150)).save(root / "pets" / "chelsea-small.jpg", quality=70)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to show
    Image.fromarray(photos["coffee"]).save(root / "food" / "rotated.jpg", exif=exif)
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_file) -> dict:
    env = dict(os.environ)
    env["CBIR_HOME"] = str(tmp_path_factory.mktemp("home"))
    env["CBIR_WEIGHTS"] = str(weights_file)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, photos, env) -> tuple[Path, Path]:
    """(photo tree, index) indexed once by the CLI, for the tests that only read."""
    base = tmp_path_factory.mktemp("served")
    root, index = make_tree(base / "pictures", photos), base / "index"
    proc = cbir(["index", str(root), "--index", str(index), "-q"], env)
    assert proc.returncode == 0, proc.stderr
    return root, index


@pytest.fixture(scope="module")
def library(indexed, weights_file):
    """The served index with the server's warm model, loaded once for the module."""
    from cbir.warm import Warm
    from cbir.web.library import Library

    library = Library(indexed[1])
    library.warm_model = Warm(weights=str(weights_file), bulk=True, work=1)
    library.warm(library.warm_model)
    return library


def make_client(library, *, host: str = "127.0.0.1", token: str | None = None, read_only: bool = False,
                max_upload_bytes: int | None = None, max_upload_pixels: int | None = None,
                index: Path | None = None) -> TestClient:
    from cbir.warm import Warm
    from cbir.web.app import create_app
    from cbir.web.library import Library
    from cbir.web.security import Guard
    from cbir.web.server import MAX_UPLOAD_BYTES, Server

    served = Library(index) if index is not None else library
    warm = Warm(embedder=library.warm_model.loaded_embedder, bulk=True, work=1)  # the same warm model
    server = Server(served, Guard(host, token), warm, read_only=read_only,
                    max_upload_bytes=max_upload_bytes or MAX_UPLOAD_BYTES,
                    **({"max_upload_pixels": max_upload_pixels} if max_upload_pixels else {}))
    return TestClient(create_app(server), base_url=f"http://{host}:8000", raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(library) -> TestClient:
    return make_client(library)


@pytest.fixture
def fresh(library, tmp_path, photos, env) -> tuple[Path, Path, TestClient, dict]:
    """(tree, index, client, headers with the form token) over a tree of its own, for tests that change it."""
    root = make_tree(tmp_path / "pictures", photos)
    index = tmp_path / "index"
    assert cbir(["index", str(root), "--index", str(index), "-q"], env).returncode == 0
    client = make_client(library, index=index)
    return root, index, client, {"X-CSRF-Token": client.get("/api/session").json()["csrf_token"]}


def jpeg(array: np.ndarray, **kwargs) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "JPEG", **kwargs)
    return out.getvalue()


def by_name(client: TestClient) -> dict[str, dict]:
    images = client.get("/api/images", params={"limit": 500}).json()["images"]
    return {Path(i["path"]).name: i for i in images}


# -- reading -----------------------------------------------------------------------------------------------


def test_status_and_history_are_the_cli_json(client, indexed, env):
    _, index = indexed
    cli = json.loads(cbir(["status", "--index", str(index), "--json"], env).stdout)
    assert client.get("/api/status").json() == cli
    assert cli["images"] == len(PHOTOS) + len(DOCUMENTS) + 2
    assert client.get("/api/history").json() == json.loads(cbir(["history", "--index", str(index), "--json"],
                                                                env).stdout) == []
    session = client.get("/api/session").json()
    assert session["read_only"] is False and len(session["csrf_token"]) > 20


def test_query_by_upload_answers_what_the_cli_answers(client, indexed, env, photos):
    root, index = indexed
    cat = root / "pets" / "chelsea.jpg"
    response = client.post("/api/query", files={"image": ("cat.jpg", cat.read_bytes(), "image/jpeg")},
                           data={"k": "5"})
    assert response.status_code == 200, response.text
    hits = response.json()
    cli = json.loads(cbir(["query", str(cat), "-k", "5", "--index", str(index), "--json"], env).stdout)
    assert [h["path"] for h in hits] == [h["path"] for h in cli]
    assert [h["score"] for h in hits] == pytest.approx([h["score"] for h in cli], abs=1e-4)
    assert hits[0]["is_query"] and hits[0]["path"] == str(cat) and hits[0]["score"] == 1.0
    assert hits[1]["path"].endswith("chelsea-small.jpg") and hits[1]["judgement"] == "match"

    # A picture that is not in the index: its closest indexed copy comes first, and nothing is "the query".
    edited = jpeg(photos["chelsea"][20:-20, 30:-30], quality=60)
    hits = client.post("/api/query", files={"image": ("x.jpg", edited, "image/jpeg")},
                       data={"k": "3", "exclude_self": "true"}).json()
    assert Path(hits[0]["path"]).name.startswith("chelsea") and hits[0]["judgement"] == "match"
    assert not any(h["is_query"] for h in hits)


def test_query_by_id_find_and_library_pages(client):
    names = by_name(client)
    cat = names["chelsea.jpg"]
    hits = client.get("/api/query", params={"id": cat["id"], "k": 3}).json()
    assert hits[0]["id"] == cat["id"] and hits[0]["is_query"] and hits[1]["path"].endswith("chelsea-small.jpg")
    assert client.get("/api/query", params={"id": cat["id"], "k": 3, "exclude_self": True}).json()[0]["id"] != cat["id"]

    answer = client.get("/api/find", params={"word": "cat"})
    found = answer.json()
    assert answer.headers["X-Tags-Current"] == "true" and int(answer.headers["X-Total-Count"]) >= len(found)
    assert {Path(f["path"]).name for f in found[:2]} == {"chelsea.jpg", "chelsea-small.jpg"}
    assert all("tags" in f for f in found)
    # A tag filter inside a similarity search.
    tagged = client.get("/api/query", params={"id": names["astronaut.jpg"]["id"], "k": 3, "tag": "cat"}).json()
    assert {Path(h["path"]).name for h in tagged} == {"chelsea.jpg", "chelsea-small.jpg"}

    first = client.get("/api/images", params={"limit": 4}).json()
    second = client.get("/api/images", params={"limit": 4, "offset": 4}).json()
    assert first["total"] == len(names) and len(first["images"]) == 4
    paths = [i["path"] for i in first["images"] + second["images"]]
    assert paths == sorted(paths) and len(set(paths)) == 8
    receipts = client.get("/api/images", params={"category": "receipt"}).json()
    assert receipts["total"] >= 2 and all(i["category"] == "receipt" for i in receipts["images"])
    cats = client.get("/api/images", params={"tag": "cat"}).json()
    assert {Path(i["path"]).name for i in cats["images"]} >= {"chelsea.jpg", "chelsea-small.jpg"}
    # A tag of several words, as the image page links it and as typed in the search box or the tag filter, is one
    # term: "domestic cat", not "domestic" and "cat".
    html = {"Accept": "text/html"}
    named = [t["tag"] for t in client.get(f"/api/images/{cat['id']}").json()["tags"] if " " in t["tag"]]
    assert named
    for tag in named:
        page = client.get("/search", params={"q": tag}, headers=html).text
        assert "chelsea.jpg" in page and 'id="unknown-word"' not in page
    assert "chelsea.jpg" in client.get("/", params={"tag": named[0]}, headers=html).text
    hashtag = client.get("/search", params={"q": "#" + named[0].replace(" ", "_") + ", cat"}, headers=html).text
    assert "chelsea.jpg" in hashtag and 'id="unknown-word"' not in hashtag  # as the image page shows its tags
    nothing = client.get("/search", params={"q": " , #"}, headers=html)  # the search page says so itself
    assert nothing.status_code == 200 and 'id="unknown-word"' in nothing.text and "No word to find" in nothing.text
    # A word read as something else says so, as `cbir find` does on stderr: a broader match is not hidden.
    page = client.get("/search", params={"q": "kitty"}, headers=html).text
    assert "chelsea.jpg" in page and "read as domestic cat (WordNet: domestic cat" in page
    assert "read as" not in client.get("/search", params={"q": "cat"}, headers=html).text
    # The word box suggests every word a search reads: tags, everyday words, linked words, categories.
    for prefix, word in (("ca", "cat"), ("bea", "beach"), ("fore", "forest"), ("selfi", "selfie"), ("rec", "receipt")):
        suggested = client.get("/api/words", params={"prefix": prefix}).json()
        assert word in suggested and all(w.startswith(prefix) for w in suggested)
        assert client.get("/api/find", params={"word": word}).status_code == 200


def test_image_details_and_pictures(client, indexed):
    root, index = indexed
    names = by_name(client)
    rotated = names["rotated.jpg"]
    details = client.get(f"/api/images/{rotated['id']}").json()
    assert details["present"] and details["path"] == str(root / "food" / "rotated.jpg")
    assert any(t["tag"] == "food" for t in details["tags"])

    response = client.get(f"/api/images/{rotated['id']}/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    thumb = Image.open(io.BytesIO(response.content))
    assert thumb.format == "WEBP" and max(thumb.size) == 320
    assert thumb.height > thumb.width  # EXIF orientation applied: the landscape coffee photo stands upright
    assert client.get(f"/api/images/{rotated['id']}/thumbnail",
                      headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    assert len(list((index / "thumbnails").rglob("*.webp"))) >= 1  # cached beside the index

    preview = Image.open(io.BytesIO(client.get(f"/api/images/{rotated['id']}/preview").content))
    assert max(preview.size) == 600  # never larger than the photo
    original = client.get(f"/api/images/{rotated['id']}/file")
    assert original.content == (root / "food" / "rotated.jpg").read_bytes()
    assert original.headers["content-type"] == "image/jpeg"


def test_nothing_outside_the_index_can_be_read(client, fresh, tmp_path):
    for url in ("/api/images/..%2F..%2F..%2Fetc%2Fpasswd/file", "/api/images/../../etc/passwd",
                "/api/images/-1/file", "/api/images/999999/file", "/static/..%2F..%2Fcli.py",
                "/static/../../../etc/passwd", "/api/images/1%00/file"):
        response = client.get(url)
        assert response.status_code in (404, 422), url
        assert b"root:" not in response.content and b"import" not in response.content

    # A file replaced after indexing (here by a link to a secret) is not served: its bytes are not the indexed ones.
    root, _, own, _ = fresh
    names = by_name(own)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0 secret")
    target = root / "camera.png"
    target.unlink()
    target.symlink_to(secret)
    for what in ("file", "thumbnail", "preview"):
        response = own.get(f"/api/images/{names['camera.png']['id']}/{what}")
        assert response.status_code == 404 and b"secret" not in response.content
        assert "changed since it was indexed" in response.json()["error"]["message"]


def test_bad_uploads_get_a_clear_4xx(client, library, photos):
    def upload(data: bytes, target: TestClient = client):
        return target.post("/api/query", files={"image": ("x.jpg", data, "image/jpeg")})

    for data, status, words in ((b"not an image at all", 400, "not an image"), (b"", 400, "not an image"),
                                (jpeg(photos["coffee"])[:3000], 400, "corrupt image")):
        response = upload(data)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert words in error["message"] and "Traceback" not in response.text and "\n" not in error["message"]

    small = make_client(library, max_upload_bytes=50_000)
    big = jpeg(photos["astronaut"], quality=98)
    assert len(big) > 50_000
    assert upload(big, small).status_code == 413

    capped = make_client(library, max_upload_pixels=100_000)
    response = capped.post("/api/query", files={"image": ("x.jpg", big, "image/jpeg")})
    assert response.status_code == 413 and "too many pixels" in response.json()["error"]["message"]

    assert client.post("/api/query", data={"k": "3"}).status_code == 422  # no picture
    assert client.post("/api/query", files={"image": ("x.jpg", big, "image/jpeg")}, data={"k": "0"}).status_code == 422
    assert client.get("/api/query", params={"id": "abc"}).status_code == 422
    assert client.get("/api/find", params={"word": "qwertyuiop"}).status_code == 400
    assert client.get("/api/jobs/nope").status_code == 404


# -- who may talk, and what may change ---------------------------------------------------------------------


def test_a_non_loopback_server_needs_its_token(library):
    client = make_client(library, host="0.0.0.0", token="s3cret-token")
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    first = client.get("/api/status", params={"token": "s3cret-token"})
    assert first.status_code == 200 and "httponly" in first.headers["set-cookie"].lower()
    assert client.get("/api/status").status_code == 200  # the cookie it set


def test_a_loopback_server_refuses_other_host_names(client):
    assert client.get("/api/status", headers={"Host": "evil.example:8000"}).status_code == 400
    assert client.get("/api/status", headers={"Host": "localhost:8000"}).status_code == 200


def test_actions_need_the_form_token_and_refuse_other_sites(client, indexed):
    root, _ = indexed
    before = snapshot(root)
    csrf = client.get("/api/session").json()["csrf_token"]
    body = {"categories": ["receipt"], "min_confidence": 0.5}
    assert client.post("/api/clean", json=body).status_code == 403
    assert client.post("/api/clean", json=body, headers={"X-CSRF-Token": "guess"}).status_code == 403
    for header in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        response = client.post("/api/clean", json=body, headers={"X-CSRF-Token": csrf, **header})
        assert response.status_code == 403, header
    # A page form posted from another site is refused the same way.
    assert client.post("/clean/apply", data={"csrf_token": csrf, "category": "receipt", "min_confidence": "0.5"},
                       headers={"Origin": "http://evil.example"}).status_code == 403
    assert snapshot(root) == before
    plan = client.post("/api/clean/plan", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8000"})
    assert plan.status_code == 200 and plan.json()["dry_run"] is True
    assert snapshot(root) == before


def test_read_only_serves_but_moves_nothing(library, indexed):
    root, _ = indexed
    before = snapshot(root)
    client = make_client(library, read_only=True)
    csrf = client.get("/api/session").json()["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    assert client.post("/api/clean", json={"categories": ["receipt"]}, headers=headers).status_code == 403
    assert client.post("/api/clean/plan", json={"categories": ["receipt"]}, headers=headers).status_code == 403
    assert client.post("/api/undo", json={}, headers=headers).status_code == 403
    response = client.post("/api/duplicates/move", json={"job": "0" * 16, "groups": [{"group": 1}]}, headers=headers)
    assert response.status_code == 403 and "read-only" in response.json()["error"]["message"]
    assert client.get("/api/images").status_code == 200
    # A scan is work that takes a while: a read-only server refuses it too.
    assert client.get("/api/duplicates", headers=headers).status_code == 403
    assert snapshot(root) == before


# -- moving files ------------------------------------------------------------------------------------------


def wait(client: TestClient, job: dict) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job['id']}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job['id']} did not finish")


def test_clean_plan_apply_and_undo_over_the_api(fresh, env):
    root, index, client, headers = fresh
    before = snapshot(root)
    body = {"categories": ["receipt"], "min_confidence": 0.5}

    plan = client.post("/api/clean/plan", json=body, headers=headers).json()
    cli = json.loads(cbir(["clean", "--category", "receipt", "--min-confidence", "0.5", "--index", str(index),
                           "--json"], env).stdout)
    assert plan == cli
    assert {Path(m["path"]).name for m in plan["moves"]} == {"invoice.png", "letter.png", "note.png"}

    kept = next(m for m in plan["moves"] if m["path"].endswith("note.png"))
    chosen = [m["id"] for m in plan["moves"] if m is not kept]
    started = client.post("/api/clean", json={**body, "ids": chosen}, headers=headers)
    assert started.status_code == 202 and started.headers["location"] == f"/api/jobs/{started.json()['id']}"
    job = wait(client, started.json())
    assert job["state"] == "done" and job["done"] == job["total"] == 2, job
    result = job["result"]
    assert sorted(m["id"] for m in result["moves"]) == sorted(chosen) and result["run_id"] == 1
    assert {"path": kept["path"], "reason": "left out by you"} in result["left_in_place"]["skipped"]
    for move in result["moves"]:
        assert not os.path.exists(move["path"]) and os.path.isfile(move["destination"])
    assert os.path.isfile(kept["path"])
    history = client.get("/api/history").json()
    assert [(r["id"], r["state"], r["moved"]) for r in history] == [(1, "done", 2)]

    dry = client.post("/api/undo", json={"dry_run": True}, headers=headers).json()
    assert dry["dry_run"] is True and len(dry["files"]) == 2 and snapshot(root) != before
    job = wait(client, client.post("/api/undo", json={"run_id": 1}, headers=headers).json())
    assert job["state"] == "done" and len(job["result"]["files"]) == 2
    assert snapshot(root) == before
    again = wait(client, client.post("/api/undo", json={"run_id": 1}, headers=headers).json())
    assert again["state"] == "failed" and again["error"]["type"] == "UsageError"  # nothing left to put back


def test_duplicates_over_the_api_match_the_cli_and_undo(fresh, env):
    root, index, client, headers = fresh
    before = snapshot(root)
    report = client.get("/api/duplicates", headers=headers).json()
    cli = json.loads(cbir(["duplicates", "--index", str(index), "--json"], env).stdout)
    assert report["groups"] == cli["groups"]
    # The cat and its small copy; the espresso and the same photo stored sideways (an EXIF turn).
    assert [[Path(m["path"]).name for m in g["members"]] for g in report["groups"]] == [
        ["coffee.jpg", "rotated.jpg"], ["chelsea.jpg", "chelsea-small.jpg"]]
    scan = wait(client, client.post("/api/duplicates/scan", json={"level": "near"}, headers=headers).json())
    assert scan["result"]["groups"] == cli["groups"] and scan["done"] == scan["total"] > 0
    assert scan["found"] == 2  # each group was reported as soon as it was final

    # Only groups named move, each keeping the member chosen; a group or keeper the scan did not find is a 400.
    cat = scan["result"]["groups"][1]
    move = {"job": scan["id"], "groups": [{"group": cat["group"]}]}
    bad_group = client.post("/api/duplicates/move", json={**move, "groups": [{"group": 3}]}, headers=headers)
    assert bad_group.status_code == 400 and "no group 3" in bad_group.json()["error"]["message"]
    stranger = client.post("/api/duplicates/move", json={**move, "groups": [{"group": 2, "keep": 10**6}]},
                           headers=headers)
    assert stranger.status_code == 400 and "not in group 2" in stranger.json()["error"]["message"]
    assert client.post("/api/duplicates/move", json={**move, "groups": []}, headers=headers).status_code in (400, 422)
    assert snapshot(root) == before
    job = wait(client, client.post("/api/duplicates/move", json=move, headers=headers).json())
    assert job["state"] == "done", job
    [moved] = job["result"]["moves"]
    assert moved["path"] == str(root / "pets" / "chelsea-small.jpg")
    assert moved["destination"] == str(root / "duplicates" / "chelsea-small.jpg")
    assert os.path.isfile(moved["destination"])
    wait(client, client.post("/api/undo", json={}, headers=headers).json())
    assert snapshot(root) == before
    # Another keeper: the suggested one moves instead.
    small = next(m["id"] for m in cat["members"] if m["role"] == "copy")
    job = wait(client, client.post("/api/duplicates/move", json={**move, "groups": [{"group": 2, "keep": small}]},
                                   headers=headers).json())
    assert [m["path"] for m in job["result"]["moves"]] == [str(root / "pets" / "chelsea.jpg")]
    wait(client, client.post("/api/undo", json={}, headers=headers).json())
    assert snapshot(root) == before


def test_the_server_follows_an_index_run_that_happens_while_it_serves(fresh, photos, env):
    root, index, client, _ = fresh
    count = client.get("/api/status").json()["images"]
    cat = (root / "pets" / "chelsea.jpg").read_bytes()
    for n in range(12):  # enough for several committed batches while the server answers
        save_photo(np.rot90(photos["china"], n % 4)[n:].copy(), root / "new" / f"china-{n}.jpg")
    writer = subprocess.Popen([sys.executable, "-m", "cbir", "index", str(root), "--index", str(index), "-q",
                               "--batch-size", "2"], env=env, stderr=subprocess.PIPE, text=True)
    answered = 0
    while writer.poll() is None:
        response = client.post("/api/query", files={"image": ("c.jpg", cat, "image/jpeg")}, data={"k": "2"})
        assert response.status_code == 200, response.text
        assert response.json()[0]["path"].endswith("chelsea.jpg")
        assert client.get("/api/images", params={"limit": 5}).status_code == 200
        answered += 1
    assert writer.wait() == 0, writer.stderr.read() if writer.stderr else ""
    assert answered > 0
    assert client.get("/api/status").json()["images"] == count + 12
    china = (root / "new" / "china-5.jpg").read_bytes()
    hits = client.post("/api/query", files={"image": ("x.jpg", china, "image/jpeg")}, data={"k": "1"}).json()
    assert hits[0]["path"] == str(root / "new" / "china-5.jpg") and hits[0]["is_query"]


def test_pages_render_and_errors_are_pages(client):
    html = {"Accept": "text/html"}
    for url in ("/", "/?category=receipt", "/?tag=cat", "/search", "/search?q=cat", "/clean", "/duplicates",
                "/status"):
        response = client.get(url, headers=html)
        assert response.status_code == 200, url
        assert "text/html" in response.headers["content-type"]
    cat = by_name(client)["chelsea.jpg"]
    page = client.get(f"/images/{cat['id']}", headers=html).text
    assert "chelsea.jpg" in page and "Nearest neighbours" in page
    missing = client.get("/images/999999", headers=html)
    assert missing.status_code == 404 and "no indexed image has id 999999" in missing.text
    assert "Traceback" not in missing.text
    assert client.get("/api/openapi.json").json()["paths"]["/api/query"]


def test_a_word_search_over_tags_of_an_older_vocabulary_says_so(fresh):
    _, index, client, _ = fresh
    html = {"Accept": "text/html"}
    assert 'id="tags-stale"' not in client.get("/search?q=cat", headers=html).text
    with sqlite3.connect(index / "catalog.sqlite") as conn:
        conn.execute("UPDATE meta SET value = 'an-older-vocabulary' WHERE key = 'tags_version'")
    assert 'id="tags-stale"' in client.get("/search?q=cat", headers=html).text
    assert 'id="tags-stale"' in client.get("/?tag=cat", headers=html).text
    assert 'id="tags-stale"' not in client.get("/", headers=html).text  # no word asked: nothing to say
    answer = client.get("/api/find", params={"word": "cat"})
    assert answer.headers["X-Tags-Current"] == "false" and answer.json()  # still found, by the old tags
    assert client.get("/api/status").json()["tags_current"] is False
    assert "by an older vocabulary" in client.get("/status", headers=html).text

def test_duplicate_groups_come_twenty_to_a_page_and_only_ticked_groups_move(library, tmp_path, env):
    """21 groups (each picture saved twice): two pages; nothing ticked moves nothing; ticked groups move,
    each keeping the member chosen, and show as moved."""
    root = tmp_path / "pictures"
    rng = np.random.default_rng(3)
    for n in range(21):
        (root / f"g{n:02d}").mkdir(parents=True)
        data = jpeg((rng.random((48, 64, 3)) * 255).astype(np.uint8), quality=90)
        for name in ("a.jpg", "b.jpg"):
            (root / f"g{n:02d}" / name).write_bytes(data)
    index = tmp_path / "index"
    assert cbir(["index", str(root), "--index", str(index), "-q"], env).returncode == 0
    client = make_client(library, index=index)
    csrf = client.get("/api/session").json()["csrf_token"]
    before = snapshot(root)
    started = client.post("/duplicates/scan", data={"csrf_token": csrf, "level": "exact"}, follow_redirects=False)
    job_id = started.headers["location"].rsplit("/", 1)[1]
    wait(client, {"id": job_id, "state": "queued"})
    first = client.get(f"/duplicates?job={job_id}").text
    assert first.count('<section class="group"') == 20 and "page 1 of 2" in first
    assert 'class="tick"' in first and "checked" not in first.split('class="tick"')[1].split(">")[0]
    second = client.get(f"/duplicates?job={job_id}&page=2").text
    assert second.count('<section class="group"') == 1 and 'id="group-21"' in second
    nothing = client.post("/duplicates/move", data={"csrf_token": csrf, "job": job_id}, follow_redirects=False)
    assert nothing.status_code == 400 and snapshot(root) == before
    groups = client.get(f"/api/jobs/{job_id}").json()["result"]["groups"]
    kept = next(m for m in groups[1]["members"] if m["role"] == "copy")  # group 2 keeps its other member
    moved = client.post("/duplicates/move", data={"csrf_token": csrf, "job": job_id, "group": ["1", "2"],
                                                  f"keep_{groups[1]['group']}": str(kept["id"])},
                        follow_redirects=False)
    move_id = moved.headers["location"].rsplit("/", 1)[1]
    result = wait(client, {"id": move_id, "state": "queued"})["result"]
    assert sorted(m["path"] for m in result["moves"]) == sorted(
        [groups[0]["members"][1]["path"], groups[1]["members"][0]["path"]])
    assert Path(kept["path"]).is_file() and len(snapshot(root)) == len(before)  # moved, not deleted
    page = client.get(f"/duplicates?job={job_id}").text
    assert page.count("copies moved") == 2 and page.count('class="tick"') == 18
