"""Collaborative candidate models for augmentors: RecBole's SASRec trained on sequences the augmentor
gives it (e.g. users' *training* histories reversed), then asked for each user's top-k next items.

LLMSeR uses two: a reverse model (trained on reversed training sequences: its "next" item is an item
that came *before*) that proposes pseudo-prior candidates, and a forward model (trained on training
sequences minus their last item) that proposes candidates for that hidden item. The sequences come
from the augmentor, built from the training split only, so no validation or test item ever reaches
these models.

Training is RecBole's own pipeline (Config, SequentialDataset, leave-one-out split of the given
sequences for early stopping, Trainer) on an atomic file written under a work folder; the
hyperparameters are ``properties/model/SASRec.yaml`` with the epochs given.
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
            scores[:, 0] = -np.inf  # padding
            for row, user in enumerate(chunk):
                banned = [self.item2id[item] for item in exclude.get(user, ()) if item in self.item2id]
                if banned:
                    scores[row, banned] = -np.inf
            top = torch.topk(scores, min(k, scores.shape[1] - 1), dim=1)
            for row, user in enumerate(chunk):
                out[user] = [self.id2item[index] for index, value in zip(top.indices[row].tolist(), top.values[row].tolist())
                             if value > -np.inf]
        return out


def train_ranker(sequences: Mapping[str, Sequence[str]], work_dir: Path, name: str, settings: Mapping,
                 epochs: int) -> SequenceRanker:
    """Train RecBole's SASRec on ``sequences`` (user -> items in order; the last one is what the model
    learns to predict) and return it as a :class:`SequenceRanker`.

    RecBole holds out each sequence's last two items (leave-one-out) for early stopping, as for any
    sequential model; users with fewer items only serve as inputs."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    rows = [(user, item, str(step)) for user, items in sequences.items() for step, item in enumerate(items)]
    if not rows:
        raise UserError(f"No user has any training item to train the {name} candidate model on.")
    folder = Path(work_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{name}.inter", ("user_id:token", "item_id:token", "timestamp:float"), rows)
    config_dict = dict(read_yaml(properties_dir() / "model" / "SASRec.yaml"))
    config_dict.update({
        "data_path": str(work_dir), "checkpoint_dir": str(folder / "saved"), "epochs": int(epochs),
        "stopping_step": max(1, int(epochs)), "seed": int(settings.get("seed") or 2020), "reproducibility": True,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": int(settings.get("MAX_ITEM_LIST_LENGTH") or 50),
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
        "show_progress": bool(settings.get("show_progress", False)), "state": "WARNING",
        "use_gpu": bool(settings.get("use_gpu", True)), "log_wandb": False,
    })
    with isolated_argv():
        config = Config(model=SASRec, dataset=name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    logger.info("training the %s candidate model (SASRec, %d epochs) on %d sequences", name, epochs, len(sequences))
    trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
    state = torch.load(trainer.saved_model_file, map_location=config["device"], weights_only=False)["state_dict"]
    model.load_state_dict(state)
    return SequenceRanker(model, dataset, config["MAX_ITEM_LIST_LENGTH"], config["device"])
