"""`cbir watch` with real files, a real watcher process, the real model and the real catalog."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cbir, save_photo
from tests.datasets import crop_photo

WAIT_S = 240  # a generous bound on any one wait: the first job of a fresh machine may load the model


class Watcher:
    """`cbir watch ARGS --json` as a process: its jobs (stdout) and its lines (stderr), as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cbir", "watch", *args, "--json"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.jobs: list[dict] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()

    def _read(self, stream, jobs: bool) -> None:
        for line in stream:
            with self._changed:
                if jobs:
                    entry = json.loads(line)
                    if "totals" not in entry:
                        self.jobs.append(entry)
                else:
                    self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait(self, done, what: str, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = done()
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"waited for {what}; jobs: {self.jobs}; stderr: {self.lines}")
                self._changed.wait(min(left, 1.0))

    def wait_job(self, after: int, what: str, **counts: int) -> dict:
        """The first job after the first ``after`` whose counts include ``counts``."""
        return self.wait(lambda: next((j for j in self.jobs[after:]
                                       if all(j.get(k, 0) == v for k, v in counts.items())), None), what)

    def wait_line(self, text: str) -> str:
        return self.wait(lambda: next((line for line in self.lines if text in line), None), repr(text))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.proc.kill()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the watcher and its indexing process, as a service stop -9
        self.proc.wait(timeout=30)


def _rows(env: dict) -> dict[str, str]:
    """path -> content hash of every indexed image, read from the catalog file."""
    with sqlite3.connect(Path(env["CBIR_HOME"]) / "index" / "catalog.sqlite") as conn:
        return {bytes(p).decode() if isinstance(p, bytes) else p: h
                for p, h in conn.execute("SELECT path, hash FROM images")}


def _top(env: dict, photo: Path) -> tuple[str, float]:
    proc = run_cbir(["query", str(photo), "-k", "1", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    hit = json.loads(proc.stdout)[0]
    return hit["path"], hit["score"]


def test_watch_follows_copies_renames_moves_overwrites_deletes_and_folders(tmp_path, cli_env, photos):
    a, b, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside"
    save_photo(photos["chelsea"], a / "chelsea.jpg")
    save_photo(photos["astronaut"], b / "astronaut.jpg")
    coffee = save_photo(photos["coffee"], outside / "coffee.jpg")
    rocket = save_photo(photos["rocket"], outside / "rocket.png")
    watcher = Watcher([str(a), str(b), "--settle", "0.3"], cli_env)
    try:
        watcher.wait_job(0, "the catch-up", job="roots", added=2)
        watcher.wait_line("watching")
        status = json.loads(run_cbir(["status", "--json"], cli_env).stdout)["watcher"]
        assert status["pid"] == watcher.proc.pid and status["folders"] == [str(a), str(b)]
        assert "kept current by `cbir watch`" in run_cbir(["status"], cli_env).stdout

        n = len(watcher.jobs)
        shutil.copy(coffee, a / "coffee.jpg")
        watcher.wait_job(n, "a copied photo", added=1)
        assert _top(cli_env, coffee)[0] == str(a / "coffee.jpg")
        with sqlite3.connect(Path(cli_env["CBIR_HOME"]) / "index" / "catalog.sqlite") as conn:
            (taken,) = conn.execute("SELECT taken_at FROM images WHERE CAST(path AS TEXT) = ?",
                                    (str(a / "coffee.jpg"),)).fetchone()
        assert taken  # when it was taken (here the file's time) is known at once, as after `cbir index`

        n = len(watcher.jobs)
        os.rename(a / "coffee.jpg", a / "cup.jpg")
        watcher.wait_job(n, "a rename", renamed=1)
        n = len(watcher.jobs)
        os.rename(a / "cup.jpg", b / "cup.jpg")  # to the other watched folder
        watcher.wait_job(n, "a move", renamed=1)
        assert _top(cli_env, coffee) == (str(b / "cup.jpg"), pytest.approx(1.0, abs=1e-4))

        n = len(watcher.jobs)
        shutil.copy(rocket, b / "cup.jpg")  # overwritten in place: another picture at the same path
        watcher.wait_job(n, "an overwrite", updated=1)
        assert _top(cli_env, rocket) == (str(b / "cup.jpg"), pytest.approx(1.0, abs=1e-4))

        n = len(watcher.jobs)
        (b / "cup.jpg").unlink()
        watcher.wait_job(n, "a delete", removed=1)

        album = outside / "album"
        save_photo(photos["china"], album / "china.jpg")
        save_photo(photos["flower"], album / "deeper" / "flower.png")
        n = len(watcher.jobs)
        shutil.move(str(album), str(a / "album"))  # a folder moved in: one event, two photos
        watcher.wait(lambda: sum(j.get("added", 0) for j in watcher.jobs[n:]) == 2, "a folder moved in")
        n = len(watcher.jobs)
        shutil.move(str(a / "album"), str(outside / "album-again"))  # and out again
        watcher.wait(lambda: sum(j.get("removed", 0) for j in watcher.jobs[n:]) == 2, "a folder moved out")
        (a / "notes.txt").write_text("not a photo")
        (a / ".hidden.jpg").write_bytes(coffee.read_bytes())
        assert watcher.stop() == 0
    finally:
        watcher.proc.kill()
    assert json.loads(run_cbir(["status", "--json"], cli_env).stdout)["watcher"] is None  # stopped
    rows = _rows(cli_env)
    assert sorted(rows) == [str(a / "chelsea.jpg"), str(b / "astronaut.jpg")]  # no text, no hidden file
    assert run_cbir(["status", "--check"], cli_env).returncode == 0


def test_a_file_written_slowly_is_read_once_complete(tmp_path, cli_env, photos):
    folder = tmp_path / "downloads"
    save_photo(photos["chelsea"], folder / "first.jpg")
    data = save_photo(photos["astronaut"], tmp_path / "astronaut.jpg", quality=95).read_bytes()
    watcher = Watcher([str(folder), "--settle", "1.0"], cli_env)
    try:
        watcher.wait_job(0, "the catch-up", added=1)
        n = len(watcher.jobs)
        with open(folder / "astronaut.jpg", "wb") as out:  # a download: 8 pieces, 0.25 s apart
            for start in range(0, len(data), len(data) // 8 + 1):
                out.write(data[start: start + len(data) // 8 + 1])
                out.flush()
                time.sleep(0.25)
        watcher.wait_job(n, "the finished download", added=1)
        time.sleep(2)  # anything more the watcher would do with the file, it does within its settle time
        later = watcher.jobs[n:]
        assert sum(j.get("added", 0) + j.get("updated", 0) for j in later) == 1
        assert all(not j.get("skipped") for j in later)  # never read half-written
        assert watcher.stop() == 0
    finally:
        watcher.proc.kill()
    from index_store.hashing import content_hash

    assert _rows(cli_env)[str(folder / "astronaut.jpg")] == content_hash(data)  # what was indexed: the whole file


def test_kill_9_during_a_burst_then_a_restart_indexes_every_photo_once(tmp_path, cli_env, photos):
    folder, staging = tmp_path / "phone", tmp_path / "staging"
    save_photo(photos["coffee"], folder / "first.jpg")
    rng = np.random.default_rng(3)
    names = ["astronaut", "chelsea", "rocket", "china", "coffee", "flower"]
    staging.mkdir()
    for i in range(120):
        crop_photo(photos[names[i % len(names)]], rng, 192).save(staging / f"IMG_{i:04d}.jpg")
    watcher = Watcher([str(folder), "--settle", "0.2"], cli_env)
    try:
        watcher.wait_job(0, "the catch-up", added=1)
        n = len(watcher.jobs)
        for i, photo in enumerate(sorted(staging.iterdir())):
            shutil.copy(photo, folder / photo.name)
            if i == 40:
                time.sleep(1.0)  # the first part lands and its job starts
        watcher.wait(lambda: len(watcher.jobs) > n, "a first job of the burst")
        watcher.kill()  # while the rest is on its way or in hand
    finally:
        watcher.proc.kill()
    before = _rows(cli_env)
    assert 1 < len(before) <= 121
    again = Watcher([str(folder), "--settle", "0.2"], cli_env)
    try:
        again.wait_line("watching")
        again.wait(lambda: len(_rows(cli_env)) == 121, "every photo indexed")
        assert again.stop() == 0
    finally:
        again.proc.kill()
    rows = _rows(cli_env)
    assert sorted(rows) == sorted(str(p) for p in folder.iterdir())  # each once, at its own path
    assert run_cbir(["status", "--check"], cli_env).returncode == 0


def test_the_watcher_waits_for_another_writer_and_releases_its_model_when_idle(tmp_path, cli_env, photos):
    from index_store.lock import WriterLock

    folder = tmp_path / "pictures"
    save_photo(photos["chelsea"], folder / "chelsea.jpg")
    watcher = Watcher([str(folder), "--settle", "0.2", "--release-after", "2"], cli_env)
    try:
        first = watcher.wait_job(0, "the catch-up", added=1)
        watcher.wait_line("model released")
        assert not _alive(first["pid"])  # the process that held the model is gone

        lock = WriterLock(Path(cli_env["CBIR_HOME"]) / "index")
        lock.acquire()  # a `cbir index` by hand, say
        try:
            n = len(watcher.jobs)
            save_photo(photos["coffee"], folder / "coffee.jpg")
            watcher.wait_line("is busy")
            assert len(watcher.jobs) == n  # nothing written while the other writer holds the index
        finally:
            lock.release()
        watcher.wait_job(n, "the photo, once the index is free", added=1)
        assert watcher.stop() == 0
    finally:
        watcher.proc.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_an_unmounted_folder_keeps_its_photos_and_is_caught_up_when_it_comes_back(tmp_path, cli_env, photos):
    from tests.namespaces import python_in_namespace

    real, mount = tmp_path / "drive", tmp_path / "media" / "drive"
    save_photo(photos["chelsea"], real / "chelsea.jpg")
    save_photo(photos["astronaut"], real / "astronaut.jpg")
    mount.mkdir(parents=True)
    coffee = save_photo(photos["coffee"], tmp_path / "coffee.jpg")
    code = f"""
import json, shutil, subprocess, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from tests.test_watch import Watcher, _rows
env = json.loads({json.dumps(json.dumps(cli_env))})
w = Watcher([{str(mount)!r}, "--settle", "0.3"], env)
try:
    w.wait_job(0, "the catch-up", added=2)
    w.wait_line("watching")
    subprocess.run(["umount", {str(mount)!r}], check=True)
    w.wait_line("is not there")
    shutil.copy({str(coffee)!r}, {str(real / "coffee.jpg")!r})  # added while the drive is away
    while_away = sorted(_rows(env))
    n = len(w.jobs)
    subprocess.run(["mount", "--bind", {str(real)!r}, {str(mount)!r}], check=True)
    w.wait_line("is back")
    w.wait_job(n, "the catch-up after the remount", added=1)
    code = w.stop()
finally:
    w.proc.kill()
print(json.dumps({{"while_away": while_away, "after": sorted(_rows(env)), "lines": w.lines, "code": code}}))
"""
    found = python_in_namespace(f"mount --bind {real} {mount}", code, cli_env)
    assert found["while_away"] == [str(mount / "astronaut.jpg"), str(mount / "chelsea.jpg")], found["lines"]
    assert found["after"] == [str(mount / n) for n in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")]
    assert any("its photos stay in the index" in line for line in found["lines"])
    assert found["code"] == 0


def test_watch_limits_are_explained_and_bad_folders_refused(tmp_path, cli_env):
    from cbir.errors import WatchLimitError
    from cbir.watching.events import check_room, folders_under, inotify_limit

    tree = tmp_path / "tree"
    for i in range(3):
        (tree / f"d{i}" / "inner").mkdir(parents=True)
    (tree / ".cache").mkdir()
    assert folders_under([str(tree)]) == 7  # the tree, three folders, three inside; hidden ones are not watched
    check_room([str(tree)], limit=7)
    with pytest.raises(WatchLimitError) as refused:
        check_room([str(tree)], limit=6)
    assert "fs.inotify.max_user_watches" in str(refused.value) and "7 folders" in str(refused.value)
    if sys.platform == "linux":
        assert (inotify_limit() or 0) > 0  # read from this machine

    a_file = tmp_path / "file.jpg"
    a_file.write_bytes(b"x")
    proc = run_cbir(["watch", str(a_file)], cli_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    no_index = run_cbir(["watch"], cli_env)
    assert no_index.returncode == 2 and "name the folders to watch" in no_index.stderr


def test_settling_waits_for_a_file_to_stop_changing(tmp_path):
    from cbir.watching.settle import Settler

    now = [0.0]
    settler = Settler(1.0, clock=lambda: now[0])
    growing, gone = tmp_path / "growing.jpg", tmp_path / "gone.jpg"
    growing.write_bytes(b"a")
    settler.touch(str(growing))
    settler.touch(str(gone))
    assert settler.next_due() == 1.0 and not settler.take_ready()
    now[0] = 1.0
    with open(growing, "ab") as f:
        f.write(b"bb")  # written to without an event (a network filesystem): it waits again
    ready = settler.take_ready()
    assert ready.gone == [str(gone)] and ready.changed == []
    now[0] = 2.0
    assert settler.take_ready().changed == [str(growing)] and len(settler) == 0


def test_a_folder_is_away_while_missing_or_empty_and_back_when_it_returns(tmp_path):
    from cbir.watching.roots import Roots

    folder = tmp_path / "drive"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"x")
    roots = Roots([str(folder)])
    assert roots.present == [str(folder)] and not roots.check().gone
    (folder / "a.jpg").unlink()  # what an unmounted drive leaves: an empty mount point
    assert roots.check().gone == [str(folder)] and roots.away == [str(folder)]
    (folder / "b.jpg").write_bytes(b"y")
    assert roots.check().back == [str(folder)]
    shutil.rmtree(folder)  # the watch says so: the watcher looks at its folders then
    assert roots.check().gone == [str(folder)]
    folder.mkdir()
    (folder / "c.jpg").write_bytes(b"z")  # made again: caught up with
    assert roots.check().back == [str(folder)] and roots.present == [str(folder)]


def test_serve_watch_shows_a_new_photo_on_the_next_search(tmp_path, cli_env, photos):
    import httpx

    from tests.test_serve_cli import start, stop

    folder = tmp_path / "pictures"
    save_photo(photos["chelsea"], folder / "chelsea.jpg")
    assert run_cbir(["index", str(folder), "-q"], cli_env).returncode == 0
    log = tmp_path / "serve.log"
    proc, url = start(["--port", "0", "--watch", "--settle", "0.3"], cli_env, log)
    try:
        base = url.rstrip("/")
        deadline = time.monotonic() + WAIT_S
        while "watch: watching" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        coffee = save_photo(photos["coffee"], folder / "coffee.jpg")
        while "watch: 1 added" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        with open(coffee, "rb") as f:  # the very next search, no restart
            hits = httpx.post(f"{base}/api/query", files={"image": ("q.jpg", f, "image/jpeg")},
                              data={"k": "1"}, timeout=60).json()
        assert hits[0]["path"] == str(coffee), log.read_text()
        assert httpx.get(f"{base}/api/status", timeout=30).json()["images"] == 2
    finally:
        stop(proc)


def test_a_folder_away_longer_than_forget_after_leaves_the_index(tmp_path, cli_env, photos):
    folder = tmp_path / "card"
    save_photo(photos["chelsea"], folder / "chelsea.jpg")
    watcher = Watcher([str(folder), "--settle", "0.2", "--forget-after", "0.00002"], cli_env)  # 1.7 s
    try:
        watcher.wait_job(0, "the catch-up", added=1)
        watcher.wait_line("watching")
        folder.rename(tmp_path / "card-elsewhere")  # the card is taken out
        watcher.wait_line("is not there")
        assert len(_rows(cli_env)) == 1  # not at once
        watcher.wait_line("has been away")
        watcher.wait(lambda: any(j["job"] == "forget" and j.get("removed") == 1 for j in watcher.jobs), "forgetting")
        assert _rows(cli_env) == {}
        assert watcher.stop() == 0
    finally:
        watcher.proc.kill()
