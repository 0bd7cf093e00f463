"""What a search leaves behind: the table of trials (``trials.md``, ``trials.csv``) and ``best_config.yaml``.

Trials are sorted best first by their best validation score (``valid_metric_bigger`` decides the direction;
trials without a score go last), and the best trial that did not fail gives ``best_config.yaml``: the user's
fixed settings plus that trial's values, usable as ``--config_files=best_config.yaml``.
"""

import csv
import io
import math
from pathlib import Path

import yaml

from recbole_llmaug.config import read_yaml
from recbole_llmaug.errors import UserError
from recbole_llmaug.tune.space import NOT_SEARCHABLE, plain

__all__ = ["trial_rows", "format_trials_table", "user_fixed_settings", "write_report"]

# Keys of the best-config yaml that describe the machine or the search rather than the model.
_NOT_IN_BEST_CONFIG = set(NOT_SEARCHABLE) - {"use_gpu"}


def _fmt(value, spec=".4f"):
    """A table cell: metrics as ``.4f``, parameters as ``.4g``; missing values as '-'."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else format(value, spec)
    return "-" if value is None else str(value)


def trial_rows(result_grid, param_names):
    """One row per trial of Ray's ``ResultGrid``: ``{trial, status, params, epochs, best_valid_score, metrics,
    path, error}``; status is 'error' (it raised), 'done' (it reached its test) or 'stopped' (by ASHA)."""
    rows = []
    for result in result_grid:
        metrics = dict(result.metrics or {})
        trial_path = Path(result.path) if getattr(result, "path", None) else None
        if result.error is not None:
            status = "error"
        elif any(key.startswith("test/") for key in metrics):
            status = "done"
        else:
            status = "stopped"
        rows.append({
            "trial": metrics.get("trial_id") or (trial_path.name if trial_path else "?"),
            "status": status,
            "params": {key: plain(result.config.get(key)) for key in param_names},
            "epochs": metrics.get("epoch"),
            "best_valid_score": metrics.get("best_valid_score"),
            "metrics": {key: value for key, value in metrics.items() if key.startswith(("test/", "valid/"))},
            "path": str(trial_path) if trial_path else "",
            "error": result.error,
        })
    return rows


def _sort_rows(rows, bigger):
    """Best validation score first (largest if ``bigger``); rows without a score (None or NaN) last."""
    def key(row):
        score = row["best_valid_score"]
        if score is None or (isinstance(score, float) and math.isnan(score)):
            return (1, 0.0)
        return (0, -score if bigger else score)

    return sorted(rows, key=key)


def _table_metric_keys(rows, settings):
    """Test columns of the printed table: overall and the tail groups, for the metrics@topk of the run."""
    present = {key for row in rows for key in row["metrics"]}
    metrics = [m.lower() for m in (settings.get("metrics") or [])]
    topk = settings.get("topk") or [10]
    topk = topk if isinstance(topk, list) else [topk]
    names = [f"{m}@{k}" for k in topk for m in metrics] or sorted(
        {key.rsplit("/", 1)[-1] for key in present if key.startswith("test/")}
    )
    columns = []
    for group in ("", "tail_user/", "tail_item/"):
        columns += [f"test/{group}{name}" for name in names if f"test/{group}{name}" in present]
    return columns


def format_trials_table(rows, param_names, metric_keys, valid_metric):
    """Markdown table of the trials, in the order of ``rows`` (sorted best first by :func:`write_report`)."""
    header = ["trial", "status"] + list(param_names) + ["epochs", f"valid {valid_metric}"]
    header += [key[len("test/"):].replace("/", " ") if "/" in key[len("test/"):] else f"test {key[5:]}"
               for key in metric_keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [row["trial"], row["status"]]
        cells += [_fmt(row["params"].get(name), ".4g") for name in param_names]
        cells += [_fmt(row["epochs"]), _fmt(row["best_valid_score"])]
        cells += [_fmt(row["metrics"].get(key)) for key in metric_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_csv(path, rows, param_names):
    metric_keys = sorted({key for row in rows for key in row["metrics"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "status"] + list(param_names) + ["epochs", "best_valid_score"] + metric_keys
                    + ["trial_dir"])
    for row in rows:
        writer.writerow([row["trial"], row["status"]] + [row["params"].get(name) for name in param_names]
                        + [row["epochs"], row["best_valid_score"]] + [row["metrics"].get(k) for k in metric_keys]
                        + [row["path"]])
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _write_best_config(path, best, fixed, model, dataset, valid_metric, space_file, metric_keys):
    """Flat ``key: value`` yaml of the user's fixed settings and the best trial's values."""

    def dump(mapping):  # one 'key: value' line per setting (lists and dicts inline)
        return "".join(yaml.safe_dump({key: plain(value)}, default_flow_style=True, width=10**6)[1:-2] + "\n"
                       for key, value in mapping.items())

    scores = ", ".join(f"{key[5:]} = {best['metrics'][key]:.4f}" for key in metric_keys if key in best["metrics"])
    lines = [
        f"# Best hyperparameters found by Ray Tune for {model} on {dataset} (search space: {space_file}).",
        f"# Trial {best['trial']}: best valid {valid_metric} = {_fmt(best['best_valid_score'])}"
        f" after {best['epochs']} epoch(s); test: {scores or 'not evaluated'}.",
        f"# Run it: python run_recbole_llmaug.py --model={model} --dataset={dataset} --config_files={path}",
        "",
    ]
    text = "\n".join(lines)
    if fixed:
        text += "# Settings fixed for every trial of the search\n" + dump(fixed)
    text += "# Searched settings: the best trial's values\n" + dump(best["params"])
    path.write_text(text, encoding="utf-8")


def user_fixed_settings(settings, config_file_list, config_dict):
    """The settings the user gave for the search (--config_files, --key=value), for the best config yaml."""
    names = set(config_dict or {})
    for path in config_file_list or []:
        names |= set(read_yaml(path))
    return {key: settings[key] for key in settings if key in names and key not in _NOT_IN_BEST_CONFIG}


def write_report(output, experiment_dir, rows, param_names, settings, fixed, valid_metric, bigger, space_path):
    """Write ``trials.md``, ``trials.csv`` and ``best_config.yaml`` into ``output``; returns run_tune's result.

    ``rows`` come from :func:`trial_rows` in any order; ``settings`` are the search's merged settings (model,
    dataset, metrics, topk); ``fixed`` the user's own settings for the best config (:func:`user_fixed_settings`).
    Raises UserError (after writing the table) when no trial has a validation score to pick the best by.
    """
    output = Path(output)
    model, dataset = settings["model"], settings["dataset"]
    param_names = list(param_names)
    rows = _sort_rows(rows, bigger)
    metric_keys = _table_metric_keys(rows, settings)
    table = format_trials_table(rows, param_names, metric_keys, valid_metric)
    (output / "trials.md").write_text(
        f"# Ray Tune search: {model} on {dataset} ({space_path})\n\n{table}\n", encoding="utf-8"
    )
    _write_csv(output / "trials.csv", rows, param_names)

    candidates = [row for row in rows if row["status"] != "error" and row["best_valid_score"] is not None]
    if not candidates:
        first = next((row for row in rows if row["error"] is not None), None)
        detail = (f" The first error: {str(first['error']).strip().splitlines()[-1]} (details in its trial folder "
                  f"{first['path']})." if first else "")
        raise UserError(
            f"{'All' if first else 'None of the'} {len(rows)} trial(s) of the search "
            f"{'failed' if first else 'reported a validation score'}; see {output / 'trials.md'}.{detail} "
            f"Fix the cause and run again with --resume (failed trials are retried with the same sampled values), "
            f"or delete '{output}' to start afresh (needed after changing the search space)."
        )
    best = candidates[0]
    best_file = output / "best_config.yaml"
    _write_best_config(best_file, best, fixed, model, dataset, valid_metric, space_path, metric_keys)
    return {
        "best_config_file": str(best_file),
        "trials_table": table,
        "results_dir": str(output),
        "experiment_dir": str(experiment_dir),
        "trials_csv": str(output / "trials.csv"),
        "trials_markdown": str(output / "trials.md"),
        "best_params": dict(best["params"]),
        "best_valid_score": best["best_valid_score"],
        "best_test_result": {k[5:]: v for k, v in best["metrics"].items() if k.startswith("test/")},
        "num_trials": len(rows),
        "num_errors": sum(row["status"] == "error" for row in rows),
    }
