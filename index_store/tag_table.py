"""The catalog's tags: (image, tag, score) rows, indexed by tag so that a word finds its images at once.

Tags are derived data: they are computed from what the catalog already holds
(each image's vector, its feature length and its category), so they can be
rebuilt at any time without the network. ``tags_version`` in ``meta`` says
what they were computed with; a writer whose version differs rebuilds them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from index_store import vectors as vec

_CHUNK = 4096
# (ids, vectors, feature lengths or NaN, categories, category probabilities) -> [(tag, score), ...] per row
TagFunction = Callable[[Any, Any, Any, list, list], list[list[tuple[str, float]]]]


class TagReads:
    """Reading tags; part of the catalog reader (index_store.catalog)."""

    conn: sqlite3.Connection

    def has_tags(self) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'image_tags'").fetchone() is not None

    def stored_tags_version(self) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'tags_version'").fetchone()
        return row[0] if row else None

    def category_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT category FROM images WHERE category IS NOT NULL ORDER BY category")]

    def ids_tagged(self, words: list[list[str]]) -> set[int]:
        """Ids of images that carry, for every word, one of its tag ids."""
        return {i for i, _ in self.find_tagged(words, None)}

    def find_tagged(self, words: list[list[str]], limit: int | None, offset: int = 0,
                    at_least: float | None = None, below: float | None = None) -> list[tuple[int, float]]:
        """(image id, score) of images that carry, for every word, one of its tag ids; best first, from
        ``offset`` on, and only scores from ``at_least`` on and under ``below`` when given.

        A word's score is its best tag's; an image's is its weakest word's. SQLite ranks and cuts, so a
        word on every one of 10^5 images costs one indexed scan, not 10^5 Python objects.
        """
        if not words or not self.has_tags():
            return []
        scored, params = self._tagged(words, at_least, below)
        sql = f"SELECT image_id, score FROM {scored} ORDER BY score DESC, image_id"
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, offset]
        # fetchall: one guarded call for the whole answer, not one per row (a third of find's time at 10^5)
        return [(int(i), float(s)) for i, s in self.conn.execute(sql, params).fetchall()]

    def count_tagged(self, words: list[list[str]], at_least: float | None = None) -> int:
        """How many images ``find_tagged`` finds, counted without ranking them."""
        if not words or not self.has_tags():
            return 0
        scored, params = self._tagged(words, at_least, None)
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {scored}", params).fetchone()[0])

    @staticmethod
    def _tagged(words: list[list[str]], at_least: float | None, below: float | None) -> tuple[str, list]:
        """A subquery of (image_id, score) for ``find_tagged``, and its parameters."""
        parts: list[str] = []
        params: list[object] = []
        for n, tag_ids in enumerate(words):
            marks = ",".join("?" * len(tag_ids))
            parts.append(f"(SELECT image_id, MAX(score) AS s FROM image_tags WHERE tag IN ({marks}) "
                         f"GROUP BY image_id) AS w{n}")
            params += tag_ids
        joined = parts[0] + "".join(f" JOIN {part} USING (image_id)" for part in parts[1:])
        score = "w0.s" if len(words) == 1 else "MIN(" + ", ".join(f"w{n}.s" for n in range(len(words))) + ")"
        bounds = []
        if at_least is not None:
            bounds.append(f"{score} >= ?")
            params.append(at_least)
        if below is not None:
            bounds.append(f"{score} < ?")
            params.append(below)
        where = " WHERE " + " AND ".join(bounds) if bounds else ""
        return f"(SELECT image_id, {score} AS score FROM {joined}{where})", params

    def tags_of(self, ids: list[int]) -> dict[int, list[tuple[str, float]]]:
        out: dict[int, list[tuple[str, float]]] = {i: [] for i in ids}
        if not self.has_tags():
            return out
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for image_id, tag, score in self.conn.execute(
                    f"SELECT image_id, tag, score FROM image_tags WHERE image_id IN ({marks}) "
                    "ORDER BY image_id, score DESC, tag", part):
                out[image_id].append((tag, score))
        return out


class TagWrites(TagReads):
    """Writing tags; mixed into the single writer, whose ``_write`` runs inside its transaction."""

    dim: int
    _write: Callable[..., sqlite3.Cursor]
    _write_many: Callable[..., sqlite3.Cursor]

    def _ensure_tag_schema(self) -> None:
        """Give a catalog made before tags existed the feature-length column (the table comes with the DDL)."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(images)")}
        if "feature_norm" not in columns:
            self._write("ALTER TABLE images ADD COLUMN feature_norm REAL")

    def set_tags(self, image_id: int, tags: list[tuple[str, float]]) -> None:
        self._write("DELETE FROM image_tags WHERE image_id = ?", (image_id,))
        if tags:
            self._write_many("INSERT OR REPLACE INTO image_tags (tag, image_id, score) VALUES (?, ?, ?)",
                             [(tag, image_id, float(score)) for tag, score in tags])

    def retag_categories(self, prefix: str) -> None:
        """Replace every category tag (``prefix`` + category) with the images' current categories."""
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first string past every one starting with prefix
        self._write("DELETE FROM image_tags WHERE tag >= ? AND tag < ?", (prefix, after))
        for image_id, category, probs in self.conn.execute(
                "SELECT id, category, category_probs FROM images WHERE category IS NOT NULL").fetchall():
            score = (json.loads(probs) if probs else {}).get(category, 1.0)
            self._write("INSERT OR REPLACE INTO image_tags (tag, image_id, score) VALUES (?, ?, ?)",
                        (prefix + category, image_id, float(score)))

    def feature_norm(self, image_id: int) -> float | None:
        row = self.conn.execute("SELECT feature_norm FROM images WHERE id = ?", (image_id,)).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def retag(self, compute: TagFunction, version: str) -> int:
        """Recompute every image's tags from the catalog, and record ``version``; returns how many."""
        self._write("DELETE FROM image_tags")
        done = 0
        for ids, vectors, norms, categories, probs in self._tag_inputs():
            for image_id, tags in zip(ids.tolist(), compute(ids, vectors, norms, categories, probs), strict=True):
                for tag, score in tags:
                    self._write("INSERT INTO image_tags (tag, image_id, score) VALUES (?, ?, ?)",
                                (tag, image_id, float(score)))
            done += len(ids)
        self._write("INSERT OR REPLACE INTO meta VALUES ('tags_version', ?)", (version,))
        return done

    def _tag_inputs(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, list, list]]:
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT v.id, v.data, i.feature_norm, i.category, i.category_probs FROM vectors v "
                "JOIN images i ON i.id = v.id WHERE v.id > ? ORDER BY v.id LIMIT ?", (last, _CHUNK)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield (np.array([r[0] for r in rows], np.int64), vec.decode_many((r[1] for r in rows), self.dim),
                   np.array([np.nan if r[2] is None else r[2] for r in rows], np.float32),
                   [r[3] for r in rows], [json.loads(r[4]) if r[4] else None for r in rows])
