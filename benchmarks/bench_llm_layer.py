"""Benchmark of the LLM and embedding layer on Amazon Beauty.

1. Embed every Beauty item and user through the augmentors (cold cache): items/s, users/s, wall time.
2. Rebuild the same outputs with a warm cache: wall time and embedding-model calls (expected 0).
3. 50 real selection calls ("which candidate comes next?") on the embedded llama.cpp server:
   calls/s and valid-answer rate; then the same 50 again from the cache (expected 0 calls).

The dataset is read in place (``--data_path``, default ../shared/data) and never copied into the
repository; outputs and caches go to ``--work_dir`` (a fresh temporary folder by default).
Prints the numbers and writes benchmarks/results/llm_layer.md.

    python benchmarks/bench_llm_layer.py --data_path ../shared/data --threads 1
"""

import argparse
import os
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

BEAUTY_TEMPLATE = "{title}. Brand: {brand}. Categories: {categories}. Price: {price}"
CANDIDATES_PER_PROMPT = 10
PROMPT_VERSION = "bench-next-item-v1"


def add_data_arguments(parser, work_dir_help="outputs and caches"):
    """``--data_path``, ``--dataset`` (Beauty in the shared data folder) and ``--work_dir`` of the LLM-layer
    benchmarks (this one, ``bench_picker.py``, ``bench_llm_stage.py``)."""
    parser.add_argument("--data_path", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--work_dir", default=None, help=f"{work_dir_help} (default: a new temp folder)")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--threads", type=int, default=1, help="torch and llama.cpp threads")
    parser.add_argument("--selection_calls", type=int, default=50)
    parser.add_argument("--part", choices=("all", "embeddings", "selections"), default="all",
                        help="measure only one half (rows of the other half are kept in --results)")
    parser.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "results" / "llm_layer.md"))
    return parser.parse_args()


def link_dataset(source: Path, work: Path, dataset: str) -> None:
    """The augmentors write next to their inputs, so read-only data is symlinked into the work folder."""
    folder = work / dataset
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("inter", "item"):
        target = folder / f"{dataset}.{suffix}"
        if not target.exists():
            target.symlink_to((source / dataset / f"{dataset}.{suffix}").resolve())


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def selection_tasks(files, count, seed=0):
    """Next-item tasks from real histories: (history, candidates, target), 10 candidates incl. the true
    next item; and the item titles. Shared by this script and bench_llm_stage.py."""
    from recbole_llmaug.augment.text import clean_value, recbole_filtered, training_histories

    titles = {item: clean_value(title) for item, title in zip(files.item.frame[files.iid], files.item.frame["title"])}
    inter = recbole_filtered(files.inter_with_time(), files.uid, files.iid, set(titles), files.settings)
    full = training_histories(inter, files.uid, files.iid, files.time_field, holdout=0)
    rng = random.Random(seed)
    titled_items = [item for item, title in titles.items() if title]
    users = sorted(user for user, history in full.items() if len(history) >= 4)
    tasks = []
    for user in rng.sample(users, min(count, len(users))):
        history, target = full[user][:-1], full[user][-1]
        if not titles.get(target):
            continue
        others = [item for item in titled_items if item != target]
        candidates = rng.sample(others, min(CANDIDATES_PER_PROMPT - 1, len(others))) + [target]
        rng.shuffle(candidates)
        tasks.append((history, candidates, target))
    return tasks, titles


def selection_requests(settings, count, seed=0):
    """Next-item prompts from real histories: 5 recent titles, 10 candidates incl. the true next item."""
    from recbole_llmaug.augment.files import DatasetFiles
    from recbole_llmaug.llm import SelectionRequest

    tasks, titles = selection_tasks(DatasetFiles(settings), count, seed)
    requests = []
    for history, candidates, target in tasks:
        labels = [f"C{index}" for index in range(len(candidates))]
        listing = "\n".join(f"{label}: {titles[item]}" for label, item in zip(labels, candidates))
        bought = "\n".join(f"- {titles[item]}" for item in history[-5:] if titles.get(item))
        messages = (
            {"role": "system", "content": "You recommend beauty products."},
            {"role": "user", "content": f"A customer bought, oldest first:\n{bought}\n\nWhich candidate will they buy next?\n{listing}"},
        )
        requests.append((SelectionRequest(messages, tuple(labels), 1), labels[candidates.index(target)]))
    return requests


def run_selections(settings, requests):
    from recbole_llmaug.llm import open_chat_client, run_many

    with open_chat_client(settings) as client:
        started = time.perf_counter()
        results = run_many(client, [request for request, _ in requests], PROMPT_VERSION, desc="selections")
        elapsed = time.perf_counter() - started
        return results, elapsed, client.stats.as_dict(), client.model


def bench_embeddings(settings, work, dataset):
    from recbole_llmaug.augment import run_augmentor

    rows = {}
    items, item_time = timed(run_augmentor, "item_emb", settings)
    rows["items embedded (cold cache)"] = (
        f"{items['counts']['rows']} rows, {items['usage']['unique_texts']} texts in {item_time:.1f} s "
        f"= {items['usage']['unique_texts'] / item_time:.1f} items/s"
    )
    users, user_time = timed(run_augmentor, "user_emb", settings)
    rows["users embedded (cold cache)"] = (
        f"{users['counts']['rows']} rows, {users['usage']['unique_texts']} texts in {user_time:.1f} s "
        f"= {users['usage']['unique_texts'] / user_time:.1f} users/s"
    )
    sims, sim_time = timed(run_augmentor, "sim_users", settings)
    rows["similar users (top-10 cosine)"] = f"{sims['counts']['rows']} rows in {sim_time:.1f} s"
    rows["embedding model"] = f"{items['embedding']['model']}, {items['embedding']['dimension']} dims"

    for suffix in ("itememb", "useremb", "simuser"):  # force a rebuild that must come from the cache
        (work / dataset / f"{dataset}.{suffix}").unlink()
    warm, warm_time = timed(run_augmentor, "llmesr", settings)
    warm_calls = sum(manifest.get("usage", {}).get("calls", 0) for manifest in warm["outputs"].values())
    rows["rebuild from warm cache (all three)"] = f"{warm_time:.1f} s, {warm_calls} embedding-model calls"
    _, reuse_time = timed(run_augmentor, "llmesr", settings)
    rows["rerun with fresh outputs (manifest reuse)"] = f"{reuse_time:.1f} s"
    return rows


def bench_selections(settings, count):
    rows = {}
    requests = selection_requests(settings, count)
    results, elapsed, stats, model = run_selections(settings, requests)
    valid = sum(result.valid for result in results)
    hits = sum(result.valid and result.ids[0] == truth for result, (_, truth) in zip(results, requests))
    rows["selection calls (cold cache)"] = (
        f"{len(results)} requests, {stats['calls']} calls in {elapsed:.1f} s = {stats['calls'] / elapsed:.2f} calls/s, "
        f"{stats['prompt_tokens'] + stats['completion_tokens']} tokens, {model} on the embedded llama.cpp server"
    )
    rows["valid-answer rate"] = f"{valid}/{len(results)} = {valid / len(results):.0%} (hit@1 {hits}/{len(results)}, chance 10%)"
    _, again_elapsed, again_stats, _ = run_selections(settings, requests)
    rows["same selections again"] = f"{again_stats['calls']} calls, {again_stats['cache_hits']} cache hits, {again_elapsed:.2f} s"
    return rows


def write_report(path: Path, rows: dict, command: str, threads: int) -> str:
    """Update this run's rows in the results table, keeping rows measured by other ``--part`` runs."""
    previous = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if line.startswith("| ") and len(cells) == 3 and cells[0] not in ("measure", "---"):
                previous[cells[0]] = (cells[1], cells[2])
    for name, value in rows.items():
        previous[name] = (value, f"`{command}`")
    table = "\n".join(f"| {name} | {value} | {source} |" for name, (value, source) in previous.items())
    report = (
        "# LLM and embedding layer benchmark (Amazon Beauty)\n\n"
        f"Run from the repository root on {os.cpu_count()} shared CPU cores, {threads} torch/llama.cpp thread(s), "
        "no GPU. Each row names the command that measured it.\n\n"
        "| measure | result | command |\n|---|---|---|\n" + table + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report, encoding="utf-8")
    return report


def main():
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_llm_layer_")).resolve()
    link_dataset(Path(args.data_path), work, args.dataset)
    settings = {
        "dataset": args.dataset, "data_path": str(work), "llmaug_cache_dir": str(work / "cache"),
        "item_text_template": BEAUTY_TEMPLATE, "llm_threads": args.threads, "llm_max_tokens": 32,
    }
    rows = {}
    if args.part in ("all", "embeddings"):
        rows.update(bench_embeddings(settings, work, args.dataset))
    if args.part in ("all", "selections"):
        rows.update(bench_selections(settings, args.selection_calls))
    command = "python " + " ".join(shlex.quote(part) for part in [os.path.relpath(__file__, REPO_ROOT)] + sys.argv[1:])
    print(write_report(Path(args.results), rows, command, args.threads))


if __name__ == "__main__":
    main()
