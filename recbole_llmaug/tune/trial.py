"""One trial of a search: our objective function in a Ray worker, reporting validation after every epoch.

The per-epoch reports (RecBole's ``callback_fn``) let the ASHA scheduler stop poor trials early; the final
report carries the best validation score and the grouped test metrics (overall, tail/head users and items, ...)
as flat keys such as ``test/tail_item/ndcg@10``.
"""

import os
from pathlib import Path

from recbole_llmaug.tune.space import plain

# The function keeps the name it had in recbole_llmaug.hyper_tuning: Ray names every trial folder after the
# trainable ('_trial_<id>_...') and checks that name when a search is resumed.
__all__ = ["_trial"]


def _trial(config, base_settings=None, cpus_per_trial=1, gpus_per_trial=0, valid_metric_bigger=True):
    """One trial (runs in a Ray worker, inside its trial folder): train, report per epoch, report test.

    ``config`` holds this trial's sampled values; ``base_settings`` the driver's merged settings (absolute
    paths, ``epochs`` = the search's ``max_epochs``), so the worker reads no property file.
    """
    import torch
    from ray.air import session

    from recbole_llmaug.quick_start import objective_function

    trial_dir = Path(session.get_trial_dir()).resolve()
    settings = dict(base_settings)
    settings.update({key: plain(value) for key, value in config.items()})
    settings["checkpoint_dir"] = str(trial_dir / "saved")
    settings["results_dir"] = str(trial_dir / "results")
    settings["log_dir"] = str(trial_dir)
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
