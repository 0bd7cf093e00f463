"""Benchmark of LLM-ESR on Amazon Beauty: backbones with and without LLM-ESR, ablations, cost.

Two sub-commands, each run in a fresh subprocess per (model, seed) so that peak memory is per run:

* ``timing``: seconds per training epoch (no evaluation) and peak memory, same data and batch size.
* ``run``: train + test through ``run_recbole_llmaug`` (leave-one-out, RecBole's full ranking or
  ``uni100``), grouped metrics (overall, tail/head users, tail/head items), several seeds, mean and
  spread. Writes ``benchmarks/results/llmesr[_<protocol>].md`` and ``.json``. ``--also_test uni100``
  tests the same best models under a second protocol too (``extra_test_modes``), as a second table
  in the same report: one training gives both tables.

* ``retest``: test saved runs again from their checkpoints (``--records``: the runs' JSON records)
  under further protocols (``--modes``, e.g. ``full uni100``), without retraining; ``full`` must
  give each run's recorded test result again, and the report says whether it does.

* ``logs``: the grouped validation table (best epoch of each run, mean and spread over seeds) rebuilt
  from ``<work_dir>/logs``, e.g. from a GPU machine's logs when records did not come back.

The dataset is read in place (``--data_path``, default ../shared/data) and never copied into the
repository: ``--work_dir`` gets symbolic links to its files plus the augmentor's outputs.

    python benchmarks/bench_llmesr.py timing --epochs 2
    python benchmarks/bench_llmesr.py run --epochs 30 --seeds 2020 2021 2022 --protocol full
    python benchmarks/bench_llmesr.py run --epochs 30 --seeds 2020 2021 2022 --protocol uni100
    python benchmarks/bench_llmesr.py run --device gpu --jobs 12 --also_test uni100 ...   # on a GPU machine
    python benchmarks/bench_llmesr.py retest --records <records_dir>/*.json --modes full uni100 --results ...

Model names: RecBole backbones ``SASRec GRU4Rec BERT4Rec``; ``LLMESR-<backbone>``; ablations
``LLMESR-SASRec-noSD`` (alpha 0), ``-noSem`` (no semantic view), ``-noCF`` (no collaborative view),
``-randinit`` (random ID init), ``-prefix`` (RecBole's per-prefix training), ``-batchteacher`` (exact
per-step teacher) and ``-base`` (no semantic view, random init, no SD: the backbone alone, trained
the LLM-ESR way).
"""

import argparse
import concurrent.futures
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
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


def name_of_record(record):
    """The benchmark's model name (``SASRec``, ``LLMESR-GRU4Rec``, ``LLMESR-SASRec-noSD``...) of a run record."""
    config = record["config"]
    if record["model"] != "LLMESR":
        return record["model"]
    backbone = config["backbone"]
    matching = [v for v, options in VARIANTS.items() if all(config.get(k) == x for k, x in options.items())]
    variant = max(matching, key=lambda v: len(VARIANTS[v]))  # 'base' over 'noSD' when both match
    return f"LLMESR-{backbone}" + (f"-{variant}" if variant else "")


def prepare_work_dir(args):
    """``<work_dir>/<dataset>/`` with links to the shared files (the augmentor writes next to them)."""
    source = Path(args.data_path).expanduser().resolve() / args.dataset
    target = Path(args.work_dir) / args.dataset
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix[1:] in ("inter", "item", "user", "itememb", "useremb", "simuser") or path.name.endswith(
            ".manifest.json"
        ):
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
        "eval_batch_size": args.eval_batch_size,
        "eval_args": eval_args,
        "show_progress": False,
        "use_gpu": args.device == "gpu",
        "extra_test_modes": args.also_test,
        "checkpoint_dir": str(Path(args.work_dir) / "saved"),
        "results_dir": str(Path(args.work_dir) / "records"),
    } | ({"llmaug_cache_dir": args.llm_cache_dir} if args.llm_cache_dir else {})


# ------------------------------------------------------------------------------------------ child
def child(job):
    import torch

    torch.set_num_threads(job["threads"])
    from recbole_llmaug import quick_start  # noqa: F401  (applies the RecBole compatibility fixes)

    torch.autograd.set_detect_anomaly(False)
    if job["kind"] == "retest":
        Path(job["out"]).write_text(json.dumps(retest_one(job)))
        return
    model, overrides = model_spec(job["name"])
    config_dict = dict(job["config"], **overrides)
    if job["kind"] == "run":
        record = quick_start.run_recbole_llmaug(model=model, dataset=job["dataset"], config_dict=config_dict,
                                                saved=True, augment=not job.get("no_augment", False))
        out = {
            "test_result": {k: float(v) for k, v in record["test_result"].items()},
            "test_group_sizes": record["test_group_sizes"],
            "best_valid_result": {k: float(v) for k, v in record["best_valid_result"].items()},
            "extra_test_results": {mode: {k: float(v) for k, v in extra["result"].items()}
                                   for mode, extra in record["extra_test_results"].items()},
            "seconds_per_epoch": record["timing"]["seconds_per_epoch"],
            "epochs_trained": record["timing"]["epochs_trained"],
            "total_seconds": record["timing"]["total_seconds"],
            "peak_rss_mb": record["peak_memory"]["cpu_rss_mb"],
            "peak_gpu_mb": record["peak_memory"].get("gpu_mb"),
            "device": str(record["config"]["device"]),
        }
    else:
        out = time_epochs(model, job["dataset"], config_dict, job["epochs"], job.get("no_augment", False))
    Path(job["out"]).write_text(json.dumps(out))


def retest_one(job):
    """One run's checkpoint tested again under ``job["modes"]``, with its record's training cost."""
    from recbole_llmaug.quick_start import evaluate_saved_model

    record = json.loads(Path(job["record"]).read_text())
    tests = evaluate_saved_model(record["checkpoint"], modes=job["modes"])
    return {
        "tests": {mode: {"result": {k: float(v) for k, v in test["result"].items()},
                         "group_sizes": test["group_sizes"]} for mode, test in tests.items()},
        "recorded_test_result": record["test_result"],
        "seed": record["config"]["seed"],
        "checkpoint": record["checkpoint"],
        # of the training run, from its record
        "seconds_per_epoch": record["timing"]["seconds_per_epoch"],
        "epochs_trained": record["timing"]["epochs_trained"],
        "peak_rss_mb": record["peak_memory"]["cpu_rss_mb"],
    }


def time_epochs(model_name, dataset_name, config_dict, epochs, no_augment=False):
    """Seconds of each training epoch (RecBole's ``Trainer._train_epoch``, no evaluation)."""
    import torch
    from recbole.data import data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    from recbole_llmaug.config import make_config
    from recbole_llmaug.quick_start import prepare_augmentations
    from recbole_llmaug.utils import create_dataset, get_model

    config = make_config(model_name, dataset_name, config_dict=config_dict)
    model_class = get_model(model_name)
    if not no_augment:
        prepare_augmentations(config)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = model_class(config, train_data._dataset).to(config["device"])
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
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", PYTHONPATH=python_path)
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


def runs_table(results, gpu=False, result_of=lambda run: run["test_result"], empty="pending"):
    header = ["model"] + [f"{g} {m.replace('@10', '')}" for g in GROUPS for m in METRICS] + ["s/epoch", "epochs", "peak RSS MB"]
    if gpu:
        header.append("peak GPU MB")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, runs in results.items():
        state = "failed" if runs else empty
        runs = [r for r in runs if r]
        if not runs:
            lines.append(f"| {name} | " + " | ".join([state] * (len(header) - 1)) + " |")
            continue
        cells = [name]
        for group in GROUPS:
            for metric in METRICS:
                key = metric if group == "all" else f"{group}/{metric}"
                cells.append(mean_std([result_of(r)[key] for r in runs if key in result_of(r)]))
        cells.append(f"{statistics.mean(r['seconds_per_epoch'] for r in runs):.1f}")
        cells.append("/".join(f"{r['epochs_trained']}{'' if r.get('finished', True) else '*'}" for r in runs))
        rss = [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb")]
        cells.append(f"{max(rss):.0f}" if rss else "n/a")
        if gpu:
            cells.append(f"{max(r.get('peak_gpu_mb') or 0 for r in runs):.0f}")
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
    parser.add_argument("command", choices=["timing", "run", "retest", "logs"],
                        help="logs: summarise the run logs under <work_dir>/logs (best validation epoch of each run)")
    parser.add_argument("--models", nargs="+", default=None, help=f"default: {' '.join(MAIN_MODELS + ABLATIONS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=30, help="epoch budget (same for every model)")
    parser.add_argument("--stopping_step", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=256, help="train_batch_size (rows per batch), every model")
    parser.add_argument("--eval_batch_size", type=int, default=512, help="rows per evaluation batch (speed only)")
    parser.add_argument("--protocol", choices=["full", "uni100"], default="full")
    parser.add_argument("--data_path", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--work_dir", default=str(Path(tempfile.gettempdir()) / "recbole_llmaug_bench_llmesr"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="gpu: CUDA when available")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each a subprocess; e.g. 12 on one GPU)")
    parser.add_argument("--also_test", nargs="*", default=[], metavar="MODE",
                        help="run: also test the best model under these eval modes (e.g. uni100)")
    parser.add_argument("--records", nargs="+", default=[], metavar="JSON",
                        help="retest: run records (results_dir/*.json) whose checkpoints to test again")
    parser.add_argument("--modes", nargs="+", default=["full", "uni100"], help="retest: eval modes")
    parser.add_argument("--no_augment", action="store_true",
                        help="use the augmented files already in --work_dir as they are, without the augmentor's "
                             "freshness check (e.g. on a machine that has its outputs but not its inputs or models)")
    parser.add_argument("--llm_cache_dir", default=None, help="llmaug_cache_dir for the augmentor (reuse embeddings)")
    parser.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "results" / "llmesr"))
    args = parser.parse_args()
    if args.command == "logs":
        summarize_logs(args)
        return
    if args.command == "retest":
        retest(args)
        return
    args.work_dir = prepare_work_dir(args)
    if args.command == "timing":
        models = args.models or ["SASRec", "LLMESR-SASRec", "LLMESR-SASRec-batchteacher", "LLMESR-SASRec-prefix",
                                 "GRU4Rec", "LLMESR-GRU4Rec", "BERT4Rec", "LLMESR-BERT4Rec"]
    else:
        models = args.models or MAIN_MODELS + ABLATIONS
    command = "python benchmarks/bench_llmesr.py " + " ".join(sys.argv[1:])
    started = time.time()
    seeds = args.seeds if args.command == "run" else args.seeds[:1]
    # main comparison first, ablations after; seed-major within each: early numbers for every model
    main = [name for name in models if name in MAIN_MODELS]
    rest = [name for name in models if name not in MAIN_MODELS]
    queue = [(seed, name) for group in (main, rest) for seed in seeds for name in group]
    results = {name: [] for name in models} if args.command == "run" else {}
    lock = threading.Lock()

    def one(seed, name):
        print(f"{args.command} {name} seed={seed} ...", flush=True)
        t0 = time.time()
        job = {"kind": args.command, "name": name, "seed": seed, "dataset": args.dataset, "threads": args.threads,
               "epochs": args.epochs, "config": base_config(args, seed), "no_augment": args.no_augment}
        out = spawn(job, args)
        print(f"  {name} seed={seed} done in {time.time() - t0:.0f}s: {json.dumps(out)[:300] if out else 'failed'}",
              flush=True)
        with lock:
            if args.command == "run":
                results[name].append(out)
            else:
                results[name] = out
            write_report(args, command, results, started)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [pool.submit(one, seed, name) for seed, name in queue]:
            future.result()


# ------------------------------------------------------------------------------------------ retest
def retest(args):
    """Each record's checkpoint tested again under ``--modes``, one subprocess per run."""
    records = {path: json.loads(Path(path).read_text()) for path in args.records}
    missing = [path for path, record in records.items() if not record.get("checkpoint")]
    if missing:
        raise SystemExit(f"no checkpoint in {', '.join(missing)} (run with saved=True)")
    order = {name: i for i, name in enumerate(MAIN_MODELS + ABLATIONS)}
    names = sorted({name_of_record(r) for r in records.values()}, key=lambda n: (order.get(n, len(order)), n))
    results = {name: [] for name in names}
    command = "python benchmarks/bench_llmesr.py " + " ".join(sys.argv[1:])
    started = time.time()
    lock = threading.Lock()

    def one(path):
        name, seed = name_of_record(records[path]), records[path]["config"]["seed"]
        print(f"retest {name} seed={seed} ...", flush=True)
        job = {"kind": "retest", "name": name, "seed": seed, "threads": args.threads, "record": path,
               "modes": args.modes}
        out = spawn(job, args)
        with lock:
            results[name].append(out)
            results[name].sort(key=lambda r: r["seed"] if r else 0)
            write_retest_report(args, command, results, started)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [pool.submit(one, path) for path in records]:
            future.result()


def write_retest_report(args, command, results, started):
    path = Path(args.results + "_retest")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"command": command, "results": results}, indent=1))
    body = []
    for mode in args.modes:
        table = runs_table(results, result_of=lambda run, mode=mode: run["tests"][mode]["result"])
        body.append(f"Tested under `{mode}`:\n\n{table}")
    if "full" in args.modes:
        checks = [f"{name} seed {r['seed']}: "
                  + ("identical" if r["tests"]["full"]["result"] == r["recorded_test_result"] else "DIFFERENT")
                  for name, runs in results.items() for r in runs if r]
        body.append("Full ranking again vs the run's recorded test result (the checkpoint is the run's model):\n\n"
                    + "\n".join(f"- {line}" for line in checks))
    what = (f"Saved runs tested again from their checkpoints (no retraining), H@10 / N@10 on the test set, mean ± "
            f"std over the runs' seeds; sampled modes draw their negatives after reseeding with the run's seed. "
            f"s/epoch, epochs and peak RSS are the training runs' own, from their records.")
    text = (f"# LLM-ESR benchmark (retest)\n\n{what}\n\nCommand: `{command}`\n\n" + "\n\n".join(body)
            + f"\n\nElapsed: {time.time() - started:.0f}s\n")
    path.with_suffix(".md").write_text(text)


# ------------------------------------------------------------------------------------------ logs
def best_validation_from_log(text):
    """Grouped metrics of the epoch RecBole keeps (the first best ``valid_score``), epochs and
    seconds per training epoch, read from one run's log."""
    scores = [float(x) for x in re.findall(r"valid_score: ([\d.]+)", text)]
    blocks = re.findall(r"valid result: \n(.*)", text)
    train_seconds = [float(x) for x in re.findall(r"training \[time: ([\d.]+)s", text)]
    if not scores or len(blocks) != len(scores):
        return None
    best = scores.index(max(scores))
    budget = re.search(r"^epochs = (\d+)", text, re.M)
    # training is over when it stopped early, used its whole budget, or the test began
    finished = ("Finished training" in text or "Loading model structure" in text
                or (budget is not None and len(scores) >= int(budget.group(1))))
    result = {k: float(v) for k, v in re.findall(r"([\w/@]+) : ([\d.]+)", blocks[best])}
    return {"best_valid_result": result, "best_epoch": best, "epochs_trained": len(scores),
            "seconds_per_epoch": statistics.mean(train_seconds),
            "finished": finished}


def summarize_logs(args):
    """Validation table over seeds from ``run_<model>_<seed>_<protocol>.log`` files: these numbers
    come from the model in memory during training, so they hold even where a run's test did not."""
    results = {}
    for log in sorted(Path(args.work_dir, "logs").glob(f"run_*_{args.protocol}.log")):
        name, seed = log.stem[len("run_"):-len(f"_{args.protocol}")].rsplit("_", 1)
        summary = best_validation_from_log(log.read_text())
        if summary:
            results.setdefault(name, []).append(dict(summary, seed=int(seed)))
    order = [m for m in MAIN_MODELS + ABLATIONS if m in results] + sorted(set(results) - set(MAIN_MODELS + ABLATIONS))
    results = {name: results[name] for name in order}
    table = runs_table(results, result_of=lambda run: run["best_valid_result"])
    finished = {name: [r for r in runs if r["finished"]] for name, runs in results.items()}
    finished_table = runs_table(finished, result_of=lambda run: run["best_valid_result"], empty="cut short")
    path = Path(args.results + "_valid_from_logs")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(results, indent=1))
    path.with_suffix(".md").write_text(
        f"# Best validation epoch of each run ({args.protocol}), from the logs in {args.work_dir}/logs\n\n"
        f"Mean ± std over the seeds found; 'epochs' lists epochs trained per seed, * where the log ends "
        f"before the run finished (cut short).\n\n{table}\n\nFinished runs only:\n\n{finished_table}\n")
    print(path.with_suffix(".md").read_text())


def write_report(args, command, results, started):
    suffix = "_timing" if args.command == "timing" else ("" if args.protocol == "full" else f"_{args.protocol}")
    path = Path(args.results + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"command": command, "results": results}, indent=1))
    if args.command == "timing":
        body = timing_table(results)
        what = (f"Seconds per training epoch (RecBole `Trainer._train_epoch`, no evaluation), {args.dataset}, "
                f"train_batch_size {args.batch_size}, {args.threads} thread(s), "
                f"{'GPU (CUDA)' if args.device == 'gpu' else 'CPU'}, seed {args.seeds[0]}.")
    else:
        gpu = args.device == "gpu"
        body = runs_table(results, gpu)
        for mode in args.also_test:
            extra = runs_table(results, gpu, result_of=lambda run, mode=mode: run["extra_test_results"][mode])
            body += (f"\n\nThe same best models (selected on `{args.protocol}` validation) tested under `{mode}`:"
                     f"\n\n{extra}")
        where = "GPU (CUDA)" if args.device == "gpu" else "CPU"
        what = (f"{args.dataset}, leave-one-out, protocol `{args.protocol}`, H@10 / N@10 on the test set (best "
                f"validation epoch), mean ± std over seeds {args.seeds}; budget {args.epochs} epochs, early stop after "
                f"{args.stopping_step} epochs without validation gain; train_batch_size {args.batch_size}; {where}, "
                f"{args.threads} CPU thread(s) per run, {args.jobs} run(s) at a time.")
    text = (f"# LLM-ESR benchmark ({args.command})\n\n{what}\n\nCommand: `{command}`\n\n{body}\n\n"
            f"Elapsed: {time.time() - started:.0f}s\n")
    path.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
