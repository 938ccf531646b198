"""Build ``cbir/data/tags/vocabulary.json``: the 1000 ImageNet classes as WordNet 3.0 synsets, with ancestors.

    python tools/build_tag_vocabulary.py WORDNET_DICT_DIR IMAGENET_SYNSETS_TXT

Inputs, both offline and both well kept:
- WordNet 3.0's noun database (``data.noun``) as Debian's ``wordnet-base``
  package installs it (``/usr/share/wordnet``; or ``apt-get download
  wordnet-base`` and ``dpkg-deb -x``);
- the ImageNet-1k class list in the network's output order, one WordNet id
  per line, as timm ships it (``timm/data/_info/imagenet_synsets.txt`` inside
  the timm wheel).

Output (JSON, sorted, a few hundred KB): ``classes`` (1000 synset ids in
output order), ``probes`` (the synsets of ``word_probes.json``, made by
``tools/build_word_probes.py``: they are tags too; an ancestor only a probe
reaches is kept for the hierarchy but is not searchable, since a probe scores
its own synset only),
``links`` (words that name no tag but that WordNet links, by
part, member, substance or "see also", to one: a beach is part of a shore),
``senses`` (for each word with several meanings, how often
WordNet's semantic concordance tagged each one, from ``cntlist.rev``) and
``synsets``: for each class and each of its ancestors
(hypernyms and instance hypernyms, up to ``entity``), its words (WordNet's
lemmas, ``_`` as space, in WordNet's order, the first being the tag's name,
then the few everyday words of EXTRA_WORDS),
its parents, ``count`` (how often its commonest word was meant in WordNet's
semantic concordance: whether people use the word), and ``searchable``: false for the abstract top of the hierarchy
that no one searches by (``entity``, ``physical entity``, ``object``,
``whole``...), which ``indexer.tags`` never shows. Licences:
cbir/data/tags/LICENSES.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Too abstract to be a tag: the top of WordNet's noun hierarchy above the things people name.
ABSTRACT = {
    "entity", "physical_entity", "abstraction", "object", "whole", "living_thing", "organism", "being",
    "artifact", "instrumentality", "matter", "substance", "solid", "part", "relation", "causal_agent",
    "unit", "thing", "group", "measure", "attribute", "psychological_feature", "event", "act",
    "communication", "location", "region", "physical_object", "artefact", "equipment", "implement",
    "device", "container", "structure", "construction", "covering", "commodity", "consumer_goods",
    "material", "stuff", "component", "constituent", "element", "natural_object", "body", "system",
    "chordate", "vertebrate", "craniate", "placental", "eutherian_mammal", "invertebrate", "arthropod",
    "vascular_plant", "tracheophyte", "spermatophyte", "seed_plant", "angiosperm", "flowering_plant",
    "dicot", "monocot", "woody_plant", "ligneous_plant", "foodstuff", "food_product", "nutriment",
    "nourishment", "sustenance", "aliment", "alimentation", "victuals", "conveyance", "transport",
    "decoration", "ornament", "ornamentation", "protective_covering", "protective_cover", "protection",
}


# Everyday words WordNet files as hyponyms, not synonyms, of a synset the classes reach; added as its words
# so that `cbir find puppy` finds dogs. Kept short: each one was checked against WordNet's glosses.
EXTRA_WORDS = {
    "n02084071": ["puppy", "pup", "doggy"],  # dog, domestic dog
    "n02121808": ["kitten", "kitty", "pussycat"],  # domestic cat
    "n01317541": ["pet"],  # domestic animal
}


# WordNet's links besides "is a" that lead from a word to something that can be seen: the beach is part of a
# shore, a herd is made of animals. Derivations lead to verbs and adjectives, which are not tags.
LINKS = {"#p": "part of", "#m": "member of", "#s": "substance of", "%p": "has part", "%m": "has member",
         "%s": "has substance", "^": "see also"}


def read_nouns(wordnet: Path) -> dict[str, tuple[list[str], list[str]]]:
    """synset id ('n' + offset) -> (lemmas, parent ids), from WordNet's data.noun."""
    synsets: dict[str, tuple[list[str], list[str]]] = {}
    for line in (wordnet / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        fields = line.split(" | ", 1)[0].split()
        offset, count = fields[0], int(fields[3], 16)
        words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
        at = 4 + 2 * count
        pointers = int(fields[at])
        parents = []
        for i in range(pointers):
            symbol, target, pos = fields[at + 1 + 4 * i: at + 4 + 4 * i]
            if symbol in ("@", "@i") and pos == "n":
                parents.append("n" + target)
        synsets["n" + offset] = ([_clean(w) for w in words], parents)
    return synsets


def read_links(wordnet: Path) -> dict[str, list[tuple[str, str]]]:
    """synset id -> [(LINKS relation, synset id)] for the noun-to-noun links of LINKS."""
    links: dict[str, list[tuple[str, str]]] = {}
    for line in (wordnet / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split(" | ", 1)[0].split()
        at = 4 + 2 * int(fields[3], 16)
        for i in range(int(fields[at])):
            symbol, target, pos = fields[at + 1 + 4 * i: at + 4 + 4 * i]
            if symbol in LINKS and pos == "n":
                links.setdefault("n" + fields[0], []).append((LINKS[symbol], "n" + target))
    return links


def read_counts(senses: dict[str, list[tuple[str, int]]]) -> dict[str, int]:
    """synset id -> how often its commonest word was meant in WordNet's semantic concordance (``read_senses``):
    0 for words people hardly use (diapsid, elasmobranch), tens for the ones they do (dog, fish, food)."""
    counts: dict[str, int] = {}
    for pairs in senses.values():
        for sid, count in pairs:
            counts[sid] = max(counts.get(sid, 0), count)
    return counts


def _clean(word: str) -> str:
    # WordNet marks adjective positions like "(a)"; nouns rarely carry them, but strip any.
    return word.split("(")[0].strip()


def read_senses(wordnet: Path) -> dict[str, list[tuple[str, int]]]:
    """word -> [(synset id, times tagged in WordNet's semantic concordance)], most frequent sense first."""
    counts: dict[tuple[str, int], int] = {}
    for line in (wordnet / "cntlist.rev").read_text(encoding="latin-1").splitlines():
        key, number, count = line.split()
        lemma, _, rest = key.partition("%")
        if rest.startswith("1:"):  # nouns
            counts[(lemma.lower(), int(number))] = int(count)
    senses: dict[str, list[tuple[str, int]]] = {}
    for line in (wordnet / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split()
        lemma, synsets = fields[0].lower(), int(fields[2])
        offsets = fields[-synsets:]
        senses[lemma.replace("_", " ")] = [("n" + o, counts.get((lemma, i), 0)) for i, o in enumerate(offsets, 1)]
    return senses


def build(wordnet: Path, classes_file: Path, probes: list[str] = ()) -> dict:
    """The vocabulary of the classes and of the word probes' synsets (``probes``), with their ancestors."""
    nouns = read_nouns(wordnet)
    classes = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
    if len(classes) != 1000 or any(c not in nouns for c in classes):
        raise SystemExit("the class list must hold 1000 WordNet 3.0 noun ids")
    senses = read_senses(wordnet)
    counts = read_counts(senses)
    keep: dict[str, dict] = {}
    # The classes and their ancestors first, then the probes' synsets and what only they reach: a probe counts
    # for its own synset only (indexer.word_probes), so an ancestor no class lies under could never score; it is
    # kept for the hierarchy but not searchable ("urban area" above city).
    for start, only in ((classes, None), (list(probes), set(probes))):
        todo = list(start)
        while todo:
            sid = todo.pop()
            if sid in keep:
                continue
            words, parents = nouns[sid]
            words = words + [w for w in EXTRA_WORDS.get(sid, []) if w not in words]
            keep[sid] = {"words": words, "parents": parents, "count": counts.get(sid, 0),
                         "searchable": (only is None or sid in only)
                         and not any(w.replace(" ", "_").lower() in ABSTRACT for w in words[:1])}
            todo.extend(parents)
    # For a word with several meanings, how often each was meant (WordNet's tag counts), so that a search
    # for "car" means the automobile, not the railcar or the cable car.
    words = {w.lower() for s in keep.values() for w in s["words"]}
    frequency = {w: {"max": max(c for _, c in senses[w]), "counts": {sid: c for sid, c in senses[w] if sid in keep}}
                 for w in sorted(words) if w in senses and len(senses[w]) > 1}
    return {"source": {"wordnet": "WordNet 3.0 (Debian wordnet-base)", "classes": classes_file.name},
            "classes": classes, "probes": list(probes), "synsets": dict(sorted(keep.items())), "senses": frequency,
            "links": linked_words(wordnet, keep, senses)}


def linked_words(wordnet: Path, keep: dict[str, dict], senses: dict[str, list[tuple[str, int]]]
                 ) -> dict[str, list[list[str]]]:
    """Words that name no tag but whose usual meaning WordNet links to a tag by LINKS: word -> [[relation,
    tag id]]. Usual: at least a quarter as often meant as its commonest sense (``indexer.tags.SENSE_SHARE``;
    the first sense when WordNet counted none), with no allowance for small counts: ``indexer.tags.usual_sense``
    gives a word's own senses that allowance, but a word that only leads to a tag through a link is a weaker
    reading (counting one more of each here would let "wedding" find ImageNet's groom, and "stop" cameras)."""
    links = read_links(wordnet)
    known = {w.lower() for s in keep.values() for w in s["words"]}
    out: dict[str, list[list[str]]] = {}
    for word, pairs in senses.items():
        if word in known:
            continue
        top = max(c for _, c in pairs)
        usual = [sid for sid, c in pairs if c >= 0.25 * top] if top else [pairs[0][0]]
        found = sorted({(relation, target) for sid in usual for relation, target in links.get(sid, [])
                        if target in keep and keep[target]["searchable"]})
        if found:
            out[word] = [list(pair) for pair in found]
    return dict(sorted(out.items()))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    data = Path(__file__).resolve().parents[1] / "cbir" / "data" / "tags"
    probes = [p["id"] for p in json.loads((data / "word_probes.json").read_text())["probes"]]
    vocabulary = build(Path(sys.argv[1]), Path(sys.argv[2]), probes)
    out = data / "vocabulary.json"
    out.write_text(json.dumps(vocabulary, separators=(",", ":"), sort_keys=True) + "\n")
    searchable = sum(s["searchable"] for s in vocabulary["synsets"].values())
    print(f"{out}: {len(vocabulary['synsets'])} synsets, {searchable} searchable")
