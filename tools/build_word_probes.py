"""Build ``cbir/data/tags/word_probes.json``: linear probes on the retrieval embedding for everyday words that no
ImageNet class stands for (sunset, tree, beach, sea, snow, mountain, city).

    python tools/build_word_probes.py [--photos DIR] [--held-out ../shared/data]

The photos and their judgements are ``tools/word_probe_photos.json``: photos from Debian packages, each judged by
eye. With no ``--photos``, the packages are fetched at the versions listed (``apt-get download``) and unpacked
into a temporary folder; with it, DIR holds each package unpacked under DIR/<package>/.

Each probe is a logistic regression on the ResNet-50's unit-length embedding (the vectors the index stores,
float32 Keras), so a tag's score is a probability and needs only the stored vector. Before training, every
photo is checked by content hash against ``--held-out`` (the development photos): a photo found there is an
error, so figures measured on them stay held out. The file records, per word, leave-one-source-out figures:
each source with photos of the word is left out in turn, the probe is trained on the others and scores it;
a probe's tag is shown from the lowest score at which that precision is at least 0.8 (``show_from``). A
photo's source is its package, or, where the package's machine-readable copyright file names another origin
for it, that origin (the Endless Sky landscapes used come from thirteen: photographers, agencies, photo sites).

Output (JSON, a few hundred KB): ``probes``, one per word: its WordNet 3.0 synset, weights and bias, how many
photos it was trained on and its leave-one-source-out figures; ``sources`` (package, version, photos used).
``tools/build_tag_vocabulary.py`` reads the synset ids so that the vocabulary holds them.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tools" / "word_probe_photos.json"
OUT = ROOT / "cbir" / "data" / "tags" / "word_probes.json"
# The WordNet 3.0 sense each probe stands for.
SYNSETS = {"sunset": "n11517776", "tree": "n13104059", "beach": "n09217230", "sea": "n09426788",
           "snow": "n15043763", "mountain": "n09359803", "city": "n08524735"}
# Inverse regularisation strength on unit-length vectors; chosen by the leave-one-source-out figures among 30,
# 100, 320 and 1000 for sunset and tree (320 was best or level for both) and kept for the words added since;
# the held-out development photos played no part.
C = 320.0
# A probe's tag is shown (indexer.tags.Vocabulary.shown) from the lowest of these scores, at least
# indexer.tags.SHOW_BAR, at which the leave-one-source-out precision is 0.8 or more; searchable from any score.
SHOW_FROM = (0.5, 0.7, 0.9, 0.95, 0.99)
TARGET_PRECISION = 0.8
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def unpack(packages: dict[str, str], into: Path) -> None:
    """Fetch each Debian package at its version and unpack it under into/<package>/."""
    debs = into / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *[f"{name}={version}" for name, version in packages.items()]],
                   cwd=debs, check=True)
    for deb in debs.glob("*.deb"):
        name = deb.name.split("_", 1)[0]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into / name)], check=True)


def source_of(photo: dict, root: Path) -> str:
    """The photo's package, or the origin its package's DEP-5 copyright file gives it when that is not the
    package's own (the last stanza whose Files pattern matches wins, as DEP-5 says), named by the stanza's
    first pattern."""
    copyright_file = root / photo["package"] / "usr" / "share" / "doc" / photo["package"] / "copyright"
    stanzas = _files_stanzas(copyright_file) if copyright_file.is_file() else []
    matched = [patterns for patterns in stanzas
               if any(pattern == "*" or fnmatch.fnmatch(photo["path"], "*/" + pattern) for pattern in patterns)]
    if not matched or matched[-1] == ["*"]:
        return photo["package"]
    return f"{photo['package']} ({matched[-1][0]})"


@functools.cache  # one read per package, not one per photo
def _files_stanzas(path: Path) -> list[list[str]]:
    """The Files patterns of each files stanza of a DEP-5 copyright file, in order."""
    stanzas = []
    for block in re.split(r"\n\s*\n", path.read_text(errors="replace")):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", block, re.MULTILINE)
        if files:
            stanzas.append(files.group(1).split())
    return stanzas


def held_out_hashes(folder: Path | None) -> set[str]:
    if folder is None:
        return set()
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | {".tif", ".tiff", ".bmp", ".gif"}}


def embed(paths: list[Path]) -> tuple[np.ndarray, str]:
    """Unit-length embeddings with the reference engine (float32 Keras), and its model id."""
    from indexer.engines.load import load_embedder
    from indexer.loader import load_image

    embedder = load_embedder(None, None, "keras", bulk=True, work=len(paths))
    vectors = []
    for start in range(0, len(paths), 16):
        batch = np.stack([load_image(p)[0] for p in paths[start:start + 16]])
        vectors.append(embedder.embed(batch).vectors)
    return np.concatenate(vectors), embedder.model_id


def fit(vectors: np.ndarray, labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=10000).fit(vectors, labels)


def leave_one_source_out(vectors: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> dict:
    """Each source with photos of the word left out in turn, scored by a probe trained on the rest."""
    from sklearn.metrics import average_precision_score

    scores = np.full(len(labels), np.nan)
    for source in sorted(set(sources[labels])):
        train = sources != source
        scores[~train] = fit(vectors[train], labels[train]).predict_proba(vectors[~train])[:, 1]
    scored = ~np.isnan(scores)
    shown = scored & (scores >= 0.5)
    precision = {bar: float((labels & scored & (scores >= bar)).sum() / (scored & (scores >= bar)).sum())
                 for bar in SHOW_FROM if (scored & (scores >= bar)).any()}
    good = [bar for bar, p in precision.items() if p >= TARGET_PRECISION]
    return {"show_from": good[0] if good else None,
            "precision_by_score": {str(bar): round(p, 3) for bar, p in precision.items()},
            "sources_left_out": sorted(str(s) for s in set(sources[labels])), "photos_scored": int(scored.sum()),
            "positives_scored": int((labels & scored).sum()),
            "average_precision": round(float(average_precision_score(labels[scored], scores[scored])), 3),
            "precision_at_0.5": round(float((labels & shown).sum() / max(shown.sum(), 1)), 3),
            "recall_at_0.5": round(float((labels & shown).sum() / max((labels & scored).sum(), 1)), 3)}


def build(photo_root: Path, held_out: Path | None) -> dict:
    spec = json.loads(PHOTOS.read_text())
    photos = spec["photos"]
    paths = [photo_root / p["package"] / p["path"].lstrip("/") for p in photos]
    clash = held_out_hashes(held_out) & {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    if clash:
        raise SystemExit(f"{len(clash)} training photos are also among the held-out photos; drop them first")
    vectors, model_id = embed(paths)
    sources = np.array([source_of(p, photo_root) for p in photos])
    probes = []
    for word, synset in SYNSETS.items():
        keep = np.array([word not in p.get("unsure", []) for p in photos])
        labels = np.array([word in p.get("words", []) for p in photos])[keep]
        model = fit(vectors[keep], labels)
        weights, bias = model.coef_[0], float(model.intercept_[0])
        figures = leave_one_source_out(vectors[keep], labels, sources[keep])
        probes.append({"word": word, "id": synset, "show_from": figures.pop("show_from"),
                       "bias": round(bias, 6), "weights": [round(float(w), 6) for w in weights],
                       "positives": int(labels.sum()), "negatives": int((~labels).sum()),
                       "judged_as": spec["judging"][word],
                       "leave_one_source_out": figures})
    used = {name: sum(1 for p in photos if p["package"] == name) for name in spec["packages"]}
    return {"about": "Linear probes on cbir's retrieval embedding for everyday words no ImageNet class stands for; "
                     "made by tools/build_word_probes.py from the photos judged in tools/word_probe_photos.json. "
                     "A probe's score is the probability that a photo shows the word, from the unit-length "
                     "embedding alone. Licences: cbir/data/tags/LICENSES.md.",
            "trunk": model_id.split("+")[0], "C": C,
            "sources": [{"package": name, "version": version, "photos": used[name]}
                        for name, version in spec["packages"].items()],
            "probes": probes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="the packages, already unpacked under DIR/<package>/")
    parser.add_argument("--held-out", type=Path, help="photos no training photo may be (by content hash)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.photos
        if root is None:
            root = Path(scratch)
            unpack(json.loads(PHOTOS.read_text())["packages"], root)
        result = build(root, args.held_out)
    text = json.dumps(result, indent=1)
    # One line per probe's weights, not one per number.
    text = re.sub(r"\[\n\s*(-?[\d.e-]+(?:,\n\s*-?[\d.e-]+)*)\n\s*\]",
                  lambda m: "[" + re.sub(r",\n\s*", ",", m.group(1)) + "]", text)
    OUT.write_text(text + "\n")
    for probe in result["probes"]:
        print(probe["word"], probe["positives"], "positives;", "leave one source out:",
              probe["leave_one_source_out"])


if __name__ == "__main__":
    main()
