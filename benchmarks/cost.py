"""What an augmentation cost, and what it bought: the cost tables of the benchmark reports.

The augmentor's manifests already hold each output's LLM usage (``usage``: calls, cache hits, prompt and
completion tokens), its embedding usage (``embedding_usage``, or ``usage`` of an embedding-only output such
as ``itememb``) and its wall time. This module sums them per *stage* (one output suffix) and per variant
(the stages a variant reads), prices the tokens at a stated price, and divides a variant's gain over its
baseline (mean over seeds, from a harness report's JSON) by that cost.

Token counts are the serving model's (SmolLM2's tokenizer on the local server); another model's tokenizer
counts about as many for the same English prompts, so the price is an estimate of what the same pass costs
there, stated with the price used.

A manifest's usage counts the calls of the run that wrote it, so a pass resumed across runs (the LLMSeR
Beauty pass took four sessions) reuses most answers from the cache (``cache_hits``). The tables state what
the stage costs *from an empty cache*: its calls plus its cache hits, and its tokens plus the tokens of the
reused answers as they were counted when paid for (``cached_prompt_tokens``, ``cached_completion_tokens``).
A manifest written before those fields existed gets them extrapolated from its own calls' mean, and its
wall time from an empty cache is this run's scaled by (calls + hits) / calls; both are marked ``~``.
Embedding tokens are this run's only (embedding cache hits keep no token count; they cost little).

    python benchmarks/cost.py --data_dir ../runs/lr100k/data --dataset ml-100k \\
        --results benchmarks/results/llmrec.json --baseline LightGCN --metrics recall@20 ndcg@20 \\
        --uses "LLMRec=lrcand,lredge,itemattr,userprof,itememb,useremb" "LightGCN-aug=lrcand,lredge" \\
        --out benchmarks/results/llmrec_cost
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness.reports import pair_by_seed, read_records  # noqa: E402

# A stated price (USD per million tokens): OpenAI's list prices for gpt-4o-mini and text-embedding-3-small.
DEFAULT_PRICE = {"input": 0.15, "output": 0.60, "embedding": 0.02}


def stage_usage(manifest: dict) -> dict:
    """One output's manifest -> this run's ``calls``, ``cache_hits``, ``failures``, ``prompt_tokens``,
    ``completion_tokens``, ``embedding_tokens``, ``wall_time_s`` (0 where the manifest has none), and the
    stage from an empty cache: ``pass_calls``, ``pass_prompt_tokens``, ``pass_completion_tokens`` (``None``
    when a manifest from before the cached-token fields made no call but reused some: unknown, not 0),
    ``pass_wall_time_s`` (``None`` when this run made no call but reused some: nothing to scale), and
    ``estimated``: which of those were extrapolated (``"tokens"``, ``"wall time"``; see the module's
    docstring)."""
    usage = manifest.get("usage") or {}
    embedding = manifest.get("embedding_usage")
    is_embedding_only = embedding is None and "completion_tokens" not in usage and "embedding" in manifest
    llm = {} if is_embedding_only else usage
    embedding = usage if is_embedding_only else (embedding or {})
    stage = {
        "calls": int(llm.get("calls", 0)),
        "cache_hits": int(llm.get("cache_hits", 0)),
        "failures": int(llm.get("failures", 0)),
        "prompt_tokens": int(llm.get("prompt_tokens", 0)),
        "completion_tokens": int(llm.get("completion_tokens", 0)),
        "embedding_tokens": int(embedding.get("prompt_tokens", 0)),
        "wall_time_s": float(manifest.get("wall_time_s", 0.0)),
    }
    calls, hits = stage["calls"], stage["cache_hits"]
    tokens_estimated = hits > 0 and "cached_prompt_tokens" not in llm
    for name in ("prompt_tokens", "completion_tokens"):
        if tokens_estimated and not calls:  # an older manifest of a rebuild from the cache: no call to scale from
            stage[f"pass_{name}"] = None
            continue
        reused = stage[name] * hits / calls if tokens_estimated else llm.get(f"cached_{name}", 0)
        stage[f"pass_{name}"] = int(round(stage[name] + reused))
    stage["pass_calls"] = calls + hits
    if hits == 0:
        stage["pass_wall_time_s"] = stage["wall_time_s"]
    else:
        stage["pass_wall_time_s"] = stage["wall_time_s"] * (calls + hits) / calls if calls else None
    stage["estimated"] = ["tokens"] * tokens_estimated + ["wall time"] * (hits > 0)
    return stage


def read_stages(data_dir, dataset, suffixes) -> dict:
    """``{suffix: stage_usage}`` from ``<data_dir>/<dataset>/<dataset>.<suffix>.manifest.json``; a missing
    manifest is an error that names the command that writes it."""
    stages = {}
    for suffix in suffixes:
        path = Path(data_dir) / dataset / f"{dataset}.{suffix}.manifest.json"
        if not path.is_file():
            raise SystemExit(f"error: no manifest {path}: run the augmentation that writes '.{suffix}' with "
                             f"--augment_path={data_dir} first")
        stages[suffix] = stage_usage(json.loads(path.read_text()))
    return stages


def total(stages: dict, suffixes) -> dict:
    """The sum of ``stages`` over ``suffixes`` (``pass_wall_time_s`` is ``None`` if one stage's is;
    ``estimated`` the union)."""
    keys = next(iter(stages.values())).keys() if stages else []
    summed = {}
    for key in keys:
        values = [stages[suffix][key] for suffix in suffixes]
        if key == "estimated":
            summed[key] = sorted(set().union(*values), reverse=True)
        else:
            summed[key] = None if any(value is None for value in values) else sum(values)
    return summed


def dollars(usage: dict, price: dict):
    """USD of ``usage`` from an empty cache at ``price`` (USD per million input, output and embedding tokens);
    ``None`` when its tokens are unknown."""
    if usage["pass_prompt_tokens"] is None or usage["pass_completion_tokens"] is None:
        return None
    return (usage["pass_prompt_tokens"] * price["input"] + usage["pass_completion_tokens"] * price["output"]
            + usage["embedding_tokens"] * price["embedding"]) / 1e6


def runs_of(records, name, metric) -> list:
    """``[(seed, test metric)]`` of the finished runs of variant ``name``."""
    return [(run.get("seed"), float(run["test_result"][metric])) for run in records
            if run["name"] == name and not run.get("failed") and metric in run.get("test_result", {})]


def matched_means(records, name, against, metric):
    """Means of ``against`` and of ``name`` over their paired runs, and how many pairs: paired by seed
    (``reports.pair_by_seed``, the rule ``compare.py`` uses too), by position for older records
    without seeds."""
    pairs = pair_by_seed(runs_of(records, against, metric), runs_of(records, name, metric))
    if not pairs:
        return None, None, 0
    return statistics.mean(b for b, _ in pairs), statistics.mean(v for _, v in pairs), len(pairs)


def cost_rows(stages, uses, records, baseline, metrics, price, baselines=None):
    """One dict per variant of ``uses`` (``{variant: [suffixes]}``): its summed usage and price from an
    empty cache, and per metric the means of the baseline (``baselines[variant]``, else ``baseline``) and
    of the variant over the seeds both have run (``seeds``), the gain, the relative gain and the gain per
    dollar, per LLM hour and per thousand calls (``None`` where the cost is zero or a mean is missing)."""
    rows = []
    for name, suffixes in uses.items():
        usage = total(stages, suffixes)
        cost = dollars(usage, price)
        against = (baselines or {}).get(name, baseline)
        row = {"variant": name, "baseline": against, "stages": list(suffixes), **usage, "usd": cost, "metrics": {}}
        for metric in metrics:
            base, value, n = matched_means(records, name, against, metric)
            gain = value - base if value is not None and base is not None else None
            per = lambda amount: gain / amount if gain is not None and amount else None  # noqa: E731
            row["metrics"][metric] = {
                "baseline": base, "value": value, "seeds": n, "gain": gain,
                "relative": gain / base if gain is not None and base else None,
                "per_usd": per(cost),
                "per_hour": per(usage["pass_wall_time_s"] / 3600.0) if usage["pass_wall_time_s"] is not None else None,
                "per_1k_calls": per(usage["pass_calls"] / 1000.0),
            }
        rows.append(row)
    return rows


def _num(value, spec):
    return "n/a" if value is None else format(value, spec)


def _approx(usage: dict, what: str) -> str:
    return "~" if what in usage["estimated"] else ""


def _hours(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds / 3600:.2f}"


def markdown(stages, rows, baseline, price, command):
    """The stage table, then one row per variant: its cost and its gain per unit of cost."""
    lines = [f"# Cost of the augmentation and gain per cost\n",
             f"Price stated: USD {price['input']} / {price['output']} per million input / output tokens and "
             f"{price['embedding']} per million embedding tokens (tokens counted by the serving model). Gains are "
             f"the mean over seeds of the variant minus the mean of its baseline (`{baseline}` unless named), "
             f"over the seeds both have run (the `seeds` column). "
             f"Calls, tokens, hours and USD are each stage's from an empty cache: the calls its manifest's run "
             f"made plus the answers it reused from the cache; `~` marks a figure extrapolated from that run's "
             f"calls (see `benchmarks/cost.py`).\n",
             f"Command: `{command}`\n",
             "| stage | LLM calls | of them reused from the cache | failed answers | prompt tokens | answer tokens "
             "| embedding tokens | wall time h | USD |", "|---|---|---|---|---|---|---|---|---|"]
    for suffix, usage in stages.items():
        tokens = _approx(usage, "tokens")
        lines.append(f"| .{suffix} | {usage['pass_calls']} | {usage['cache_hits']} | {usage['failures']} | "
                     f"{tokens}{_num(usage['pass_prompt_tokens'], 'd')} | "
                     f"{tokens}{_num(usage['pass_completion_tokens'], 'd')} | "
                     f"{usage['embedding_tokens']} | {_approx(usage, 'wall time')}{_hours(usage['pass_wall_time_s'])} | "
                     f"{tokens}{_num(dollars(usage, price), '.4f')} |")
    metrics = list(rows[0]["metrics"]) if rows else []
    header = ["variant", "baseline", "stages", "LLM calls", "wall time h", "USD"]
    for metric in metrics:
        header += [f"{metric} gain", "relative", "per USD", "per LLM hour", "per 1k calls"]
    header.append("seeds")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["variant"], row["baseline"], " ".join(row["stages"]), str(row["pass_calls"]),
                 _approx(row, "wall time") + _hours(row["pass_wall_time_s"]), f"{_approx(row, 'tokens')}{_num(row['usd'], '.4f')}"]
        for metric in metrics:
            cell = row["metrics"][metric]
            relative = "n/a" if cell["relative"] is None else f"{100 * cell['relative']:+.1f}%"
            cells += [_num(cell["gain"], "+.4f"), relative, _num(cell["per_usd"], "+.3f"),
                      _num(cell["per_hour"], "+.4f"), _num(cell["per_1k_calls"], "+.4f")]
        cells.append(str(min((cell["seeds"] for cell in row["metrics"].values()), default=0)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_uses(items):
    """``["LLMRec=lrcand,lredge", "BPR-aug:BPR=lredge"]`` -> ``({"LLMRec": ["lrcand", "lredge"], "BPR-aug":
    ["lredge"]}, {"BPR-aug": "BPR"})``: the outputs each variant reads and the baselines named after a colon."""
    uses, baselines = {}, {}
    for item in items:
        name, sep, suffixes = item.partition("=")
        name, _, against = name.partition(":")
        if not sep or not name or not suffixes:
            raise SystemExit(f"error: --uses '{item}' is not VARIANT[:BASELINE]=suffix,suffix "
                             f"(e.g. LLMRec=lredge,itemattr)")
        uses[name] = [suffix.strip().lstrip(".") for suffix in suffixes.split(",") if suffix.strip()]
        if against:
            baselines[name] = against
    return uses, baselines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="the --augment_path of the augmentation")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--results", nargs="+", required=True,
                        help="harness reports' JSON (benchmarks/results/<x>.json); their runs are pooled")
    parser.add_argument("--baseline", required=True, help="the variant gains are measured against")
    parser.add_argument("--uses", nargs="+", required=True, metavar="VARIANT=SUFFIXES",
                        help="the augmented outputs each variant reads; VARIANT:BASELINE=... names its own baseline")
    parser.add_argument("--metrics", nargs="+", default=["ndcg@10"])
    parser.add_argument("--price", nargs=3, type=float, metavar=("INPUT", "OUTPUT", "EMBEDDING"),
                        default=[DEFAULT_PRICE["input"], DEFAULT_PRICE["output"], DEFAULT_PRICE["embedding"]],
                        help="USD per million tokens (default: gpt-4o-mini and text-embedding-3-small list prices)")
    parser.add_argument("--out", required=True, help="writes <out>.md and <out>.json")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    uses, baselines = parse_uses(args.uses)
    price = dict(zip(("input", "output", "embedding"), args.price))
    suffixes = list(dict.fromkeys(suffix for stage in uses.values() for suffix in stage))
    stages = read_stages(args.data_dir, args.dataset, suffixes)
    records = [record for path in args.results for record in read_records(path)]
    rows = cost_rows(stages, uses, records, args.baseline, args.metrics, price, baselines)
    command = " ".join(["python benchmarks/cost.py", *argv])
    text = markdown(stages, rows, args.baseline, price, command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".md").write_text(text)
    out.with_name(out.name + ".json").write_text(json.dumps({"command": command, "price_per_million": price,
                                                             "stages": stages, "variants": rows}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
