"""Hyperparameter search with Ray Tune (``run_recbole_llmaug.py --tune=properties/hyper/<Model>.yaml``).

One search = one model on one dataset. Each trial runs :func:`recbole_llmaug.quick_start.objective_function`
and reports the validation score after every epoch (RecBole's ``callback_fn``), so the ASHA scheduler can stop
poor trials early; when a trial finishes it reports the best validation score and the grouped test metrics
(overall, tail/head users and items, ...) as flat keys such as ``test/tail_item/ndcg@10``.

Search space file (yaml), one line per searched setting, plus an optional ``tune:`` section::

    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}   # log-uniform in [low, high)
    hidden_dropout_prob: {uniform: [0.1, 0.5]}      # uniform in [low, high)
    n_layers: {choice: [1, 2, 3]}                   # one of the listed values (any yaml value)
    hidden_size: {randint: [32, 129]}               # integer in [low, high), high excluded
    tune:
      num_samples: 20         # trials to run
      max_epochs: 50          # epochs per trial (ASHA's max_t); --epochs=N on the command line overrides it
      grace_period: 5         # ASHA: epochs every trial runs before it can be stopped
      reduction_factor: 2     # ASHA: keep the best 1/reduction_factor of trials at each rung
      cpus_per_trial: 1       # Ray resources per trial; trials run in parallel as resources allow
      gpus_per_trial: 0       # 0: trials train on CPU; > 0 (fractions allowed): trials use their CUDA device(s)
      max_concurrent_trials: 0  # 0: no limit beyond resources
      search_alg: random      # random | optuna | hyperopt (the last two need `pip install optuna` / `hyperopt`)
      num_cpus: ~             # CPUs of the Ray instance started in-process (~ = all); ignored with --ray-address
      ray_temp_dir: ~         # Ray's temp folder, <= 40 characters (~ = <tmp>/ray-llmaug-<uid> when Ray starts
                              # in-process; with --ray-address, ~ = Ray's default, the one the cluster's node uses)

Local or cluster: without ``ray_address`` Ray starts in-process (``num_cpus``, ``ray_temp_dir``) and stops at
the end; with it (``--ray-address=auto`` on a cluster node, ``<head>:6379``, ``ray://<head>:10001``) the trials
run on the cluster, which needs the same Python packages (recbole, torch) and the data at the same absolute
path on every node; this package itself is shipped to the workers (``runtime_env`` ``py_modules``). Settings
are merged in the driver (property files, --config_files, --key=value; relative paths resolved against the
driver's directory) and sent to the trials, which neither read the property files nor depend on the
driver's directory. Each trial runs in its own folder in a fresh worker process, on CPU unless
``gpus_per_trial`` > 0, without progress bars.

``--resume`` continues an interrupted search from the output folder: finished trials are kept, unfinished
ones start again from epoch 1, failed ones are retried (with the same sampled values: a changed space needs
a new output folder).

Layout of the output folder (default ``<cwd>/ray_results/<model>-<dataset>``)::

    trials/                 Ray's experiment folder (one sub-folder per trial, with RecBole's saved/ and
                            results/ of that trial); --resume continues from it
    trials.md, trials.csv   the table of trials (params, best valid score, test overall and tail groups)
    best_config.yaml        the best trial's settings, usable as --config_files=best_config.yaml
"""

import csv
import difflib
import io
import logging
import math
import numbers
import os
import tempfile
from pathlib import Path

import yaml

from recbole_llmaug.config import load_settings, read_yaml
from recbole_llmaug.errors import UserError

logger = logging.getLogger(__name__)

EXPERIMENT_NAME = "trials"
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
SEARCH_ALGORITHMS = ("random", "optuna", "hyperopt")
TUNE_DEFAULTS = {
    "num_samples": 10,
    "max_epochs": None,  # None: the run's ``epochs`` setting
    "grace_period": 1,
    "reduction_factor": 2,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "max_concurrent_trials": 0,
    "search_alg": "random",
    "num_cpus": None,
    "ray_temp_dir": None,
}
# Settings a space may not search, and why.
_NOT_SEARCHABLE = {
    "model": "one search covers one model; pass it with --model",
    "dataset": "one search covers one dataset; pass it with --dataset",
    "data_path": "it is where the data is, not a hyperparameter",
    "checkpoint_dir": "each trial writes its checkpoint inside its own trial folder",
    "results_dir": "each trial writes its results inside its own trial folder",
    "epochs": "the number of epochs per trial is 'max_epochs' in the 'tune:' section (or --epochs)",
    "gpu_id": "devices are assigned by Ray from 'gpus_per_trial' in the 'tune:' section",
    "use_gpu": "devices are assigned by Ray from 'gpus_per_trial' in the 'tune:' section",
    "show_progress": "progress bars are switched off in trials",
}
# Keys of the best-config yaml that describe the machine or the search rather than the model.
_NOT_IN_BEST_CONFIG = set(_NOT_SEARCHABLE) - {"use_gpu"}
_MAX_RAY_TEMP_DIR = 40  # Ray puts unix sockets ~65 characters below it; sockets allow 107


# ------------------------------------------------------------------------------------------ space file


def _plain(value):
    """numpy scalars/arrays (what Ray's samplers return) as plain Python values, for RecBole and yaml."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_distribution(path, key, spec):
    """One ``key: {dist: args}`` entry of the space; returns ``(dist, args)`` or raises UserError."""
    example = f"e.g. '{key}: {{choice: [1, 2, 3]}}' or '{key}: {{loguniform: [1.0e-4, 1.0e-2]}}'"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(
            f"Search space '{path}': '{key}' must be one distribution written as {{kind: arguments}} with kind "
            f"one of {', '.join(DISTRIBUTIONS)} ({example}); got {spec!r}. To fix a value for every trial, put it "
            "in a --config_files yaml or pass --key=value instead."
        )
    (dist, args), = spec.items()
    if dist not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(dist), DISTRIBUTIONS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UserError(
            f"Search space '{path}': unknown distribution '{dist}' for '{key}'.{hint} "
            f"Use one of {', '.join(DISTRIBUTIONS)} ({example})."
        )
    if dist == "choice":
        if not isinstance(args, list) or not args:
            raise UserError(
                f"Search space '{path}': 'choice' for '{key}' needs a non-empty list of values, "
                f"e.g. '{key}: {{choice: [64, 128]}}'; got {args!r}."
            )
        return dist, args
    if not isinstance(args, list) or len(args) != 2 or not all(_is_number(a) for a in args):
        raise UserError(
            f"Search space '{path}': '{dist}' for '{key}' needs two numbers [low, high], "
            f"e.g. '{key}: {{{dist}: [{'1.0e-4, 1.0e-2' if dist == 'loguniform' else '1, 4'}]}}'; got {args!r}."
        )
    low, high = args
    if not low < high:
        raise UserError(f"Search space '{path}': '{dist}' for '{key}' needs low < high; got [{low}, {high}].")
    if dist == "loguniform" and low <= 0:
        raise UserError(
            f"Search space '{path}': 'loguniform' for '{key}' needs 0 < low < high (it samples the logarithm); "
            f"got [{low}, {high}]. Use 'uniform' for ranges that include 0."
        )
    if dist == "randint" and not (_is_int(low) and _is_int(high)):
        raise UserError(
            f"Search space '{path}': 'randint' for '{key}' needs two integers [low, high) (high excluded); "
            f"got [{low}, {high}]. Use 'uniform' for real numbers."
        )
    return dist, [low, high]


def _check_tune_settings(where, section):
    """The ``tune:`` section (or ``tune_settings``): known keys and sensible values."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise UserError(f"{where}: 'tune' must hold 'key: value' settings such as 'num_samples: 20'; got {section!r}.")
    unknown = [key for key in section if key not in TUNE_DEFAULTS]
    if unknown:
        close = {k: difflib.get_close_matches(str(k), TUNE_DEFAULTS, n=1) for k in unknown}
        hints = "".join(f" ('{k}': did you mean '{c[0]}'?)" for k, c in close.items() if c)
        raise UserError(
            f"{where}: unknown search setting(s) {', '.join(map(repr, unknown))} in 'tune'{hints}. "
            f"Known settings: {', '.join(TUNE_DEFAULTS)}."
        )

    def need(key, ok, what):
        value = section[key]
        if not ok(value):
            raise UserError(f"{where}: tune setting '{key}' must be {what}; got {value!r}.")

    checks = {
        "num_samples": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
        "max_epochs": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1"),
        "grace_period": (lambda v: _is_int(v) and v >= 1, "an integer >= 1 (epochs)"),
        "reduction_factor": (lambda v: _is_number(v) and v > 1, "a number > 1"),
        "cpus_per_trial": (lambda v: _is_number(v) and v > 0, "a number > 0"),
        "gpus_per_trial": (lambda v: _is_number(v) and v >= 0, "a number >= 0 (fractions share a GPU)"),
        "max_concurrent_trials": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: no limit)"),
        "search_alg": (lambda v: v in SEARCH_ALGORITHMS, f"one of {', '.join(SEARCH_ALGORITHMS)}"),
        "num_cpus": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1, or ~ for all CPUs"),
        "ray_temp_dir": (lambda v: v is None or isinstance(v, str), "a folder path, or ~"),
    }
    for key in section:
        need(key, *checks[key])
    return dict(section)


def read_space(space_file):
    """Read a search space file: ``({param: (dist, args)}, {tune setting: value})``. Raises UserError."""
    path = Path(space_file).expanduser()
    if not path.is_file():
        raise UserError(f"Search space file '{space_file}' does not exist. Ship one under properties/hyper/ "
                        "(see properties/hyper/SASRec.yaml) and pass its path to --tune.")
    content = read_yaml(path)
    tune_section = _check_tune_settings(f"Search space '{path}'", content.pop("tune", None))
    params = {key: _check_distribution(path, key, spec) for key, spec in content.items()}
    if not params:
        raise UserError(
            f"Search space '{path}' is empty: it names no setting to search. Add one line per hyperparameter, "
            "e.g. 'learning_rate: {loguniform: [1.0e-4, 1.0e-2]}' (see properties/hyper/SASRec.yaml)."
        )
    return params, tune_section


def known_keys(settings, config):
    """Every setting a space may name: our merged property files, RecBole's ``Config`` and argument lists."""
    from recbole.utils import argument_list

    from recbole_llmaug.options import declared

    keys = set(settings) | set(config.final_config_dict) | set(declared())
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys |= set(getattr(argument_list, name, []))
    return keys


def check_space(params, settings, config, space_file=""):
    """Names in the space must be settings this model/dataset knows, and searchable; raises UserError."""
    from recbole_llmaug.options import augment_stage_keys

    known = known_keys(settings, config)
    model = settings.get("model")
    for key, (dist, _args) in params.items():
        if key in _NOT_SEARCHABLE:
            raise UserError(f"Search space '{space_file}': '{key}' cannot be searched: {_NOT_SEARCHABLE[key]}.")
        if key in augment_stage_keys():
            raise UserError(
                f"Search space '{space_file}': '{key}' is an augmentation/LLM setting; it changes the augmented "
                "files every trial shares, so it cannot be searched. Build each variant with --augment and run "
                "one search per variant."
            )
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UserError(
                f"Search space '{space_file}': unknown parameter '{key}' for {model} on {settings.get('dataset')}."
                f"{hint} A space may only name settings of RecBole, of properties/model/{model}.yaml, or of the "
                "other property files (names are case sensitive)."
            )
        current = config.final_config_dict.get(key, settings.get(key))
        if dist in ("uniform", "loguniform") and _is_int(current):
            raise UserError(
                f"Search space '{space_file}': '{key}' is an integer setting (currently {current}), but "
                f"'{dist}' samples real numbers. Use 'randint' or 'choice' for it."
            )


def to_search_space(params):
    """Ray Tune's param_space from validated ``{param: (dist, args)}``."""
    from ray import tune

    makers = {
        "choice": lambda args: tune.choice(args),
        "uniform": lambda args: tune.uniform(*args),
        "loguniform": lambda args: tune.loguniform(*args),
        "randint": lambda args: tune.randint(*args),
    }
    return {key: makers[dist](args) for key, (dist, args) in params.items()}


# ------------------------------------------------------------------------------------------ trials


def _trial(config, base_settings=None, cpus_per_trial=1, gpus_per_trial=0, valid_metric_bigger=True):
    """One trial (runs in a Ray worker, inside its trial folder): train, report per epoch, report test."""
    import torch
    from ray.air import session

    from recbole_llmaug.quick_start import objective_function

    trial_dir = Path(session.get_trial_dir()).resolve()
    settings = dict(base_settings)
    settings.update({key: _plain(value) for key, value in config.items()})
    settings["checkpoint_dir"] = str(trial_dir / "saved")
    settings["results_dir"] = str(trial_dir / "results")
    settings["show_progress"] = False
    # RecBole's Config writes gpu_id into CUDA_VISIBLE_DEVICES: give it the devices Ray assigned (or none).
    settings["gpu_id"] = os.environ.get("CUDA_VISIBLE_DEVICES", "") if gpus_per_trial > 0 else ""
    torch.set_num_threads(max(1, int(cpus_per_trial)))

    max_epochs = int(settings["epochs"])
    state = {"best": None, "epoch": 0}

    def report_epoch(epoch_idx, valid_score):
        score = float(valid_score)
        best = state["best"]
        if best is None or (score > best if valid_metric_bigger else score < best):
            state["best"] = score
        state["epoch"] = epoch_idx + 1
        if state["epoch"] >= max_epochs:
            return  # the final report, with the test metrics, follows at once; stopping here would only lose them
        # When ASHA stops this trial, report() does not return: it raises SystemExit in this thread.
        session.report({"valid_score": score, "best_valid_score": state["best"], "epoch": state["epoch"]})

    result = objective_function(config_dict=settings, saved=True, callback_fn=report_epoch)
    best_score = float(result["best_valid_score"])
    final = {"valid_score": best_score, "best_valid_score": best_score, "epoch": state["epoch"]}
    final.update({f"valid/{key}": float(value) for key, value in (result["best_valid_result"] or {}).items()})
    final.update({f"test/{key}": float(value) for key, value in (result["test_result"] or {}).items()})
    session.report(final)


# ------------------------------------------------------------------------------------------ Ray


def _default_temp_dir():
    return str(Path(tempfile.gettempdir()) / f"ray-llmaug-{os.getuid() if hasattr(os, 'getuid') else 'user'}")


def _start_ray(ray_address, num_cpus, temp_dir):
    """Connect to a cluster, or start Ray in-process; returns True when this call connected/started it."""
    import ray

    import recbole_llmaug

    if ray.is_initialized():
        return False
    package_dir = str(Path(recbole_llmaug.__file__).resolve().parent)
    if ray_address:
        # Workers get this very package (their checkout may differ or be missing); settings travel merged,
        # with absolute paths, so they need neither our property files nor the driver's directory.
        try:
            extra = {"_temp_dir": str(Path(temp_dir).expanduser().resolve())} if temp_dir else {}
            ray.init(address=ray_address, runtime_env={"py_modules": [package_dir]}, logging_level=logging.WARNING,
                     **extra)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise UserError(
                f"Could not connect to the Ray cluster at '{ray_address}': {error}. Check --ray-address "
                "(e.g. 'auto' on a cluster node, '<head-ip>:6379', or 'ray://<head-ip>:10001')."
            ) from None
        return True
    temp_dir = str(Path(temp_dir or _default_temp_dir()).expanduser().resolve())
    if len(temp_dir) > _MAX_RAY_TEMP_DIR:
        raise UserError(
            f"Ray's temporary folder '{temp_dir}' is too long ({len(temp_dir)} characters): Ray puts unix "
            f"sockets inside it and their paths are limited. Set 'ray_temp_dir' in the 'tune:' section to a path "
            f"of at most {_MAX_RAY_TEMP_DIR} characters (e.g. /tmp/ray-$USER)."
        )
    Path(temp_dir).mkdir(parents=True, exist_ok=True)
    # Worker processes inherit the environment of the raylet started here: make this package importable
    # for them wherever the driver runs from.
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED", "PYTHONWARNINGS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(package_dir).parent), saved["PYTHONPATH"]]))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Every worker would repeat these (Ray 2.6's pkg_resources import, RecBole 1.2.1's pandas idioms).
    os.environ.setdefault("PYTHONWARNINGS", "ignore:pkg_resources is deprecated,ignore::FutureWarning")
    try:
        ray.init(
            num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir,
            logging_level=logging.WARNING, configure_logging=True,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return True


def _check_resources(tune_cfg, local):
    import ray

    available = ray.cluster_resources()
    for kind, key in (("CPU", "cpus_per_trial"), ("GPU", "gpus_per_trial")):
        need, have = float(tune_cfg[key]), float(available.get(kind, 0))
        if need > have:
            message = (
                f"Each trial asks for {tune_cfg[key]} {kind}(s) ('{key}' in the 'tune:' section) but the Ray "
                f"{'instance started here' if local else 'cluster'} has {have:g}; no trial could ever start. "
                f"Lower '{key}'" + (" (gpus_per_trial: 0 trains on CPU)" if kind == "GPU" else "")
                + (" or raise 'num_cpus'." if kind == "CPU" and local else ".")
            )
            if local:
                raise UserError(message)
            logger.warning("%s (An autoscaling cluster may still add nodes.)", message)


def _search_algorithm(name, seed):
    try:
        if name == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            return OptunaSearch(seed=seed)
        if name == "hyperopt":
            from ray.tune.search.hyperopt import HyperOptSearch

            return HyperOptSearch(random_state_seed=seed)
    except (ImportError, AssertionError):
        raise UserError(
            f"search_alg '{name}' needs the '{name}' package: pip install {name} (or use search_alg: random)."
        ) from None
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed)


# ------------------------------------------------------------------------------------------ output


def _fmt(value, spec=".4f"):
    """A table cell: metrics as ``.4f``, parameters as ``.4g``; missing values as '-'."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else format(value, spec)
    return "-" if value is None else str(value)


def _trial_rows(result_grid, param_names):
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
            "params": {key: _plain(result.config.get(key)) for key in param_names},
            "epochs": metrics.get("epoch"),
            "best_valid_score": metrics.get("best_valid_score"),
            "metrics": {key: value for key, value in metrics.items() if key.startswith(("test/", "valid/"))},
            "path": str(trial_path) if trial_path else "",
            "error": result.error,
        })
    return rows


def _sort_rows(rows, bigger):
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
    """Markdown table of the trials, best first."""
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
        return "".join(yaml.safe_dump({key: _plain(value)}, default_flow_style=True, width=10**6)[1:-2] + "\n"
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


# ------------------------------------------------------------------------------------------ entry point


def _driver_settings(model, dataset, config_file_list, config_dict):
    """Merged settings (absolute paths) and a RecBole Config, built here without touching the environment."""
    from recbole_llmaug.config import make_config
    from recbole_llmaug.utils import get_model

    settings = load_settings(dataset, get_model(model).__name__, config_file_list, config_dict)
    saved_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        config = make_config(model, dataset, config_file_list, config_dict)  # also checks the dataset's files
    finally:  # RecBole's Config sets CUDA_VISIBLE_DEVICES; Ray must still see every GPU of this machine.
        if saved_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda
    return settings, config


def _user_fixed_settings(settings, config_file_list, config_dict):
    """The settings the user gave for the search (--config_files, --key=value), for the best config yaml."""
    names = set(config_dict or {})
    for path in config_file_list or []:
        names |= set(read_yaml(path))
    return {key: settings[key] for key in settings if key in names and key not in _NOT_IN_BEST_CONFIG}


def run_tune(model, dataset, space_file, config_file_list=None, config_dict=None, ray_address=None, resume=False,
             output_dir=None, tune_settings=None):
    """Search ``model``'s hyperparameters on ``dataset`` with Ray Tune (ASHA, optional search algorithm).

    ``config_file_list``/``config_dict`` are the usual property files and ``--key=value`` overrides, fixed
    for every trial. ``ray_address`` connects to an existing cluster (otherwise Ray starts in-process);
    ``resume`` continues the search saved in ``output_dir`` (default ``<cwd>/ray_results/<model>-<dataset>``).
    ``tune_settings`` overrides the space file's ``tune:`` section.

    Returns ``{'best_config_file', 'trials_table', 'results_dir', 'best_params', 'best_valid_score',
    'best_test_result', 'experiment_dir', 'trials_csv', 'trials_markdown', 'num_trials', 'num_errors'}``.
    Raises UserError for a bad space, bad settings, nothing to resume, or when every trial failed.
    """
    space_path = Path(space_file).expanduser().resolve()
    params, tune_cfg = read_space(space_path)
    tune_cfg = {**TUNE_DEFAULTS, **tune_cfg, **_check_tune_settings("tune_settings", tune_settings)}
    settings, config = _driver_settings(model, dataset, config_file_list, config_dict)
    model, dataset = settings["model"], settings["dataset"]
    check_space(params, settings, config, space_path)

    if "max_epochs" not in (tune_settings or {}) and "epochs" in (config_dict or {}):
        tune_cfg["max_epochs"] = int(settings["epochs"])  # --epochs on the command line wins
    max_epochs = int(tune_cfg["max_epochs"] or settings.get("epochs") or config["epochs"])
    grace_period = min(int(tune_cfg["grace_period"]), max_epochs)  # e.g. a quick --epochs=1 run of a shipped space
    bigger = bool(config["valid_metric_bigger"])
    valid_metric = str(config["valid_metric"]).lower()

    output = Path(output_dir or Path.cwd() / "ray_results" / f"{model}-{dataset}").expanduser().resolve()
    experiment_dir = output / EXPERIMENT_NAME
    from ray import air, tune

    if resume and not tune.Tuner.can_restore(str(experiment_dir)):
        raise UserError(
            f"--resume: there is no search to resume in '{experiment_dir}'. Run the search without --resume "
            "first, or point the output folder at the earlier search."
        )
    if not resume and tune.Tuner.can_restore(str(experiment_dir)):
        raise UserError(
            f"'{experiment_dir}' already holds a search. Add --resume to continue it, or choose another output "
            "folder (or delete that one) to start afresh."
        )

    # Build/reuse augmented files once here rather than in every trial at the same time.
    from recbole_llmaug.quick_start import prepare_augmentations

    prepare_augmentations(config)

    base_settings = {key: value for key, value in settings.items() if key not in ("model", "dataset")}
    base_settings.update(model=model, dataset=dataset, epochs=max_epochs, show_progress=False)
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial, base_settings=base_settings, cpus_per_trial=tune_cfg["cpus_per_trial"],
            gpus_per_trial=tune_cfg["gpus_per_trial"], valid_metric_bigger=bigger,
        ),
        {"cpu": tune_cfg["cpus_per_trial"], "gpu": tune_cfg["gpus_per_trial"]},
    )

    search_alg = None if resume else _search_algorithm(tune_cfg["search_alg"], int(settings.get("seed") or 0))
    import ray

    started = _start_ray(ray_address, tune_cfg["num_cpus"], tune_cfg["ray_temp_dir"])
    try:
        _check_resources(tune_cfg, local=not ray_address)
        if resume:
            # Finished trials are kept; unfinished ones start again from epoch 1, failed ones are retried.
            tuner = tune.Tuner.restore(
                str(experiment_dir), trainable=trainable, resume_unfinished=True, restart_errored=True
            )
        else:
            output.mkdir(parents=True, exist_ok=True)
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(
                time_attr="epoch", max_t=max_epochs,
                grace_period=grace_period, reduction_factor=tune_cfg["reduction_factor"],
            )
            tuner = tune.Tuner(
                trainable,
                param_space=to_search_space(params),
                tune_config=tune.TuneConfig(
                    metric="valid_score", mode="max" if bigger else "min", scheduler=scheduler,
                    search_alg=search_alg,
                    num_samples=tune_cfg["num_samples"],
                    max_concurrent_trials=tune_cfg["max_concurrent_trials"] or None,
                    reuse_actors=False,  # a fresh process per trial: no RecBole/torch state leaks between trials
                ),
                run_config=air.RunConfig(
                    name=EXPERIMENT_NAME, storage_path=str(output), verbose=1,
                    failure_config=air.FailureConfig(max_failures=0),
                ),
            )
        result_grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()

    rows = _sort_rows(_trial_rows(result_grid, list(params)), bigger)
    metric_keys = _table_metric_keys(rows, settings)
    table = format_trials_table(rows, list(params), metric_keys, valid_metric)
    (output / "trials.md").write_text(
        f"# Ray Tune search: {model} on {dataset} ({space_path})\n\n{table}\n", encoding="utf-8"
    )
    _write_csv(output / "trials.csv", rows, list(params))

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
    _write_best_config(best_file, best, _user_fixed_settings(settings, config_file_list, config_dict),
                       model, dataset, valid_metric, space_path, metric_keys)
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
