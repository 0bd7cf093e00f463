"""Collaborative candidate models for augmentors: a RecBole model trained on data the augmentor gives it
(users' *training* histories only), then asked for each user's top-k items.

* :func:`train_ranker`: RecBole's SASRec on sequences (e.g. training histories reversed) -> top-k next items.
* :func:`train_general_ranker`: any RecBole general model (LightGCN, BPR, ...) on user-item pairs
  (LLMRec's base recommender on RecBole's training split) -> top-k items per user.

LLMSeR uses two: a reverse model (trained on reversed training sequences: its "next" item is an item
that came *before*) that proposes pseudo-prior candidates, and a forward model (trained on training
sequences minus their last item) that proposes candidates for that hidden item. The sequences come
from the augmentor, built from the training split only, so no validation or test item ever reaches
these models.

Training is RecBole's own pipeline (Config, dataset, split, Trainer; shared by both in :func:`_train`) on
an atomic file written under a work folder; the hyperparameters are RecBole's and ours
(``properties/model/<model>.yaml``) with the epochs given. SASRec holds out the leave-one-out items of
the given sequences for early stopping; a general model trains on every given pair, for the epochs given.
"""

import logging
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np
import torch

from recbole_llmaug.augment.atomic import write_atomic
from recbole_llmaug.compat import isolated_argv
from recbole_llmaug.defaults import properties_dir, read_yaml
from recbole_llmaug.errors import UserError

logger = logging.getLogger(__name__)


class SequenceRanker:
    """A trained RecBole sequential model and the token maps of the sequences it was trained on."""

    def __init__(self, model, dataset, max_len: int, device):
        self.model = model.eval()
        self.item2id = dataset.field2token_id[dataset.iid_field]
        self.id2item = dataset.field2id_token[dataset.iid_field]
        self.item_seq_field = model.ITEM_SEQ
        self.item_len_field = model.ITEM_SEQ_LEN
        self.max_len = max_len
        self.device = device

    def top_k(self, sequences: Mapping[str, Sequence[str]], k: int, exclude: Mapping[str, set],
              batch_size: int = 1024) -> Dict[str, List[str]]:
        """Per user: the ``k`` highest-scored items after its sequence (raw ids, best first), never an
        item of ``exclude[user]`` nor one the model never saw. A sequence longer than the model's
        ``MAX_ITEM_LIST_LENGTH`` keeps its last items."""
        from recbole.data.interaction import Interaction

        users = [user for user, seq in sequences.items() if any(item in self.item2id for item in seq)]
        out = {}
        for start in range(0, len(users), batch_size):
            chunk = users[start:start + batch_size]
            rows = [[self.item2id[item] for item in sequences[user] if item in self.item2id][-self.max_len:] for user in chunk]
            seq = torch.zeros(len(chunk), self.max_len, dtype=torch.long)
            for row, ids in enumerate(rows):
                seq[row, :len(ids)] = torch.as_tensor(ids)
            length = torch.as_tensor([len(ids) for ids in rows])
            batch = Interaction({self.item_seq_field: seq, self.item_len_field: length}).to(self.device)
            with torch.no_grad():
                scores = self.model.full_sort_predict(batch).view(len(chunk), -1)[:, : len(self.id2item)].cpu()
            out.update(_top_rows(scores, chunk, k, exclude, self.item2id, self.id2item))
        return out


def _train(model_name: str, name: str, work_dir: Path, header: tuple, rows: list, settings: Mapping,
           epochs: int, seed: int, config_updates: Mapping, validate: bool):
    """Write ``rows`` as ``<work_dir>/<name>/<name>.inter`` and train RecBole's ``model_name`` on it with
    RecBole's own pipeline; the model (best validation checkpoint when ``validate``, else the last
    epoch), the dataset and the config.

    Hyperparameters: RecBole's property file of the model, then ours (``properties/model/<model>.yaml``),
    then ``config_updates`` and the run's device/progress settings."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    if not rows:
        raise UserError(f"No user has any training item to train the {name} candidate model on.")
    folder = Path(work_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{name}.inter", header, rows)
    ours = properties_dir() / "model" / f"{model_name}.yaml"
    config_dict = dict(read_yaml(ours)) if ours.is_file() else {}
    config_dict.update({
        "data_path": str(work_dir), "checkpoint_dir": str(folder / "saved"), "epochs": int(epochs),
        "stopping_step": max(1, int(epochs)), "seed": int(seed), "reproducibility": True,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
        "show_progress": bool(settings.get("show_progress", False)), "state": "WARNING",
        "use_gpu": bool(settings.get("use_gpu", True)), "log_wandb": False, "save_dataset": False,
        "save_dataloaders": False, **config_updates,
    })
    try:
        model_class = get_model(model_name)
    except ValueError:
        raise UserError(f"'{model_name}' is not a RecBole model; name one, e.g. LightGCN or BPR.") from None
    with isolated_argv():
        config = Config(model=model_class, dataset=name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = model_class(config, train_data.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    logger.info("training the %s candidate model (%s, %d epochs) on %d interactions", name, model_name, epochs, len(rows))
    trainer.fit(train_data, valid_data if validate else None, saved=True, show_progress=config["show_progress"])
    state = torch.load(trainer.saved_model_file, map_location=config["device"], weights_only=False)["state_dict"]
    model.load_state_dict(state)
    return model.eval(), dataset, config


def train_ranker(sequences: Mapping[str, Sequence[str]], work_dir: Path, name: str, settings: Mapping,
                 epochs: int, seed: int) -> SequenceRanker:
    """Train RecBole's SASRec on ``sequences`` (user -> items in order; the last one is what the model
    learns to predict) and return it as a :class:`SequenceRanker`.

    RecBole holds out each sequence's last two items (leave-one-out) for early stopping, as for any
    sequential model; users with fewer items only serve as inputs."""
    rows = [(user, item, str(step)) for user, items in sequences.items() for step, item in enumerate(items)]
    model, dataset, config = _train(
        "SASRec", name, work_dir, ("user_id:token", "item_id:token", "timestamp:float"), rows, settings, epochs,
        seed, {
            "TIME_FIELD": "timestamp", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "MAX_ITEM_LIST_LENGTH": int(settings.get("MAX_ITEM_LIST_LENGTH") or 50),
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        }, validate=True)
    return SequenceRanker(model, dataset, config["MAX_ITEM_LIST_LENGTH"], config["device"])


class GeneralRanker:
    """A trained RecBole general model (LightGCN, BPR, ...) and the token maps of its training data."""

    def __init__(self, model, dataset, device):
        self.model = model
        self.user2id = dataset.field2token_id[dataset.uid_field]
        self.id2item = dataset.field2id_token[dataset.iid_field]
        self.item2id = dataset.field2token_id[dataset.iid_field]
        self.uid_field = dataset.uid_field
        self.device = device

    def top_k(self, users: Sequence[str], k: int, exclude: Mapping[str, set],
              batch_size: int = 1024) -> Dict[str, List[str]]:
        """Per user: the ``k`` highest-scored items (raw ids, best first), never an item of
        ``exclude[user]``; users the model never saw are left out."""
        from recbole.data.interaction import Interaction

        known = [user for user in users if user in self.user2id]
        out = {}
        for start in range(0, len(known), batch_size):
            chunk = known[start:start + batch_size]
            batch = Interaction({self.uid_field: torch.as_tensor([self.user2id[user] for user in chunk])}).to(self.device)
            with torch.no_grad():
                scores = self.model.full_sort_predict(batch).view(len(chunk), -1)[:, : len(self.id2item)].cpu()
            out.update(_top_rows(scores, chunk, k, exclude, self.item2id, self.id2item))
        return out


def _top_rows(scores, users, k, exclude, item2id, id2item) -> Dict[str, List[str]]:
    """The top ``k`` columns of each row of ``scores`` [users, items] as raw item ids, padding (0) and
    each user's ``exclude`` items never among them."""
    scores[:, 0] = -np.inf  # padding
    for row, user in enumerate(users):
        banned = [item2id[item] for item in exclude.get(user, ()) if item in item2id]
        if banned:
            scores[row, banned] = -np.inf
    top = torch.topk(scores, min(k, scores.shape[1] - 1), dim=1)
    return {user: [id2item[index] for index, value in zip(top.indices[row].tolist(), top.values[row].tolist())
                   if value > -np.inf] for row, user in enumerate(users)}


def train_general_ranker(interactions: Mapping[str, Sequence[str]], work_dir: Path, name: str, settings: Mapping,
                         model_name: str, epochs: int, seed: int) -> GeneralRanker:
    """Train RecBole's general model ``model_name`` on ``interactions`` (user -> its items, e.g. its
    training items under RecBole's split) for ``epochs`` epochs and return it as a :class:`GeneralRanker`.

    Every given interaction is trained on (``eval_args`` split ``RS: [1, 0, 0]``: nothing is held out, so
    the model sees no item beyond what it is given); no validation, the last epoch is kept."""
    rows = [(user, item) for user, items in interactions.items() for item in items]
    model, dataset, config = _train(
        model_name, name, work_dir, ("user_id:token", "item_id:token"), rows, settings, epochs, seed, {
            "TIME_FIELD": None, "load_col": {"inter": ["user_id", "item_id"]},
            "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "RO", "group_by": "user", "mode": "full"},
        }, validate=False)
    return GeneralRanker(model, dataset, config["device"])
