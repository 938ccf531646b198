"""Tags and word search with the real model, catalog and files: `cbir tags`, `cbir find`, `query --tag`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cbir


def _index(root: Path, env: dict) -> dict:
    proc = run_cbir(["index", str(root), "--json", "-q"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _find(env: dict, *words: str) -> list[dict]:
    proc = run_cbir(["find", *words, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_vocabulary_covers_imagenet_and_rolls_up_breeds():
    from indexer.tags import load_vocabulary

    vocabulary = load_vocabulary()
    assert len(vocabulary.classes) == 1000 and len(set(vocabulary.classes)) == 1000
    (dog,) = [sid for sid in vocabulary.resolve("dog", []) if "domestic dog" in vocabulary.words[sid]]
    column = vocabulary.tag_ids.index(dog)
    breeds = vocabulary.membership[:, column]
    # ImageNet's dogs are the classes 151-268 (Chihuahua to Mexican hairless): all of them, nothing else.
    assert set(np.flatnonzero(breeds)) == set(range(151, 269))
    assert dog in vocabulary.resolve("puppies", []) and dog in vocabulary.resolve("Dogs", [])
    car = "n02958343"  # car, auto, automobile, machine, motorcar
    assert car in vocabulary.resolve("automobile", []) and car in vocabulary.resolve("car", [])
    for abstract in ("entity", "physical entity", "object", "whole"):
        assert abstract not in vocabulary.by_word
    # Three breeds at 0.3 each make a confident dog, and no breed alone reaches that.
    probs = np.zeros(1000, np.float32)
    probs[[151, 200, 250]] = 0.3
    tags = {t.name: t.score for t in vocabulary.tags(probs)}
    assert tags["dog"] == pytest.approx(0.9, abs=1e-5) and tags["animal"] == pytest.approx(0.9, abs=1e-5)
    assert max(score for name, score in tags.items() if name not in ("dog", "domestic dog")) <= 0.9 + 1e-5


def test_tags_of_any_image(cli_env):
    examples = Path(__file__).resolve().parents[1] / "examples" / "photos"
    proc = run_cbir(["tags", str(examples / "chelsea.jpg"), str(examples / "coffee.jpg"), "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    cat, coffee = ({t["tag"] for t in entry["tags"]} for entry in json.loads(proc.stdout))
    assert {"cat", "animal"} <= cat and not {"food", "beverage"} & cat
    assert {"cup", "espresso"} & coffee and {"food", "beverage"} & coffee and "animal" not in coffee
    plain = run_cbir(["tags", str(examples / "chelsea.jpg")], cli_env)
    hashtags, path = plain.stdout.rstrip("\n").split("\t")
    assert path == str(examples / "chelsea.jpg") and "#cat" in hashtags.split() and "#animal" in hashtags.split()


def test_find_by_word_and_query_by_tag(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    cats = _find(cli_env, "cat")
    assert Path(cats[0]["path"]).name == "chelsea.jpg" and "cat" in cats[0]["tags"]
    assert [Path(h["path"]).name for h in _find(cli_env, "feline", "animal")][:1] == ["chelsea.jpg"]
    assert "coffee.jpg" in [Path(h["path"]).name for h in _find(cli_env, "beverage")]
    assert _find(cli_env, "cat", "beverage") == []  # several words: all of them
    plain = run_cbir(["find", "cat", "-k", "1"], cli_env)
    score, path = plain.stdout.strip().split("\t")
    assert Path(path).name == "chelsea.jpg" and 0.5 < float(score) <= 1.0

    query = run_cbir(["query", str(photo_tree / "coffee.jpg"), "-k", "3", "--tag", "animal", "--json"], cli_env)
    assert query.returncode == 0, query.stderr
    hits = [Path(h["path"]).name for h in json.loads(query.stdout)]
    animals = {Path(h["path"]).name for h in _find(cli_env, "animal")}  # the cat, and the moon as a worm
    assert hits[0] == "chelsea.jpg" and set(hits) <= animals and "coffee.jpg" not in hits
    assert len(hits) == min(3, len(animals))

    unknown = run_cbir(["find", "dgo"], cli_env)
    assert unknown.returncode == 2 and "no tag for 'dgo'" in unknown.stderr and "dog" in unknown.stderr
    assert "Traceback" not in unknown.stderr and unknown.stderr.count("\n") == 1
    assert run_cbir(["query", str(photo_tree / "coffee.jpg"), "--tag", "dgo"], cli_env).returncode == 2


def test_tags_survive_a_rename_and_old_indexes_get_them_without_embedding(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    (photo_tree / "chelsea.jpg").rename(photo_tree / "kitty.jpg")
    summary = _index(photo_tree, cli_env)
    assert summary["renamed"] == 1 and summary["added"] == 0
    assert Path(_find(cli_env, "cat")[0]["path"]).name == "kitty.jpg"

    # An index made before tags existed: no tag table, no feature lengths, no version.
    catalog = Path(cli_env["CBIR_HOME"]) / "index" / "catalog.sqlite"
    with sqlite3.connect(catalog) as conn:
        conn.execute("DROP TABLE image_tags")
        conn.execute("ALTER TABLE images DROP COLUMN feature_norm")
        conn.execute("DELETE FROM meta WHERE key = 'tags_version'")
    assert run_cbir(["find", "cat"], cli_env).returncode != 0  # says to run cbir index
    assert "tags:   none yet" in run_cbir(["status"], cli_env).stdout
    summary = _index(photo_tree, cli_env)
    assert summary["added"] == summary["updated"] == 0 and summary["unchanged"] == 10
    assert Path(_find(cli_env, "cat")[0]["path"]).name == "kitty.jpg"
    with sqlite3.connect(catalog) as conn:
        assert conn.execute("SELECT COUNT(*) FROM images WHERE feature_norm IS NULL").fetchone()[0] == 10
    assert json.loads(run_cbir(["status", "--json"], cli_env).stdout)["tagged"] == 10


def test_tags_made_by_an_older_vocabulary_are_named_until_cbir_index_remakes_them(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    assert "predate" not in run_cbir(["find", "cat"], cli_env).stderr
    assert json.loads(run_cbir(["status", "--json"], cli_env).stdout)["tags_current"]
    # As after an upgrade whose vocabulary learnt new words: the stored tags are the old cbir's.
    catalog = Path(cli_env["CBIR_HOME"]) / "index" / "catalog.sqlite"
    with sqlite3.connect(catalog) as conn:
        conn.execute("UPDATE meta SET value = 'an-older-vocabulary' WHERE key = 'tags_version'")
    proc = run_cbir(["find", "cat", "--json"], cli_env)
    assert proc.returncode == 0 and json.loads(proc.stdout)  # still searched, by the old tags
    assert "these tags predate this cbir's vocabulary and rules: `cbir index` remakes them" in proc.stderr
    assert "by an older vocabulary" in run_cbir(["status"], cli_env).stdout
    assert not json.loads(run_cbir(["status", "--json"], cli_env).stdout)["tags_current"]
    summary = _index(photo_tree, cli_env)
    assert summary["added"] == summary["updated"] == 0
    assert "predate" not in run_cbir(["find", "cat"], cli_env).stderr
    assert json.loads(run_cbir(["status", "--json"], cli_env).stdout)["tags_current"]

def test_everyday_words_resolve_to_what_can_be_seen_and_cake_is_refused():
    from cbir.errors import UnknownWordError
    from indexer.tags import CATEGORY_PREFIX, load_vocabulary

    vocabulary = load_vocabulary()
    seashore, sandbar = "n09428293", "n09421951"
    assert {seashore, sandbar} <= set(vocabulary.resolve("beach", []))
    assert {"n09193705", "n09472597"} <= set(vocabulary.resolve("Mountains", []))  # alp, volcano
    categories = ["food", "landscape", "people", "receipt", "screenshot"]
    assert vocabulary.resolve("invoice", categories) == [CATEGORY_PREFIX + "receipt"]
    assert CATEGORY_PREFIX + "people" in vocabulary.resolve("portrait", categories)
    assert CATEGORY_PREFIX + "screenshot" in vocabulary.resolve("screen capture", categories)
    with pytest.raises(UnknownWordError):
        vocabulary.resolve("invoice", [])  # an index without that category has nothing to show for it
    with pytest.raises(UnknownWordError) as refused:
        vocabulary.resolve("cake", categories)  # nothing ImageNet or a probe sees stands for a cake
    assert "no tag for 'cake'" in str(refused.value)
    assert vocabulary.resolve("fruits", []) == ["n07705931"]  # edible fruit: the table replaces the botanical sense
    every = {t for entry in vocabulary.everyday.values() for t in entry.get("tags", [])}
    assert every <= set(vocabulary.tag_ids)  # the table names only tags the vocabulary has


def test_plurals_small_sense_counts_and_suggestions_that_can_be_read():
    from cbir.errors import UnknownWordError
    from indexer.tags import CATEGORY_PREFIX, load_vocabulary

    vocabulary = load_vocabulary()
    categories = ["food", "landscape", "people", "receipt", "screenshot"]
    # A plural is read as its singular in the everyday-words table and the categories too.
    assert vocabulary.resolve("documents", categories) == [CATEGORY_PREFIX + "receipt"]
    assert vocabulary.resolve("landscapes", categories) == [CATEGORY_PREFIX + "landscape"]
    assert vocabulary.resolve("lakes", []) == vocabulary.resolve("lake", [])
    assert vocabulary.resolve("children", categories) == [CATEGORY_PREFIX + "people"]  # irregular: its own entry
    assert set(vocabulary.resolve("text", categories)) == {CATEGORY_PREFIX + "receipt", CATEGORY_PREFIX + "screenshot"}
    # WordNet's concordance tagged the animal 0 times and "a very large person" once: chance, not usage.
    assert vocabulary.resolve("whale", []) == ["n02062744"]
    assert "whale" in vocabulary.words_starting("whal", [])
    for word in ("shell", "cycle", "sky"):
        with pytest.raises(UnknownWordError) as refused:
            vocabulary.resolve(word, categories)
        suggested = refused.value.suggestions
        assert suggested and word not in suggested
        for other in suggested:
            assert vocabulary.resolve(other, categories)  # never a word that would be refused in turn
        assert word not in vocabulary.words_starting(word[:3], categories)


def test_a_picture_of_text_gets_its_category_and_no_object_tags():
    from indexer.tags import load_vocabulary

    vocabulary = load_vocabulary()
    probs = np.zeros(1000, np.float32)
    probs[[151, 200, 250]] = 0.3  # what ImageNet might make of a page of text: dogs
    assert "dog" in {t.name for t in vocabulary.tags(probs, "other", 0.9)}
    for document in ("receipt", "screenshot"):
        assert [t.name for t in vocabulary.tags(probs, document, 0.9)] == [document]


def test_find_receipt_and_people_through_the_categories(photo_tree, cli_env, tmp_path, photos):
    from tests.datasets import scan_crop

    rng = np.random.default_rng(6)
    for n in range(2):
        scan_crop(photos["page"], rng).save(photo_tree / f"scan-{n}.png")
    _index(photo_tree, cli_env)
    receipts = {Path(h["path"]).name for h in _find(cli_env, "invoice")}
    assert receipts and receipts <= {"scan-0.png", "scan-1.png"}
    for found in _find(cli_env, "invoice"):
        assert found["tags"] == ["receipt"]  # a scan carries no object tags
    assert "astronaut.jpg" in {Path(h["path"]).name for h in _find(cli_env, "person")}


def test_find_pages_through_everything_it_found(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    every = _find(cli_env, "other", "-k", "500")  # the category: many images
    assert len(every) >= 3
    first = run_cbir(["find", "other", "-k", "2", "--json"], cli_env)
    second = run_cbir(["find", "other", "-k", "2", "--offset", "2", "--json"], cli_env)
    assert json.loads(first.stdout) + json.loads(second.stdout) == every[:4]
    assert f"1-2 of {len(every)} images tagged 'other'" in first.stderr and "--offset 2" in first.stderr


def test_weak_hits_are_not_shown_and_the_closest_are_named(photo_tree, cli_env):
    from cbir.errors import UsageError
    from cbir.tagging import FIND_BAR
    from indexer.tags import load_vocabulary

    _index(photo_tree, cli_env)
    catalog = Path(cli_env["CBIR_HOME"]) / "index" / "catalog.sqlite"
    with sqlite3.connect(catalog) as conn:
        weak = [tag for tag, best in conn.execute("SELECT tag, MAX(score) FROM image_tags GROUP BY tag")
                if best < FIND_BAR and not tag.startswith("category:")]
    vocabulary = load_vocabulary()

    def means_only(tag: str) -> bool:
        try:
            return vocabulary.resolve(vocabulary.name(tag), []) == [tag]
        except UsageError:
            return False

    words = [vocabulary.name(t) for t in weak if means_only(t)]
    if not words:
        pytest.skip("every tag here scores above the bar on some photo")
    proc = run_cbir(["find", words[0], "--json"], cli_env)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []
    assert "below the bar" in proc.stderr and ("(0.1" in proc.stderr or "(0.2" in proc.stderr)
    for hit in _find(cli_env, "animal"):
        assert hit["score"] >= FIND_BAR


def test_shown_tags_are_words_people_use_and_agree_with_the_category():
    from indexer.tags import CATEGORY_PREFIX, RARE_CLASS_BAR, SHOW_BAR, load_vocabulary

    vocabulary = load_vocabulary()
    animal, diapsid, ladybug, stone_wall = "n00015388", "n01661818", "n02165456", "n04326547"
    stored = [(diapsid, 1.0), (stone_wall, 0.9), (animal, SHOW_BAR + 0.01), (ladybug, RARE_CLASS_BAR - 0.01),
              (CATEGORY_PREFIX + "other", 0.8)]
    # diapsid: a word no one uses; ladybug: an ImageNet class shown only when near certain
    assert [t for t, _ in vocabulary.shown(stored, "other")] == [stone_wall, animal, CATEGORY_PREFIX + "other"]
    assert [t for t, _ in vocabulary.shown([(ladybug, RARE_CLASS_BAR)], None)] == [ladybug]
    assert vocabulary.shown([(animal, SHOW_BAR - 0.01)], None) == []
    # On a food photo a stone wall is ImageNet's guess for walnuts: not shown; an animal (a fish) is.
    assert [t for t, _ in vocabulary.shown(stored, "food")] == [animal, CATEGORY_PREFIX + "other"]


def test_a_search_word_says_what_it_was_read_as(photo_tree, cli_env):
    from indexer.tags import load_vocabulary

    vocabulary = load_vocabulary()
    (garden,) = vocabulary.senses("garden", [])  # no tag of its own: WordNet's part link to one
    assert garden.name == "patio" and garden.how == "WordNet: garden: has part patio"
    assert {s.name for s in vocabulary.senses("harbours", [])} == {"dock", "landing"}
    (car,) = vocabulary.senses("car", [])  # the automobile, not the railcar
    assert car.id == "n02958343" and "automobile" in car.how
    _index(photo_tree, cli_env)
    proc = run_cbir(["find", "kitty", "--json"], cli_env)
    hits = json.loads(proc.stdout)
    assert Path(hits[0]["path"]).name == "chelsea.jpg"
    assert hits[0]["read_as"]["kitty"]["tag"] == "domestic cat" and "kitty" in hits[0]["read_as"]["kitty"]["how"]
    assert "'kitty' read as domestic cat (WordNet: domestic cat, house cat" in proc.stderr


def test_words_that_name_one_thing_are_one_search_term(photo_tree, cli_env):
    from cbir.search import phrases

    assert phrases(None, ["golden", "retriever"]) == ["golden retriever"]  # arguments, unquoted
    assert phrases(None, ["golden retriever puppy"]) == ["golden retriever", "puppy"]  # one string (the web's box)
    assert phrases(None, ["dog cat"]) == ["dog", "cat"]
    assert phrases(None, ["ice", "cream", "cone"]) == ["ice cream", "cone"]
    assert phrases(None, ["  "]) == []
    # As people type them: the search box's "dog, food", a hashtag copied from `cbir tags`, quotes, a possessive.
    assert phrases(None, ["dog, food;cat"]) == ["dog", "food", "cat"]
    assert phrases(None, ["#golden_retriever", "#cat"]) == ["golden_retriever", "cat"]
    assert phrases(None, ["\u201cice cream\u201d", "dog's"]) == ["ice cream", "dog"]
    assert phrases(None, ["ice, cream"]) == ["ice", "cream"]  # a comma parts terms
    _index(photo_tree, cli_env)
    cats = {Path(h["path"]).name for h in _find(cli_env, "domestic", "cat")}
    assert cats == {Path(h["path"]).name for h in _find(cli_env, "domestic cat")} and "chelsea.jpg" in cats
    proc = run_cbir(["find", "qwertyuiop", "cat"], cli_env)
    assert proc.returncode == 2 and "no tag for 'qwertyuiop'" in proc.stderr
    proc = run_cbir(["find", "  "], cli_env)
    assert proc.returncode == 2 and "give at least one word" in proc.stderr
    proc = run_cbir(["find", ",", "#"], cli_env)
    assert proc.returncode == 2 and "no word to find in ', #'" in proc.stderr
