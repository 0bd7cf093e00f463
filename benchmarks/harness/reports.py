"""Markdown and JSON reports built from run records alone (no spec, no process: a later comparison
across systems builds its tables from records it loads).

A *run record* is a dict with at least ``name`` (the variant) and, for a finished run, the numbers:

* ``run``: ``seed``, ``protocol``, ``test_result`` (``{"hit@10": .., "tail_user/hit@10": .., ...}``),
  ``best_valid_result``, ``extra_test_results`` (``{mode: result}``), ``seconds_per_epoch``,
  ``epochs_trained``, ``peak_rss_mb``, ``peak_gpu_mb`` and optionally ``finished`` (False: cut short).
* ``retest``: ``seed``, ``tests`` (``{mode: {"result": .., "group_sizes": ..}}``),
  ``recorded_test_result`` and ``recorded_mode`` (the training run's own test and its eval mode;
  ``full`` when absent) and the training run's cost fields.
* ``timing``: ``epoch_seconds`` (a list), ``train_rows``, ``batches``, ``params``, ``peak_rss_mb``.

A run that failed is ``{"name": .., "seed": .., "failed": True}``. A variant expected (``names``)
with no record at all is *pending*.
"""

import json
import statistics
from pathlib import Path

from benchmarks.harness.spec import GROUPS, METRICS


def result_key(group, metric):
    """Key of ``metric`` for ``group`` in a grouped result (``all`` is the ungrouped metric)."""
    return metric if group == "all" else f"{group}/{metric}"


def primary_test(record):
    """A ``run`` record's test result under its own protocol (the default ``result_of``)."""
    return record["test_result"]


def by_name(records, names=None):
    """``{name: [records]}``: the ``names`` first, in their order (a name without records maps to
    ``[]``: pending), then other names in the order they first appear."""
    grouped = {name: [] for name in names or []}
    for record in records:
        grouped.setdefault(record["name"], []).append(record)
    return grouped


def pair_by_seed(base, system):
    """``[(base value, system value)]`` from two lists of ``(seed, value)``: matched by seed when every
    entry names one (a gain is never a difference of seeds: a system with one seed so far meets its
    backbone's run of that seed), else by position (older records without seeds, in run order).
    The one pairing rule of every report that sets a system against its backbone."""
    if all(seed is not None for seed, _ in base + system):
        by_seed = dict(base)
        return [(by_seed[seed], value) for seed, value in system if seed in by_seed]
    return [(b, s) for (_, b), (_, s) in zip(base, system)]


def records_from_results(results):
    """A report's JSON ``results`` (``{name: [run or null]}``, older reports: null for a failed run
    and no ``name`` in the run) -> a flat list of run records."""
    return [dict(run, name=name) if run else {"name": name, "failed": True}
            for name, runs in results.items() for run in runs]


def read_records(path):
    """The run records of a report's JSON file (``<results>.json``)."""
    return records_from_results(json.loads(Path(path).read_text())["results"])


def summarize(records, names=None, result_of=primary_test, groups=GROUPS, metrics=METRICS):
    """Per variant: the runs and seeds counted, mean and spread of each (group, metric) over them,
    mean seconds per epoch, epochs per run, peak memory.

    ``std`` is the sample standard deviation over runs (n - 1 in the denominator: a handful of seeds
    is a sample of the seeds one could draw), ``None`` for a single run. A metric a run lacks is left
    out of that metric's mean (``n`` counts the runs in it)."""
    summary = {}
    for name, runs in by_name(records, names).items():
        done = [run for run in runs if not run.get("failed")]
        cells = {}
        for group in groups:
            for metric in metrics:
                key = result_key(group, metric)
                values = [float(result_of(run)[key]) for run in done if key in result_of(run)]
                cells[key] = {
                    "mean": statistics.mean(values) if values else None,
                    "std": statistics.stdev(values) if len(values) > 1 else None,
                    "n": len(values),
                }
        seconds = [run["seconds_per_epoch"] for run in done if run.get("seconds_per_epoch") is not None]
        rss = [run["peak_rss_mb"] for run in done if run.get("peak_rss_mb")]
        gpu = [run["peak_gpu_mb"] for run in done if run.get("peak_gpu_mb")]
        summary[name] = {
            "runs": len(done),
            "failed": len(runs) - len(done),
            "seeds": [run.get("seed") for run in done],
            "metrics": cells,
            "seconds_per_epoch": statistics.mean(seconds) if seconds else None,
            "epochs": [f"{run.get('epochs_trained')}{'' if run.get('finished', True) else '*'}" for run in done],
            "peak_rss_mb": max(rss) if rss else None,
            "peak_gpu_mb": max(gpu) if gpu else None,
        }
    return summary


def mean_std(cell):
    """``0.0412 ± 0.0010``; one run: its value; none: ``n/a``."""
    if not cell["n"]:
        return "n/a"
    if cell["std"] is None:
        return f"{cell['mean']:.4f}"
    return f"{cell['mean']:.4f} ± {cell['std']:.4f}"


def runs_table(records, names=None, result_of=primary_test, groups=GROUPS, metrics=METRICS, gpu=False,
               empty="pending"):
    """Markdown table, one row per variant: mean ± std over its runs of each group's metrics, mean
    s/epoch, epochs of each run (``*``: cut short), max peak RSS (and GPU) memory. A variant with no
    record reads ``empty`` in every cell, one whose runs all failed ``failed``."""
    same_cutoff = all(metric.endswith("@10") for metric in metrics)  # then "hit", "ndcg"; else the cut-offs shown
    header = (["model"] + [f"{group} {metric.removesuffix('@10') if same_cutoff else metric}"
                           for group in groups for metric in metrics]
              + ["s/epoch", "epochs", "peak RSS MB"] + (["peak GPU MB"] if gpu else []))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    summary = summarize(records, names, result_of, groups, metrics)
    for name, row in summary.items():
        if not row["runs"]:
            state = "failed" if row["failed"] else empty
            lines.append(f"| {name} | " + " | ".join([state] * (len(header) - 1)) + " |")
            continue
        cells = [name] + [mean_std(row["metrics"][result_key(g, m)]) for g in groups for m in metrics]
        cells.append(f"{row['seconds_per_epoch']:.1f}" if row["seconds_per_epoch"] is not None else "n/a")
        cells.append("/".join(row["epochs"]))
        cells.append(f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "n/a")
        if gpu:
            cells.append(f"{row['peak_gpu_mb']:.0f}" if row["peak_gpu_mb"] else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing_table(records, reference=None):
    """Markdown table of ``timing`` records: median s/epoch and its ratio to ``reference``'s (no ratio
    column without a reference)."""
    grouped = by_name(records)
    base = [r for r in grouped.get(reference, []) if not r.get("failed")]
    base_s = statistics.median(base[0]["epoch_seconds"]) if base else None
    ratio_header = f" x {reference} |" if reference else ""
    lines = [f"| model | s/epoch (median) | epochs timed |{ratio_header} train rows | batches | trainable params "
             f"| peak RSS MB |", "|---|---|---|" + ("---|" if reference else "") + "---|---|---|---|"]
    for name, runs in grouped.items():
        done = [run for run in runs if not run.get("failed")]
        if not done:
            lines.append(f"| {name} | failed |" + " |" * (6 if reference else 5))
            continue
        r = done[0]
        s = statistics.median(r["epoch_seconds"])
        ratio = (f" {s / base_s:.2f} |" if base_s else " n/a |") if reference else ""
        lines.append(f"| {name} | {s:.1f} | {len(r['epoch_seconds'])} |{ratio} {r['train_rows']} | "
                     f"{r['batches']} | {r['params']} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def recorded_mode(record):
    """The eval mode of a retested run's own test (``full`` for records that predate the field)."""
    return record.get("recorded_mode", "full")


def reproduces(record):
    """Whether retesting a run under its own test mode gave its recorded test result again: every
    metric, to the last digit (same checkpoint, data and seed: anything else is a bug); ``None``
    when that mode was not among the retested ones."""
    mode = recorded_mode(record)
    if mode not in record["tests"]:
        return None
    return record["tests"][mode]["result"] == record["recorded_test_result"]


def reproduction_lines(records, names=None):
    """``- <name> seed <seed>: identical`` (or ``DIFFERENT``) for each retested run; the mode follows the
    seed for a run whose own test was not full ranking."""
    lines = []
    for name, runs in by_name(records, names).items():
        for run in runs:
            if run.get("failed"):
                continue
            mode = recorded_mode(run)
            verdict = {True: "identical", False: "DIFFERENT", None: f"not checked (not retested under `{mode}`)"}
            lines.append(f"- {name} seed {run['seed']}{'' if mode == 'full' else f' (`{mode}`)'}: "
                         f"{verdict[reproduces(run)]}")
    return lines


# ------------------------------------------------------------------------------------ whole reports
def run_report(records, *, title, command, description, protocol, names=None, also_test=(), gpu=False,
               groups=GROUPS, metrics=METRICS, extra_tables=(), elapsed=None):
    """Markdown of a ``run``: the test table, the ``extra_tables`` (``(caption, groups, metrics)``: other
    columns of the same test results), then one table per ``also_test`` mode (same models)."""
    body = runs_table(records, names, groups=groups, metrics=metrics, gpu=gpu)
    for caption, table_groups, table_metrics in extra_tables:
        body += f"\n\n{caption}:\n\n" + runs_table(records, names, groups=table_groups, metrics=table_metrics, gpu=gpu)
    for mode in also_test:
        extra = runs_table(records, names, result_of=lambda run, mode=mode: run["extra_test_results"][mode],
                           groups=groups, metrics=metrics, gpu=gpu)
        body += f"\n\nThe same best models (selected on `{protocol}` validation) tested under `{mode}`:\n\n{extra}"
    return _page(f"{title} benchmark (run)", description, command, body, elapsed)


def retest_report(records, *, title, command, modes, names=None, groups=GROUPS, metrics=METRICS, elapsed=None,
                  kept_commands=()):
    """Markdown of a ``retest``: one table per mode and, when the runs' own test modes are among them,
    whether each run's recorded test result came out again. ``kept_commands``: the earlier retests whose
    runs the report keeps beside this command's (``runner.earlier_retests``)."""
    body = []
    for mode in modes:
        table = runs_table(records, names, result_of=lambda run, mode=mode: run["tests"][mode]["result"],
                           groups=groups, metrics=metrics)
        body.append(f"Tested under `{mode}`:\n\n{table}")
    own_modes = {recorded_mode(run) for run in records if not run.get("failed")}
    if own_modes & set(modes):
        what = "Full ranking" if own_modes == {"full"} else "Each run's own test protocol"
        body.append(f"{what} again vs the run's recorded test result (the checkpoint is the run's model):\n\n"
                    + "\n".join(reproduction_lines(records, names)))
    description = ("Saved runs tested again from their checkpoints (no retraining), H@10 / N@10 on the test set, "
                   "mean ± std over the runs' seeds; sampled modes draw their negatives after reseeding with the "
                   "run's seed. s/epoch, epochs and peak RSS are the training runs' own, from their records.")
    if kept_commands:
        description += " With the runs an earlier retest tested (their variants and seeds not retested since): " + \
            "; ".join(f"`{kept}`" for kept in kept_commands) + "."
    return _page(f"{title} benchmark (retest)", description, command, "\n\n".join(body), elapsed)


def timing_report(records, *, title, command, description, reference=None, elapsed=None):
    return _page(f"{title} benchmark (timing)", description, command, timing_table(records, reference), elapsed)


def logs_report(records, *, protocol, source, names=None, groups=GROUPS, metrics=METRICS):
    """Markdown of the best validation epoch of each run read from logs, all runs then finished ones."""
    valid = lambda run: run["best_valid_result"]  # noqa: E731
    table = runs_table(records, names, result_of=valid, groups=groups, metrics=metrics)
    finished = [run for run in records if run.get("finished", True)]
    finished_table = runs_table(finished, list(by_name(records, names)), result_of=valid, groups=groups,
                                metrics=metrics, empty="cut short")
    return (f"# Best validation epoch of each run ({protocol}), from the logs in {source}\n\n"
            f"Mean ± std over the seeds found; 'epochs' lists epochs trained per seed, * where the log ends "
            f"before the run finished (cut short).\n\n{table}\n\nFinished runs only:\n\n{finished_table}\n")


def _page(heading, description, command, body, elapsed):
    tail = f"\n\nElapsed: {elapsed:.0f}s\n" if elapsed is not None else "\n"
    return f"# {heading}\n\n{description}\n\nCommand: `{command}`\n\n{body}{tail}"


def write_report(stem, markdown, payload):
    """``<stem>.md`` and ``<stem>.json`` (``payload``: the command and the records by name)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_name(stem.name + ".json").write_text(json.dumps(payload, indent=1))
    stem.with_name(stem.name + ".md").write_text(markdown)
    return stem.with_name(stem.name + ".md")
