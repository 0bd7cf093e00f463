"""Pickers on Amazon Beauty: can SmolLM2 (or another endpoint) find a user's held-out item among
candidates better than the embedding picker (no LLM) or chance?

For ``--users`` users (500 by default, sampled with a fixed seed among those with at least 3 training
items), only the *training* history is used (RecBole's leave-one-out split: valid and test items are
never seen): the last training item is hidden, the items before it are the history, and the hidden
item is put among N candidates (``--sizes 10 20``) from a simple base model (``--candidates``):

* ``popularity``: the N-1 most popular training items the user has not interacted with (MostPop);
* ``neighbours``: the N-1 items whose text embeddings are nearest (cosine) to the mean embedding of
  the history (needs every Beauty item embedded once: about 15 minutes on one core, then cached).
  These negatives are the embedding picker's own favourites, so it is at a disadvantage there.

(A trained SASRec would be the realistic base model; these two need no training run.)

Each picker answers k=1 (hit@1) and k=5 (hit@5) as separate requests: ``llm`` (the compact prompt of
``recbole_llmaug.llm.pickers``; the embedded SmolLM2-135M unless ``--base_url``), ``embedding`` (cosine
to the mean of the history's item vectors) and ``random``. Writes benchmarks/results/picker.md + JSON.

    python benchmarks/bench_picker.py --users 20                 # a check that it runs
    python benchmarks/bench_picker.py --candidates popularity neighbours   # the full run
    python benchmarks/bench_picker.py --base_url http://host:8000/v1 --model NAME
"""

import argparse
import json
import os
import random
import shlex
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_llm_layer import BEAUTY_TEMPLATE, add_data_arguments, link_dataset  # noqa: E402

PROMPT_VERSION = "bench-picker-v1"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser, "caches")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20])
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--candidates", nargs="+", choices=("popularity", "neighbours"), default=["popularity"])
    parser.add_argument("--pickers", nargs="+", choices=("llm", "embedding", "random"),
                        default=["llm", "embedding", "random"])
    parser.add_argument("--base_url", default=None, help="an OpenAI-compatible endpoint instead of the embedded server")
    parser.add_argument("--model", default=None, help="model name on --base_url")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: llm_threads)")
    parser.add_argument("--slots", type=int, default=None, help="parallel requests/slots (default: llm_concurrency)")
    parser.add_argument("--selection_format", choices=("json", "labels"), default=None)
    parser.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "results" / "picker.md"))
    return parser.parse_args()


def held_out_tasks(files, count, seed=0):
    """(user, history, hidden item) from the training split only, and training item popularity."""
    from recbole_llmaug.augment.text_embeddings import user_train_histories

    histories = user_train_histories(files)
    popularity = Counter(item for history in histories.values() for item in history)
    rng = random.Random(seed)
    users = sorted(user for user, history in histories.items() if len(history) >= 3)
    chosen = sorted(rng.sample(users, min(count, len(users))))
    return [(user, tuple(histories[user][:-1]), histories[user][-1]) for user in chosen], popularity


def with_target(negatives, target, rng):
    candidates = list(negatives)
    candidates.insert(rng.randrange(len(candidates) + 1), target)
    return tuple(candidates)


def popularity_candidates(tasks, popularity, size, seed=0):
    ranked = [item for item, _ in popularity.most_common()]
    rng = random.Random(seed)
    out = []
    for _, history, target in tasks:
        seen = set(history) | {target}
        out.append(with_target([item for item in ranked if item not in seen][:size - 1], target, rng))
    return out


def neighbour_candidates(tasks, vectors, size, seed=0):
    ids = list(vectors)
    matrix = np.stack([vectors[item] for item in ids])
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    index = {item: row for row, item in enumerate(ids)}
    rng = random.Random(seed)
    out = []
    for _, history, target in tasks:
        rows = [index[item] for item in history if item in index]
        scores = matrix @ matrix[rows].mean(axis=0)
        seen = set(history) | {target}
        order = np.argsort(-scores, kind="stable")
        negatives = []
        for row in order:
            if ids[row] not in seen:
                negatives.append(ids[row])
                if len(negatives) == size - 1:
                    break
        out.append(with_target(negatives, target, rng))
    return out


def item_vectors(files, settings, needed=None):
    """Text embeddings (Beauty template) of ``needed`` items (all when None), through the cache."""
    from recbole_llmaug.augment.text_embeddings import item_texts
    from recbole_llmaug.llm import EmbeddingSettings, embed_texts

    texts = {item: text for item, text in item_texts(files).items() if text and (needed is None or item in needed)}
    ids = sorted(texts)
    run = embed_texts([texts[item] for item in ids], EmbeddingSettings.from_settings(settings), settings=settings,
                      desc="item texts")
    return dict(zip(ids, run.vectors))


def main():
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from recbole_llmaug.augment.files import DatasetFiles
    from recbole_llmaug.augment.text import clean_value
    from recbole_llmaug.llm import PickTask, open_picker

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_picker_")).resolve()
    link_dataset(Path(args.data_path), work, args.dataset)
    settings = {"dataset": args.dataset, "data_path": str(work), "item_text_template": BEAUTY_TEMPLATE,
                "llmaug_cache_dir": str(work / "cache"), "llm_base_url": args.base_url, "llm_model": args.model,
                "llm_threads": args.threads, "seed": 2020}
    if args.slots:
        settings.update(llm_concurrency=args.slots, llm_parallel=args.slots)
    if args.selection_format:
        settings["llm_selection_format"] = args.selection_format
    files = DatasetFiles(settings)
    tasks, popularity = held_out_tasks(files, args.users)
    titles = {item: clean_value(title) or "" for item, title in zip(files.item.frame[files.iid], files.item.frame["title"])}

    candidate_sets = {}
    needed = set()
    for source in args.candidates:
        for size in args.sizes:
            if source == "popularity":
                candidate_sets[(source, size)] = popularity_candidates(tasks, popularity, size)
    vectors = None
    if "neighbours" in args.candidates or "embedding" in args.pickers:
        if "neighbours" in args.candidates:
            vectors = item_vectors(files, settings)
        else:
            for candidates in candidate_sets.values():
                for candidate_set in candidates:
                    needed.update(candidate_set)
            needed.update(item for _, history, _ in tasks for item in history)
            vectors = item_vectors(files, settings, needed)
        for size in args.sizes:
            if "neighbours" in args.candidates:
                candidate_sets[("neighbours", size)] = neighbour_candidates(tasks, vectors, size)

    rows = []
    for picker_name in args.pickers:
        with open_picker(settings, PROMPT_VERSION, titles=titles, item_vectors=vectors, kind=picker_name) as picker:
            for (source, size), candidates in candidate_sets.items():
                row = {"picker": picker_name, "candidates": source, "size": size, "users": len(tasks)}
                started = time.perf_counter()
                calls_before = picker.client.stats.calls if picker_name == "llm" else 0
                for k in args.ks:
                    picks = [PickTask(user, history, candidate_set, k)
                             for (user, history, _), candidate_set in zip(tasks, candidates)]
                    results = picker.pick_many(picks, desc=f"{picker_name} {source} {size} k={k}")
                    hits = sum(target in result.ids[:k] for result, (_, _, target) in zip(results, tasks))
                    row[f"hit@{k}"] = round(hits / len(tasks), 4)
                    row[f"valid@{k}"] = sum(result.valid for result in results)
                    row[f"chance@{k}"] = round(min(k, size) / size, 4)
                row["seconds"] = round(time.perf_counter() - started, 1)
                if picker_name == "llm":
                    row["llm_calls"] = picker.client.stats.calls - calls_before
                    row["model"] = picker.client.model
                print(json.dumps(row), flush=True)
                rows.append(row)

    command = "python " + " ".join(shlex.quote(part) for part in [os.path.relpath(__file__, REPO_ROOT)] + sys.argv[1:])
    header = "| candidates | N | picker | " + " | ".join(f"hit@{k} (chance)" for k in args.ks) + " | valid | s |"
    lines = ["# Pickers on Amazon Beauty: the hidden last training item among N candidates", "", f"`{command}`", "",
             f"{len(tasks)} users (>= 3 training items), training histories only; candidates from "
             f"{' and '.join(args.candidates)} (see the script's docstring). Load average at the end: "
             f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.", "", header,
             "|" + "---|" * (5 + len(args.ks))]
    for row in rows:
        hits = " | ".join(f"{row[f'hit@{k}']:.3f} ({row[f'chance@{k}']:.2f})" for k in args.ks)
        valid = "/".join(str(row[f"valid@{k}"]) for k in args.ks)
        name = row["picker"] + (f" ({row['model']})" if "model" in row else "")
        lines.append(f"| {row['candidates']} | {row['size']} | {name} | {hits} | {valid} of {row['users']} | {row['seconds']} |")
    report = "\n".join(lines) + "\n"
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(report, encoding="utf-8")
    results.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n",
                                            encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
