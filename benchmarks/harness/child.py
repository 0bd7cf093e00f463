"""One benchmark job in its own process: ``python benchmarks/harness/child.py '<job JSON>'``.

A fresh process per run makes peak memory (``ru_maxrss``) that run's own and keeps a crash or an
out-of-memory kill to one run. The job carries everything resolved (model class, full config dict),
so this file needs no spec. It writes its result as JSON to ``job["out"]``; its stdout and stderr
(RecBole's log) go to the job's log file.

Job kinds: ``run`` (train and test with ``run_recbole_llmaug``), ``timing`` (seconds of bare training
epochs) and ``retest`` (a saved checkpoint tested again with ``evaluate_saved_model``).
"""

import json
import resource
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def floats(result):
    """RecBole's result values (numpy or torch scalars) as plain floats, for JSON."""
    return {key: float(value) for key, value in result.items()}


def run_one(job):
    """Train and test one (variant, seed, protocol); the fields the reports read, from its record."""
    from recbole_llmaug.quick_start import run_recbole_llmaug

    record = run_recbole_llmaug(model=job["model"], dataset=job["dataset"], config_dict=job["config"],
                                saved=True, augment=not job.get("no_augment", False))
    return {
        "test_result": floats(record["test_result"]),
        "test_group_sizes": record["test_group_sizes"],
        "best_valid_result": floats(record["best_valid_result"]),
        "extra_test_results": {mode: floats(extra["result"]) for mode, extra in record["extra_test_results"].items()},
        "seconds_per_epoch": record["timing"]["seconds_per_epoch"],
        "epochs_trained": record["timing"]["epochs_trained"],
        "total_seconds": record["timing"]["total_seconds"],
        "peak_rss_mb": record["peak_memory"]["cpu_rss_mb"],
        "peak_gpu_mb": record["peak_memory"].get("gpu_mb"),
        "device": str(record["config"]["device"]),
        "record_file": record.get("results_file"),
    }


def tested_mode(config):
    """The eval mode a run tested under, from its record's config (RecBole keeps ``mode`` as one string
    or as ``{"valid": .., "test": ..}``)."""
    mode = config["eval_args"]["mode"]
    return mode["test"] if isinstance(mode, dict) else mode


def retest_one(job):
    """One run's checkpoint tested again under ``job["modes"]``, with its record's training cost."""
    from recbole_llmaug.quick_start import evaluate_saved_model

    record = json.loads(Path(job["record"]).read_text())
    tests = evaluate_saved_model(record["checkpoint"], modes=job["modes"])
    return {
        "tests": {mode: {"result": floats(test["result"]), "group_sizes": test["group_sizes"]}
                  for mode, test in tests.items()},
        "recorded_test_result": record["test_result"],
        "recorded_mode": tested_mode(record["config"]),
        "seed": record["config"]["seed"],
        "checkpoint": record["checkpoint"],
        # of the training run, from its record
        "seconds_per_epoch": record["timing"]["seconds_per_epoch"],
        "epochs_trained": record["timing"]["epochs_trained"],
        "peak_rss_mb": record["peak_memory"]["cpu_rss_mb"],
    }


def time_epochs(job):
    """Seconds of each training epoch (the run's trainer's ``_train_epoch``, no evaluation), on the
    same data and batch size for every model."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_llmaug.config import make_config
    from recbole_llmaug.quick_start import prepare_augmentations
    from recbole_llmaug.utils import create_dataset, get_model, get_trainer

    config = make_config(job["model"], job["dataset"], config_dict=job["config"])
    model_class = get_model(job["model"])
    if not job.get("no_augment", False):
        prepare_augmentations(config)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = model_class(config, train_data.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)  # the run's own trainer
    seconds = []
    for epoch in range(job["epochs"]):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch)
        seconds.append(time.perf_counter() - start)
    return {
        "epoch_seconds": seconds,
        "train_rows": len(train_data.dataset),
        "batches": len(train_data),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "rss_before_model_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


KINDS = {"run": run_one, "timing": time_epochs, "retest": retest_one}


def main(job):
    import torch

    torch.set_num_threads(job["threads"])
    from recbole_llmaug import quick_start  # noqa: F401  (applies the RecBole compatibility fixes first)

    Path(job["out"]).write_text(json.dumps(KINDS[job["kind"]](job)))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
