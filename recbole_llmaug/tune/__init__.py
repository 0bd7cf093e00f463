"""Hyperparameter search with Ray Tune (``run_recbole_llmaug.py --tune=properties/hyper/<Model>.yaml``).

One search = one model on one dataset. Each trial runs :func:`recbole_llmaug.quick_start.objective_function`
and reports the validation score after every epoch, so the ASHA scheduler can stop poor trials early; when a
trial finishes it reports the best validation score and the grouped test metrics as flat keys such as
``test/tail_item/ndcg@10``.

The package, by job:

- :mod:`.space`: the search space file (distributions, the ``tune:`` section, whose defaults live in
  ``properties/tune.yaml``), the check of its names against the model's settings, Ray's ``param_space``;
- :mod:`.trial`: the function each trial runs in a Ray worker;
- :mod:`.driver`: :func:`run_tune`: Ray started or joined, resources, search algorithm, Tuner + ASHA, resume;
- :mod:`.report`: the table of trials and ``best_config.yaml``.

Layout of the output folder (default ``<cwd>/ray_results/<model>-<dataset>``)::

    trials/                 Ray's experiment folder (one sub-folder per trial, with RecBole's saved/ and
                            results/ of that trial); --resume continues from it
    trials.md, trials.csv   the table of trials (params, best valid score, test overall and tail groups)
    best_config.yaml        the best trial's settings, usable as --config_files=best_config.yaml
"""

from recbole_llmaug.tune.driver import EXPERIMENT_NAME, run_tune
from recbole_llmaug.tune.report import format_trials_table, trial_rows, user_fixed_settings, write_report
from recbole_llmaug.tune.space import (
    DISTRIBUTIONS,
    NOT_SEARCHABLE,
    SEARCH_ALGORITHMS,
    TUNE_SETTINGS,
    check_space,
    check_tune_settings,
    read_space,
    to_search_space,
    tune_defaults,
    tune_defaults_file,
)

__all__ = [
    "run_tune", "EXPERIMENT_NAME",
    "read_space", "check_space", "check_tune_settings", "to_search_space", "tune_defaults", "tune_defaults_file",
    "DISTRIBUTIONS", "SEARCH_ALGORITHMS", "TUNE_SETTINGS", "NOT_SEARCHABLE",
    "trial_rows", "format_trials_table", "user_fixed_settings", "write_report",
]
