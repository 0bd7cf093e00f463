"""LLM-ESR (Liu et al., NeurIPS 2024): LLM-enhanced dual-view sequential recommendation with
retrieval-augmented self-distillation, as a RecBole sequential model.

* Semantic view: the augmentor's item text embeddings (``item_emb``, from the dataset), frozen, through a
  trainable adapter of two linear layers down to ``hidden_size``.
* Collaborative view: a trainable ID embedding table, initialised with the PCA of the semantic
  embeddings (``id_init: pca``) or randomly (``id_init: random``).
* Both views are embedded, exchange information through two-way cross-attention, and go through one
  shared sequence encoder (``backbone``: SASRec, GRU4Rec or BERT4Rec). The user representation is
  ``[h_id; h_sem]``, an item is ``[E_id(i); adapter(e_llm(i))]``, so a score is the sum of the two
  views' dot products (logit-level fusion).
* Self-distillation: the teacher of a training user is the mean representation of its ``sim_user_num``
  most similar users (``sim_users``, from the dataset), computed without gradient from their *training*
  sequences only; ``loss = CE + alpha * MSE(student, teacher)``. The teacher of an epoch is computed once
  with the parameters of the epoch's start (``teacher: epoch``; ``LLMESRTrainer`` marks it stale at each
  epoch) or for every batch (``teacher: batch``).

Its data (text embeddings, similar users, training sequences) comes as tensors from ``LLMESRDataset``
(:mod:`recbole_llmaug.data.llmesr`); the model reads no file. Every option and its default is in
``properties/model/LLMESR.yaml``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import TransformerEncoder
from recbole.utils import InputType

from recbole_llmaug.data.llmesr import distills, needs_item_embeddings
from recbole_llmaug.options import Option, validate_model_options

BACKBONES = ("SASRec", "GRU4Rec", "BERT4Rec")
TEACHER_MODES = ("epoch", "batch")
TRAIN_MODES = ("whole", "prefix")
ID_INITS = ("pca", "random")


def pca_init(table, dim, generator=None, std=0.02):
    """Project the item rows ``1..`` of ``table`` on their top ``dim`` principal components.

    Returns ``[n_rows, dim]`` with row 0 (padding) zero. Rows that are all zero (items without an
    embedding) and dimensions beyond the rank get ``N(0, std)`` values instead.
    """
    x = table[1:].double()
    present = x.abs().sum(dim=1) > 0
    out = torch.zeros(table.shape[0], dim, dtype=torch.float32)
    noise = torch.randn(table.shape[0], dim, generator=generator) * std
    if present.sum() >= 2:
        xp = x[present]
        xp = xp - xp.mean(dim=0, keepdim=True)
        _, _, vh = torch.linalg.svd(xp, full_matrices=False)
        k = min(dim, vh.shape[0])
        proj = (xp @ vh[:k].T).float()
        block = noise[1:].clone()
        block[present.nonzero(as_tuple=True)[0][:, None], torch.arange(k)[None, :]] = proj
        out[1:] = block
    else:
        out[1:] = noise[1:]
    return out


def append_item(seq, length, items):
    """Append ``items[b]`` after the ``length[b]`` items of row ``b`` (left-aligned, 0-padded).

    A full row drops its oldest item. Returns the new rows, their lengths and the appended position.
    """
    batch, width = seq.shape
    ext = torch.cat([seq, seq.new_zeros(batch, 1)], dim=1)
    ext[torch.arange(batch, device=seq.device), length] = items
    full = (length >= width).unsqueeze(1)
    out = torch.where(full, ext[:, 1:], ext[:, :width])
    new_length = torch.clamp(length + 1, max=width)
    return out, new_length, new_length - 1


class CrossAttention(nn.Module):
    """Multi-head attention of one view (queries) over the other (keys/values), residual + LayerNorm."""

    def __init__(self, hidden_size, n_heads, dropout, layer_norm_eps):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_size = hidden_size // n_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = nn.Dropout(dropout)
        self.out_dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def _split(self, x):
        b, length, _ = x.shape
        return x.view(b, length, self.n_heads, self.head_size).transpose(1, 2)

    def forward(self, x, context, additive_mask):
        q, k, v = self._split(self.query(x)), self._split(self.key(context)), self._split(self.value(context))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size) + additive_mask
        probs = self.attn_dropout(torch.softmax(scores, dim=-1))
        mixed = (probs @ v).transpose(1, 2).reshape(x.shape)
        return self.norm(x + self.out_dropout(self.out(mixed)))


class LLMESR(SequentialRecommender):
    r"""LLM-ESR with a configurable backbone (``backbone``: SASRec | GRU4Rec | BERT4Rec)."""

    input_type = InputType.POINTWISE
    # checked before any work starts (recbole_llmaug.options); defaults in properties/model/LLMESR.yaml
    OPTIONS = (
        Option("backbone", "choice", choices=BACKBONES),
        Option("hidden_size", "int", minimum=1), Option("n_layers", "int", minimum=1),
        Option("n_heads", "int", minimum=1), Option("inner_size", "int", minimum=1),
        Option("hidden_dropout_prob", "float", minimum=0, maximum=1, open_maximum=True),
        Option("attn_dropout_prob", "float", minimum=0, maximum=1, open_maximum=True),
        Option("layer_norm_eps", "float", minimum=0, open_minimum=True),
        Option("initializer_range", "float", minimum=0, open_minimum=True),
        Option("causal", "bool"), Option("mask_ratio", "float", minimum=0, maximum=1, open_minimum=True),
        Option("train_mode", "choice", choices=TRAIN_MODES), Option("loss_type", "choice", choices=("CE",)),
        Option("use_semantic", "bool"), Option("use_collaborative", "bool"), Option("cross_attention", "bool"),
        Option("id_init", "choice", choices=ID_INITS), Option("alpha", "float", minimum=0),
        Option("sim_user_num", "int", minimum=0), Option("teacher", "choice", choices=TEACHER_MODES),
    )

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        validate_model_options(config, self.OPTIONS)
        self.USER_ID = config["USER_ID_FIELD"]
        self.backbone = config["backbone"]
        self.is_cloze = self.backbone == "BERT4Rec"
        self.hidden_size = config["hidden_size"]
        self.n_layers = config["n_layers"]
        self.n_heads = config["n_heads"]
        self.inner_size = config["inner_size"]
        self.hidden_dropout_prob = config["hidden_dropout_prob"]
        self.attn_dropout_prob = config["attn_dropout_prob"]
        self.hidden_act = config["hidden_act"]
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]
        # causal attention for the left-to-right backbones; BERT4Rec is bidirectional by design
        self.causal = bool(config["causal"]) and not self.is_cloze
        self.train_mode = config["train_mode"]
        self.mask_ratio = config["mask_ratio"]
        self.use_semantic = bool(config["use_semantic"])
        self.use_collaborative = bool(config["use_collaborative"])
        self.use_cross_attention = bool(config["cross_attention"])
        self.id_init = config["id_init"]
        self.alpha = float(config["alpha"])
        self.sim_user_num = int(config["sim_user_num"])
        self.teacher_mode = config["teacher"]
        if not (self.use_semantic or self.use_collaborative):
            raise ValueError("LLMESR needs at least one view: use_semantic and use_collaborative are both False")
        self.distill = distills(config)

        # token 0 is padding; BERT4Rec's [MASK] is the extra token n_items
        self.mask_token = self.n_items
        n_tokens = self.n_items + (1 if self.is_cloze else 0)
        if not hasattr(dataset, "item_text_embeddings"):
            raise ValueError(
                "LLMESR is built on its LLMESRDataset, which loads the augmented data: create the dataset "
                "with recbole_llmaug.utils.create_dataset (run_recbole_llmaug does), not RecBole's."
            )

        if needs_item_embeddings(config):
            table, self.items_without_embedding = dataset.item_text_embeddings()
        else:
            table, self.items_without_embedding = torch.zeros(self.n_items, 0), 0

        # ---- layers
        if self.use_collaborative:
            self.item_embedding = nn.Embedding(n_tokens, self.hidden_size, padding_idx=0)
        if self.use_semantic:
            self.register_buffer("llm_item_emb", table, persistent=True)  # frozen
            llm_dim = table.shape[1]
            self.adapter = nn.Sequential(nn.Linear(llm_dim, llm_dim // 2), nn.Linear(llm_dim // 2, self.hidden_size))
            self.sem_mask_emb = nn.Parameter(torch.zeros(self.hidden_size)) if self.is_cloze else None
        n_views = int(self.use_semantic) + int(self.use_collaborative)
        self.rep_size = n_views * self.hidden_size

        if self.backbone == "GRU4Rec":
            self.gru = nn.GRU(self.hidden_size, self.hidden_size, num_layers=self.n_layers, bias=False, batch_first=True)
            self.dense = nn.Linear(self.hidden_size, self.hidden_size)
        else:
            self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
            self.trm_encoder = TransformerEncoder(
                n_layers=self.n_layers,
                n_heads=self.n_heads,
                hidden_size=self.hidden_size,
                inner_size=self.inner_size,
                hidden_dropout_prob=self.hidden_dropout_prob,
                attn_dropout_prob=self.attn_dropout_prob,
                hidden_act=self.hidden_act,
                layer_norm_eps=self.layer_norm_eps,
            )
            self.input_norm = nn.ModuleDict(
                {v: nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps) for v in self._views()}
            )
        self.dropout = nn.Dropout(self.hidden_dropout_prob)
        self.cross = None
        if self.use_cross_attention and n_views == 2:
            self.cross = nn.ModuleDict(
                {
                    v: CrossAttention(self.hidden_size, self.n_heads, self.attn_dropout_prob, self.layer_norm_eps)
                    for v in self._views()
                }
            )
        self.loss_fct = nn.CrossEntropyLoss()
        self.apply(self._init_weights)

        if self.use_collaborative:
            if self.id_init == "pca":
                generator = torch.Generator().manual_seed(0)
                init = pca_init(table, self.hidden_size, generator=generator, std=self.initializer_range)
                with torch.no_grad():
                    self.item_embedding.weight[: self.n_items] = init
            with torch.no_grad():
                self.item_embedding.weight[0].zero_()

        # ---- training sequences of every user (training split only) for the teacher
        seq, length, target = dataset.training_sequences()
        self.register_buffer("user_last_seq", seq, persistent=False)
        self.register_buffer("user_last_len", length, persistent=False)
        self.register_buffer("user_last_target", target, persistent=False)
        self.n_users = seq.shape[0]
        if self.distill:
            sims = dataset.similar_users(self.sim_user_num)
        else:
            sims = torch.zeros(self.n_users, 0, dtype=torch.long)
        self.register_buffer("sim_users", sims, persistent=False)
        self.register_buffer("teacher_cache", torch.zeros(self.n_users, self.rep_size), persistent=False)
        self._teacher_stale = True
        self.teacher_refreshes = 0

    # ------------------------------------------------------------------ setup helpers
    def _views(self):
        return [v for v, on in (("id", self.use_collaborative), ("sem", self.use_semantic)) if on]

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        elif isinstance(module, nn.GRU):
            for name, weight in module.named_parameters():
                if name.startswith("weight"):
                    nn.init.xavier_uniform_(weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def invalidate_teacher(self):
        """Recompute the teacher cache on its next use (``LLMESRTrainer`` calls this at every epoch's start)."""
        self._teacher_stale = True

    # ------------------------------------------------------------------ encoder
    def semantic_item_table(self):
        """``adapter(e_llm)`` for every token, ``[n_tokens, H]``.

        The adapter is two linear layers without a non-linearity, so it is applied as their product
        (``W2 W1``): the same function, with under a third of the multiply-adds over the item table.
        """
        first, second = self.adapter[0], self.adapter[1]
        weight = second.weight @ first.weight
        bias = second.weight @ first.bias + second.bias
        table = F.linear(self.llm_item_emb, weight, bias)
        if self.is_cloze:
            table = torch.cat([table, self.sem_mask_emb.unsqueeze(0)], dim=0)
        return table

    def attention_mask(self, item_seq):
        """Additive mask ``[B, 1, L, L]``: padding keys never attend; future keys too when causal."""
        return self.get_attention_mask(item_seq, bidirectional=not self.causal)

    def encode(self, item_seq, sem_table=None):
        """Per-position representation ``[B, L, rep_size]`` (views concatenated: id first, then sem).

        Sequences are left-aligned, so the padding columns after the longest row are cut before
        encoding and the output is padded back with zeros: padding never attends, so the result is
        the same, at the cost of the real positions only.
        """
        width = item_seq.shape[1]
        used = torch.nonzero((item_seq != 0).any(dim=0))
        keep = int(used.max()) + 1 if len(used) else 1
        if keep < width:
            out = self._encode(item_seq[:, :keep], sem_table)
            return F.pad(out, (0, 0, 0, width - keep))
        return self._encode(item_seq, sem_table)

    def _encode(self, item_seq, sem_table=None):
        inputs = {}
        if self.use_collaborative:
            inputs["id"] = self.item_embedding(item_seq)
        if self.use_semantic:
            sem_table = self.semantic_item_table() if sem_table is None else sem_table
            inputs["sem"] = sem_table[item_seq]
        views = list(inputs)
        mask = self.attention_mask(item_seq)
        if self.backbone != "GRU4Rec":
            positions = torch.arange(item_seq.size(1), device=item_seq.device)
            pos_emb = self.position_embedding(positions).unsqueeze(0)
            inputs = {v: self.dropout(self.input_norm[v](x + pos_emb)) for v, x in inputs.items()}
        else:
            inputs = {v: self.dropout(x) for v, x in inputs.items()}
        if self.cross is not None:
            inputs = {
                "id": self.cross["id"](inputs["id"], inputs["sem"], mask),
                "sem": self.cross["sem"](inputs["sem"], inputs["id"], mask),
            }
        # one shared encoder; both views go through it as one batch
        stacked = torch.cat([inputs[v] for v in views], dim=0)
        if self.backbone == "GRU4Rec":
            out, _ = self.gru(stacked)
            out = self.dense(out)
        else:
            out = self.trm_encoder(stacked, mask.repeat(len(views), 1, 1, 1), output_all_encoded_layers=False)[-1]
        return torch.cat(out.chunk(len(views), dim=0), dim=-1)

    def item_table(self, sem_table=None):
        """Item side ``[n_items, rep_size]``: ``[E_id(i); adapter(e_llm(i))]``."""
        parts = []
        if self.use_collaborative:
            parts.append(self.item_embedding.weight[: self.n_items])
        if self.use_semantic:
            sem_table = self.semantic_item_table() if sem_table is None else sem_table
            parts.append(sem_table[: self.n_items])
        return torch.cat(parts, dim=-1)

    def inference_input(self, item_seq, item_seq_len):
        """Input rows for predicting the next item and the position whose output is the user."""
        if self.is_cloze:
            mask = torch.full_like(item_seq_len, self.mask_token)
            item_seq, _, position = append_item(item_seq, item_seq_len, mask)
            return item_seq, position
        return item_seq, item_seq_len - 1

    def forward(self, item_seq, item_seq_len, sem_table=None):
        """User representation ``[B, rep_size]`` for predicting the item after ``item_seq``."""
        item_seq, position = self.inference_input(item_seq, item_seq_len)
        out = self.encode(item_seq, sem_table)
        return self.gather_indexes(out, position)

    # ------------------------------------------------------------------ teacher
    def user_representations(self, users, batch_size=1024):
        """Representations of ``users`` from their training sequences, without gradient or dropout."""
        was_training = self.training
        nn.Module.train(self, False)
        try:
            with torch.no_grad():
                sem_table = self.semantic_item_table() if self.use_semantic else None
                reps = self.teacher_cache.new_zeros(len(users), self.rep_size)
                # chunks of similar length, so that little padding is encoded
                order = torch.argsort(self.user_last_len[users])
                for start in range(0, len(users), batch_size):
                    rows = order[start : start + batch_size]
                    chunk = users[rows]
                    seq, length = self.user_last_seq[chunk], self.user_last_len[chunk]
                    # the training sequence: last training prefix + its target
                    seq, length, _ = append_item(seq, length, self.user_last_target[chunk])
                    reps[rows] = self.forward(seq, length, sem_table)
                return reps
        finally:
            nn.Module.train(self, was_training)

    def refresh_teacher_cache(self):
        users = torch.nonzero(self.user_last_len > 0, as_tuple=True)[0]
        self.teacher_cache.zero_()
        self.teacher_cache[users] = self.user_representations(users)
        self._teacher_stale = False
        self.teacher_refreshes += 1

    def teacher(self, users):
        """Mean representation of each user's similar users ``[B, rep_size]`` and which rows have one."""
        sims = self.sim_users[users]  # [B, N], 0 = none
        valid = (sims > 0) & (self.user_last_len[sims] > 0)
        if self.teacher_mode == "epoch":
            if self._teacher_stale:
                self.refresh_teacher_cache()
            reps = self.teacher_cache[sims]
        else:  # exact: the current parameters, for the unique similar users of this batch
            unique, inverse = torch.unique(sims[valid], return_inverse=True)
            reps = torch.zeros(sims.shape + (self.rep_size,), device=sims.device)
            reps[valid] = self.user_representations(unique)[inverse]
        weight = valid.float().unsqueeze(-1)
        count = weight.sum(dim=1)
        mean = (reps * weight).sum(dim=1) / count.clamp(min=1)
        return mean.detach(), count.squeeze(-1) > 0

    # ------------------------------------------------------------------ training
    def select_last_rows(self, interaction):
        """In ``whole`` mode each user is trained once per epoch, on its whole training sequence:
        keep the batch rows that are the user's last training prefix."""
        users = interaction[self.USER_ID]
        seq, length, target = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.ITEM_ID]
        return (
            (length == self.user_last_len[users])
            & (target == self.user_last_target[users])
            & (seq == self.user_last_seq[users]).all(dim=1)
        )

    def training_rows(self, item_seq, item_seq_len, target):
        """Inputs ``[B, L]``, loss positions ``[B, L]`` (bool), targets ``[B, L]`` and the user position ``[B]``."""
        batch, width = item_seq.shape
        arange = torch.arange(batch, device=item_seq.device)
        if self.is_cloze:
            # cloze on the sequence with its target: random masks plus, always, the last item
            seq, length, last = append_item(item_seq, item_seq_len, target)
            steps = torch.arange(width, device=seq.device).unsqueeze(0)
            valid = steps < length.unsqueeze(1)
            masked = (torch.rand(seq.shape, device=seq.device) < self.mask_ratio) & valid
            masked[arange, last] = True
            inputs = torch.where(masked, torch.full_like(seq, self.mask_token), seq)
            return inputs, masked, seq, last
        last = item_seq_len - 1
        targets = torch.cat([item_seq[:, 1:], item_seq.new_zeros(batch, 1)], dim=1)
        targets[arange, last] = target
        if self.train_mode == "whole":
            positions = torch.arange(width, device=item_seq.device).unsqueeze(0) < item_seq_len.unsqueeze(1)
        else:
            positions = torch.zeros_like(item_seq, dtype=torch.bool)
            positions[arange, last] = True
        return item_seq, positions, targets, last

    def training_batch(self, interaction):
        """The rows this step learns from: ``(users [B], item_seq [B, L], item_seq_len [B], target [B])``, all
        rows in ``prefix`` mode, each user's last training prefix in ``whole`` mode; ``None`` when no row is
        kept (no user ends its training sequence in this batch)."""
        users = interaction[self.USER_ID]
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        target = interaction[self.ITEM_ID]
        if self.train_mode == "whole":
            keep = self.select_last_rows(interaction)
            if not keep.any():
                return None
            users, item_seq, item_seq_len, target = users[keep], item_seq[keep], item_seq_len[keep], target[keep]
        return users, item_seq, item_seq_len, target

    def nothing_to_learn(self):
        """A zero loss (both terms with distillation) that keeps every trainable parameter in the graph."""
        zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        return (zero, zero) if self.distill else zero

    def calculate_loss(self, interaction):
        rows = self.training_batch(interaction)
        if rows is None:
            return self.nothing_to_learn()
        users, item_seq, item_seq_len, target = rows
        inputs, positions, targets, user_pos = self.training_rows(item_seq, item_seq_len, target)
        sem_table = self.semantic_item_table() if self.use_semantic else None
        out = self.encode(inputs, sem_table)  # [B, L, R]
        logits = out[positions] @ self.item_table(sem_table).t()
        rec_loss = self.loss_fct(logits, targets[positions])
        if not self.distill:
            return rec_loss
        student = self.gather_indexes(out, user_pos)
        teacher, has_teacher = self.teacher(users)
        if has_teacher.any():
            distill_loss = F.mse_loss(student[has_teacher], teacher[has_teacher])
        else:
            distill_loss = student.sum() * 0.0
        return rec_loss, self.alpha * distill_loss

    # ------------------------------------------------------------------ prediction
    def predict(self, interaction):
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        sem_table = self.semantic_item_table() if self.use_semantic else None
        # Rows that repeat a sequence for several candidates (sampled evaluation where the trainer
        # keeps RecBole's path: users with several test rows; direct callers): encode each distinct
        # sequence once and share the representation (exact).
        rows = torch.cat([item_seq, item_seq_len.unsqueeze(1)], dim=1)
        distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)
        user = self.forward(distinct[:, :-1], distinct[:, -1], sem_table)[inverse]
        items = self.item_table(sem_table)[interaction[self.ITEM_ID]]
        return (user * items).sum(dim=-1)

    def full_sort_predict(self, interaction):
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        sem_table = self.semantic_item_table() if self.use_semantic else None
        user = self.forward(item_seq, item_seq_len, sem_table)
        return user @ self.item_table(sem_table).t()
