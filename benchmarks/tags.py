"""`cbir find` by word and `cbir tags`: precision@10 and recall per word, hand-checked, and their speed.

    python -m benchmarks.tags [--shared DIR] [--judgements FILE] [--sheets DIR] [--scale 100000] [--json OUT]

Data: the development photos whose folders say what they show: the food
groups (vegetables, fruits, fish, mushrooms...), the gallery's food, people
and screenshots, and ../shared/data/other (animals, buildings, plants,
vehicles...). The vocabulary and the stored tags' threshold were not tuned on
them; the bar for showing a tag (SHOW_BAR) and the food category's table were
set on 60 of them judged (``tags_calibration``), which the 50-photo sample
excludes; the typical feature length is from them too.
The category words (food as a category, screenshot...) are left out: the
default category model was trained on the gallery.

For each word a person would search with, the word's folders are its
relevant images. That undercounts: a dog photo filed under "misc" is a right
answer for "dog" that no folder names. So each word's top 10 is also judged
by a person (``--judgements``, a JSON file of word -> the top-10 paths that
are right, relative to the data folder; ``--sheets DIR`` draws each word's
top 10 to judge). The hand-checked precision@10 is reported beside the folder
one, and recall is the folder one. Tag precision: the first three tags shown
for 50 photos drawn at random (seeded), judged the same way (``tags`` in the
file), and the tags shown for the 60 photos the display rule was calibrated on
(``tags_calibration``; see indexer.tags.SHOW_BAR).
With --scale N, `cbir find` is timed on an index of N synthetic vectors
tagged by the real tagger.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit_json, run_cbir

ROOT = Path(__file__).resolve().parents[1]
FOOD = "retrieval_food_groups"
# word -> folders (under the data folder) every image of which shows it
WORDS = {
    "food": ["gallery/food", FOOD],
    "vegetable": [f"{FOOD}/c_green_leafy_vegetables", f"{FOOD}/d_other_vegetables", f"{FOOD}/f_roots_and_tubers"],
    "fruit": [f"{FOOD}/e_fruits"],
    "fish": [f"{FOOD}/p_marine_fish", f"{FOOD}/s_fresh_water_fish_and_shellfish"],
    "mushroom": [f"{FOOD}/j_mushrooms"],
    "animal": ["other/animals"],
    "dog": [],
    "cat": [],
    "bird": [],
    "car": [],
    "vehicle": ["other/vehicles"],
    "building": ["other/buildings"],
    "plant": ["other/plants"],
    "flower": [],
    "person": ["gallery/people"],
    "screen": ["gallery/screenshot"],
    "document": ["gallery/receipt"],
}
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def photos(shared: Path) -> list[Path]:
    folders = [shared / "gallery" / c for c in ("food", "people", "screenshot", "receipt")]
    folders += [shared / FOOD, shared / "other"]
    return sorted(p for f in folders for p in f.rglob("*") if p.suffix.lower() in EXTENSIONS)


def find_words(shared: Path, env: dict, judged: dict) -> dict:
    everything = {str(p.relative_to(shared)) for p in photos(shared)}
    results = {}
    for word, folders in WORDS.items():
        proc = run_cbir(["find", word, "-k", "1000000", "--json"], env)
        if proc.returncode != 0:
            results[word] = {"error": proc.stderr.strip().splitlines()[-1]}
            continue
        ranked = [str(Path(h["path"]).relative_to(shared)) for h in json.loads(proc.stdout)]
        relevant = {p for p in everything if any(p.startswith(f + "/") for f in folders)}
        top = ranked[:10]
        entry = {"found": len(ranked), "top10": top}
        if relevant:
            entry.update(relevant=len(relevant),
                         precision_at_10_folders=round(sum(p in relevant for p in top) / max(1, len(top)), 3),
                         recall=round(len(relevant & set(ranked)) / len(relevant), 3))
        if word in judged:
            right = set(judged[word])
            entry["precision_at_10_checked"] = round(sum(p in right for p in top) / max(1, len(top)), 3)
            entry["unjudged_in_top10"] = [p for p in top if p not in right and p not in judged.get(f"{word}:wrong", [])]
        results[word] = entry
    return results


def tag_sample(shared: Path, env: dict, judged: dict, n: int = 50) -> dict:
    """The first three tags `cbir tags` shows (the category's aside) for N photos drawn at random (seed 0), against
    the judgements (``tags``: path -> right and wrong tags); and, on the 60 calibration photos (seed 1, drawn from
    the rest), the share of shown tags that are right (``tags_calibration``, the six best tags of each judged)."""
    everything = photos(shared)
    sample = random.Random(0).sample(everything, n)
    rest = [p for p in everything if p not in set(sample)]
    calibration = random.Random(1).sample(rest, 60)

    def tagged(paths: list[Path]) -> dict:
        proc = run_cbir(["tags", *map(str, paths), "--json"], env)
        proc.check_returncode()
        return {str(Path(e["path"]).relative_to(shared)): e for e in json.loads(proc.stdout)}

    def check(shown: dict, judgements: dict) -> tuple[int, int, list]:
        right = wrong = 0
        unjudged = []
        for path, tags in shown.items():
            verdict = judgements.get(path, {"right": [], "wrong": []})
            for tag in tags:
                right += tag in verdict["right"]
                wrong += tag in verdict["wrong"]
                if tag not in verdict["right"] and tag not in verdict["wrong"]:
                    unjudged.append(f"{path}: {tag}")
        return right, wrong, unjudged

    first = {path: [t["tag"] for t in e["tags"] if ":" not in t["id"]][:3] for path, e in tagged(sample).items()}
    right, wrong, unjudged = check(first, judged.get("tags", {}))
    calibrated = {path: [t["tag"] for t in e["tags"] if ":" not in t["id"]] for path, e in tagged(calibration).items()}
    c_right, c_wrong, c_unjudged = check(calibrated, judged.get("tags_calibration", {}))
    return {"photos": n, "sample": first, "photos_with_tags": sum(bool(t) for t in first.values()),
            "tags_shown": sum(len(t) for t in first.values()), "right": right, "wrong": wrong,
            "precision": round(right / max(1, right + wrong), 3), "unjudged": unjudged,
            "calibration": {"photos": len(calibration), "tags_shown": sum(len(t) for t in calibrated.values()),
                            "precision": round(c_right / max(1, c_right + c_wrong), 3), "unjudged": c_unjudged}}


def draw_sheets(results: dict, shared: Path, out: Path) -> None:
    from PIL import Image, ImageDraw, ImageOps

    out.mkdir(parents=True, exist_ok=True)
    for word, entry in results.items():
        top = entry.get("top10") or []
        if not top:
            continue
        sheet = Image.new("RGB", (5 * 200, 2 * 220), "white")
        draw = ImageDraw.Draw(sheet)
        for i, relative in enumerate(top):
            with Image.open(shared / relative) as image:
                thumb = ImageOps.exif_transpose(image).convert("RGB")
                thumb.thumbnail((190, 190))
            x, y = (i % 5) * 200, (i // 5) * 220
            sheet.paste(thumb, (x + 5, y + 5))
            draw.text((x + 5, y + 200), f"{i + 1}. {Path(relative).name[:30]}", fill="black")
        sheet.save(out / f"{word}.png")


def timing(env: dict, photo: Path, runs: int = 5) -> dict:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        run_cbir(["tags", str(photo)], env).check_returncode()
        seconds.append(time.perf_counter() - started)
    return {"tags_cold_s_median": round(statistics.median(seconds), 2), "runs": runs}


def scale(n: int, work: Path) -> dict:
    """`cbir find` on N synthetic vectors, tagged by the real tagger from them (as for an old index)."""
    import numpy as np

    from benchmarks.query_latency import build_index
    from index_store.writer import IndexStore, fixed_claim
    from indexer.tags import Tagger, load_classifier, tags_version
    from indexer.weights import ensure_weights

    index_dir = work / f"scale-{n}"
    build_index(index_dir, n, "synthetic-model")
    tagger = Tagger(load_classifier(ensure_weights().path))
    with IndexStore.open(index_dir, fixed_claim("synthetic-model", 2048)) as store:
        started = time.perf_counter()
        store.retag(tagger, tags_version("synthetic-model"))
        store.commit()
        retag_s = time.perf_counter() - started
        rows = store.conn.execute("SELECT COUNT(*) FROM image_tags").fetchone()[0]
        common = store.conn.execute("SELECT tag, COUNT(*) c FROM image_tags GROUP BY tag ORDER BY c DESC LIMIT 1"
                                    ).fetchone()
    env = dict(os.environ, CBIR_HOME=str(work / "unused"))
    word = tagger.vocabulary.name(common[0])
    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        run_cbir(["find", word, "--index", str(index_dir)], env).check_returncode()
        seconds.append(time.perf_counter() - started)
    return {"images": n, "tag_rows": rows, "retag_s": round(retag_s, 1), "word": word,
            "images_with_word": common[1], "find_s_median": round(float(np.median(seconds)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--judgements", type=Path, default=ROOT / "benchmarks" / "tags_judged.json")
    parser.add_argument("--sheets", type=Path, default=None, help="draw each word's top 10 here, to judge")
    parser.add_argument("--scale", type=int, default=0, help="also time `cbir find` on N synthetic vectors")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    judged = json.loads(args.judgements.read_text()) if args.judgements.is_file() else {}
    work = Path(tempfile.mkdtemp(prefix="cbir-tags-bench-"))
    env = dict(os.environ, CBIR_HOME=str(work / "home"))
    corpus = work / "corpus"
    # The index holds links to the photos, so that paths stay relative to the data folder.
    corpus.symlink_to(args.shared.resolve())
    index = run_cbir(["index", str(corpus), "-q"], env)
    index.check_returncode()
    shared = corpus
    result = {"words": find_words(shared, env, judged), "tag_sample": tag_sample(shared, env, judged),
              "speed": timing(env, ROOT / "examples" / "photos" / "chelsea.jpg")}
    from benchmarks.tag_words import documents, judged, misread_views, more_words, resolution

    result["everyday_words"] = resolution()
    result["more_words"] = more_words()
    result["everyday_judged"] = judged(args.judgements, result["everyday_words"], shared, env)
    result["misread_views"] = misread_views(args.shared, result["everyday_judged"], args.judgements)
    if (args.shared / "gallery").is_dir():
        result["documents"] = documents(args.shared / "gallery", work / "gallery")
    if args.sheets:
        draw_sheets(result["words"] | result["everyday_judged"]["per_word"], shared, args.sheets)
    if args.scale:
        result["scale"] = scale(args.scale, work)
    print(f"{'word':<11}{'found':>7}{'P@10 folders':>14}{'P@10 checked':>14}{'recall':>8}")
    for word, r in result["words"].items():
        if "error" in r:
            print(f"{word:<11}  {r['error']}")
            continue
        print(f"{word:<11}{r['found']:>7}{r.get('precision_at_10_folders', '-')!s:>14}"
              f"{r.get('precision_at_10_checked', '-')!s:>14}{r.get('recall', '-')!s:>8}")
    sample = result["tag_sample"]
    print(f"tag precision (first three tags shown, {sample['photos']} photos): {sample['precision']} over "
          f"{sample['tags_shown']} tags on {sample['photos_with_tags']} photos ({len(sample['unjudged'])} unjudged); "
          f"calibration photos: {sample['calibration']['precision']}; "
          f"cbir tags cold: {result['speed']['tags_cold_s_median']} s")
    if "scale" in result:
        print(f"cbir find on {args.scale} images: {result['scale']['find_s_median']} s")
    everyday = result["everyday_words"]
    print(f"{everyday['resolved']} of {everyday['words']} everyday words resolve; not: "
          f"{', '.join(w for w, x in everyday['per_word'].items() if not x['resolves'])}")
    more = result["more_words"]
    print(f"{more['resolved']} of {more['words']} more search words resolve (not judged); not: "
          f"{', '.join(more['refused'])}")
    target = result["everyday_judged"]
    print(f"judged P@10 >= 0.9 for {target['at_0.9_or_more']} of the {target['words_the_data_holds_10_of']} "
          f"everyday words the data holds 10 photos of; below: {target['below_0.9'] or 'none'}; "
          f"{target['unjudged']} hits not judged yet")
    for word, hits in result["misread_views"].items():
        for path, scores in hits.items():
            print(f"  {word}: {path} judged wrong, scored {scores} (as it is, flipped, middle 70%)")
    if "documents" in result:
        print(f"pictures of text returned for {result['documents']['words']} thing words: "
              f"{result['documents']['documents_returned']}")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
