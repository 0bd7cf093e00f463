r"""LLMRec (Wei et al., "LLMRec: Large Language Models with Graph Augmentation for Recommendation",
WSDM 2024), as a RecBole general recommender on RecBole's own ``LightGCN``.

* Graph: RecBole's LightGCN over the user-item graph of the *training* interactions, symmetrically
  normalised ``D^-1/2 A D^-1/2`` (inherited; the official code normalises one side only), the final
  embedding the mean of the layers, no softmax on the last layer (the official code applies one).
* Side features (from ``LLMRecDataset``): the base text embeddings of users and items (``user_emb`` /
  ``item_emb``), the embedding of each item's LLM attributes and of each user's LLM profile. Each source
  is projected to ``embedding_size`` by its own learned linear map, propagated over the same graph as the
  IDs (so a user receives its items' features and the other way round) and, L2-normalised per node, added
  to the final ID embedding with scale ``omega1``:
  ``h = LightGCN(E) + omega1 * sum_k normalize(LightGCN(P_k X_k))``.
* Loss: BPR (RecBole's pairwise rows: user, positive, sampled negative) over the batch plus
  ``llmrec_aug_share x batch size`` triples drawn uniformly (with replacement) from the LLM-sampled
  ``llmrec_edges``, pruned (below), then ``reg_weight`` times RecBole's ``EmbLoss`` on the rows' ego
  embeddings (as LightGCN), ``llmrec_feat_reg`` times the same on the rows' propagated features, and the
  MAE loss.
* Noise pruning: of the batch's per-row BPR losses, the ``llmrec_prune_rate`` share with the *highest*
  loss is dropped (``llmrec_prune: lowest_kept``); ``paper_literal`` keeps the highest losses instead,
  as the official code does; ``off`` keeps all.
* MAE feature enhancement: in each training step a ``llmrec_mask_rate`` share of the items has its raw
  feature rows replaced by a learned mask token (one per item source); after projection and propagation
  a trained linear decoder per source reconstructs the original rows of the masked items, with GraphMAE's
  scaled cosine error ``mean (1 - cos)^gamma`` weighted by ``llmrec_mae_weight``. (The official decoder
  has its own optimizer that never steps; here it is a part of the model, trained by RecBole's optimizer.)
  The masked items' features are recovered from their neighbours, so it needs ``n_layers >= 2``.
* With every augmentation off and ``llmrec_omega1 = 0`` the model is RecBole's LightGCN, step for step
  (tested). The extra parameters are created after the ID embeddings, from a forked random stream, so
  switching a part on or off changes neither the initial ID embeddings nor the random numbers drawn after.

Evaluation: RecBole's (``predict``/``full_sort_predict`` inherited from LightGCN on :meth:`forward`, the
final embeddings cached during evaluation and dropped by every training step). Every option is in
``properties/model/LLMRec.yaml``.
"""

import torch
import torch.nn.functional as F
from recbole.model.general_recommender.lightgcn import LightGCN
from recbole.model.init import xavier_uniform_initialization
from recbole.utils import InputType
from torch import nn

from recbole_llmaug.augment.systems.llmrec import AUGMENT_OPTIONS
from recbole_llmaug.options import Option, validate_model_options

PRUNE_MODES = ("lowest_kept", "paper_literal", "off")


def prune(losses, rate, mode):
    """Mean of the per-row losses ``[n]`` that pruning keeps.

    ``lowest_kept``: drop the ``floor(rate * n)`` highest losses (the likely noisy rows), keep the rest;
    ``paper_literal``: keep that many *highest* instead (the official code's behaviour); ``off``: all.
    At least one row is kept."""
    if mode == "off" or rate <= 0 or losses.numel() == 0:
        return losses.mean()
    keep = max(losses.numel() - int(rate * losses.numel()), 1)
    kept = torch.topk(losses, keep, largest=(mode == "paper_literal"), sorted=False).values
    return kept.mean()


def scaled_cosine_error(reconstructed, original, gamma):
    """GraphMAE's SCE ``mean over rows of (1 - cos(reconstructed, original))^gamma`` (``[n, d]`` each)."""
    cosine = F.cosine_similarity(reconstructed, original, dim=-1)
    return (1 - cosine).pow(gamma).mean()


class LLMRec(LightGCN):
    r"""LightGCN with LLM-augmented BPR triples, projected side features, noise pruning and MAE."""

    input_type = InputType.PAIRWISE
    # checked before any work starts (recbole_llmaug.options); defaults in properties/model/LLMRec.yaml
    OPTIONS = (
        Option("embedding_size", "int", minimum=1),
        Option("n_layers", "int", minimum=0),
        Option("reg_weight", "float", minimum=0),
        Option("llmrec_omega1", "float", minimum=0),
        Option("llmrec_text_features", "bool"),
        Option("llmrec_item_attributes", "bool"),
        Option("llmrec_user_profiles", "bool"),
        Option("llmrec_feat_reg", "float", minimum=0),
        Option("llmrec_aug_edges", "bool"),
        Option("llmrec_aug_share", "float", minimum=0),
        Option("llmrec_prune", "choice", choices=PRUNE_MODES),
        Option("llmrec_prune_rate", "float", minimum=0, maximum=1, open_maximum=True),
        Option("llmrec_mae", "bool"),
        Option("llmrec_mask_rate", "float", minimum=0, maximum=1),
        Option("llmrec_mae_weight", "float", minimum=0),
        Option("llmrec_sce_gamma", "float", minimum=1),
    ) + tuple(AUGMENT_OPTIONS)

    def __init__(self, config, dataset):
        # RecBole's LightGCN first: ID embeddings, the symmetric adjacency, its initialisation (same draws)
        super().__init__(config, dataset)
        validate_model_options(config, self.OPTIONS)
        if not hasattr(dataset, "augmented_triples"):
            raise ValueError(
                "LLMRec is built on its LLMRecDataset, which loads the augmented data: create the dataset with "
                "recbole_llmaug.utils.create_dataset (run_recbole_llmaug does), not RecBole's."
            )
        self.omega1 = float(config["llmrec_omega1"])
        self.feat_reg = float(config["llmrec_feat_reg"])
        self.aug_share = float(config["llmrec_aug_share"])
        self.prune_mode = config["llmrec_prune"]
        self.prune_rate = float(config["llmrec_prune_rate"])
        self.mask_rate = float(config["llmrec_mask_rate"])
        self.mae_weight = float(config["llmrec_mae_weight"])
        self.sce_gamma = float(config["llmrec_sce_gamma"])

        self.register_buffer("aug_triples", dataset.augmented_triples().long(), persistent=False)  # [n, 3]
        user_sources, item_sources = dataset.user_features(), dataset.item_features()
        # (side, name): one channel per source, users first; tables as buffers [n_users|n_items, d_k]
        tables = ([("user", name, table) for name, table in user_sources]
                  + [("item", name, table) for name, table in item_sources])
        self.sources = [(side, name) for side, name, _ in tables]
        self.projections = nn.ModuleDict()
        self.mask_tokens = nn.ParameterDict()
        self.decoders = nn.ModuleDict()
        self.use_mae = bool(config["llmrec_mae"]) and bool(item_sources) and self.mask_rate > 0 and self.mae_weight > 0
        with torch.random.fork_rng(devices=[]):  # the extra parts never shift the random stream of the IDs
            for side, name, table in tables:
                self.register_buffer(self._table_name(name), table.float(), persistent=False)
                self.projections[name] = nn.Linear(table.shape[1], self.latent_dim)
                if side == "item" and self.use_mae:
                    self.mask_tokens[name] = nn.Parameter(torch.zeros(table.shape[1]))
                    nn.init.xavier_uniform_(self.mask_tokens[name].view(1, -1))
                    self.decoders[name] = nn.Linear(self.latent_dim, table.shape[1])
            self.projections.apply(xavier_uniform_initialization)
            self.decoders.apply(xavier_uniform_initialization)

    @staticmethod
    def _table_name(name):
        return f"features_{name}"

    # ------------------------------------------------------------------ propagation
    def propagate(self, ego):
        """LightGCN's propagation of any node matrix ``[n_users + n_items, d]``: the mean of the ego rows
        and their ``n_layers`` propagations over the normalised training graph."""
        layers = [ego]
        for _ in range(self.n_layers):
            ego = torch.sparse.mm(self.norm_adj_matrix, ego)
            layers.append(ego)
        return torch.stack(layers, dim=1).mean(dim=1)

    def side_channels(self, masked_items=None):
        """The propagated projected features, one channel per source: ``[n_users + n_items, K, D]``.

        ``masked_items [m]``: items whose raw rows of every item source are replaced by that source's mask
        token before the projection (MAE)."""
        rows = []
        for side, name in self.sources:
            table = getattr(self, self._table_name(name))
            if masked_items is not None and name in self.mask_tokens:
                table = table.index_copy(0, masked_items, self.mask_tokens[name].expand(len(masked_items), -1))
            projected = self.projections[name](table)  # [n_side, D]
            padding = projected.new_zeros(self.n_items if side == "user" else self.n_users, self.latent_dim)
            rows.append(torch.cat([projected, padding] if side == "user" else [padding, projected], dim=0))
        channels = self.propagate(torch.cat(rows, dim=1))  # sources as column blocks: one propagation
        return channels.view(self.n_users + self.n_items, len(self.sources), self.latent_dim)

    def embeddings(self, masked_items=None):
        """Final ``(users [n_users, D], items [n_items, D], channels [n_users + n_items, K, D] or None)``."""
        users, items = super().forward()  # RecBole's LightGCN on the ID embeddings
        if not self.sources:
            return users, items, None
        channels = self.side_channels(masked_items)
        side = F.normalize(channels, p=2, dim=-1).sum(dim=1)
        side_users, side_items = torch.split(side, [self.n_users, self.n_items])
        return users + self.omega1 * side_users, items + self.omega1 * side_items, channels

    def forward(self):
        """Final user and item embeddings (no masking): what ``predict`` / ``full_sort_predict`` score with."""
        users, items, _ = self.embeddings()
        return users, items

    # ------------------------------------------------------------------ training
    def sample_augmented(self, batch_size):
        """``[round(llmrec_aug_share * batch_size), 3]`` triples drawn uniformly, with replacement, from the
        augmented edges (``[0, 3]`` when there are none)."""
        count = int(round(self.aug_share * batch_size))
        if count == 0 or self.aug_triples.shape[0] == 0:
            return self.aug_triples[:0]
        index = torch.randint(self.aug_triples.shape[0], (count,), device=self.aug_triples.device)
        return self.aug_triples[index]

    def mask_items(self):
        """``[m]`` random real items (ids ``1..``) whose features the MAE hides in this step."""
        count = int(self.mask_rate * (self.n_items - 1))
        return torch.randperm(self.n_items - 1, device=self.device)[:count] + 1

    def mae_loss(self, channels, masked_items):
        """SCE between each item source's decoded channel and its original rows, over the masked items whose
        original row is not empty (items the file lacked have nothing to reconstruct)."""
        loss = channels.new_zeros(())
        for index, (side, name) in enumerate(self.sources):
            if name not in self.decoders:
                continue
            original = getattr(self, self._table_name(name))[masked_items]
            present = original.abs().sum(dim=1) > 0
            if not bool(present.any()):
                continue
            encoded = channels[self.n_users + masked_items[present], index]  # [m', D]
            loss = loss + scaled_cosine_error(self.decoders[name](encoded), original[present], self.sce_gamma)
        return loss

    def calculate_loss(self, interaction):
        # the cached evaluation embeddings are stale as soon as the parameters move (as in LightGCN)
        if self.restore_user_e is not None or self.restore_item_e is not None:
            self.restore_user_e, self.restore_item_e = None, None

        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        augmented = self.sample_augmented(user.shape[0])
        if augmented.shape[0]:
            user = torch.cat([user, augmented[:, 0]])
            pos_item = torch.cat([pos_item, augmented[:, 1]])
            neg_item = torch.cat([neg_item, augmented[:, 2]])

        masked_items = self.mask_items() if self.use_mae else None
        user_all, item_all, channels = self.embeddings(masked_items)
        u_embeddings = user_all[user]
        pos_scores = torch.mul(u_embeddings, item_all[pos_item]).sum(dim=1)
        neg_scores = torch.mul(u_embeddings, item_all[neg_item]).sum(dim=1)
        row_losses = -torch.log(self.mf_loss.gamma + torch.sigmoid(pos_scores - neg_scores))  # RecBole's BPR, per row
        mf_loss = prune(row_losses, self.prune_rate, self.prune_mode)

        reg_loss = self.reg_loss(self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item),
                                 require_pow=self.require_pow)
        loss = mf_loss + self.reg_weight * reg_loss
        if channels is not None and self.feat_reg > 0:
            flat = channels.flatten(start_dim=1)  # [n_users + n_items, K * D]
            loss = loss + self.feat_reg * self.reg_loss(flat[user], flat[self.n_users + pos_item],
                                                        flat[self.n_users + neg_item], require_pow=self.require_pow)
        if masked_items is not None:
            loss = loss + self.mae_weight * self.mae_loss(channels, masked_items)
        return loss
