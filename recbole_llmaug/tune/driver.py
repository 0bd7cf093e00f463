"""The driver of a search: settings merged here, Ray started or joined, Tuner + ASHA, resume, the report.

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
"""

import logging
import os
import tempfile
from pathlib import Path

from recbole_llmaug.config import load_settings
from recbole_llmaug.errors import UserError
from recbole_llmaug.tune.report import trial_rows, user_fixed_settings, write_report
from recbole_llmaug.tune.space import check_space, check_tune_settings, read_space, to_search_space, tune_defaults
from recbole_llmaug.tune.trial import _trial

logger = logging.getLogger(__name__)

__all__ = ["EXPERIMENT_NAME", "run_tune"]

EXPERIMENT_NAME = "trials"
_MAX_RAY_TEMP_DIR = 40  # Ray puts unix sockets ~65 characters below it; sockets allow 107


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
    """A trial asking for more CPUs/GPUs than Ray has would wait forever: an error here (a warning on a
    cluster, which may autoscale)."""
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


def run_tune(model, dataset, space_file, config_file_list=None, config_dict=None, ray_address=None, resume=False,
             output_dir=None, tune_settings=None):
    """Search ``model``'s hyperparameters on ``dataset`` with Ray Tune (ASHA, optional search algorithm).

    ``config_file_list``/``config_dict`` are the usual property files and ``--key=value`` overrides, fixed
    for every trial. ``ray_address`` connects to an existing cluster (otherwise Ray starts in-process);
    ``resume`` continues the search saved in ``output_dir`` (default ``<cwd>/ray_results/<model>-<dataset>``).
    ``tune_settings`` overrides the space file's ``tune:`` section, which overrides ``properties/tune.yaml``.

    Returns ``{'best_config_file', 'trials_table', 'results_dir', 'best_params', 'best_valid_score',
    'best_test_result', 'experiment_dir', 'trials_csv', 'trials_markdown', 'num_trials', 'num_errors'}``.
    Raises UserError for a bad space, bad settings, nothing to resume, or when every trial failed.
    """
    space_path = Path(space_file).expanduser().resolve()
    params, tune_cfg = read_space(space_path)
    tune_cfg = {**tune_defaults(), **tune_cfg, **check_tune_settings("tune_settings", tune_settings)}
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

    return write_report(
        output, experiment_dir, trial_rows(result_grid, list(params)), list(params), settings,
        user_fixed_settings(settings, config_file_list, config_dict),
        valid_metric=valid_metric, bigger=bigger, space_path=space_path,
    )
