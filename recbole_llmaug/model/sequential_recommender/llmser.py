"""LLMSeR (Sun, Liu, Zhu, Tian): pseudo-prior items for short sequences with reliability-weighted
dual-channel training, as a RecBole sequential model around one of RecBole's own backbones.

* The backbone is RecBole's ``SASRec``, ``GRU4Rec`` or ``BERT4Rec`` (``backbone``), built with its own
  configuration (the Config layer loads RecBole's and our property file for it under this model's file).
* Each training row is scored twice: on the original sequence, and on the *augmented* one, where the
  user's pseudo-prior items (from ``LLMSeRDataset``) are put in front. A row longer than
  ``MAX_ITEM_LIST_LENGTH`` keeps its last items, as any sequence does: the pseudo items, the oldest,
  give way first, and a real item never does. The pseudo items are context only, never
  targets: RecBole trains one sample per training prefix, and this keeps its targets.
* Dual-channel loss, per sample: ``w_u * L(augmented) + (1 - w_u) * L(original)`` with the user's weight
  ``w_u`` (reliability, decay). SASRec/GRU4Rec: the mean over the batch of the per-row cross-entropies.
  BERT4Rec: RecBole's cloze loss (cross-entropy summed over a row's masked positions, divided by the
  batch's masked positions), with each row's sum weighted. The official GRU4Rec/BERT4Rec multiply the
  *mean* loss by the summed weights, which discards the per-user weights; this does not.
* With every weight 0 the augmented channel is skipped and the model trains exactly as its backbone.
* Inference: from the augmented sequence (``llmser_inference: augmented``, as the official code) or the
  original one (``original``).

Every option is in ``properties/model/LLMSeR.yaml``.
"""

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from recbole.utils import get_model as recbole_get_model

from recbole_llmaug.augment.systems.llmser import ARV_PICKERS, PSEUDO_MODES
from recbole_llmaug.options import Option, validate_model_options

BACKBONES = ("SASRec", "GRU4Rec", "BERT4Rec")


def prepend(seq, length, prefix, prefix_len):
    """Put ``prefix [B, M]`` (left-aligned, ``prefix_len [B]`` items) in front of ``seq [B, L]``
    (left-aligned, ``length [B]`` items). A row longer than ``L`` keeps its last ``L`` items.

    Returns the new rows ``[B, L]``, their lengths ``[B]`` and ``shift [B]``: an original position ``p``
    is now at ``p + shift``. Only prefix items are cut (``length <= L``), so ``0 <= shift <= prefix_len``."""
    batch, width = seq.shape
    if prefix.shape[1] == 0:
        return seq, length, torch.zeros_like(length)
    total = prefix_len + length
    overflow = (total - width).clamp(min=0)
    position = torch.arange(width, device=seq.device).unsqueeze(0) + overflow.unsqueeze(1)  # in [prefix; seq]
    from_prefix = position < prefix_len.unsqueeze(1)
    prefix_items = prefix.gather(1, position.clamp(max=prefix.shape[1] - 1))
    seq_items = seq.gather(1, (position - prefix_len.unsqueeze(1)).clamp(min=0, max=width - 1))
    items = torch.where(from_prefix, prefix_items, seq_items)
    items = torch.where(position < total.unsqueeze(1), items, torch.zeros_like(items))
    return items, total.clamp(max=width), prefix_len - overflow


def with_prefix(model, interaction):
    """A copy of ``interaction`` whose sequences have the users' pseudo-prior items in front (``model``'s
    ``pseudo [n_users, M]`` and ``pseudo_len [n_users]`` buffers)."""
    users = interaction[model.USER_ID]
    seq, length, _ = prepend(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN], model.pseudo[users],
                             model.pseudo_len[users])
    return Interaction(dict(interaction.interaction, **{model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: length}))


def inference_input(model, interaction):
    """What ``model`` scores: the sequences with the pseudo-prior items in front (``llmser_inference:
    augmented``, the official choice) or the real ones (``original``)."""
    return with_prefix(model, interaction) if model.augmented_inference else interaction


class LLMSeR(SequentialRecommender):
    r"""LLMSeR around RecBole's SASRec, GRU4Rec or BERT4Rec (``backbone``)."""

    input_type = InputType.POINTWISE
    config_from_backbone = True  # the Config layer loads the backbone's property files under ours
    # checked before any work starts (recbole_llmaug.options); defaults in properties/model/LLMSeR.yaml
    OPTIONS = (
        Option("backbone", "choice", choices=BACKBONES),
        Option("loss_type", "choice", choices=("CE",)),
        Option("augment_max_length", "int", minimum=1, optional=True, stage="augment"),
        Option("llmser_candidates", "int", minimum=1, stage="augment"),
        Option("llmser_select", "int", minimum=1, stage="augment"),
        Option("llmser_keep", "int", minimum=1, stage="augment"),
        Option("llmser_pseudo", "choice", choices=PSEUDO_MODES, stage="augment"),
        Option("llmser_arv_candidates", "int", minimum=1, stage="augment"),
        Option("llmser_reliability", "choice", choices=ARV_PICKERS, stage="augment"),
        Option("llmser_ccg_epochs", "int", minimum=1, stage="augment"),
        Option("llmser_ccg_seed", "int", stage="augment"),
        Option("llmser_arv", "bool"),
        Option("llmser_fixed_weight", "float", minimum=0, maximum=1),
        Option("llmser_decay_length", "int", minimum=0),
        Option("llmser_decay", "float", minimum=0, maximum=1),
        Option("llmser_inference", "choice", choices=("augmented", "original")),
    )

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        validate_model_options(config, self.OPTIONS)
        if not hasattr(dataset, "pseudo_items"):
            raise ValueError(
                "LLMSeR is built on its LLMSeRDataset, which loads the augmented data: create the dataset "
                "with recbole_llmaug.utils.create_dataset (run_recbole_llmaug does), not RecBole's."
            )
        self.USER_ID = config["USER_ID_FIELD"]
        # built first, so that its initialisation draws the same random numbers as the backbone alone
        self.backbone = recbole_get_model(config["backbone"])(config, dataset)
        self.is_cloze = config["backbone"] == "BERT4Rec"
        self.augmented_inference = config["llmser_inference"] == "augmented"
        pseudo = dataset.pseudo_items()[:, -self.max_seq_length:]
        self.register_buffer("pseudo", pseudo, persistent=False)  # [n_users, M]
        self.register_buffer("pseudo_len", (pseudo > 0).sum(dim=1), persistent=False)  # [n_users]
        self.register_buffer("weights", dataset.user_weights(), persistent=False)  # [n_users]

    # ------------------------------------------------------------------ sequences
    def augment(self, users, item_seq, item_seq_len):
        """The rows with each user's pseudo-prior items in front: ``(seq [B, L], length [B], shift [B])``."""
        return prepend(item_seq, item_seq_len, self.pseudo[users], self.pseudo_len[users])

    # ------------------------------------------------------------------ losses
    def sequence_losses(self, item_seq, item_seq_len, target):
        """Per-row cross-entropy ``[B]`` of SASRec/GRU4Rec (RecBole's CE loss without the mean)."""
        output = self.backbone.forward(item_seq, item_seq_len)
        logits = output @ self.backbone.item_embedding.weight.t()
        return F.cross_entropy(logits, target, reduction="none")

    def cloze_losses(self, masked_seq, masked_index, targets, pos_items):
        """Per-row sums of BERT4Rec's cloze cross-entropy over the masked positions ``[B]``."""
        backbone = self.backbone
        output = backbone.forward(masked_seq)  # [B, L, H]
        index_map = backbone.multi_hot_embed(masked_index, masked_seq.size(-1)).view(
            masked_index.size(0), masked_index.size(1), -1)  # [B, mask_len, L]
        output = torch.bmm(index_map, output)  # [B, mask_len, H]
        logits = output @ backbone.item_embedding.weight[: backbone.n_items].t() + backbone.output_bias
        losses = F.cross_entropy(logits.view(-1, backbone.n_items), pos_items.view(-1), reduction="none")
        return (losses.view(masked_index.shape) * targets).sum(dim=1)

    def calculate_loss(self, interaction):
        users = interaction[self.USER_ID]
        weight = self.weights[users]
        augment = bool((weight > 0).any())
        if self.is_cloze:
            backbone = self.backbone
            masked_seq, masked_index = interaction[backbone.MASK_ITEM_SEQ], interaction[backbone.MASK_INDEX]
            pos_items = interaction[backbone.POS_ITEMS]
            targets = (masked_index > 0).float()
            original = self.cloze_losses(masked_seq, masked_index, targets, pos_items)
            loss = ((1 - weight) * original).sum() / targets.sum()
            if augment:
                # real items are never cut (only pseudo ones), so every masked position moves by shift
                seq, _, shift = self.augment(users, masked_seq, interaction[self.ITEM_SEQ_LEN])
                augmented = self.cloze_losses(seq, masked_index + shift.unsqueeze(1), targets, pos_items)
                loss = loss + (weight * augmented).sum() / targets.sum()
            return loss
        item_seq, item_seq_len, target = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.POS_ITEM_ID]
        original = self.sequence_losses(item_seq, item_seq_len, target)
        if not augment:
            return original.mean()
        seq, length, _ = self.augment(users, item_seq, item_seq_len)
        augmented = self.sequence_losses(seq, length, target)
        return ((1 - weight) * original + weight * augmented).mean()

    # ------------------------------------------------------------------ prediction
    def predict(self, interaction):
        return self.backbone.predict(inference_input(self, interaction))

    def full_sort_predict(self, interaction):
        return self.backbone.full_sort_predict(inference_input(self, interaction))
