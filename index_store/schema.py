"""The catalog's SQLite schema and its version."""

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS roots (
    path            TEXT PRIMARY KEY,
    added_at        REAL NOT NULL,
    last_indexed_at REAL
);
-- id is the FAISS vector id: AUTOINCREMENT so that an id is never reused
-- after a removal, and nothing is renumbered.
CREATE TABLE IF NOT EXISTS images (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    path           TEXT NOT NULL UNIQUE,
    size           INTEGER NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    hash           TEXT NOT NULL,
    model_id       TEXT NOT NULL,
    category       TEXT,
    category_probs TEXT,
    indexed_at     REAL NOT NULL,
    seen_run       INTEGER NOT NULL DEFAULT 0,
    feature_norm   REAL
);
CREATE INDEX IF NOT EXISTS images_hash ON images(hash);
-- Every word search reads the categories present (a category is a word), and the web pages filter by one.
CREATE INDEX IF NOT EXISTS images_category ON images(category);
-- Vectors live apart from the metadata so that scans of images stay small.
CREATE TABLE IF NOT EXISTS vectors (
    id   INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
-- Tags (index_store.tag_table): derived from the rows above, rebuilt whenever tags_version changes.
CREATE TABLE IF NOT EXISTS image_tags (
    tag      TEXT NOT NULL,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    score    REAL NOT NULL,
    PRIMARY KEY (tag, image_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_tags_image ON image_tags(image_id);
-- Pictures' facts for the duplicate check (index_store.facts_table), one per content; derived data.
CREATE TABLE IF NOT EXISTS picture_facts (
    hash    TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data    BLOB NOT NULL
) WITHOUT ROWID;
"""
