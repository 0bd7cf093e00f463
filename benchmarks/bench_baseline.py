"""Baseline benchmark: one RecBole model (default SASRec) on Amazon Beauty with grouped metrics.

Trains through ``run_recbole_llmaug`` (leave-one-out, full ranking, model selected on validation
NDCG@10) for a bounded number of epochs, then prints and saves the grouped test table, seconds per
epoch and peak memory to ``benchmarks/results/baseline_<model>.md`` (and ``.json``).

    python benchmarks/bench_baseline.py --model SASRec --epochs 20 --data_path ../shared/data
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--data_path", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from recbole_llmaug.quick_start import run_recbole_llmaug
    from recbole_llmaug.report import format_grouped_table

    command = "python " + " ".join(sys.argv)
    record = run_recbole_llmaug(args.model, args.dataset, config_dict={
        "data_path": args.data_path, "epochs": args.epochs, "seed": args.seed,
        "show_progress": False, "results_dir": str(Path(args.out) / "runs"),
    })
    device = "GPU" if torch.cuda.is_available() else f"CPU ({args.threads} threads)"
    table = format_grouped_table(record["test_result"], record["test_group_sizes"])
    timing, memory = record["timing"], record["peak_memory"]
    summary = (
        f"# {args.model} on {args.dataset}\n\n"
        f"Command: `{command}`  \nDate: {time.strftime('%Y-%m-%d')}, device: {device}, torch {torch.__version__}\n\n"
        f"Protocol: leave-one-out, full ranking over all items, model selected on validation NDCG@10, "
        f"at most {args.epochs} epochs (trained {timing['epochs_trained']}), seed {args.seed}.\n\n"
        f"```\n{table}\n```\n\n"
        f"- seconds per training epoch: {timing['seconds_per_epoch']:.1f}\n"
        f"- total wall time (load, train, evaluate): {timing['total_seconds']:.0f} s\n"
        f"- peak memory: {memory['cpu_rss_mb']:.0f} MiB RSS"
        + (f", {memory['gpu_mb']:.0f} MiB GPU" if "gpu_mb" in memory else "") + "\n"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"baseline_{args.model}_{args.dataset}"
    stem.with_suffix(".md").write_text(summary)
    stem.with_suffix(".json").write_text(json.dumps({"command": command, **{k: record[k] for k in (
        "test_result", "test_group_sizes", "best_valid_result", "timing", "peak_memory")}}, indent=2, default=str))
    print(summary)


if __name__ == "__main__":
    main()
