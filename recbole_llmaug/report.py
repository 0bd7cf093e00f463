"""The grouped result table and the per-run JSON record."""

import itertools
import json
import time
from pathlib import Path

from recbole_llmaug.augment.atomic import write_new_file_atomic
from recbole_llmaug.evaluator import GROUP_SEPARATOR


def split_result(result):
    """``{'hit@10': .., 'tail_user/hit@10': ..}`` -> ``{'all': {'hit@10': ..}, 'tail_user': {...}}``."""
    groups = {"all": {}}
    for key, value in (result or {}).items():
        group, _, metric = key.rpartition(GROUP_SEPARATOR)
        groups.setdefault(group or "all", {})[metric] = float(value)
    return groups


def format_grouped_table(result, group_sizes=None, title=None):
    """Plain-text table: one row per group (with its size), one column per metric."""
    groups = split_result(result)
    metrics = list(groups["all"].keys())
    sizes = dict(group_sizes or {})
    sizes.setdefault("all", sum(sizes.get(name, 0) for name in ("tail_user", "head_user")) or None)
    width = max(len(name) for name in groups) + 2
    lines = [title] if title else []
    lines.append(f"{'group':<{width}}{'n':>8}" + "".join(f"{m:>11}" for m in metrics))
    for name, values in groups.items():
        size = sizes.get(name)
        lines.append(
            f"{name:<{width}}{size if size is not None else '-':>8}"
            + "".join(f"{values.get(m, float('nan')):>11.4f}" for m in metrics)
        )
    return "\n".join(lines)


def write_run_record(record, results_dir, model, dataset):
    """Save one run's config, metrics, group sizes and timings as JSON; returns the file path.

    Named ``<model>-<dataset>-<time>.json`` (``-1``, ``-2``... when runs finish in the same second);
    written atomically and never over another run's record, so a reader (a benchmark collecting
    records, a second run) sees either no file or the whole one."""
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(record, indent=2, default=str)
    names = itertools.chain([f"{model}-{dataset}-{stamp}.json"],
                            (f"{model}-{dataset}-{stamp}-{counter}.json" for counter in itertools.count(1)))
    return write_new_file_atomic(text, (folder / name for name in names), temp_for=folder / f"{model}-{dataset}.json")
