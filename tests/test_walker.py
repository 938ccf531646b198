from __future__ import annotations

import os

from indexer.loader import IMAGE_EXTENSIONS
from indexer.walker import FileEntry, Problem, walk_images
from tests.bad_inputs import make_bad_corpus
from tests.conftest import save_photo


def _walk(root, exclude=()):
    items = list(walk_images(str(root), IMAGE_EXTENSIONS, exclude))
    files = {os.path.relpath(i.path, root) for i in items if isinstance(i, FileEntry)}
    problems = {os.path.relpath(i.path, root): i.reason for i in items if isinstance(i, Problem)}
    return files, problems


def test_hidden_index_and_non_images_are_skipped(photos, tmp_path):
    save_photo(photos["coffee"], tmp_path / "a.jpg")
    save_photo(photos["coffee"], tmp_path / "deep" / "er" / "b.PNG")
    save_photo(photos["coffee"], tmp_path / ".thumbnails" / "c.jpg")
    save_photo(photos["coffee"], tmp_path / "._d.jpg")
    save_photo(photos["coffee"], tmp_path / "index" / "e.jpg")
    (tmp_path / "readme.txt").write_text("hi")
    files, problems = _walk(tmp_path, exclude=[str(tmp_path / "index")])
    assert files == {"a.jpg", "deep/er/b.PNG"}
    assert problems == {}


def test_symlinks_are_followed_once_and_loops_end(photos, tmp_path):
    save_photo(photos["coffee"], tmp_path / "real" / "a.jpg")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    os.symlink(tmp_path, tmp_path / "real" / "up")
    files, _ = _walk(tmp_path)
    assert files == {"alias/a.jpg"} or files == {"real/a.jpg"}


def test_broken_entries_are_reported(photos, tmp_path):
    make_bad_corpus(tmp_path, photos["coffee"])
    files, problems = _walk(tmp_path)
    assert problems == {"dangling.jpg": "unreadable", "pipe.jpg": "not a regular file"}
    assert "good.jpg" in files and "huge.png" in files
