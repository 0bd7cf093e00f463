"""LLM-ESR trained on LLMSeR's augmented sequences: the two systems composed, which neither paper's code
offers (LLM-ESR: Liu et al., NeurIPS 2024; LLMSeR: Sun, Liu, Zhu, Tian).

LLM-ESR enhances the *model* (a frozen LLM view of the items next to the ID view, self-distillation
from semantically similar users); LLMSeR augments the *data* (pseudo-prior items in front of short
sequences, with a per-user reliability weight). Whether their gains add up is an open question; this
model answers it on the same split and budget as both.

* The model is ``LLMESR`` (its encoder, views, teacher and options, unchanged), trained with LLMSeR's
  dual-channel loss, per row: ``w_u * L(augmented row) + (1 - w_u) * L(original row)``, where the
  augmented row has the user's pseudo-prior items in front (``LLMSeRDataset``'s items and weights,
  the augmentor's LLMSeR outputs; a full row drops pseudo items first, never a real one).
* ``L`` is LLM-ESR's loss: the cross-entropy at the row's loss positions plus ``alpha`` times the
  squared distance of the row's user representation to its teacher. The pseudo items are context only:
  the augmented row is the original row (its masks too, for the BERT4Rec encoder) shifted behind them,
  with the same loss positions and targets. The rec term is divided by the batch's loss positions and
  the distillation term by its rows that have a teacher, as in ``LLMESR``, so with every weight 0 the
  loss is LLMESR's.
* The teacher (similar users' representations) is computed from their original training sequences.
* Inference: from the augmented sequence (``llmser_inference: augmented``) or the original one.

Settings: ``properties/model/LLMSeR.yaml`` then ``properties/model/LLMESR.yaml`` (LLM-ESR's sizes and
training win where both set a key), then this model's own file, which holds no default of its own.
"""

import torch
import torch.nn.functional as F

from recbole_llmaug.model.sequential_recommender.llmesr import LLMESR
from recbole_llmaug.model.sequential_recommender.llmser import LLMSeR, inference_input, prepend

COMPOSED_OPTIONS = ("augment_max_length", "llmser_")  # LLMSeR's options that this model keeps


def shift_right(values, shift):
    """``values [B, L]`` moved ``shift [B]`` places to the right per row, zeros (False) in front."""
    width = values.shape[1]
    index = torch.arange(width, device=values.device).unsqueeze(0) - shift.unsqueeze(1)  # [B, L]
    moved = values.gather(1, index.clamp(min=0))
    return torch.where(index >= 0, moved, torch.zeros_like(moved))


class LLMESRSeR(LLMESR):
    r"""LLMESR with LLMSeR's pseudo-prior items and reliability-weighted dual-channel training."""

    config_from_models = ("LLMSeR", "LLMESR")  # the Config layer loads their property files, in this order
    OPTIONS = LLMESR.OPTIONS + tuple(
        option for option in LLMSeR.OPTIONS if option.name.startswith(COMPOSED_OPTIONS)
    )

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if not hasattr(dataset, "pseudo_items"):
            raise ValueError(
                "LLMESRSeR is built on its LLMESRSeRDataset, which loads the augmented data: create the "
                "dataset with recbole_llmaug.utils.create_dataset (run_recbole_llmaug does), not RecBole's."
            )
        self.augmented_inference = config["llmser_inference"] == "augmented"
        pseudo = dataset.pseudo_items()[:, -self.max_seq_length:]
        self.register_buffer("pseudo", pseudo, persistent=False)  # [n_users, M]
        self.register_buffer("pseudo_len", (pseudo > 0).sum(dim=1), persistent=False)  # [n_users]
        self.register_buffer("weights", dataset.user_weights(), persistent=False)  # [n_users]

    # ------------------------------------------------------------------ training
    def row_losses(self, inputs, positions, targets, user_pos, sem_table, teacher, has_teacher):
        """Per row: the sum of the cross-entropies at its loss positions ``[B]``, and the squared
        distance (mean over the representation) of its user representation to its teacher ``[B]``
        (0 without one)."""
        out = self.encode(inputs, sem_table)  # [B, L, R]
        logits = out[positions] @ self.item_table(sem_table).t()  # [P, n_items]
        per_position = F.cross_entropy(logits, targets[positions], reduction="none")  # [P]
        rows = torch.nonzero(positions, as_tuple=True)[0]
        rec = per_position.new_zeros(len(inputs)).index_add(0, rows, per_position)
        if teacher is None:
            return rec, None
        student = self.gather_indexes(out, user_pos)  # [B, R]
        distance = ((student - teacher) ** 2).mean(dim=-1)
        return rec, torch.where(has_teacher, distance, torch.zeros_like(distance))

    def calculate_loss(self, interaction):
        rows = self.training_batch(interaction)  # selected on the original rows, which the model's buffers hold
        if rows is None:
            return self.nothing_to_learn()
        users, item_seq, item_seq_len, target = rows
        inputs, positions, targets, user_pos = self.training_rows(item_seq, item_seq_len, target)
        sem_table = self.semantic_item_table() if self.use_semantic else None
        teacher, has_teacher = self.teacher(users) if self.distill else (None, None)
        weight = self.weights[users]  # [B]
        rec, distance = self.row_losses(inputs, positions, targets, user_pos, sem_table, teacher, has_teacher)
        rec, distance = (1 - weight) * rec, None if distance is None else (1 - weight) * distance
        if bool((weight > 0).any()):
            # the same row behind the pseudo items: inputs (with their masks), loss positions and targets move
            aug_inputs, _, shift = prepend(inputs, user_pos + 1, self.pseudo[users], self.pseudo_len[users])
            aug_rec, aug_distance = self.row_losses(aug_inputs, shift_right(positions, shift),
                                                    shift_right(targets, shift), user_pos + shift, sem_table,
                                                    teacher, has_teacher)
            rec = rec + weight * aug_rec
            distance = None if distance is None else distance + weight * aug_distance
        rec_loss = rec.sum() / positions.sum()
        if not self.distill:
            return rec_loss
        teachers = has_teacher.sum()
        distill_loss = distance.sum() / teachers if teachers > 0 else distance.sum() * 0.0
        return rec_loss, self.alpha * distill_loss

    # ------------------------------------------------------------------ prediction
    def predict(self, interaction):
        return super().predict(inference_input(self, interaction))

    def full_sort_predict(self, interaction):
        return super().full_sort_predict(inference_input(self, interaction))

