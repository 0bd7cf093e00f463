"""Run one model end to end (RecBole's ``run_recbole``), and the objective for hyperparameter search."""

import logging
import os
import resource
import time
from logging import getLogger

import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llmaug.augment.recbole_split import split_seed
from recbole_llmaug.compat import init_logger_under, loader_under_mode, tensorboard_under
from recbole_llmaug.config import make_config, settings_from_config
from recbole_llmaug.errors import UserError
from recbole_llmaug.report import format_grouped_table, split_result, write_run_record
from recbole_llmaug.utils import create_dataset, get_model, get_trainer, needed_outputs


def _peak_memory_mb(device):
    """Peak resident memory of this process (CPU) and peak CUDA memory when on GPU, in MiB."""
    peak = {"cpu_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available() and str(device).startswith("cuda"):
        peak["gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def prepare_augmentations(config):
    """Build or reuse the augmentor outputs the model's dataset needs (``<Model>Dataset.needed_outputs``)."""
    needed = needed_outputs(config)
    if needed:
        from recbole_llmaug.augment import ensure_augmented

        ensure_augmented(list(needed), settings_from_config(config))


def _test_under(config, trainer, test_data, mode):
    """The trainer's current model tested under eval ``mode``; returns its result and group sizes.

    The sampler is reseeded with the run's seed first, so every model of a seed (and a later
    :func:`evaluate_saved_model` of the same checkpoint) meets the same sampled negatives."""
    init_seed(config["seed"], config["reproducibility"])
    result = trainer.evaluate(loader_under_mode(config, test_data, mode), load_best_model=False,
                              show_progress=config["show_progress"])
    getLogger().info("\n" + format_grouped_table(result, trainer.evaluator.group_sizes,
                                                 title=f"Test results ({mode}): {config['model']} on {config['dataset']}"))
    return {"result": dict(result or {}), "group_sizes": dict(trainer.evaluator.group_sizes)}


def _data_and_model(config):
    """Dataset, split and a fresh model, built and seeded as RecBole's ``run_recbole`` does; shared by
    training and :func:`load_data_and_model` so that a checkpoint is rebuilt exactly as it was trained.

    The split is drawn under ``split_seed`` (``~``: the run's ``seed``), the model under ``seed``: with a
    fixed ``split_seed``, runs of different seeds share one split, hence one set of augmented files."""
    init_seed(split_seed(config), config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    return dataset, train_data, valid_data, test_data, model


def _trainer(config, model):
    """The model's trainer (ours or RecBole's, with grouped evaluation); its TensorBoard events go
    under ``log_dir`` like the text log."""
    with tensorboard_under(config["log_dir"]):
        return get_trainer(config["MODEL_TYPE"], config["model"])(config, model)


def train_and_evaluate(config, saved=True, callback_fn=None, augment=True):
    """Data -> model -> RecBole trainer with grouped evaluation; returns a result record.

    ``augment=False`` uses the augmented files already on disk as they are (no freshness check), for
    machines that have the augmentor's outputs but not its inputs or models.

    Ctrl-C during training keeps what was learned: the best checkpoint so far is tested, or, when
    the interrupt came before the first validation saved one, the model as it is in memory (the
    record says which in ``tested``); the record is written with ``"interrupted": true`` either way.
    A second Ctrl-C during that test still writes the record (without test results) and then stops."""
    started = time.perf_counter()
    init_seed(config["seed"], config["reproducibility"])
    logger = getLogger()
    if augment:
        prepare_augmentations(config)
    dataset, train_data, valid_data, test_data, model = _data_and_model(config)
    logger.info(dataset)
    logger.info(model)
    trainer = _trainer(config, model)

    interrupted = False
    try:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=callback_fn
        )
    except KeyboardInterrupt:
        interrupted = True
        best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
    has_checkpoint = saved and os.path.isfile(trainer.saved_model_file)
    if not saved:
        tested = "the model as trained (saved=False keeps no checkpoint)"
    elif has_checkpoint:
        tested = f"the best checkpoint{' so far' if interrupted else ''} ({trainer.saved_model_file})"
    elif interrupted:
        tested = ("the model in memory: the run was interrupted before the first validation saved a checkpoint, "
                  "so these test results are of a partly trained model")
    else:  # e.g. eval_step > epochs: no validation ran, so RecBole saved no checkpoint
        tested = "the model in memory after the last epoch (no validation saved a checkpoint)"
    if interrupted:
        logger.warning("Interrupted: testing %s, then writing the run record.", tested)
    test_result, extra_test_results, test_sizes = {}, {}, {}
    valid_sizes = dict(trainer.evaluator.group_sizes)
    try:
        test_result = trainer.evaluate(test_data, load_best_model=has_checkpoint, show_progress=config["show_progress"])
        test_sizes = dict(trainer.evaluator.group_sizes)
        # The same best model tested under further protocols (e.g. the papers' uni100): no second training.
        extra_test_results = {mode: _test_under(config, trainer, test_data, mode)
                              for mode in config["extra_test_modes"] or []}
        stop = None
    except KeyboardInterrupt as again:  # a second Ctrl-C: record what there is, then stop
        interrupted, stop = True, again
        tested = (f"{tested}, but the extra test modes were interrupted too" if test_result
                  else f"nothing: the test of {tested} was interrupted too")

    record = {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result or {}),
        "valid_group_sizes": valid_sizes,
        "test_group_sizes": test_sizes,
        "extra_test_results": extra_test_results,
        "interrupted": interrupted,
        "tested": tested,
        "timing": {
            "epochs_trained": len(trainer.epoch_seconds),
            "seconds_per_epoch": (sum(trainer.epoch_seconds) / len(trainer.epoch_seconds)) if trainer.epoch_seconds else None,
            "total_seconds": time.perf_counter() - started,
        },
        "peak_memory": _peak_memory_mb(config["device"]),
        "checkpoint": trainer.saved_model_file if has_checkpoint else None,
    }
    record["config"] = dict(config.final_config_dict)
    if config["results_dir"]:
        record["results_file"] = str(write_run_record(record, config["results_dir"], config["model"], config["dataset"]))
    if stop is not None:
        logger.warning("Interrupted again: run record without test results: %s", record.get("results_file"))
        raise stop
    table = format_grouped_table(test_result, test_sizes, title=f"Test results: {config['model']} on {config['dataset']}")
    logger.info("\n" + table)
    if "results_file" in record:
        logger.info("Results saved to %s", record["results_file"])
    return record


def run_recbole_llmaug(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
                       augment=True):
    """Train and test ``model`` on ``dataset`` like RecBole's ``run_recbole``, with grouped metrics.

    Returns the run record: best valid score/result, test result (``hit@10``, ``tail_user/hit@10``, ...),
    group sizes, timings, peak memory and the path of the JSON record. ``augment``: see
    :func:`train_and_evaluate`.
    """
    config = make_config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger_under(config, config["log_dir"])
    getLogger().info(config)
    return train_and_evaluate(config, saved=saved, augment=augment)


def objective_function(config_dict=None, config_file_list=None, saved=True, callback_fn=None):
    """One hyperparameter trial: ``config_dict`` holds ``model``, ``dataset`` and the trial's values.

    ``callback_fn(epoch_idx, valid_score)`` is called after every validation (for early stopping
    schedulers). Returns RecBole's objective dict plus the grouped ``test_result``.
    """
    config_dict = dict(config_dict or {})
    model, dataset = config_dict.pop("model", None), config_dict.pop("dataset", None)
    config = make_config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    logging.basicConfig(level=logging.ERROR)
    record = train_and_evaluate(config, saved=saved, callback_fn=callback_fn)
    return {
        "model": record["model"],
        "best_valid_score": record["best_valid_score"],
        "valid_score_bigger": record["valid_score_bigger"],
        "best_valid_result": record["best_valid_result"],
        "test_result": record["test_result"],
        "test_groups": split_result(record["test_result"]),
    }


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for checkpoints of our models as well as RecBole's.

    Rebuilds the checkpoint's own config, dataset and split (augmented files are read as they are
    on disk) and the model with its trained weights. A GPU checkpoint loads on CPU where there is
    no GPU. Returns ``config, model, dataset, train_data, valid_data, test_data``."""
    if not os.path.isfile(model_file):
        raise UserError(f"Checkpoint '{model_file}' does not exist. Pass the .pth file a run saved (its path is "
                        "'checkpoint' in the run's JSON record, under checkpoint_dir).")
    checkpoint = torch.load(model_file, map_location="cpu", weights_only=False)  # RecBole pickles its Config
    config = checkpoint["config"]
    if str(config["device"]).startswith("cuda") and not torch.cuda.is_available():
        config["use_gpu"], config["device"] = False, torch.device("cpu")
    init_seed(config["seed"], config["reproducibility"])
    dataset, train_data, valid_data, test_data, model = _data_and_model(config)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data


def evaluate_saved_model(model_file, modes=("full",)):
    """Test a saved checkpoint under each eval mode ('full', 'uni100', ...), with grouped metrics.

    For protocols a run did not test (e.g. the papers' uni100 for a run trained and tested with full
    ranking): no retraining. Returns ``{mode: {"result": ..., "group_sizes": ...}}``; under the same
    mode the numbers equal the run's own ``extra_test_results`` (same seeded negatives)."""
    config, model, _, train_data, _, test_data = load_data_and_model(model_file)
    trainer = _trainer(config, model)
    trainer.prepare_groups(train_data)
    return {mode: _test_under(config, trainer, test_data, mode) for mode in modes}
