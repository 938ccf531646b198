"""Words people search their photos for: which resolve to something that can be seen, and whether a picture of
text ever comes back for an animal, plant, food or vehicle word. Part of ``python -m benchmarks.tags``.

- Resolution: 40 everyday photo-search words (ours: what photo apps' search examples and people's albums
  name most; the ten the issue named among them), each resolved by the vocabulary as `cbir find` does, with
  the catalog's five categories known; a word resolves when it names at least one tag or category. Reported:
  the share, and per word how (WordNet, the everyday-words table, a category, a word probe) or why not.
- Documents: the development gallery (../shared/data/gallery, five labelled folders) is indexed; for every
  animal, plant, food and vehicle word that resolves, `cbir find WORD -k 50` must return nothing from the
  receipt or screenshot folders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.common import run_cbir

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["dog", "cat", "bird", "horse", "fish", "beach", "mountain", "sea", "lake", "snow", "sunset", "city",
         "party", "baby", "car", "bicycle", "boat", "train", "airplane", "flower", "tree", "forest", "river",
         "bridge", "church", "castle", "food", "pizza", "coffee", "cake", "wedding", "birthday", "christmas",
         "receipt", "screenshot", "people", "selfie", "portrait", "family", "landscape"]
THINGS = ["dog", "cat", "bird", "horse", "fish", "flower", "tree", "car", "bicycle", "boat", "train", "airplane",
          "pizza", "coffee", "cake"]
CATEGORIES = ["food", "landscape", "people", "receipt", "screenshot"]
# More words people search their photos for (people, pets, food, places, weather and seasons, events, things,
# documents, plurals), listed 2026-12-07 to find the words the vocabulary refuses; whether they resolve is
# reported, not how well they find (nobody judged their hits).
MORE_WORDS = [
    "kids", "kid", "children", "dogs", "cats", "flowers", "mountains", "selfies", "friends", "house", "houses",
    "garden", "trees", "sky", "clouds", "cloud", "night", "street", "building", "buildings", "museum", "art",
    "painting", "paintings", "statue", "boats", "ship", "trains", "plane", "planes", "bike", "motorcycle", "bus",
    "truck", "horses", "birds", "butterfly", "insect", "insects", "spider", "burger", "hamburger", "beer", "wine",
    "drink", "drinks", "fruit", "fruits", "apple", "apples", "banana", "orange", "bread", "cheese", "pasta", "salad",
    "soup", "rice", "meat", "chicken", "egg", "eggs", "computer", "laptop", "phone", "keyboard", "book", "books",
    "document", "documents", "receipts", "screenshots", "text", "sign", "signs", "map", "chart", "menu", "ticket",
    "passport", "whiteboard", "note", "notes", "shoes", "dress", "shirt", "hat", "glasses", "watch", "bag", "toy",
    "toys", "teddy", "ball", "guitar", "piano", "stadium", "football", "soccer", "tennis", "pool", "lakes",
    "waterfall", "desert", "island", "ocean", "waves", "wave", "rock", "rocks", "cave", "tower", "hotel",
    "restaurant", "kitchen", "bedroom", "bathroom", "office", "road", "traffic", "fireworks", "concert", "stage",
    "sport", "gym", "hiking", "camping", "tent", "fire", "candle", "lamp", "rose", "roses", "sunflower", "tulip",
    "leaf", "leaves", "autumn", "winter", "summer", "rain", "moon", "stars", "star", "sun", "rainbow", "portraits",
    "face", "faces", "man", "men", "woman", "women", "girl", "boy", "child", "old", "group", "crowd", "team",
    "couple", "pet", "pets", "puppy", "kitten", "rabbit", "cow", "cows", "sheep", "pig", "duck", "goose", "elephant",
    "lion", "tiger", "bear", "monkey", "giraffe", "zebra", "deer", "fox", "wolf", "squirrel", "turtle", "snake",
    "frog", "lizard", "shark", "whale", "whales", "dolphin", "jellyfish", "crab", "lobster", "shell", "shells",
    "invoice", "invoices", "bill", "bills", "scenery", "nature", "view", "views", "meal", "meals", "dish", "dishes",
    "person", "landscapes", "vegetable", "vegetables", "sushi", "sandwich", "icecream", "dessert", "cookie",
    "chocolate", "tea", "juice", "bottle", "cup", "glass", "plate", "table", "chair", "sofa", "bed", "window",
    "door", "wall", "floor", "roof", "garage", "park", "parking", "skyscraper", "skyline", "village", "farm",
    "field", "grass"
]


def resolution() -> dict:
    from cbir.errors import UnknownWordError
    from indexer.tags import CATEGORY_PREFIX, load_vocabulary

    vocabulary = load_vocabulary()
    rows = {}
    for word in WORDS:
        try:
            ids = vocabulary.resolve(word, CATEGORIES)
        except UnknownWordError as exc:
            rows[word] = {"resolves": False, "why": str(exc)}
            continue
        how = []
        if any(not i.startswith(CATEGORY_PREFIX) and i not in vocabulary.everyday.get(word, {}).get("tags", [])
               for i in ids):
            how.append("wordnet")
        if word in vocabulary.everyday:
            how.append("everyday table")
        if any(i.startswith(CATEGORY_PREFIX) for i in ids):
            how.append("category")
        if vocabulary.probes is not None and any(i in vocabulary.probes.show_from for i in ids):
            how.append("word probe")
        rows[word] = {"resolves": True, "how": how, "tags": [vocabulary.name(i) for i in ids][:8]}
    resolved = sum(r["resolves"] for r in rows.values())
    return {"words": len(WORDS), "resolved": resolved, "share": round(resolved / len(WORDS), 3), "per_word": rows}


def more_words() -> dict:
    """How many of MORE_WORDS resolve to something that can be seen, and the ones refused."""
    from cbir.errors import UnknownWordError
    from indexer.tags import load_vocabulary

    vocabulary = load_vocabulary()
    refused = []
    for word in MORE_WORDS:
        try:
            vocabulary.resolve(word, CATEGORIES)
        except UnknownWordError:
            refused.append(word)
    return {"words": len(MORE_WORDS), "resolved": len(MORE_WORDS) - len(refused), "refused": refused}


def judged(path: Path, resolved: dict, shared: Path, env: dict) -> dict:
    """Precision of each everyday word's current top 10 (`cbir find WORD --json` on the benchmark's index of
    SHARED) against the judgements (``everyday``: word -> the photos judged right and wrong, from every round):
    right over shown, and the hits no one has judged yet (``unjudged``, counted as not right until they are);
    and the issue's target, P@10 >= 0.9 for each word whose data holds 10 photos of it (``everyday:in_data``,
    counted by eye; ``unknown_in_data`` names the judged words not counted yet, which the target may cover).
    A word judged before it was refused (``resolved``: ``resolution()``'s answer) is set apart: `cbir find` no
    longer returns anything for it."""
    judgements = json.loads(path.read_text()) if path.is_file() else {}
    everyday, in_data = judgements.get("everyday", {}), judgements.get("everyday:in_data", {})
    rows = {}
    for word, verdict in everyday.items():
        if not resolved["per_word"].get(word, {}).get("resolves", True):
            continue
        proc = run_cbir(["find", word, "-k", "10", "--json"], env)
        proc.check_returncode()
        top = [str(Path(h["path"]).relative_to(shared)) for h in json.loads(proc.stdout)]
        right = [p for p in top if p in verdict["right"]]
        rows[word] = {"shown": len(top), "right": len(right), "precision": round(len(right) / max(1, len(top)), 3),
                      "unjudged": [p for p in top if p not in verdict["right"] and p not in verdict["wrong"]],
                      "top10": top, **({"in_data": in_data[word]} if word in in_data else {})}
    held = {w: r["precision"] for w, r in rows.items() if r.get("in_data", 0) >= 10}
    return {"per_word": rows, "refused_since_judged": sorted(set(everyday) - set(rows)),
            "words_the_data_holds_10_of": len(held), "at_0.9_or_more": sum(p >= 0.9 for p in held.values()),
            "below_0.9": {w: p for w, p in held.items() if p < 0.9},
            "unjudged": sum(len(r["unjudged"]) for r in rows.values()),
            "unknown_in_data": sorted(w for w, r in rows.items() if "in_data" not in r)}


def misread_views(shared: Path, judged_words: dict, judgements: Path) -> dict:
    """For each word below the target, the hits of its top 10 judged wrong, classified again flipped and with the
    middle 70% cropped: a misreading that holds in every view is the classifier's, not a fluke of one framing.
    The word's score in each view (original, flipped, cropped), as `cbir find` scores it."""
    import numpy as np

    from indexer.engines.load import load_embedder
    from indexer.loader import load_image
    from indexer.tags import load_vocabulary

    wrong = json.loads(judgements.read_text()).get("everyday", {})
    embedder = load_embedder(None, None, "keras")  # the reference engine, whatever this CPU would pick
    out: dict = {}
    for word in judged_words.get("below_0.9", {}):
        ids = set(load_vocabulary().resolve(word, CATEGORIES))
        judged_wrong = set(wrong.get(word, {}).get("wrong", []))
        for rel in [p for p in judged_words["per_word"][word]["top10"] if p in judged_wrong]:
            pixels, _ = load_image(shared / rel)
            h, w = pixels.shape[:2]
            dh, dw = int(h * 0.15), int(w * 0.15)
            scores = []
            for view in (pixels, pixels[:, ::-1], pixels[dh:h - dh, dw:w - dw]):
                result = embedder.embed(np.ascontiguousarray(view)[None])
                tags = embedder.tagger.tags(result.vectors, result.norms)[0]
                scores.append(round(max([t.score for t in tags if t.id in ids] or [0.0]), 4))
            out.setdefault(word, {})[rel] = scores
    return out


def documents(gallery: Path, work: Path) -> dict:
    env = dict(os.environ, CBIR_HOME=str(work / "home"))
    run_cbir(["index", str(gallery), "-q"], env).check_returncode()
    found = {}
    for word in THINGS:
        proc = run_cbir(["find", word, "-k", "50", "--json"], env)
        if proc.returncode != 0:
            continue  # the word does not resolve: nothing is returned for it
        hits = json.loads(proc.stdout)
        found[word] = {"hits": len(hits), "documents": [h["path"] for h in hits
                                                         if Path(h["path"]).parent.name in ("receipt", "screenshot")]}
    return {"words": len(found), "documents_returned": sum(len(r["documents"]) for r in found.values()),
            "per_word": found}
