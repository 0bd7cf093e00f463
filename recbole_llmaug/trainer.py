"""RecBole trainers with long-tail grouped evaluation and per-epoch timing.

``with_longtail(TrainerClass)`` returns a subclass of any RecBole trainer whose collector and
evaluator are the long-tail ones; training itself is untouched.
"""

import os
import time
import uuid

import torch
from recbole.trainer import Trainer

from recbole_llmaug.evaluator import LongTailCollector, LongTailEvaluator


class LongTailMixin:
    """Swaps in the grouped collector/evaluator and records seconds per training epoch."""

    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names the checkpoint <model>-<time to the second>.pth: runs started in the same
        # second (parallel seeds, a benchmark's worker pool) would overwrite and test each other's.
        stem, suffix = os.path.splitext(self.saved_model_file)
        self.saved_model_file = f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"
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
        return super()._neg_sample_batch_eval(batched_data)

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
