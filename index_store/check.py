"""An index checks itself: the catalog against its own rules, and what is derived from it.

``quick`` takes about 50 ms at 10^5 images (SQLite counts and blob lengths in one pass over the vectors;
no vector is decoded) and runs before every use: readers refuse a damaged catalog with exit 13 naming what
is wrong, and the writer (`cbir index`) repairs what can be rebuilt: images whose vectors are damaged or
missing are forgotten and indexed again as new, vectors without an image are dropped, missing tags are
computed again. ``full`` (`cbir status --check`) also runs SQLite's integrity check on the catalog and the
journal, and reads the search index and its manifest, in the spirit of ``git fsck``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from cbir.errors import DamagedFileError
from index_store.catalog import CatalogReader
from index_store.journal import JOURNAL_FILE
from index_store.manifest import read_manifest
from index_store.publish import FAISS_FILE, published_problem
from index_store.vectors import VECTOR_DTYPE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an index: where, what, and what mends it."""

    part: str  # catalog, vectors, tags, search index, manifest, journal
    detail: str
    repair: str

    def as_dict(self) -> dict:
        return asdict(self)


REINDEX = "`cbir index` embeds those images again"


def _integer_meta(reader: CatalogReader, key: str) -> str | None:
    value = reader.meta(key)
    if value is None:
        return f"meta '{key}' is missing"
    try:
        int(value)
    except ValueError:
        return f"meta '{key}' is {value!r}, not a number"
    return None


def quick(reader: CatalogReader) -> list[Problem]:
    """The cheap checks: meta, vectors against images, blob lengths, tags against their version."""
    conn = reader.conn
    problems = []
    for key in ("dim", "generation"):
        trouble = _integer_meta(reader, key)
        if trouble:
            problems.append(Problem("catalog", trouble, "`cbir index --rebuild DIR` sets the catalog aside and "
                                    "indexes your folders again"))
    if problems:
        return problems
    images = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    if not images:
        return problems
    size = reader.dim * VECTOR_DTYPE.itemsize
    # One pass over the vectors (each fills a page of its own, so every pass costs a read of all of them)
    # counts them, their wrong lengths and those without an image; the images without a vector follow,
    # since vector ids are unique: the vectors that have an image are that many distinct images.
    vectors, wrong, orphans = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(length(data) != ? OR typeof(data) != 'blob'), 0), "
        "COALESCE(SUM(NOT EXISTS (SELECT 1 FROM images i WHERE i.id = v.id)), 0) FROM vectors v",
        (size,)).fetchone()
    missing = images - (vectors - orphans)
    if missing:
        problems.append(Problem("vectors", f"{missing} of {images} images have no stored vector", REINDEX))
    if wrong:
        problems.append(Problem("vectors", f"{wrong} stored vectors are not {reader.dim} float16 values "
                                f"({size} bytes)", REINDEX))
    garbled = conn.execute("SELECT COUNT(*) FROM images WHERE category_probs IS NOT NULL "
                           "AND json_valid(category_probs) = 0").fetchone()[0]
    if garbled:
        problems.append(Problem("catalog", f"{garbled} images' category probabilities are not readable",
                                REINDEX))
    if orphans:
        problems.append(Problem("vectors", f"{orphans} stored vectors belong to no image",
                                "`cbir index` drops them"))
    if reader.stored_tags_version() and reader.has_tags() and images and not conn.execute(
            "SELECT 1 FROM image_tags LIMIT 1").fetchone():
        problems.append(Problem("tags", f"the tags of all {images} images are missing",
                                "`cbir index` computes them again from the stored vectors"))
    return problems


def require_intact(reader: CatalogReader) -> None:
    """DamagedFileError (exit 13), naming what is wrong and what mends it, when the quick check finds damage."""
    problems = quick(reader)
    if problems:
        first = problems[0]
        more = (f" (and {len(problems) - 1} more problem(s); `cbir status --check` lists them)"
                if len(problems) > 1 else "")
        raise DamagedFileError(f"index {reader.index_dir} is damaged: {first.part}: {first.detail}; "
                               f"{first.repair}{more}")


def damaged_image_ids(reader: CatalogReader) -> list[int]:
    """Images whose vector is missing or of the wrong length, or whose category probabilities cannot be read
    (what the writer forgets, to index again)."""
    size = reader.dim * VECTOR_DTYPE.itemsize
    return [r[0] for r in reader.conn.execute(
        "SELECT i.id FROM images i LEFT JOIN vectors v ON v.id = i.id "
        "WHERE v.id IS NULL OR length(v.data) != ? OR typeof(v.data) != 'blob' "
        "OR (i.category_probs IS NOT NULL AND json_valid(i.category_probs) = 0)", (size,))]


def full(index_dir: Path) -> list[Problem]:
    """Everything: SQLite's own integrity check, the quick checks, the search index, its manifest, the journal."""
    problems: list[Problem] = []
    with CatalogReader.open(index_dir) as reader:
        verdict = [r[0] for r in reader.conn.execute("PRAGMA integrity_check(20)")]
        if verdict != ["ok"]:
            problems.append(Problem("catalog", f"SQLite's integrity check: {'; '.join(verdict)[:300]}",
                                    "`cbir index --rebuild DIR` moves it aside and indexes again"))
        problems += quick(reader)
        if not problems:
            trouble = published_problem(reader)
            if trouble:
                problems.append(Problem("search index", trouble,
                                        "rebuilt from the catalog on the next query or index"))
    if read_manifest(index_dir) is None and (index_dir / FAISS_FILE).exists():
        problems.append(Problem("manifest", "the manifest beside the search index cannot be read",
                                "rebuilt from the catalog on the next index"))
    journal = index_dir / JOURNAL_FILE
    if journal.is_file():
        try:
            conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
            try:
                verdict = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
                conn.execute("SELECT COUNT(*) FROM runs").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            verdict = [str(exc)]
        if verdict != ["ok"]:
            problems.append(Problem("journal", f"{journal}: {'; '.join(verdict)[:300]}",
                                    "move it aside (add '.damaged' to its name); the undo history it holds is lost"))
    return problems
