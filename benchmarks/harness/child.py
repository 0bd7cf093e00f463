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


def link_from_source(folder: Path, source: Path, files, log=print) -> list:
    """Link into ``folder`` each of ``files`` (``<dataset>.<suffix>`` names) that ``folder`` lacks and the
    harness's ``--data_path`` folder ``source`` has, with its manifest; returns the names linked. (The
    harness links the data files at its start; this also finds the outputs finished since.)

    An output whose lock another process holds in ``source`` (a ``--augment`` pass building it there)
    is waited for first. Without this the run would build it again here, under this folder's own lock,
    from the same cache: every answer not yet cached paid for twice, by two processes at once."""
    from filelock import FileLock, Timeout

    linked = []
    for name in files:
        if (folder / name).exists():
            continue
        lock = source / f".{name}.lock"
        if lock.exists():
            try:
                with FileLock(str(lock), timeout=0):
                    pass
            except Timeout:
                log(f"waiting for {name}: another process is building it in {source}", flush=True)
                with FileLock(str(lock)):
                    pass
        for file in (name, f"{name}.manifest.json"):
            if (source / file).is_file() and not (folder / file).exists():
                (folder / file).symlink_to(source / file)
                linked.append(file)
    return linked


def wait_for_source_outputs(job):
    """:func:`link_from_source` for the outputs (dependencies included) this run's dataset loads."""
    from recbole_llmaug.augment.outputs import expand, get_output
    from recbole_llmaug.config import make_config, settings_from_config
    from recbole_llmaug.data.augmented import augmented_folder_of
    from recbole_llmaug.utils import needed_outputs

    config = make_config(job["model"], job["dataset"], config_dict=job["config"])
    names = expand(list(needed_outputs(config)), settings_from_config(config))
    files = [f"{job['dataset']}.{get_output(name).suffix}" for name in names]
    link_from_source(augmented_folder_of(config), Path(job["source"]), files)


def run_one(job):
    """Train and test one (variant, seed, protocol); the fields the reports read, from its record."""
    from recbole_llmaug.quick_start import run_recbole_llmaug

    if job.get("source") and not job.get("no_augment", False):
        wait_for_source_outputs(job)
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

    from recbole_llmaug.compat import train_epoch
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
        train_epoch(trainer, train_data, epoch)
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
