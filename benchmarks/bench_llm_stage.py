"""The LLM stage at dataset scale, measured side by side on Amazon Beauty.

``--part selections``: the same Beauty next-item selection requests (5 recent training titles of a
user, 10 candidates including the true next item, as in bench_llm_layer.py) sent through several
request paths, each on a fresh cache, for every combination of llama.cpp threads and parallel slots:

* ``today``: bench_llm_layer's prompt (full titles, candidates C0..C9, the answer format listing the
  ids), ``{"ids": [...]}`` JSON under a schema, ``max_tokens`` = llm_max_tokens (256);
* ``compact``: the shared instruction first (system message), titles cut to llm_title_max_chars,
  candidates labelled A..J; still JSON and 256 tokens;
* ``new``: ``compact`` + answer bounded by its schema + bare labels under a llama.cpp grammar
  (``llm_selection_format: labels``) + ``cache_prompt: true``;
* ``new-nocache``: ``new`` with ``cache_prompt: false`` (what the prefix reuse is worth).

Reported per configuration: calls/s, prompt tokens/s, prompt and completion tokens per call, valid
answers, hit@1 (a quality guard: chance is 10%) and the load average before/after. ``--base_url``
(+ ``--model``) scores any OpenAI-compatible endpoint instead of the embedded server; there
``--slots`` is the number of requests in flight and ``--threads`` is ignored.

``--part embeddings``: Beauty item texts and user texts through the local sentence-transformers model
(no cache): items/s and users/s for each torch thread count and batch order (length-sorted or file
order); the ONNX backend of sentence-transformers when it can be loaded (vectors compared with the
torch ones: cosine >= 0.99 each); and user vectors as the mean of their training items' vectors
(``user_emb_source: item_mean``) against text embeddings: overlap of the 10 most similar users.

Writes benchmarks/results/llm_stage.md and .json. Small sample (to check that it runs):

    python benchmarks/bench_llm_stage.py --requests 20 --threads 1 --slots 1 2 --paths today new
    python benchmarks/bench_llm_stage.py --part embeddings --embed_limit 300 --embed_threads 1 2

Full run (for a quiet machine): ``python benchmarks/bench_llm_stage.py --part all``.
"""

import argparse
import json
import os
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_llm_layer import (  # noqa: E402
    BEAUTY_TEMPLATE, CANDIDATES_PER_PROMPT, add_data_arguments, link_dataset, selection_tasks,
)

PATHS = ("today", "compact", "new", "new-nocache")
HISTORY_ITEMS = 5
TODAY_SYSTEM = "You recommend beauty products."
SIM_TOPN = 10


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser, "caches and logs")
    parser.add_argument("--part", choices=("all", "selections", "embeddings"), default="selections")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="llama.cpp threads")
    parser.add_argument("--slots", nargs="+", type=int, default=[1, 2, 3, 4],
                        help="parallel slots (= requests in flight); with --base_url: requests in flight")
    parser.add_argument("--title_max_chars", nargs="+", type=int, default=None,
                        help="llm_title_max_chars of the compact paths (default: the yaml default); several values sweep it")
    parser.add_argument("--configs", nargs="+", default=None, metavar="PATH:THREADS:SLOTS[:TITLE_CHARS]",
                        help="exact configurations instead of the product of --paths/--threads/--slots/--title_max_chars, "
                             "e.g. today:1:1 new:2:2:40")
    parser.add_argument("--base_url", default=None, help="score this OpenAI-compatible endpoint instead")
    parser.add_argument("--model", default=None, help="model name on --base_url")
    parser.add_argument("--embed_limit", type=int, default=None, help="embed only this many items and users")
    parser.add_argument("--embed_threads", nargs="+", type=int, default=[1, 2], help="torch threads")
    parser.add_argument("--embed_orders", nargs="+", choices=("sorted", "file"), default=["sorted"])
    parser.add_argument("--embed_batch_size", type=int, default=64)
    parser.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "results" / "llm_stage.md"))
    return parser.parse_args()


# ---------------------------------------------------------------- data

def beauty_files(work, dataset):
    from recbole_llmaug.augment.files import DatasetFiles

    return DatasetFiles({"dataset": dataset, "data_path": str(work), "item_text_template": BEAUTY_TEMPLATE})


def today_request(history, candidates, titles):
    """bench_llm_layer's request: its prompt, candidates C0..C9 (the answer's ids are these labels)."""
    from recbole_llmaug.llm import SelectionRequest

    labels = [f"C{index}" for index in range(len(candidates))]
    listing = "\n".join(f"{label}: {titles[item]}" for label, item in zip(labels, candidates))
    bought = "\n".join(f"- {titles[item]}" for item in history[-HISTORY_ITEMS:] if titles.get(item))
    messages = (
        {"role": "system", "content": TODAY_SYSTEM},
        {"role": "user", "content": f"A customer bought, oldest first:\n{bought}\n\nWhich candidate will they buy next?\n{listing}"},
    )
    return SelectionRequest(messages, tuple(candidates), 1, tuple(labels))


def compact_request(history, candidates, titles, title_max_chars):
    from recbole_llmaug.llm import selection_request
    from recbole_llmaug.llm.prompts import NEXT_ITEM_INSTRUCTION

    recent = [titles.get(item) for item in history[-HISTORY_ITEMS:] if titles.get(item)]
    return selection_request(NEXT_ITEM_INSTRUCTION, recent, candidates, [titles[item] for item in candidates], 1,
                             "letters", title_max_chars)


def path_settings(path):
    """The options each path sets (on top of the yaml defaults)."""
    if path == "today":
        return {"llm_selection_max_tokens": 256, "llm_selection_format": "json", "llm_cache_prompt": True}
    if path == "compact":
        return {"llm_selection_max_tokens": 256, "llm_selection_format": "json", "llm_cache_prompt": True}
    return {"llm_selection_max_tokens": None, "llm_selection_format": "labels",
            "llm_cache_prompt": path == "new"}


# ---------------------------------------------------------------- selections

def load():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_configuration(settings, requests, targets):
    from recbole_llmaug.llm import open_chat_client, run_many

    load_before = load()
    with open_chat_client(settings) as client:
        started = time.perf_counter()
        results = run_many(client, requests, "bench-llm-stage-v1", desc="selections")
        elapsed = time.perf_counter() - started
        stats = client.stats.as_dict()
        model = client.model
    calls = max(stats["calls"], 1)
    valid = sum(result.valid for result in results)
    hits = sum(result.valid and result.ids[0] == target for result, target in zip(results, targets))
    return {
        "requests": len(requests), "calls": stats["calls"], "wall_s": round(elapsed, 2),
        "calls_per_s": round(stats["calls"] / elapsed, 3),
        "prompt_tokens_per_s": round(stats["prompt_tokens"] / elapsed, 1),
        "prompt_tokens_per_call": round(stats["prompt_tokens"] / calls, 1),
        "completion_tokens_per_call": round(stats["completion_tokens"] / calls, 1),
        "valid": valid, "hit_at_1": hits, "failures": stats["failures"], "model": model,
        "load_before": load_before, "load_after": load(),
    }


def parse_config(text, default_title_chars):
    """``PATH:THREADS:SLOTS[:TITLE_CHARS]`` -> (threads, slots, path, title chars)."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or parts[0] not in PATHS:
        raise SystemExit(f"--configs {text!r}: expected PATH:THREADS:SLOTS[:TITLE_CHARS] with PATH one of {PATHS}")
    title_chars = "-" if parts[0] == "today" else int(parts[3]) if len(parts) == 4 else default_title_chars
    return int(parts[1]), int(parts[2]), parts[0], title_chars


def bench_selections(args, work):
    from recbole_llmaug.defaults import setting

    files = beauty_files(work, args.dataset)
    tasks, titles = selection_tasks(files, args.requests)
    targets = [target for _, _, target in tasks]

    title_chars_list = args.title_max_chars or [int(setting({}, "llm_title_max_chars"))]
    rows = []
    threads_list = [None] if args.base_url else args.threads
    configurations = [(threads, slots, path, title_max_chars) for threads in threads_list for slots in args.slots
                      for path in args.paths for title_max_chars in (["-"] if path == "today" else title_chars_list)]
    if args.configs:
        configurations = [parse_config(text, title_chars_list[0]) for text in args.configs]
    for threads, slots, path, title_max_chars in configurations:
        if path == "today":
            requests = [today_request(history, candidates, titles) for history, candidates, _ in tasks]
        else:
            requests = [compact_request(history, candidates, titles, title_max_chars)
                        for history, candidates, _ in tasks]
        name = f"{path}-t{threads}-s{slots}-c{title_max_chars}"
        settings = dict(path_settings(path), llmaug_cache_dir=str(work / "cache" / f"{name}-{time.time_ns()}"),
                        llm_concurrency=slots, llm_parallel=slots, llm_max_tokens=256,
                        llm_base_url=args.base_url, llm_model=args.model)
        if threads is not None:
            settings["llm_threads"] = threads
        print(f"--- {name}", flush=True)
        row = dict(path=path, threads=threads, slots=slots, title_chars=title_max_chars,
                   **run_configuration(settings, requests, targets))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- embeddings

def encode_timed(embedder, texts, batch_size):
    """Vectors of ``texts`` (their order) and seconds, encoding batch by batch in the given order."""
    started = time.perf_counter()
    parts = [embedder.encode(texts[start:start + batch_size], batch_size) for start in range(0, len(texts), batch_size)]
    return np.concatenate(parts), time.perf_counter() - started


def unit(matrix):
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def top_sets(matrix, topn):
    from recbole_llmaug.augment.text_embeddings import top_similar

    return [set(row.tolist()) for row in top_similar(matrix, topn)]


def bench_embeddings(args, work):
    from recbole_llmaug.augment.text_embeddings import item_texts, user_mean_vectors, user_texts, user_train_histories
    from recbole_llmaug.llm.embeddings import SentenceTransformerEmbedder
    from recbole_llmaug.llm.settings import BUNDLED_MINILM

    files = beauty_files(work, args.dataset)
    items = {item: text for item, text in item_texts(files).items() if text}
    users = {user: text for user, text in user_texts(files).items() if text}
    histories = user_train_histories(files)
    rng = random.Random(0)
    user_ids = sorted(users)
    if args.embed_limit:
        user_ids = sorted(rng.sample(user_ids, min(args.embed_limit, len(user_ids))))
        needed = {item for user in user_ids for item in histories[user] if item in items}
        extra = sorted(set(items) - needed)
        item_ids = sorted(needed | set(rng.sample(extra, max(0, min(args.embed_limit - len(needed), len(extra))))))
    else:
        item_ids = sorted(items)
    rows, vectors = [], {}
    for threads in args.embed_threads:
        embedder = SentenceTransformerEmbedder(BUNDLED_MINILM, threads)
        for order in args.embed_orders:
            for kind, ids, texts in (("items", item_ids, items), ("users", user_ids, users)):
                listed = [texts[key] for key in ids]
                if order == "sorted":
                    permutation = sorted(range(len(listed)), key=lambda index: len(listed[index]))
                else:
                    permutation = list(range(len(listed)))
                encoded, seconds = encode_timed(embedder, [listed[index] for index in permutation], args.embed_batch_size)
                matrix = np.zeros_like(encoded)
                matrix[permutation] = encoded
                vectors.setdefault(kind, matrix)
                rows.append({"backend": "torch", "threads": threads, "order": order, "kind": kind, "count": len(ids),
                             "seconds": round(seconds, 1), "per_s": round(len(ids) / seconds, 1), "load": load()})
                print(json.dumps(rows[-1]), flush=True)
    rows.extend(onnx_rows(args, item_ids, items, vectors.get("items")))
    text_users = unit(vectors["users"])
    _, mean_users, empty = user_mean_vectors({user: histories[user] for user in user_ids}, item_ids,
                                             unit(vectors["items"]), normalize=True)
    topn = min(SIM_TOPN, len(user_ids) - 1)
    overlaps = [len(a & b) / topn for a, b in zip(top_sets(text_users, topn), top_sets(mean_users, topn))]
    overlap = {"users": len(user_ids), "topn": topn, "mean_overlap": round(float(np.mean(overlaps)), 4),
               "users_without_item_vectors": len(empty),
               "population": "all Beauty users" if not args.embed_limit else f"{len(user_ids)} sampled users"}
    print(json.dumps(overlap), flush=True)
    return rows, overlap


def onnx_rows(args, item_ids, items, reference):
    """The ONNX backend of sentence-transformers, if it loads here; else one row saying why not."""
    from recbole_llmaug.llm.embeddings import SentenceTransformerEmbedder

    try:
        from sentence_transformers import SentenceTransformer

        path = SentenceTransformerEmbedder.resolve("all-MiniLM-L6-v2")
        model = SentenceTransformer(path, backend="onnx", device="cpu", local_files_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means: not available on this stack
        return [{"backend": "onnx", "available": False, "why": f"{type(error).__name__}: {str(error)[:200]}"}]
    texts = sorted((items[key] for key in item_ids), key=len)
    started = time.perf_counter()
    encoded = model.encode(texts, batch_size=args.embed_batch_size, convert_to_numpy=True)
    seconds = time.perf_counter() - started
    order = sorted(range(len(item_ids)), key=lambda index: len(items[item_ids[index]]))
    torch_sorted = reference[order]
    cosine = np.sum(unit(encoded) * unit(torch_sorted), axis=1)
    return [{"backend": "onnx", "available": True, "kind": "items", "count": len(texts), "seconds": round(seconds, 1),
             "per_s": round(len(texts) / seconds, 1), "min_cosine_vs_torch": round(float(cosine.min()), 5),
             "share_cosine_ge_0.99": round(float(np.mean(cosine >= 0.99)), 4)}]


# ---------------------------------------------------------------- report

def markdown(selection_rows, embedding_rows, overlap, command):
    lines = ["# The LLM stage at dataset scale (Amazon Beauty)", "",
             f"`{command}`", "",
             f"Machine: {os.cpu_count()} CPU cores (affinity {len(os.sched_getaffinity(0))}), no GPU; "
             "the load average before/after each configuration is in its row (other jobs share the machine).", ""]
    if selection_rows:
        lines += ["## Selections (next item among 10 candidates, k=1)", "",
                  "| path | threads | slots | title chars | calls | calls/s | prompt tok/s | prompt tok/call | completion tok/call "
                  "| valid | hit@1 | wall s | load before/after |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in selection_rows:
            lines.append(f"| {row['path']} | {row['threads'] or '-'} | {row['slots']} | {row.get('title_chars', 60)} | {row['calls']} | "
                         f"{row['calls_per_s']} | {row['prompt_tokens_per_s']} | {row['prompt_tokens_per_call']} | "
                         f"{row['completion_tokens_per_call']} | {row['valid']}/{row['requests']} | "
                         f"{row['hit_at_1']}/{row['requests']} | {row['wall_s']} | {row['load_before']}/{row['load_after']} |")
        lines.append("")
    if embedding_rows:
        lines += ["## Embeddings (all-MiniLM-L6-v2, no cache)", "",
                  "| backend | threads | batch order | texts | count | s | per s | load |", "|---|---|---|---|---|---|---|---|"]
        for row in embedding_rows:
            if row.get("available") is False:
                lines.append(f"| onnx | - | - | - | - | - | not available: {row['why']} | - |")
            elif row["backend"] == "onnx":
                lines.append(f"| onnx | - | sorted | items | {row['count']} | {row['seconds']} | {row['per_s']} "
                             f"(min cosine vs torch {row['min_cosine_vs_torch']}, >= 0.99: {row['share_cosine_ge_0.99']:.0%}) | - |")
            else:
                lines.append(f"| torch | {row['threads']} | {row['order']} | {row['kind']} | {row['count']} | "
                             f"{row['seconds']} | {row['per_s']} | {row['load']} |")
        lines += ["", f"User vectors, text embedding vs mean of training items (`user_emb_source: item_mean`), "
                      f"{overlap['population']}: mean overlap of the {overlap['topn']} most similar users "
                      f"**{overlap['mean_overlap']:.1%}** ({overlap['users_without_item_vectors']} users without "
                      "any item vector).", ""]
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_llm_stage_")).resolve()
    link_dataset(Path(args.data_path), work, args.dataset)
    selection_rows, embedding_rows, overlap = [], [], None
    if args.part in ("all", "selections"):
        selection_rows = bench_selections(args, work)
    if args.part in ("all", "embeddings"):
        embedding_rows, overlap = bench_embeddings(args, work)
    command = "python " + " ".join(shlex.quote(part) for part in [os.path.relpath(__file__, REPO_ROOT)] + sys.argv[1:])
    report = markdown(selection_rows, embedding_rows, overlap, command)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(report, encoding="utf-8")
    results.with_suffix(".json").write_text(json.dumps(
        {"command": command, "selections": selection_rows, "embeddings": embedding_rows, "user_overlap": overlap},
        indent=2) + "\n", encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
