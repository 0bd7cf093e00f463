"""Long-tail grouped evaluation inside RecBole's collector/evaluator.

The overall metrics are RecBole's own, computed from RecBole's ``rec.topk`` structure. For the
groups, the collector also keeps, per evaluated row, the user id and the top-k item ids, and
the evaluator recomputes every top-k metric on each group's rows with RecBole's metric classes:

* tail/head users: training history length below/at or above ``tail_user_threshold``;
* short/medium/long users: ``user_length_groups`` (name -> [low, high), ``null`` = no bound);
* tail/head items: a row's positives restricted to tail/head items (training popularity below
  ``tail_item_threshold``, or by default the Pareto split: the 20% most popular items are head).
  With one target per user (leave-one-out) this is simply a partition of the rows.

Group sizes are kept in ``LongTailEvaluator.group_sizes``.
"""

import math
from collections import OrderedDict

import numpy as np
import torch
from recbole.evaluator import Collector, Evaluator
from recbole.evaluator.collector import DataStruct

GROUP_SEPARATOR = "/"


def history_and_popularity(dataset):
    """Per-user training history length and per-item training interaction count.

    RecBole's sequential training set holds one row per training prefix (``item_id_list`` ->
    target ``item_id``); each user's first item appears only as the 1-item prefix, so the
    training interactions are the targets plus those first items. General datasets are plain.
    """
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    users = dataset.inter_feat[uid_field].long()
    items = dataset.inter_feat[iid_field].long()
    list_field = getattr(dataset, "item_id_list_field", None)
    if list_field and list_field in dataset.inter_feat:
        lengths = dataset.inter_feat[dataset.item_list_length_field]
        first = lengths == 1
        users = torch.cat([users, users[first]])
        items = torch.cat([items, dataset.inter_feat[list_field][first, 0].long()])
    history = torch.bincount(users, minlength=dataset.user_num)
    popularity = torch.bincount(items, minlength=dataset.item_num)
    return history, popularity


def pareto_threshold(values, head_share=0.2):
    """Smallest value counted as head when the top ``head_share`` of entries are head."""
    ordered = np.sort(np.asarray(values))[::-1]
    if len(ordered) == 0:
        return math.inf
    head_count = max(1, int(math.ceil(head_share * len(ordered))))
    return float(ordered[head_count - 1])


class LongTailGroups:
    """Group membership of users and items, derived from the training data and the config."""

    def __init__(self, config, train_dataset):
        self.history, self.popularity = history_and_popularity(train_dataset)
        known_items = self.popularity[1:]  # id 0 is RecBole's padding item
        known_users = self.history[1:]
        item_threshold = config["tail_item_threshold"]
        user_threshold = config["tail_user_threshold"]
        self.item_threshold = (
            pareto_threshold(known_items.numpy()) if item_threshold is None else float(item_threshold)
        )
        self.user_threshold = (
            pareto_threshold(known_users.numpy()) if user_threshold is None else float(user_threshold)
        )
        self.tail_item = self.popularity < self.item_threshold
        self.length_groups = config["user_length_groups"] or {}

    def user_masks(self, users):
        """Row masks for each user group, given the evaluated rows' user ids."""
        length = self.history[users]
        masks = OrderedDict()
        masks["tail_user"] = length < self.user_threshold
        masks["head_user"] = ~masks["tail_user"]
        for name, (low, high) in self.length_groups.items():
            upper = math.inf if high is None else high
            masks[f"{name}_user"] = (length >= low) & (length < upper)
        return masks


class LongTailCollector(Collector):
    """RecBole's collector, plus the per-row user ids and top-k item ids the groups need."""

    def __init__(self, config):
        super().__init__(config)
        self.groups = None
        self.pending_row_users = None
        self._reset_rows()

    def _reset_rows(self):
        self._users, self._topk_items, self._pos_rows, self._pos_items = [], [], [], []
        self._row_offset = 0

    def data_collect(self, train_data):
        super().data_collect(train_data)
        self.groups = LongTailGroups(self.config, train_data.dataset)

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        if self.groups is None or scores_tensor.dim() != 2:
            return
        if self.pending_row_users is not None:
            users = self.pending_row_users
            self.pending_row_users = None
        else:
            users = interaction[self.config["USER_ID_FIELD"]]
        _, topk_idx = torch.topk(scores_tensor, max(self.topk), dim=-1)
        self._users.append(users.cpu())
        self._topk_items.append(topk_idx.cpu())
        self._pos_rows.append(positive_u.cpu() + self._row_offset)
        self._pos_items.append(positive_i.cpu())
        self._row_offset += scores_tensor.shape[0]

    def get_data_struct(self):
        struct = super().get_data_struct()
        if self._users:
            users = torch.cat(self._users).long()
            pos_items = torch.cat(self._pos_items).long()
            struct.set("longtail.user_masks", self.groups.user_masks(users))
            struct.set("longtail.tail_positive", self.groups.tail_item[pos_items])
            struct.set("longtail.topk_items", torch.cat(self._topk_items))
            struct.set("longtail.pos_rows", torch.cat(self._pos_rows).long())
            struct.set("longtail.pos_items", pos_items)
        self._reset_rows()
        return struct


def topk_struct(topk_items, pos_rows, pos_items, n_rows):
    """RecBole's ``rec.topk`` (hit flags + positive count per row) from explicit ids."""
    k = topk_items.shape[1]
    hits = torch.zeros((n_rows, k), dtype=torch.int)
    pos_len = torch.bincount(pos_rows, minlength=n_rows).view(-1, 1).int()
    matches = (topk_items[pos_rows] == pos_items.unsqueeze(1)).int()
    hits.index_put_((pos_rows,), matches, accumulate=True)
    struct = DataStruct()
    struct.set("rec.topk", torch.cat([hits, pos_len], dim=1))
    return struct


class LongTailEvaluator(Evaluator):
    """RecBole's evaluator; adds ``<group>/<metric>`` entries for every top-k metric."""

    TOPK_ONLY_NEEDS = {"rec.topk"}

    def __init__(self, config):
        super().__init__(config)
        self.group_sizes = OrderedDict()

    def _group_metrics(self):
        return [
            metric for metric in self.metrics
            if set(getattr(self.metric_class[metric], "metric_need", [])) <= self.TOPK_ONLY_NEEDS
        ]

    def evaluate(self, dataobject):
        result = super().evaluate(dataobject)
        if "longtail.user_masks" not in dataobject:
            return result
        topk_items = dataobject.get("longtail.topk_items")
        pos_rows = dataobject.get("longtail.pos_rows")
        pos_items = dataobject.get("longtail.pos_items")
        n_rows = len(topk_items)
        selections = OrderedDict()
        for name, row_mask in dataobject.get("longtail.user_masks").items():
            selections[name] = (torch.nonzero(row_mask).flatten(), row_mask[pos_rows])
        tail_positive = dataobject.get("longtail.tail_positive")
        for name, keep in (("tail_item", tail_positive), ("head_item", ~tail_positive)):
            selections[name] = (torch.unique(pos_rows[keep]), keep)
        self.group_sizes = OrderedDict()
        metrics = self._group_metrics()
        for name, (rows, keep) in selections.items():
            self.group_sizes[name] = int(len(rows))
            if len(rows) == 0:
                continue
            remap = torch.full((n_rows,), -1, dtype=torch.long)
            remap[rows] = torch.arange(len(rows))
            struct = topk_struct(topk_items[rows], remap[pos_rows[keep]], pos_items[keep], len(rows))
            for metric in metrics:
                for key, value in self.metric_class[metric].calculate_metric(struct).items():
                    result[f"{name}{GROUP_SEPARATOR}{key}"] = value
        return result
