"""Tags: the ImageNet classes an image shows, and every WordNet ancestor a person would search by.

The network's 1000 ImageNet scores are a softmax, so the classes are
exclusive and a tag's score is the sum of the probabilities of the classes
under it: three dog breeds at 0.3 each make ``dog`` 0.9. A tag is kept from
``MIN_TAG_SCORE`` on. The vocabulary (``cbir/data/tags/vocabulary.json``,
made by the script beside it from WordNet 3.0 and timm's class list) holds
each class with its ancestors and their words; the abstract top of the
hierarchy (``entity``, ``object``, ``whole``...) is never a tag. A search
word means its usual meanings only (see ``Vocabulary._meant``): "car" is the
automobile, not the railcar or the cable car.

Scores come from the stored embedding, so a new vocabulary or threshold
needs no network: the ImageNet classifier is linear on the pooled features,
and an embedding is those features divided by their length, which the
catalog keeps beside it (``feature_norm``). Rows indexed before that column
existed use ``TYPICAL_NORM``, the median length over the development photos.
The model's category (``food``, ``screenshot``... or ``other``) is a tag too.
A few everyday words no class stands for (sunset, tree, city...) have a probe of their
own on the embedding (indexer.word_probes), whose probability is their score.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from cbir.errors import UnknownWordError
from indexer.word_probes import WordProbes, load_word_probes

MIN_TAG_SCORE = 0.15
# What is shown of the stored tags (every one stays searchable). Calibrated on 60 development photos whose
# tags were judged (benchmarks/tags_judged.json, "tags_calibration"), so that a tag shown is right at least
# 80% of the time: a word people use (WordNet's concordance counts it) from 0.5; an ImageNet class people
# hardly name (ladybug, soccer ball) only from 0.95, the rest of the rare words (diapsid, elasmobranch)
# never; and for a category that says what a picture can show (food: cbir/data/tags/category_tags.json),
# only tags under what it allows: rice is not a coral fungus, whatever ImageNet says.
SHOW_BAR = 0.5
RARE_CLASS_BAR = 0.95
SENSE_SHARE = 0.25
CATEGORY_PREFIX = "category:"
DOCUMENT_CATEGORIES = ("receipt", "screenshot")  # pictures of text: their category is their only tag
TAG_RULES = "documents-untagged"  # a change to how tags are chosen; stored tags are recomputed when it changes
# Median pooled-feature length of the ImageNet trunk over 160 development photos (p10 32, p90 48).
TYPICAL_NORM = 38.0


@dataclass(frozen=True)
class Sense:
    """One thing a search word is read as: a tag id, its name, and how the word led to it."""

    id: str
    name: str
    how: str


@dataclass(frozen=True)
class Tag:
    id: str  # a WordNet synset id ('n02123045') or 'category:NAME'
    name: str
    score: float

    def as_dict(self) -> dict:
        return {"tag": self.name, "id": self.id, "score": round(self.score, 4)}


class Vocabulary:
    """The tag vocabulary: synsets, their words, and which classes each one covers."""

    def __init__(self, data: dict, digest: str, everyday: dict | None = None,
                 category_tags: dict | None = None, probes: WordProbes | None = None) -> None:
        self.digest = digest
        self.probes = probes
        # Words that name no tag, linked by WordNet (part, member, substance) to tags: word -> [[relation, id]].
        self.links: dict[str, list[list[str]]] = data.get("links", {})
        # Category -> the synsets every tag shown on its pictures lies under (none listed: anything).
        self.category_tags: dict[str, set[str]] = {
            name: set(entry["under"]) for name, entry in (category_tags or {}).get("categories", {}).items()}
        # Everyday photo-search words WordNet does not tie to a class (cbir/data/tags/everyday_words.json).
        self.everyday: dict[str, dict] = (everyday or {}).get("words", {})
        self.classes: list[str] = data["classes"]
        synsets: dict[str, dict] = data["synsets"]
        self._synsets = synsets
        self._ancestry: dict[str, set[str]] = {}  # filled as asked (``ancestors``)
        self._senses: dict[str, dict] = data.get("senses", {})
        self._class_set = set(self.classes)
        self.words = {sid: s["words"] for sid, s in synsets.items()}
        self.tag_ids = sorted(sid for sid, s in synsets.items() if s["searchable"])
        self.by_word: dict[str, list[str]] = {}
        for sid in self.tag_ids:
            for word in self.words[sid]:
                self.by_word.setdefault(word.lower(), []).append(sid)

    @functools.cached_property
    def membership(self) -> np.ndarray:
        """(classes, tags): 1 where the class is the tag or lies under it (only tagging needs it)."""

        matrix = np.zeros((len(self.classes), len(self.tag_ids)), np.float32)
        for c, sid in enumerate(self.classes):
            for ancestor in self.ancestors(sid):
                if ancestor in self._columns:
                    matrix[c, self._columns[ancestor]] = 1.0
        return matrix

    @functools.cached_property
    def _columns(self) -> dict[str, int]:
        """Each tag's column in a row of tag scores."""
        return {sid: i for i, sid in enumerate(self.tag_ids)}

    def with_probes(self, scores: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Tag scores (N, tags) with each word probe's probability, from the unit-length embeddings, in its
        synset's column."""
        if self.probes is not None and len(vectors):
            scores[:, self._probe_columns] = np.maximum(scores[:, self._probe_columns],
                                                        self.probes.scores(vectors))
        return scores

    @functools.cached_property
    def _probe_columns(self) -> list[int]:
        return [self._columns[sid] for sid in (self.probes.ids if self.probes else [])]

    @functools.cached_property
    def _depth(self) -> dict[str, int]:
        return {sid: _depth(sid, self._synsets) for sid in self.tag_ids}

    def name(self, tag_id: str) -> str:
        if tag_id.startswith(CATEGORY_PREFIX):
            return tag_id[len(CATEGORY_PREFIX):]
        return self.words[tag_id][0]

    def tags(self, imagenet_probs: np.ndarray | None, category: str | None = None,
             category_probability: float | None = None) -> list[Tag]:
        """The tags of one image from its 1000 ImageNet probabilities (None: category only), best first.

        Among scores equal to one decimal the more specific tag comes first (``dog`` before ``animal``).
        """

        scores = None if imagenet_probs is None else imagenet_probs.astype(np.float32) @ self.membership
        return self.tags_from_scores(scores, category, category_probability)

    def tags_from_scores(self, scores: np.ndarray | None, category: str | None = None,
                         category_probability: float | None = None) -> list[Tag]:
        """``tags`` from the image's scores for every tag (its ImageNet probabilities times ``membership``).

        A picture the categories file as a document (a receipt, a screenshot) gets no object tags: ImageNet
        reads text as whatever it resembles, and a scan is not a dog."""

        tags = []
        if scores is not None and category not in DOCUMENT_CATEGORIES:
            kept = np.flatnonzero(scores >= MIN_TAG_SCORE)
            tags = [Tag(self.tag_ids[i], self.words[self.tag_ids[i]][0], float(scores[i])) for i in kept]
            tags.sort(key=lambda t: (-round(t.score, 1), -self._depth[t.id], t.name))
        if category:
            tags.append(Tag(CATEGORY_PREFIX + category, category, float(category_probability or 1.0)))
        return tags

    def resolve(self, word: str, categories: list[str]) -> list[str]:
        """The tag ids a search word means (see ``senses``). Raises UnknownWordError with the closest words of
        the vocabulary when it knows none."""
        return sorted({sense.id for sense in self.senses(word, categories)})

    def senses(self, word: str, categories: list[str]) -> list[Sense]:
        """What a search word is read as: every synset with that word (or its singular) in one of its usual
        meanings, a category of that name, the everyday-words table's entry and, for a word that names no
        tag, the tags WordNet links it to (a beach is part of a shore). Raises UnknownWordError with the
        closest words that can be read when nothing can be seen for it."""
        found = self.read(word, categories)
        if found:
            return found
        wanted = _normal(word)
        choices = sorted(set(self.by_word) | set(self.everyday) | {c.lower() for c in categories})
        close = [w for w in difflib.get_close_matches(wanted, choices, n=20, cutoff=0.6)
                 if w not in _singulars(wanted) and self.read(w, categories)][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else "; try a more common word (dog, car, food)"
        raise UnknownWordError(f"no tag for {word!r}{hint}", close)

    def read(self, word: str, categories: list[str]) -> list[Sense]:
        """``senses``, or none when nothing can be seen for the word."""
        forms = _singulars(_normal(word))
        found = [Sense(CATEGORY_PREFIX + c, c, "category") for c in categories if c.lower() in forms]
        everyday = next((self.everyday[form] for form in forms if form in self.everyday), {})
        for form in [] if everyday.get("only") else forms:
            if form in self.by_word:
                found += [Sense(sid, self.name(sid), "WordNet: " + ", ".join(self.words[sid]) + self._probed(sid))
                          for sid in self.by_word[form] if self._meant(form, sid)]
                break
        found += [Sense(sid, self.name(sid), "everyday words: " + everyday["reason"])
                  for sid in everyday.get("tags", [])]
        found += [Sense(CATEGORY_PREFIX + c, c, "everyday words: " + everyday["reason"])
                  for c in everyday.get("categories", []) if c in categories]
        if not found:
            for form in forms:
                if form in self.links:
                    found = [Sense(sid, self.name(sid), f"WordNet: {form}: {relation} {self.name(sid)}"
                                   + self._probed(sid)) for relation, sid in self.links[form]]
                    break
        return list({sense.id: sense for sense in reversed(found)}.values())[::-1]

    def words_starting(self, prefix: str, categories: list[str]) -> set[str]:
        """Every word ``senses`` can read that starts with ``prefix``: the tags' words, the everyday-words
        table's (those of categories only when the index has one of them), WordNet's linked words and the
        categories."""
        present = {c.lower() for c in categories}
        return {w for words in (self.by_word, self.everyday, self.links, present) for w in words
                if w.startswith(prefix) and self.read(w, categories)}

    def _probed(self, sid: str) -> str:
        return " (seen by cbir's own probe for it)" if self.probes is not None and sid in self.probes.show_from else ""

    def shown(self, tags: list[tuple[str, float]], category: str | None) -> list[tuple[str, float]]:
        """The tags worth showing a person, in their order (see ``SHOW_BAR``); the category's tag is always
        shown. ``find`` still searches them all."""
        allowed = self.category_tags.get(category or "")
        kept = []
        for tag_id, score in tags:
            if tag_id.startswith(CATEGORY_PREFIX):
                kept.append((tag_id, score))
                continue
            common = self._synsets[tag_id].get("count", 1) >= 1
            bar = SHOW_BAR if common else (RARE_CLASS_BAR if tag_id in self._class_set else None)
            if self.probes is not None and tag_id in self.probes.show_from:
                bar = self.probes.show_from[tag_id]
            if bar is None or score < bar:
                continue
            if allowed is not None and not (self.ancestors(tag_id) & allowed):
                continue
            kept.append((tag_id, score))
        return kept

    def ancestors(self, sid: str) -> set[str]:
        """The synset and everything above it, computed once per synset."""
        found = self._ancestry.get(sid)
        if found is None:
            found = self._ancestry[sid] = _ancestors(sid, self._synsets)
        return found

    def _meant(self, word: str, sid: str) -> bool:
        """Whether a search for ``word`` means synset ``sid``: one of its usual meanings in WordNet's
        concordance (``usual_sense``), or a thing the network knows by that name (an ImageNet class: "mouse"
        finds computer mice)."""
        senses = self._senses.get(word)
        if senses is None or sid not in senses["counts"] or sid in self._class_set or not senses["max"]:
            return True
        return usual_sense(senses["counts"][sid], senses["max"])


def imagenet_probabilities(vectors: np.ndarray, norms: np.ndarray, classifier: tuple[np.ndarray, np.ndarray]
                           ) -> np.ndarray:
    """Softmax of the ImageNet classifier on pooled features recovered as ``vectors * norms``."""

    kernel, bias = classifier
    logits = (vectors * norms[:, None]).astype(np.float32) @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=1)
def load_vocabulary() -> Vocabulary:
    folder = files("cbir") / "data" / "tags"
    raw = (folder / "vocabulary.json").read_bytes()
    everyday = (folder / "everyday_words.json").read_bytes()
    category_tags = json.loads((folder / "category_tags.json").read_bytes())
    probes = load_word_probes()
    return Vocabulary(json.loads(raw), f"{hashlib.sha256(raw).hexdigest()[:12]}+{probes.digest}", json.loads(everyday),
                      category_tags, probes)


def tags_version(model_id: str) -> str:
    """What the stored tags depend on: the vocabulary, the thresholds, the rules, and the model."""
    return f"{load_vocabulary().digest}:{MIN_TAG_SCORE}:{TAG_RULES}:{model_id}"


def tags_current(stored_version: str | None, model_id: str | None) -> bool:
    """Whether tags stored under ``stored_version`` are what this vocabulary, these rules and the index's model
    would make now (else `cbir index` remakes them). An index without tags, or without a model, has none stale."""
    return stored_version is None or model_id is None or stored_version == tags_version(model_id)


class Tagger:
    """Tags for rows of the catalog: ImageNet tags when the trunk is ImageNet's, and the category. The word
    probes score only the vectors of the trunk they were trained on (``trunk``; None: trust the vectors)."""

    def __init__(self, classifier: tuple[np.ndarray, np.ndarray] | None, trunk: str | None = None) -> None:
        self.classifier = classifier
        self.vocabulary = load_vocabulary()
        probes = self.vocabulary.probes
        self.probed = probes is not None and (trunk is None or trunk == probes.trunk)

    def __call__(self, ids: np.ndarray, vectors: np.ndarray, norms: np.ndarray, categories: list,
                 probabilities: list) -> list[list[tuple[str, float]]]:
        return [[(t.id, t.score) for t in tags] for tags in self.tags(vectors, norms, categories, probabilities)]

    def tags(self, vectors: np.ndarray, norms: np.ndarray, categories: list | None = None,
             probabilities: list | None = None) -> list[list[Tag]]:

        n = len(vectors)
        categories = categories or [None] * n
        probabilities = probabilities or [None] * n
        scores = None
        if self.classifier is not None and n:
            lengths = np.where(np.isfinite(norms), norms, TYPICAL_NORM).astype(np.float32)
            # One product for the whole batch: per image it was most of a bulk load's commit time.
            scores = imagenet_probabilities(vectors, lengths, self.classifier) @ self.vocabulary.membership
            if self.probed:
                scores = self.vocabulary.with_probes(scores, vectors)
        return [self.vocabulary.tags_from_scores(None if scores is None else scores[i], categories[i],
                                                 (probabilities[i] or {}).get(categories[i]))
                for i in range(n)]


def load_classifier(weights_path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The ImageNet classifier (kernel (2048, 1000), bias (1000,)) from a ResNet-50 weights file, or None.

    Keras 3 files keep it under ``layers/dense``; older .h5 files under the ``predictions`` layer. Either
    way it is the one (2048, 1000) matrix and its (1000,) bias.
    """
    import h5py

    found: dict[tuple[int, ...], np.ndarray] = {}

    def visit(_name: str, item) -> None:
        if isinstance(item, h5py.Dataset) and item.shape in ((2048, 1000), (1000,)):
            found.setdefault(item.shape, np.asarray(item, np.float32))

    try:
        with h5py.File(weights_path, "r") as f:
            if "layers/dense/vars" in f:
                visit("", f["layers/dense/vars/0"])
                visit("", f["layers/dense/vars/1"])
            else:
                f.visititems(visit)
    except (OSError, KeyError):
        return None
    if (2048, 1000) not in found or (1000,) not in found:
        return None
    return found[(2048, 1000)], found[(1000,)]


def usual_sense(count: int, most: int) -> bool:
    """Whether a sense WordNet's concordance tagged ``count`` times is a usual meaning of a word whose
    commonest sense it tagged ``most`` times: at least ``SENSE_SHARE`` as often, counting one more of each.
    The concordance is small, so counts of 0 against 1 or 2 are chance: "whale" the animal (0) against a
    very large person (1) is a usual meaning; the railcar (2) against the automobile (71) is not."""
    return count + 1 >= SENSE_SHARE * (most + 1)


def _ancestors(sid: str, synsets: dict[str, dict]) -> set[str]:
    seen: set[str] = set()
    todo = [sid]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(synsets[current]["parents"])
    return seen


def _depth(sid: str, synsets: dict[str, dict]) -> int:
    parents = synsets[sid]["parents"]
    return 0 if not parents else 1 + max(_depth(p, synsets) for p in parents)


def _normal(word: str) -> str:
    """A search word as the vocabulary spells its words: lower case, ``_`` as space, single spaces."""
    return " ".join(word.lower().replace("_", " ").split())


def _singulars(word: str) -> list[str]:
    forms = [word]
    if re.search(r"[^aeiou]ies$", word):
        forms.append(word[:-3] + "y")
    if word.endswith(("ches", "shes", "sses", "xes")):
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    return forms
