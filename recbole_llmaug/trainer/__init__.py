"""RecBole trainers with long-tail grouped evaluation and per-epoch timing.

``with_longtail(TrainerClass)`` returns a subclass of any RecBole trainer whose collector and
evaluator are the long-tail ones; training itself is untouched. A model that needs per-epoch work
has a ``<Model>Trainer`` in ``recbole_llmaug.trainer.<model lower>`` (found by
:func:`recbole_llmaug.utils.get_trainer`, which wraps it with ``with_longtail``).
"""

import time

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import ModelType

from recbole_llmaug.compat import unique_checkpoint_name
from recbole_llmaug.evaluator import LongTailCollector, LongTailEvaluator


class LongTailMixin:
    """Swaps in the grouped collector/evaluator and records seconds per training epoch."""

    def __init__(self, config, model):
        super().__init__(config, model)
        unique_checkpoint_name(self)
        self.eval_collector = LongTailCollector(config)
        self.evaluator = LongTailEvaluator(config)
        self.epoch_seconds = []

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        start = time.perf_counter()
        result = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        self.epoch_seconds.append(time.perf_counter() - start)
        return result

    def _neg_sample_batch_eval(self, batched_data):
        """Sampled (uniN/popN) evaluation scores one row per user; remember which user each row is."""
        interaction, row_idx, positive_u, positive_i = batched_data
        users = torch.zeros(int(positive_u[-1]) + 1, dtype=torch.long)
        users[row_idx.cpu()] = interaction[self.config["USER_ID_FIELD"]].cpu().long()
        self.eval_collector.pending_row_users = users
        if self.config["MODEL_TYPE"] == ModelType.SEQUENTIAL and len(positive_u) == len(users):
            return self._sampled_scores_from_full_ranking(batched_data)
        return super()._neg_sample_batch_eval(batched_data)

    def _sampled_scores_from_full_ranking(self, batched_data):
        """Sampled (uniN) scores of a sequential model from one ``full_sort_predict`` per user.

        RecBole repeats a user's row once per candidate (101 rows for uni100) and encodes the same
        sequence for each: on Beauty that is 2.3M encodings, longer than a training epoch. When every
        user of the batch has one positive row, a user's rows differ only in the candidate item, so
        one full ranking per user read at the candidates gives the same scores (up to float
        rounding; tested against RecBole's path) for about 1/100 of the work."""
        interaction, row_idx, positive_u, positive_i = batched_data
        n_users = len(positive_u)
        rows = torch.arange(len(row_idx))
        first_row = torch.full((n_users,), len(row_idx), dtype=torch.long).scatter_reduce(
            0, row_idx.cpu(), rows, reduce="amin"
        )
        ranking = self.model.full_sort_predict(interaction[first_row].to(self.device)).view(n_users, -1)
        items = interaction[self.config["ITEM_ID_FIELD"]].to(self.device)
        row_idx = row_idx.to(self.device)
        scores = torch.full((n_users, self.tot_item_num), -np.inf, device=self.device)
        scores[row_idx, items] = ranking[row_idx, items]
        return interaction, scores, positive_u, positive_i

    def prepare_groups(self, train_data):
        """Group users/items from the training data; ``fit`` does this itself."""
        self.eval_collector.data_collect(train_data)


_cache = {}


def with_longtail(trainer_class):
    """The long-tail variant of a RecBole trainer class (created once per class)."""
    if issubclass(trainer_class, LongTailMixin):
        return trainer_class
    if trainer_class not in _cache:
        _cache[trainer_class] = type(f"LongTail{trainer_class.__name__}", (LongTailMixin, trainer_class), {})
    return _cache[trainer_class]


LongTailTrainer = with_longtail(Trainer)
