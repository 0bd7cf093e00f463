"""RecBole's own data split, as raw tokens, for augmentors of general models.

General recommenders are evaluated on RecBole's random split (LLMRec: ``eval_args: {split: {RS: [0.8, 0.1,
0.1]}, order: RO, group_by: user}``), which cannot be reproduced outside RecBole: it depends on RecBole's
loading, filtering and id remapping and on the torch random state when ``dataset.build()`` shuffles.
So the augmentor asks RecBole itself: it builds the dataset from the run's dataset settings, seeds
with the split seed exactly as a training run does before ``create_dataset`` (see
:func:`recbole_llmaug.quick_start._data_and_model`), and calls the public ``dataset.build()``.

The split seed is ``split_seed`` (``~``: ``seed``, RecBole's behaviour). Fixing it keeps the split, and
every augmented file computed from it, the same across model seeds.
"""

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from recbole_llmaug.augment.files import DatasetFiles
from recbole_llmaug.compat import honour_data_path, isolated_argv, recbole_dataset_keys
from recbole_llmaug.defaults import setting

logger = logging.getLogger(__name__)

# Keys besides RecBole's dataset arguments that decide the split.
SPLIT_KEYS = ("eval_args", "reproducibility", "encoding")


def split_seed(settings) -> int:
    """The seed RecBole's split is drawn under: ``split_seed``, or ``seed`` when it is ``~``.

    ``settings``: a flat settings dict or a RecBole ``Config`` (a checkpoint's config without the key
    falls back to its seed, as it was trained)."""
    value = settings["split_seed"] if "split_seed" in settings else None
    if value is None:
        value = settings["seed"] if "seed" in settings and settings["seed"] is not None else setting({}, "seed")
    return int(value)


def _config(files: DatasetFiles, model: str):
    """A RecBole ``Config`` of ``model`` on the dataset, from the run's dataset settings only."""
    from recbole.config import Config

    settings = files.settings
    config_dict = {key: settings.get(key) for key in [*recbole_dataset_keys(), *SPLIT_KEYS]
                   if settings.get(key) is not None}
    config_dict.update({"seed": split_seed(settings), "data_path": str(files.folder.parent), "state": "WARNING",
                        "show_progress": False, "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
                        "use_gpu": False})
    with isolated_argv():
        config = Config(model=model, dataset=files.name, config_dict=config_dict)
    honour_data_path(config, files.folder)
    return config


def split_settings(files: DatasetFiles, model: str) -> dict:
    """Everything the split depends on besides the input files, canonical (as RecBole's ``Config`` fills
    and normalises them, so the command line's settings and a training run's agree): RecBole's dataset
    arguments, ``eval_args`` and the split seed. For fingerprints."""
    config = _config(files, model)
    found = {key: config[key] for key in [*recbole_dataset_keys(), *SPLIT_KEYS] if config[key] is not None}
    found["split_seed"] = split_seed(files.settings)
    return found


@dataclass
class UserSplit:
    """One user's items in each part of RecBole's split (raw tokens, in RecBole's row order)."""

    train: List[str] = field(default_factory=list)
    valid: List[str] = field(default_factory=list)
    test: List[str] = field(default_factory=list)


@dataclass
class RecBoleSplit:
    """RecBole's split of a dataset: per user (raw tokens), and each part's interactions as RecBole
    loaded them (the ``load_col`` columns, ids as raw tokens) with their atomic header."""

    users: Dict[str, UserSplit]
    header: Tuple[str, ...]  # "field:type" of the loaded interaction columns
    parts: Tuple[List[tuple], List[tuple], List[tuple]]  # train, valid, test rows (strings, header order)
    uid: str
    iid: str


def _column(dataset, part, name: str) -> List[str]:
    from recbole.utils import FeatureType

    values = part.inter_feat[name]
    kind = dataset.field2type[name]
    if kind == FeatureType.TOKEN:
        return [str(token) for token in dataset.field2id_token[name][values.numpy()]]
    if kind == FeatureType.FLOAT:
        return [repr(float(value)) for value in values.tolist()]
    if kind == FeatureType.TOKEN_SEQ:
        tokens = dataset.field2id_token[name]
        return [" ".join(str(tokens[index]) for index in row if index) for row in values.tolist()]
    return [" ".join(repr(float(value)) for value in row) for row in values.tolist()]


_memo: Dict[str, "RecBoleSplit"] = {}
_memo_lock = threading.Lock()


def recbole_split(files: DatasetFiles, model: str) -> RecBoleSplit:
    """RecBole's split exactly as a training run of ``model`` (a RecBole model name of the split's type,
    e.g. the augmentor's base model) on the same settings draws it.

    Users RecBole drops (filters) are absent; a user with no item in a part has an empty list there.
    Computed once per process for the same input files and split settings (an augmentation asks for it
    from several steps: candidates, user texts, the augmented interaction files); the last one is kept."""
    key = json.dumps({"inputs": files.input_hashes("inter", "item", "user"), "split": split_settings(files, model)},
                     sort_keys=True, default=str)
    with _memo_lock:
        if key not in _memo:
            _memo.clear()
            _memo[key] = _draw_split(files, model)
        return _memo[key]


def _draw_split(files: DatasetFiles, model: str) -> RecBoleSplit:
    from recbole.data import create_dataset
    from recbole.utils import FeatureType, init_seed

    config = _config(files, model)
    init_seed(split_seed(files.settings), config["reproducibility"])
    dataset = create_dataset(config)
    parts = dataset.build()
    names = [name for name in parts[0].inter_feat.columns if name in dataset.field2type]
    suffix = {FeatureType.TOKEN: "token", FeatureType.FLOAT: "float", FeatureType.TOKEN_SEQ: "token_seq",
              FeatureType.FLOAT_SEQ: "float_seq"}
    header = tuple(f"{name}:{suffix[dataset.field2type[name]]}" for name in names)
    rows = tuple(list(zip(*(_column(dataset, part, name) for name in names))) for part in parts)
    uid, iid = dataset.uid_field, dataset.iid_field
    users: Dict[str, UserSplit] = {}
    for index, part_rows in enumerate(rows):
        for row in part_rows:
            entry = users.setdefault(row[names.index(uid)], UserSplit())
            (entry.train, entry.valid, entry.test)[index].append(row[names.index(iid)])
    logger.info("RecBole's split (seed %d): %d users, %s interactions per part", split_seed(files.settings),
                len(users), [len(part) for part in rows])
    return RecBoleSplit(users, header, rows, uid, iid)
