"""The search space file: distributions per setting, the ``tune:`` section, and Ray Tune's ``param_space``.

A space file (``properties/hyper/<Model>.yaml``) has one line per searched setting, plus an optional ``tune:``
section whose keys and defaults are in ``properties/tune.yaml``::

    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}   # log-uniform in [low, high)
    hidden_dropout_prob: {uniform: [0.1, 0.5]}      # uniform in [low, high)
    n_layers: {choice: [1, 2, 3]}                   # one of the listed values (any yaml value)
    hidden_size: {randint: [32, 129]}               # integer in [low, high), high excluded
    tune:
      num_samples: 20
      max_epochs: 50

Everything here is checked before Ray starts, so a typo costs a clear :class:`UserError`, not a cluster run.
"""

import difflib
import numbers
from pathlib import Path

from recbole_llmaug import defaults as project_defaults
from recbole_llmaug.config import read_yaml
from recbole_llmaug.errors import UserError

__all__ = [
    "DISTRIBUTIONS", "SEARCH_ALGORITHMS", "TUNE_SETTINGS", "NOT_SEARCHABLE", "tune_defaults_file", "tune_defaults",
    "check_tune_settings", "read_space", "known_keys", "check_space", "to_search_space", "plain",
]

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
SEARCH_ALGORITHMS = ("random", "optuna", "hyperopt")
# Settings a space may not search, and why.
NOT_SEARCHABLE = {
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


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# The settings of the 'tune:' section and what each accepts (their defaults are in properties/tune.yaml).
_SETTING_CHECKS = {
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
TUNE_SETTINGS = tuple(_SETTING_CHECKS)


def plain(value):
    """numpy scalars/arrays (what Ray's samplers return) as plain Python values, for RecBole and yaml."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


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


def check_tune_settings(where, section):
    """The ``tune:`` section (or ``tune_settings``): known keys and sensible values; returns a copy."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise UserError(f"{where}: 'tune' must hold 'key: value' settings such as 'num_samples: 20'; got {section!r}.")
    unknown = [key for key in section if key not in _SETTING_CHECKS]
    if unknown:
        close = {k: difflib.get_close_matches(str(k), TUNE_SETTINGS, n=1) for k in unknown}
        hints = "".join(f" ('{k}': did you mean '{c[0]}'?)" for k, c in close.items() if c)
        raise UserError(
            f"{where}: unknown search setting(s) {', '.join(map(repr, unknown))} in 'tune'{hints}. "
            f"Known settings: {', '.join(TUNE_SETTINGS)}."
        )
    for key, value in section.items():
        ok, what = _SETTING_CHECKS[key]
        if not ok(value):
            raise UserError(f"{where}: tune setting '{key}' must be {what}; got {value!r}.")
    return dict(section)


def tune_defaults_file():
    """The yaml holding the defaults of the ``tune:`` section (the one place this package names properties/)."""
    return project_defaults.properties_dir() / "tune.yaml"


def tune_defaults():
    """``{search setting: default}`` for every setting, from the ``tune:`` block of :func:`tune_defaults_file`.

    Read at each search (not cached at import) so an edited file counts; checked like a space's own section,
    and complete, since the driver reads every setting from the merged result.
    """
    path = tune_defaults_file()
    if not path.is_file():
        raise UserError(f"The defaults of the search settings, '{path}', are missing. Restore the file from the "
                        "repository (it holds a 'tune:' block with one default per search setting).")
    where = f"Tune defaults '{path}'"
    defaults = check_tune_settings(where, read_yaml(path).get("tune"))
    missing = [key for key in TUNE_SETTINGS if key not in defaults]
    if missing:
        raise UserError(
            f"{where}: the 'tune:' block has no default for {', '.join(map(repr, missing))}. Every search setting "
            f"needs one there ({', '.join(TUNE_SETTINGS)}); restore the file from the repository or add them."
        )
    return {key: defaults[key] for key in TUNE_SETTINGS}


def read_space(space_file):
    """Read a search space file: ``({param: (dist, args)}, {tune setting: value})``. Raises UserError."""
    path = Path(space_file).expanduser()
    if not path.is_file():
        raise UserError(f"Search space file '{space_file}' does not exist. Ship one under properties/hyper/ "
                        "(see properties/hyper/SASRec.yaml) and pass its path to --tune.")
    content = read_yaml(path)
    tune_section = check_tune_settings(f"Search space '{path}'", content.pop("tune", None))
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
        if key in NOT_SEARCHABLE:
            raise UserError(f"Search space '{space_file}': '{key}' cannot be searched: {NOT_SEARCHABLE[key]}.")
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
