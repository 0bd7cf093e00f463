"""LLMSeR's two LLM answer modes side by side on the same users: what each costs and what it picks.

``llm-ids`` (default): the LLM picks M' candidates by number under a JSON schema, then the semantic filter
keeps the M closest to the user's history. ``llm-text`` (the official mode): the LLM writes M' titles,
and the filter keeps the M candidates closest to the answer's embedding, so an answer that names items
outside the candidates (a hallucination) still yields M candidates, chosen by the embedding alone.

For the first ``--users`` augmented users (sorted ids, the order of the augmentor's own pass, so that
their ``llm-ids`` answers are usually cached already) this runs both modes and the two LLM-free pickers
(``embedding``, ``none``) through the augmentor's own code (``pseudo_items``) and reports per mode: calls,
cache hits, tokens, seconds per call, failed answers; for ``llm-text`` how many answer lines name a
candidate title (after the prompt's title cut) and how many name none (hallucinated); how many of the kept
items the answer named; and the agreement (mean Jaccard) between the modes' kept items per user.

Needs the augmentor's ``item_emb`` and ``ccgcand`` outputs under ``--augment_path`` (the Beauty LLM pass
writes both first). The calls, tokens and seconds are this run's: with an empty ``--llmaug_cache_dir`` both
modes pay for every answer (cached answers cost nothing and count as cache hits):

    python benchmarks/bench_llmser_modes.py --users 100 --augment_path ../runs/ls/data \\
        --llmaug_cache_dir ../runs/lsmodes/cache --results benchmarks/results/llmser_modes
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

MODES = ("llm-ids", "llm-text", "embedding", "none")
MIN_PART = 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_path", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--augment_path", required=True, help="where the augmentor wrote item_emb and ccgcand")
    parser.add_argument("--llmaug_cache_dir", required=True, help="the LLM answer cache (shared with the pass)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--augment_max_length", type=int, default=3)
    parser.add_argument("--llm_threads", type=int, default=1)
    parser.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "results" / "llmser_modes"))
    return parser.parse_args(argv)


def answer_lines(answer: str):
    """The non-empty lines of a free-text answer, list marks and numbering stripped, lower case."""
    lines = []
    for line in (answer or "").splitlines():
        line = line.strip().lstrip("-*0123456789.) ").strip().lower()
        if line:
            lines.append(line)
    return lines


def line_names(line: str, titles) -> bool:
    """Whether an answer line names one of ``titles`` (lower case): it contains the title, or it is a part
    of the title at least ``MIN_PART`` characters long (a word or two alone names nothing)."""
    return any(title and (title in line or (len(line) >= MIN_PART and line in title)) for title in titles)


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def main(argv=None):
    args = parse_args(argv)
    from recbole_llmaug.augment.atomic import read_token_lists
    from recbole_llmaug.augment.files import DatasetFiles
    from recbole_llmaug.augment.systems import llmser
    from recbole_llmaug.augment.text_embeddings import user_train_histories
    from recbole_llmaug.config import load_settings

    settings = load_settings(args.dataset, "LLMSeR", config_dict={
        "data_path": args.data_path, "augment_path": args.augment_path, "llmaug_cache_dir": args.llmaug_cache_dir,
        "augment_max_length": args.augment_max_length, "llm_threads": args.llm_threads, "llm_parallel": 1,
        "llm_concurrency": 1})
    files = DatasetFiles(settings)
    histories = user_train_histories(files)
    every = read_token_lists(files.output_path(llmser.CCG.suffix))
    users = sorted(user for user in every if every[user])[: args.users]
    candidates = {user: every[user] for user in users}
    vectors, titles = llmser.ItemVectors(files), llmser.titles_of(files)

    rows, kept = [], {}
    for mode in MODES:
        started = time.perf_counter()
        chosen, report = llmser.pseudo_items(mode, histories, candidates, vectors, titles, settings)
        seconds = time.perf_counter() - started
        kept[mode] = chosen
        usage = report.get("usage") or {}
        calls = usage.get("calls", 0)
        rows.append({"mode": mode, "users": len(users), "with_items": len(chosen),
                     "failed_answers": len(report["failures"]), "calls": calls,
                     "cache_hits": usage.get("cache_hits", 0), "prompt_tokens": usage.get("prompt_tokens", 0),
                     "completion_tokens": usage.get("completion_tokens", 0), "seconds": round(seconds, 1),
                     "seconds_per_call": round(seconds / calls, 2) if calls else None,
                     "filter_kept_share_of_llm_picks": report.get("filter_kept_share_of_llm_picks"),
                     "kept_items_named_by_the_llm_share": report.get("kept_items_named_by_the_llm_share")})
    # the free-text answers again, for their lines: the same prompts, all from the cache now (no call)
    pick = max(int(settings["llmser_keep"]), int(settings["llmser_select"]))
    prompts = [llmser.sia_messages(histories[user], candidates[user], titles, min(pick, len(candidates[user])), True)
               for user in users]
    texts, again = llmser.free_text_all(settings, prompts, "LLMSeR answers (cached)", llmser.SIA_PROMPT_VERSION)
    if again["calls"]:
        raise SystemExit(f"error: {again['calls']} free-text answers were not cached by the llm-text pass; is the "
                         f"cache folder writable?")
    answers = dict(zip(users, texts))

    named, hallucinated, lines_per_answer = [], [], []
    for user in users:
        lines = answer_lines(answers.get(user))
        if not lines:
            continue
        names = [titles.get(item, "").lower() for item in candidates[user]]
        hits = sum(line_names(line, names) for line in lines)
        lines_per_answer.append(len(lines))
        named.append(hits / len(lines))
        hallucinated.append(1 - hits / len(lines))
    text = {"answers": len(lines_per_answer), "lines_per_answer": statistics.mean(lines_per_answer) if lines_per_answer else None,
            "lines_naming_a_candidate_share": statistics.mean(named) if named else None,
            "lines_naming_no_candidate_share": statistics.mean(hallucinated) if hallucinated else None}
    agreement = {f"{a} vs {b}": statistics.mean(jaccard(kept[a].get(u, []), kept[b].get(u, [])) for u in users)
                 for i, a in enumerate(MODES) for b in MODES[i + 1:]}
    command = "python benchmarks/bench_llmser_modes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write(args.results, rows, text, agreement, command, len(users), settings)


def write(stem, rows, text, agreement, command, users, settings):
    payload = {"command": command, "users": users, "modes": rows, "free_text": text, "agreement": agreement}
    Path(stem + ".json").write_text(json.dumps(payload, indent=1))
    fmt = lambda value, spec=".3f": "n/a" if value is None else format(value, spec)  # noqa: E731
    lines = [
        "# LLMSeR: the two LLM answer modes on the same users\n",
        f"The first {users} augmented Beauty users (sorted ids; `augment_max_length: "
        f"{settings['augment_max_length']}`), P = {settings['llmser_candidates']} candidates, M' = "
        f"{settings['llmser_select']} asked, M = {settings['llmser_keep']} kept; the embedded SmolLM2-135M "
        f"server at {settings['llm_threads']} thread(s) on a 2-core machine shared with other jobs.\n",
        f"Command: `{command}`\n",
        "| mode | users with items | failed answers | LLM calls | cache hits | prompt tokens | answer tokens | s | s/call "
        "| filter kept of LLM picks | kept items the answer named |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['mode']} | {row['with_items']} | {row['failed_answers']} | {row['calls']} | "
                     f"{row['cache_hits']} | {row['prompt_tokens']} | {row['completion_tokens']} | {row['seconds']} | "
                     f"{fmt(row['seconds_per_call'], '.2f')} | {fmt(row['filter_kept_share_of_llm_picks'])} | "
                     f"{fmt(row['kept_items_named_by_the_llm_share'])} |")
    lines += ["", f"Free-text answers: {text['answers']} with lines; {fmt(text['lines_per_answer'], '.1f')} lines per "
                  f"answer; share of lines naming a candidate {fmt(text['lines_naming_a_candidate_share'])}, naming "
                  f"none (hallucinated or mangled) {fmt(text['lines_naming_no_candidate_share'])}.", "",
              "Agreement of the kept items (mean Jaccard per user):", "", "| modes | Jaccard |", "|---|---|"]
    lines += [f"| {pair} | {value:.3f} |" for pair, value in agreement.items()]
    Path(stem + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
