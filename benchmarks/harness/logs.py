"""Run records rebuilt from RecBole's run logs (``<work_dir>/logs/run_<name>_<seed>_<protocol>.log``):
the validation numbers come from the model in memory during training, so they hold even where a
run's test step or its record did not come back (e.g. a GPU lease that ended mid-run)."""

import re
import statistics
from pathlib import Path


def log_name(kind, name, seed, tag):
    """File name of one child's log: ``<kind>_<variant>_<seed>_<protocol or other tag>.log``."""
    return f"{kind}_{name}_{seed}_{tag}.log"


def best_validation_from_log(text):
    """Grouped metrics of the epoch RecBole keeps (the first best ``valid_score``), epochs and
    seconds per training epoch, read from one run's log; ``None`` before a first validation."""
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
            "seconds_per_epoch": statistics.mean(train_seconds), "finished": finished}


def records_from_logs(log_dir, protocol):
    """One record (``name``, ``seed`` and :func:`best_validation_from_log`'s fields) per run log of
    ``protocol`` in ``log_dir`` that reached a validation."""
    records = []
    suffix = f"_{protocol}.log"
    for log in sorted(Path(log_dir).glob(f"run_*{suffix}")):
        name, seed = log.name[len("run_"):-len(suffix)].rsplit("_", 1)
        summary = best_validation_from_log(log.read_text())
        if summary:
            records.append(dict(summary, name=name, seed=int(seed)))
    return records
