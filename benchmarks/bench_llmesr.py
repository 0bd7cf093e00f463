"""Benchmark of LLM-ESR on Amazon Beauty: backbones with and without LLM-ESR, ablations, cost.

Two sub-commands, each run in a fresh subprocess per (model, seed) so that peak memory is per run:

* ``timing``: seconds per training epoch (no evaluation) and peak memory, same data and batch size.
* ``run``: train + test through ``run_recbole_llmaug`` (leave-one-out, RecBole's full ranking or
  ``uni100``), grouped metrics (overall, tail/head users, tail/head items), several seeds, mean and
  spread. Writes ``benchmarks/results/llmesr[_<protocol>].md`` and ``.json``.

The dataset is read in place (``--data_path``, default ../shared/data) and never copied into the
repository: ``--work_dir`` gets symbolic links to its files plus the augmentor's outputs.

    python benchmarks/bench_llmesr.py timing --epochs 2
    python benchmarks/bench_llmesr.py run --epochs 30 --seeds 2020 2021 2022 --protocol full
    python benchmarks/bench_llmesr.py run --epochs 30 --seeds 2020 2021 2022 --protocol uni100

Model names: RecBole backbones ``SASRec GRU4Rec BERT4Rec``; ``LLMESR-<backbone>``; ablations
``LLMESR-SASRec-noSD`` (alpha 0), ``-noSem`` (no semantic view), ``-noCF`` (no collaborative view),
``-randinit`` (random ID init), ``-prefix`` (RecBole's per-prefix training), ``-batchteacher`` (exact
per-step teacher) and ``-base`` (no semantic view, random init, no SD: the backbone alone, trained
the LLM-ESR way).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

GROUPS = ("all", "tail_user", "head_user", "tail_item", "head_item")
METRICS = ("hit@10", "ndcg@10")
MAIN_MODELS = ["SASRec", "LLMESR-SASRec", "GRU4Rec", "LLMESR-GRU4Rec", "BERT4Rec", "LLMESR-BERT4Rec"]
ABLATIONS = ["LLMESR-SASRec-noSD", "LLMESR-SASRec-noSem", "LLMESR-SASRec-noCF", "LLMESR-SASRec-randinit",
             "LLMESR-SASRec-base"]

# LLM-ESR options that keep each backbone comparable with the RecBole baseline of the same name
BACKBONE_MATCH = {
    "SASRec": {"backbone": "SASRec"},
    "GRU4Rec": {"backbone": "GRU4Rec", "n_layers": 1, "hidden_dropout_prob": 0.3},  # as properties/model/GRU4Rec.yaml
    "BERT4Rec": {"backbone": "BERT4Rec", "mask_ratio": 0.2},  # as properties/model/BERT4Rec.yaml
}
VARIANTS = {
    "": {},
    "noSD": {"alpha": 0.0},
    "noSem": {"use_semantic": False},
    "noCF": {"use_collaborative": False},
    "randinit": {"id_init": "random"},
    "prefix": {"train_mode": "prefix"},
    "batchteacher": {"teacher": "batch"},
    "base": {"use_semantic": False, "id_init": "random", "alpha": 0.0},
}


def model_spec(name):
    """``name`` -> (RecBole/our model class name, config overrides)."""
    if not name.startswith("LLMESR"):
        return name, {}
    parts = name.split("-")
    backbone = parts[1] if len(parts) > 1 else "SASRec"
    variant = parts[2] if len(parts) > 2 else ""
    if backbone not in BACKBONE_MATCH or variant not in VARIANTS:
        raise SystemExit(f"unknown model '{name}'")
    return "LLMESR", dict(BACKBONE_MATCH[backbone], **VARIANTS[variant])


def prepare_work_dir(args):
    """``<work_dir>/<dataset>/`` with links to the shared files (the augmentor writes next to them)."""
    source = Path(args.data_path).expanduser().resolve() / args.dataset
    target = Path(args.work_dir) / args.dataset
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix[1:] in ("inter", "item", "user"):
            link = target / path.name
            if not link.exists():
                link.symlink_to(path)
    return str(Path(args.work_dir))


def base_config(args, seed):
    eval_args = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": args.protocol}
    return {
        "data_path": args.work_dir,
        "seed": seed,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "train_batch_size": args.batch_size,
        "eval_args": eval_args,
        "show_progress": False,
        "use_gpu": False,
        "checkpoint_dir": str(Path(args.work_dir) / "saved"),
        "results_dir": str(Path(args.work_dir) / "records"),
    } | ({"llmaug_cache_dir": args.llm_cache_dir} if args.llm_cache_dir else {})


# ------------------------------------------------------------------------------------------ child
def child(job):
    import torch

    torch.set_num_threads(job["threads"])
    from recbole_llmaug import quick_start  # noqa: F401  (applies the RecBole compatibility fixes)

    torch.autograd.set_detect_anomaly(False)
    model, overrides = model_spec(job["name"])
    config_dict = dict(job["config"], **overrides)
    if job["kind"] == "run":
        record = quick_start.run_recbole_llmaug(model=model, dataset=job["dataset"], config_dict=config_dict, saved=True)
        out = {
            "test_result": {k: float(v) for k, v in record["test_result"].items()},
            "test_group_sizes": record["test_group_sizes"],
            "seconds_per_epoch": record["timing"]["seconds_per_epoch"],
            "epochs_trained": record["timing"]["epochs_trained"],
            "peak_rss_mb": record["peak_memory"]["cpu_rss_mb"],
        }
    else:
        out = time_epochs(model, job["dataset"], config_dict, job["epochs"], job.get("no_augment", False))
    Path(job["out"]).write_text(json.dumps(out))


def time_epochs(model_name, dataset_name, config_dict, epochs, no_augment=False):
    """Seconds of each training epoch (RecBole's ``Trainer._train_epoch``, no evaluation)."""
    import torch
    from recbole.data import data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    from recbole_llmaug.config import make_config, settings_from_config
    from recbole_llmaug.utils import create_dataset, get_model

    config = make_config(model_name, dataset_name, config_dict=config_dict)
    model_class = get_model(model_name)
    if getattr(model_class, "required_augmentations", None) and not no_augment:
        from recbole_llmaug.augment import ensure_augmented

        ensure_augmented(list(model_class.required_augmentations), settings_from_config(config))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = model_class(config, train_data._dataset)
    torch.autograd.set_detect_anomaly(False)
    trainer = Trainer(config, model)
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch)
        seconds.append(time.perf_counter() - start)
    return {
        "epoch_seconds": seconds,
        "train_rows": len(train_data._dataset),
        "batches": len(train_data),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "rss_before_model_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def spawn(job, args):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        job["out"] = handle.name
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    log = Path(args.work_dir) / "logs" / f"{job['kind']}_{job['name']}_{job.get('seed', 0)}_{args.protocol}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        code = subprocess.call(
            [sys.executable, __file__, "_child", json.dumps(job)], stdout=handle, stderr=subprocess.STDOUT, env=env
        )
    if code != 0:
        print(f"  FAILED ({code}); see {log}", flush=True)
        return None
    return json.loads(Path(job["out"]).read_text())


# ------------------------------------------------------------------------------------------ report
def mean_std(values):
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def runs_table(results, args):
    header = ["model"] + [f"{g} {m.replace('@10', '')}" for g in GROUPS for m in METRICS] + ["s/epoch", "epochs", "peak RSS MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, runs in results.items():
        runs = [r for r in runs if r]
        if not runs:
            lines.append(f"| {name} | " + " | ".join(["failed"] * (len(header) - 1)) + " |")
            continue
        cells = [name]
        for group in GROUPS:
            for metric in METRICS:
                key = metric if group == "all" else f"{group}/{metric}"
                cells.append(mean_std([r["test_result"][key] for r in runs if key in r["test_result"]]))
        cells.append(f"{statistics.mean(r['seconds_per_epoch'] for r in runs):.1f}")
        cells.append("/".join(str(r["epochs_trained"]) for r in runs))
        cells.append(f"{max(r['peak_rss_mb'] for r in runs):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing_table(results):
    base = results.get("SASRec")
    base_s = statistics.median(base["epoch_seconds"]) if base else None
    lines = ["| model | s/epoch (median) | epochs timed | x SASRec | train rows | batches | trainable params | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if not r:
            lines.append(f"| {name} | failed | | | | | | |")
            continue
        s = statistics.median(r["epoch_seconds"])
        ratio = f"{s / base_s:.2f}" if base_s else "n/a"
        lines.append(
            f"| {name} | {s:.1f} | {len(r['epoch_seconds'])} | {ratio} | {r['train_rows']} | {r['batches']} | "
            f"{r['params']} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["timing", "run"])
    parser.add_argument("--models", nargs="+", default=None, help=f"default: {' '.join(MAIN_MODELS + ABLATIONS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=30, help="epoch budget (same for every model)")
    parser.add_argument("--stopping_step", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=256, help="train_batch_size (rows per batch), every model")
    parser.add_argument("--protocol", choices=["full", "uni100"], default="full")
    parser.add_argument("--data_path", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--work_dir", default=str(Path(tempfile.gettempdir()) / "recbole_llmaug_bench_llmesr"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no_augment", action="store_true",
                        help="timing only: use the augmented files already in --work_dir as they are (any vectors "
                             "of the right shape time the same)")
    parser.add_argument("--llm_cache_dir", default=None, help="llmaug_cache_dir for the augmentor (reuse embeddings)")
    parser.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "results" / "llmesr"))
    args = parser.parse_args()
    args.work_dir = prepare_work_dir(args)
    if args.command == "timing":
        models = args.models or ["SASRec", "LLMESR-SASRec", "LLMESR-SASRec-batchteacher", "LLMESR-SASRec-prefix",
                                 "GRU4Rec", "LLMESR-GRU4Rec", "BERT4Rec", "LLMESR-BERT4Rec"]
    else:
        models = args.models or MAIN_MODELS + ABLATIONS
    command = "python benchmarks/bench_llmesr.py " + " ".join(sys.argv[1:])
    started = time.time()
    results = {}
    seeds = args.seeds if args.command == "run" else args.seeds[:1]
    # seed-major order: after the first seed every model has a number to compare
    for seed in seeds:
        for name in models:
            print(f"{args.command} {name} seed={seed} ...", flush=True)
            t0 = time.time()
            job = {"kind": args.command, "name": name, "seed": seed, "dataset": args.dataset, "threads": args.threads,
                   "epochs": args.epochs, "config": base_config(args, seed), "no_augment": args.no_augment}
            out = spawn(job, args)
            print(f"  done in {time.time() - t0:.0f}s: {json.dumps(out)[:300] if out else 'failed'}", flush=True)
            if args.command == "run":
                results.setdefault(name, []).append(out)
            else:
                results[name] = out
            write_report(args, command, results, started)


def write_report(args, command, results, started):
    suffix = "_timing" if args.command == "timing" else ("" if args.protocol == "full" else f"_{args.protocol}")
    path = Path(args.results + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"command": command, "results": results}, indent=1))
    if args.command == "timing":
        body = timing_table(results)
        what = (f"Seconds per training epoch (RecBole `Trainer._train_epoch`, no evaluation), {args.dataset}, "
                f"train_batch_size {args.batch_size}, {args.threads} thread(s), CPU, seed {args.seeds[0]}.")
    else:
        body = runs_table(results, args)
        what = (f"{args.dataset}, leave-one-out, protocol `{args.protocol}`, H@10 / N@10 on the test set (best "
                f"validation epoch), mean ± std over seeds {args.seeds}; budget {args.epochs} epochs, early stop after "
                f"{args.stopping_step} epochs without validation gain; train_batch_size {args.batch_size}; CPU, "
                f"{args.threads} thread(s).")
    text = (f"# LLM-ESR benchmark ({args.command})\n\n{what}\n\nCommand: `{command}`\n\n{body}\n\n"
            f"Elapsed: {time.time() - started:.0f}s\n")
    path.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
