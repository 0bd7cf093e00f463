"""Compatibility fixes for RecBole 1.2.1 on a current Python/torch stack, applied on import, and the
only place where this package touches RecBole's private names.

Each fix is small, scoped to RecBole, and tested in ``tests/test_compat.py``. Everything else in the
package uses RecBole's public API plus the helpers below (``recbole_yaml_loader``,
``loader_under_mode``, ``unique_checkpoint_name``, ``honour_data_path``, ``init_logger_under``,
``tensorboard_under``), so that a RecBole upgrade is checked here and nowhere else.
Version-level problems are fixed by pins in ``setup.cfg`` instead (see the README):
``numpy<2`` (RecBole's ``np.float_``, Ray's ``np.bool8``), ``pandas<3`` (RecBole's
``fillna(inplace=True)`` is a no-op there), ``scipy<1.13`` (``dok_matrix._update`` used by
LightGCN/NGCF), ``setuptools<81`` (Ray 2.6 imports ``pkg_resources``), ``pyarrow<26``.
"""

import contextlib
import os
import sys
import tempfile
import types
import uuid
import warnings
from pathlib import Path

import torch

_applied = False
_log_root = None  # the run's log folder while tensorboard_under() is active; None: RecBole's ./log_tensorboard
_recbole_get_tensorboard = None


class _TrustedCheckpointTorch(types.ModuleType):
    """``torch`` as seen by RecBole's trainer and quick_start modules.

    torch >= 2.6 defaults ``torch.load(weights_only=True)``, which cannot read the checkpoints
    RecBole itself writes (they pickle the ``Config``). Those files are written by this same
    process or by the user's own earlier runs, so RecBole's own loads keep the old default.
    Everything else is delegated to the real module.
    """

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(*args, **kwargs)

    @staticmethod
    def save(obj, f, *args, **kwargs):
        """``torch.save`` to a path through a temporary file and ``os.replace``: a Ctrl-C (or a crash)
        while RecBole saves the best checkpoint leaves the previous one intact, never half a file
        that the interrupted run's test would then fail to load."""
        if not isinstance(f, (str, os.PathLike)):
            return torch.save(obj, f, *args, **kwargs)
        folder, name = os.path.split(os.path.abspath(f))
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        os.close(handle)
        try:
            torch.save(obj, temporary, *args, **kwargs)
            os.replace(temporary, f)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def _numpy_aliases():
    """RecBole's metrics and samplers use ``np.float``/``np.int``/...; RecBole only defines the
    aliases when a ``Config`` is built, so code that touches them earlier would fail."""
    import numpy as np

    # NumPy 2 also removed the names RecBole's own alias code reads (``np.float_``...); setup.cfg
    # pins numpy<2, and those keep RecBole importable where another numpy is already installed.
    for alias, target in {
        "bool": np.bool_, "int": np.int_, "float": np.float64, "complex": np.complex128,
        "object": np.object_, "str": np.str_, "long": np.int_, "unicode": np.str_,
        "float_": np.float64, "complex_": np.complex128, "unicode_": np.str_,
    }.items():
        if alias not in np.__dict__:
            setattr(np, alias, target)


def _bert4rec_mask_last(self, item_seq, item_seq_len):
    """RecBole's ``BERT4Rec.reconstruct_test_data`` with the mask written in one indexed store.

    The original loops over the batch in Python (one scalar write per user); on a GPU that is a
    kernel launch and a sync per user, 80 s of every Beauty validation. Same output."""
    padding = item_seq.new_zeros(item_seq.size(0), 1)
    item_seq = torch.cat((item_seq, padding), dim=-1)
    item_seq[torch.arange(item_seq.size(0), device=item_seq.device), item_seq_len] = self.mask_token
    return item_seq[:, 1:]


def apply():
    """Apply every fix once; safe to call repeatedly."""
    global _applied
    if _applied:
        return
    _numpy_aliases()
    # Ray 2.6 (imported by RecBole's quick_start) warns on import that pkg_resources is deprecated:
    # noise on every command line; the pin setuptools<81 keeps it working.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

    # Importing RecBole's sequential models runs ``torch.autograd.set_detect_anomaly(True)``
    # (in sine.py) for the whole process, which makes SASRec ~30% and GRU4Rec ~65% slower.
    import recbole.model.sequential_recommender  # noqa: F401

    torch.autograd.set_detect_anomaly(False)

    from recbole.model.sequential_recommender.bert4rec import BERT4Rec

    BERT4Rec.recbole_reconstruct_test_data = BERT4Rec.reconstruct_test_data
    BERT4Rec.reconstruct_test_data = _bert4rec_mask_last

    import recbole.quick_start.quick_start as rb_quick_start
    import recbole.trainer.trainer as rb_trainer

    trusted_torch = _TrustedCheckpointTorch()
    rb_trainer.torch = trusted_torch
    rb_quick_start.torch = trusted_torch

    # Every RecBole trainer opens a TensorBoard writer in ./log_tensorboard (a fixed relative path).
    global _recbole_get_tensorboard
    _recbole_get_tensorboard = rb_trainer.get_tensorboard
    rb_trainer.get_tensorboard = _get_tensorboard
    _applied = True


def _get_tensorboard(logger):
    """RecBole's ``get_tensorboard`` (same folder name: the log file's, else ``model-<time>``), under
    ``<log_dir>/log_tensorboard/`` inside :func:`tensorboard_under`."""
    if _log_root is None:
        return _recbole_get_tensorboard(logger)
    from recbole.utils import get_local_time
    from torch.utils.tensorboard import SummaryWriter

    names = [os.path.basename(handler.baseFilename).split(".")[0]
             for handler in logger.handlers if hasattr(handler, "baseFilename")]
    name = names[0] if names else f"model-{get_local_time()}"
    return SummaryWriter(str(Path(_log_root) / "log_tensorboard" / name))


@contextlib.contextmanager
def tensorboard_under(folder):
    """Trainers built inside this block write their TensorBoard events under ``folder/log_tensorboard/``
    (``folder`` None: RecBole's ``./log_tensorboard``)."""
    global _log_root
    saved, _log_root = _log_root, (str(folder) if folder else None)
    try:
        yield
    finally:
        _log_root = saved


def init_logger_under(config, folder):
    """RecBole's ``init_logger``, whose text log goes to ``./log/<model>/`` (a path fixed in its code),
    run from ``folder`` so that the log lands in ``folder/log/<model>/`` (``folder`` None: the current
    directory). The log file's path is absolute once opened, so the directory is restored at once."""
    from recbole.utils import init_logger

    if not folder:
        return init_logger(config)
    Path(folder).mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(folder)
    try:
        return init_logger(config)
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def isolated_argv():
    """RecBole's ``Config`` parses every ``--k=v`` in ``sys.argv``; pytest's or Ray workers'
    arguments would leak into the configuration. Inside this block it sees none."""
    saved = sys.argv
    sys.argv = saved[:1] if saved else ["recbole_llmaug"]
    try:
        yield
    finally:
        sys.argv = saved


def recbole_yaml_loader():
    """RecBole's yaml loader (reads ``1e-3`` as a float, where plain PyYAML reads a string)."""
    from recbole.config import Config

    return Config._build_yaml_loader(None)


def honour_data_path(config, dataset_folder):
    """RecBole points ``ml-100k`` at its bundled copy whatever ``data_path`` says; point it at ours."""
    config.final_config_dict["data_path"] = str(dataset_folder)


def unique_checkpoint_name(trainer):
    """Give ``trainer`` a checkpoint file name no other run can take.

    RecBole names it ``<model>-<time to the second>.pth``: runs started in the same second (parallel
    seeds, a benchmark's worker pool) would overwrite and test each other's checkpoints."""
    stem, suffix = os.path.splitext(trainer.saved_model_file)
    trainer.saved_model_file = f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"


def train_epoch(trainer, train_data, epoch):
    """One training epoch of ``trainer`` without evaluation -> its loss (a float, or a tuple for models
    with several losses).

    RecBole's public ``fit`` runs every epoch in one call and then evaluates or saves a checkpoint; timing
    each epoch's training alone needs the private step."""
    return trainer._train_epoch(train_data, epoch)


def loader_under_mode(config, eval_data, mode):
    """A new evaluation loader over ``eval_data``'s users and sampler under eval ``mode`` ('full',
    'uni100', ...).

    Both protocols draw negatives uniformly from the same sampler; the mode only sets how many.
    RecBole reads the mode from ``config`` (through a private setter), so it is swapped in for the
    build and restored."""
    from recbole.data.utils import get_dataloader

    eval_args = config["eval_args"]
    saved_mode, saved_neg = dict(eval_args["mode"]), config["test_neg_sample_args"]
    eval_args["mode"] = dict(saved_mode, test=mode)
    try:
        config._set_eval_neg_sample_args("test")
        if config["test_neg_sample_args"]["distribution"] != "uniform" or eval_data._sampler is None:
            raise ValueError(f"extra_test_modes: '{mode}' is not supported; use full or uni<N> (e.g. uni100)")
        return get_dataloader(config, "test")(config, eval_data.dataset, eval_data._sampler, shuffle=False)
    finally:
        eval_args["mode"] = saved_mode
        config["test_neg_sample_args"] = saved_neg


def recbole_model_properties(model_name):
    """RecBole's own property file of one of its models (``recbole/properties/model/<name>.yaml``), or None.

    A model that wraps a RecBole backbone (LLMSeR) takes the backbone's complete configuration: RecBole's
    defaults for it (e.g. BERT4Rec's ``transform: mask_itemseq``) and then ours."""
    import recbole

    from pathlib import Path

    path = Path(recbole.__file__).parent / "properties" / "model" / f"{model_name}.yaml"
    return path if path.is_file() else None


def recbole_dataset_keys():
    """The settings that define a RecBole dataset (RecBole's own list, which it uses to decide whether
    a saved dataset still matches a config), e.g. ``load_col``, the id fields and the k-core filters."""
    from recbole.utils.argument_list import dataset_arguments

    return list(dataset_arguments)
