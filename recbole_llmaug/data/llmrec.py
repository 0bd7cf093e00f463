"""The dataset of LLMRec (Wei et al., WSDM 2024): RecBole's general ``Dataset`` plus the augmentor's
LLM-sampled BPR triples, item attributes, user profiles and the shared base text embeddings, as tensors
in RecBole's internal ids. Which of them are loaded follows the ablation options (a part that is off
needs no file)."""

import torch
from recbole.data.dataset import Dataset

from recbole_llmaug.augment.systems.llmrec import EDGES, ITEM_ATTRIBUTES, USER_PROFILES
from recbole_llmaug.data.augmented import AugmentedDataset

ITEM_EMB, USER_EMB = "item_emb", "user_emb"  # the shared base text features (augment/text_embeddings.py)


def uses_aug_edges(config) -> bool:
    """The augmented BPR triples enter the loss."""
    return bool(config["llmrec_aug_edges"]) and float(config["llmrec_aug_share"]) > 0


def uses_side_features(config) -> bool:
    """Side features are added to the embeddings at all (``llmrec_omega1 = 0``: none, no projection)."""
    return float(config["llmrec_omega1"]) > 0


def feature_outputs(config) -> dict:
    """``{"user": [output names], "item": [output names]}`` of the side features in use, in a fixed order."""
    sides = {"user": [], "item": []}
    if not uses_side_features(config):
        return sides
    if config["llmrec_text_features"]:
        sides["user"].append(USER_EMB)
        sides["item"].append(ITEM_EMB)
    if config["llmrec_user_profiles"]:
        sides["user"].append(USER_PROFILES.name)
    if config["llmrec_item_attributes"]:
        sides["item"].append(ITEM_ATTRIBUTES.name)
    return sides


class LLMRecDataset(AugmentedDataset, Dataset):
    """``augmented['llmrec_edges']``: ``[n, 3]`` internal (user, positive, negative) ids;
    ``augmented[<feature output>]``: ``(table [n_users or n_items, dim], ids missing from the file)``."""

    @classmethod
    def needed_outputs(cls, config) -> tuple:
        names = [EDGES.name] if uses_aug_edges(config) else []
        sides = feature_outputs(config)
        return tuple(names + sides["user"] + sides["item"])

    def augmented_triples(self) -> torch.Tensor:
        """``[n, 3]`` long: the LLM-sampled (user, liked item, disliked item) triples; ``[0, 3]`` when the
        augmented edges are off."""
        if not uses_aug_edges(self.config):
            return torch.zeros(0, 3, dtype=torch.long)
        return self.augmented_output(EDGES.name)

    def _features(self, side: str) -> list:
        found = []
        for name in feature_outputs(self.config)[side]:
            table, missing = self.augmented_output(name)
            if missing:
                self.logger.warning("LLMRec: %d %ss have no row in %s; their features are zero", missing, side, name)
            found.append((name, table))
        return found

    def user_features(self) -> list:
        """``[(output name, table [n_users, dim] float32)]`` of the user side features in use (row 0 = padding)."""
        return self._features("user")

    def item_features(self) -> list:
        """``[(output name, table [n_items, dim] float32)]`` of the item side features in use (row 0 = padding)."""
        return self._features("item")
