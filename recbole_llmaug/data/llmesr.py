"""The dataset of LLM-ESR (Liu et al., NeurIPS 2024): RecBole's ``SequentialDataset`` plus the
augmentor's item text embeddings and similar users, and each user's training sequence for the
self-distillation teacher."""

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset

from recbole_llmaug.data.augmented import AugmentedDataset


def needs_item_embeddings(config) -> bool:
    """The semantic view, or the PCA initialisation of the ID view, reads the item text embeddings."""
    return bool(config["use_semantic"]) or (bool(config["use_collaborative"]) and config["id_init"] == "pca")


def distills(config) -> bool:
    """Retrieval-augmented self-distillation is on (it reads the similar users)."""
    return float(config["alpha"]) > 0 and int(config["sim_user_num"]) > 0


class LLMESRDataset(AugmentedDataset, SequentialDataset):
    """``augmented['item_emb']``: ``(table [n_items, D], items without a row)``;
    ``augmented['sim_users']``: ``[n_users, N]`` internal ids, most similar first, 0 = none."""

    @classmethod
    def needed_outputs(cls, config) -> tuple:
        names = []
        if needs_item_embeddings(config):
            names.append("item_emb")
        if distills(config):
            names.append("sim_users")
        return tuple(names)

    def item_text_embeddings(self):
        """``([n_items, D] float32 rows by internal item id, row 0 = padding = 0; items the file lacks)``."""
        return self.augmented_output("item_emb")

    def similar_users(self, count: int) -> torch.Tensor:
        """``[n_users, count]`` internal ids of each user's most similar users; 0 = none."""
        table = self.augmented_output("sim_users")[:, :count]
        if table.shape[1] < count:
            table = torch.nn.functional.pad(table, (0, count - table.shape[1]))
        return table

    def training_sequences(self):
        """Each user's last (longest) training prefix row: ``seq [U, L]``, ``length [U]``, ``target [U]``.

        Call it on the training split (``train_data.dataset``): its rows are the augmented prefixes
        whose targets are training items, so the prefix plus its target is the user's training
        sequence (truncated to the last ``MAX_ITEM_LIST_LENGTH + 1`` items). Users without a training
        row get length 0.
        """
        uid_field, iid_field = self.uid_field, self.iid_field
        seq_field, len_field = iid_field + self.config["LIST_SUFFIX"], self.item_list_length_field
        inter = self.inter_feat
        if seq_field not in inter:
            raise ValueError(
                "LLMESR must be built on the training split of a sequential dataset "
                f"(train_data.dataset); this dataset has no '{seq_field}' field."
            )
        uid = inter[uid_field].numpy()
        length = inter[len_field].numpy()
        n_users = self.user_num
        max_len = inter[seq_field].shape[1]
        seq_out = torch.zeros(n_users, max_len, dtype=torch.long)
        len_out = torch.zeros(n_users, dtype=torch.long)
        tgt_out = torch.zeros(n_users, dtype=torch.long)
        if len(uid) == 0:
            return seq_out, len_out, tgt_out
        # rows are chronological within a user; the last row of the longest length is the latest prefix
        order = np.lexsort((np.arange(len(uid)), length, uid))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = uid[order][1:] != uid[order][:-1]
        pick = torch.as_tensor(order[last])
        users = torch.as_tensor(uid[order[last]])
        seq_out[users] = inter[seq_field][pick]
        len_out[users] = inter[len_field][pick]
        tgt_out[users] = inter[iid_field][pick]
        return seq_out, len_out, tgt_out
