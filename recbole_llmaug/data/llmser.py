"""The dataset of LLMSeR: RecBole's ``SequentialDataset`` plus each user's pseudo-prior items and
its weight for dual-channel training, from the augmentor's outputs."""

import torch
from recbole.data.dataset import SequentialDataset

from recbole_llmaug.augment.systems.llmser import ARV, PSEUDO, selected_outputs
from recbole_llmaug.data.augmented import AugmentedDataset


class LLMSeRDataset(AugmentedDataset, SequentialDataset):
    """``augmented[<pseudo output>]``: ``[n_users, M]`` pseudo-prior item ids (oldest first, 0-padded);
    ``augmented[<reliability output>]``: ``[n_users]`` cosine reliability, NaN where none."""

    @classmethod
    def needed_outputs(cls, config) -> tuple:
        return selected_outputs(config)

    def pseudo_items(self) -> torch.Tensor:
        """``[n_users, M]`` internal item ids, oldest first, left-aligned, 0 = none."""
        return self.augmented_output(PSEUDO[self.config["llmser_pseudo"]].name)

    def training_lengths(self) -> torch.Tensor:
        """``[n_users]`` number of training items of each user (on the training split: its longest
        training prefix plus that prefix's target)."""
        lengths = torch.zeros(self.user_num, dtype=torch.long)
        users = self.inter_feat[self.uid_field].long()
        lengths.scatter_reduce_(0, users, self.inter_feat[self.item_list_length_field].long() + 1, reduce="amax")
        return lengths

    def user_weights(self) -> torch.Tensor:
        """``[n_users]`` weight ``w_u`` of the augmented channel in ``w_u L(aug) + (1 - w_u) L(orig)``.

        Users without pseudo-prior items: 0 (their augmented sequence is their real one). Others: their
        ARV reliability (``llmser_fixed_weight`` with ARV off or where none could be computed), times
        ``llmser_decay`` when their training history is longer than ``llmser_decay_length``. Call it on
        the training split.
        """
        config = self.config
        has_pseudo = (self.pseudo_items() > 0).any(dim=1)
        weights = torch.full((self.user_num,), float(config["llmser_fixed_weight"]))
        if config["llmser_arv"]:
            reliability = self.augmented_output(ARV[config["llmser_reliability"]].name)
            known = ~torch.isnan(reliability)
            weights[known] = reliability[known]
        long_users = self.training_lengths() > int(config["llmser_decay_length"])
        weights[long_users] *= float(config["llmser_decay"])
        return torch.where(has_pseudo, weights, torch.zeros_like(weights))
