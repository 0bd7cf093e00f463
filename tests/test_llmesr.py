"""LLM-ESR: data loading, PCA, masking, teacher, flags, and a real training step per backbone.

Tiny fixture (30 users x 20 items, hidden 16); one torch thread (tiny ops are much slower with more).
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import histories, write_tiny_dataset
import torch

from recbole.config import Config
from recbole.data import data_preparation

from recbole_llmaug.augment.text_embeddings import load_item_emb, load_sim_users
from recbole_llmaug.data.llmesr import LLMESRDataset
from recbole_llmaug.errors import UserError
from recbole_llmaug.model.sequential_recommender.llmesr import LLMESR, append_item, pca_init
from recbole_llmaug.utils import create_dataset, get_trainer


def Trainer(config, model):
    """The trainer a run uses for LLM-ESR (``LLMESRTrainer`` with grouped evaluation)."""
    return get_trainer(config["MODEL_TYPE"], "LLMESR")(config, model)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_YAML = os.path.join(REPO, "properties", "model", "LLMESR.yaml")
N_USERS, N_ITEMS, EMB_DIM = 30, 20, 32
BACKBONES = ["SASRec", "GRU4Rec", "BERT4Rec"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])  # RecBole's Config reads --k=v from argv
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_fixture(root, with_llm=True, with_sim=True, seed=0):
    """``tiny`` (the shared test dataset: 30 users with 5-12 distinct items each, chronological) plus the
    augmentor's outputs written by hand: random 32-d item vectors and 12 random similar users each."""
    rng = np.random.default_rng(seed)
    folder = write_tiny_dataset(Path(root), max_len=12, with_items=False)
    sequences = histories(folder)
    vectors = {f"i{i}": rng.normal(size=EMB_DIM).astype(np.float32) for i in range(1, N_ITEMS + 1)}
    if with_llm:
        with open(folder / "tiny.itememb", "w") as f:
            f.write("iid:token\titem_emb:float_seq\n")
            for token, vec in vectors.items():
                f.write(f"{token}\t{' '.join(f'{x:.6f}' for x in vec)}\n")
    if with_sim:
        with open(folder / "tiny.simuser", "w") as f:
            f.write("uid:token\tsim_uids:token_seq\n")
            for u in range(1, N_USERS + 1):
                others = [v for v in rng.permutation(range(1, N_USERS + 1)) if v != u][:12]
                f.write(f"u{u}\t{' '.join(f'u{v}' for v in others)}\n")
    return sequences, vectors


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("llmesr"))
    sequences, vectors = write_fixture(root)
    return root, sequences, vectors


def make_config(root, **overrides):
    settings = dict(
        data_path=root,
        hidden_size=16,
        inner_size=32,
        epochs=1,
        train_batch_size=16,
        eval_batch_size=64,
        load_col={"inter": ["user_id", "item_id", "timestamp"]},
        MAX_ITEM_LIST_LENGTH=8,
        use_gpu=False,
        show_progress=False,
        seed=2020,
        reproducibility=True,
        checkpoint_dir=os.path.join(root, "saved"),
        eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        metrics=["Hit", "NDCG"],
        topk=[10],
        valid_metric="NDCG@10",
    )
    settings.update(overrides)
    return Config(model=LLMESR, dataset="tiny", config_file_list=[MODEL_YAML], config_dict=settings)


_DATA_CACHE = {}


def build(root, **overrides):
    config = make_config(root, **overrides)
    key = (root, config["MAX_ITEM_LIST_LENGTH"], config["train_batch_size"], LLMESRDataset.needed_outputs(config))
    if key not in _DATA_CACHE:
        dataset = create_dataset(config)
        _DATA_CACHE[key] = (dataset,) + tuple(data_preparation(config, dataset))
    dataset, train, valid, test = _DATA_CACHE[key]
    torch.manual_seed(0)
    model = LLMESR(config, train._dataset)
    return config, dataset, train, valid, test, model


def batch_of(loader):
    for batch in loader:
        return batch[0] if isinstance(batch, tuple) else batch


# ---------------------------------------------------------------------------- files and PCA
def test_item_embeddings_follow_recbole_ids(data_root):
    root, _, vectors = data_root
    _, dataset, _, _, _, model = build(root)
    token2id = dataset.field2token_id["item_id"]
    assert model.llm_item_emb.shape == (dataset.item_num, EMB_DIM)
    assert torch.all(model.llm_item_emb[0] == 0)
    for token, vec in vectors.items():
        if token in token2id:
            assert torch.allclose(model.llm_item_emb[token2id[token]], torch.from_numpy(vec), atol=1e-5)
    assert not model.llm_item_emb.requires_grad
    assert "llm_item_emb" not in dict(model.named_parameters())


def test_loaders_skip_unknown_tokens_and_self(tmp_path):
    from types import SimpleNamespace

    items = {"[PAD]": 0, "A": 1, "B": 2}
    users = {"[PAD]": 0, "a": 1, "b": 2, "c": 3}
    dataset = SimpleNamespace(iid_field="iid", uid_field="uid", item_num=3, user_num=4,
                              field2token_id={"iid": items, "uid": users})
    path = tmp_path / "x.itememb"
    path.write_text("iid:token\titem_emb:float_seq\nA\t1 2\nZZ\t5 5\n")
    table, missing = load_item_emb(path, dataset)
    assert table.tolist() == [[0, 0], [1, 2], [0, 0]] and missing == 1
    sim = tmp_path / "x.simuser"
    sim.write_text("uid:token\tsim_uids:token_seq\na\ta nope c b\nb\tc\n")
    table = load_sim_users(sim, dataset)
    assert table.tolist() == [[0, 0], [3, 2], [3, 0], [0, 0]]


def test_a_missing_augmented_file_names_the_output_and_the_command(tmp_path):
    write_fixture(str(tmp_path), with_llm=False)
    with pytest.raises(UserError, match=r"item_emb.*tiny\.itememb.*--augment=item_emb"):
        build(str(tmp_path))


def test_model_and_dataset_import_does_not_load_the_llm_layer():
    """The dataset reads the augmentor's files through augment.atomic and the declared loaders; the
    LLM layer (openai, sentence-transformers, the local server) stays out of the training import
    path, as on a GPU machine that lacks them."""
    import subprocess

    code = (
        "import sys; import recbole_llmaug.model.sequential_recommender.llmesr, recbole_llmaug.data.llmesr; "
        "from recbole_llmaug.augment.outputs import registry; registry(); "
        "print(sorted(m for m in sys.modules if m in ('openai', 'sentence_transformers') "
        "or m.startswith('recbole_llmaug.llm.') and m != 'recbole_llmaug.llm.settings'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_pca_initialisation_matches_sklearn(data_root):
    from sklearn.decomposition import PCA

    root, _, _ = data_root
    _, dataset, _, _, _, model = build(root)
    llm = model.llm_item_emb[1:].numpy().astype(np.float64)
    expected = PCA(n_components=16).fit_transform(llm)
    got = model.item_embedding.weight[1 : dataset.item_num].detach().numpy()
    for k in range(16):  # principal directions are defined up to sign
        sign = np.sign(np.dot(expected[:, k], got[:, k]))
        np.testing.assert_allclose(got[:, k], sign * expected[:, k], atol=1e-4)
    assert torch.all(model.item_embedding.weight[0] == 0)


def test_pca_fills_missing_items_and_extra_dims_with_noise():
    table = torch.zeros(5, 3)
    table[1:4] = torch.randn(3, 3)  # item 4 has no embedding; rank 2 after centring
    out = pca_init(table, 4, generator=torch.Generator().manual_seed(0), std=0.02)
    assert out.shape == (5, 4) and torch.all(out[0] == 0)
    assert out[4].abs().max() < 0.2  # noise row
    assert torch.allclose(out[1:4, :2].sum(dim=0), torch.zeros(2), atol=1e-5)  # centred projections


def test_random_id_init_ignores_llm_embeddings(data_root):
    root, _, _ = data_root
    model = build(root, id_init="random")[-1]
    weight = model.item_embedding.weight[1:].detach()
    assert 0.01 < weight.std() < 0.03
    pca = build(root)[-1].item_embedding.weight[1:].detach()
    assert not torch.allclose(weight, pca)


# ---------------------------------------------------------------------------- training sequences
def test_teacher_sequences_hold_training_items_only(data_root):
    """The teacher encodes each user's last training prefix + its target: exactly the user's history
    without the validation and test items (leave-one-out), never more."""
    root, sequences, _ = data_root
    config, dataset, _, _, _, model = build(root)
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    token2id = dataset.field2token_id["user_id"]
    item_tokens = dataset.field2id_token["item_id"]
    for user, items in sequences.items():
        uid = token2id[user]
        seq, length, _ = append_item(
            model.user_last_seq[uid : uid + 1], model.user_last_len[uid : uid + 1], model.user_last_target[uid : uid + 1]
        )
        got = [item_tokens[i] for i in seq[0, : length[0]].tolist()]
        assert got == items[:-2][-max_len:]
        assert items[-1] not in got and items[-2] not in got
    assert model.user_last_len[0] == 0  # padding user has no sequence


def test_model_refuses_the_unsplit_dataset(data_root):
    root, _, _ = data_root
    config, dataset, *_ = build(root)
    dataset = dataset.copy(dataset.inter_feat[: len(dataset.inter_feat)])
    del dataset.inter_feat.interaction["item_id_list"]
    with pytest.raises(ValueError, match="training split"):
        LLMESR(config, dataset)


# ---------------------------------------------------------------------------- masking and shapes
def test_append_item():
    seq = torch.tensor([[1, 2, 0], [1, 2, 3]])
    out, length, pos = append_item(seq, torch.tensor([2, 3]), torch.tensor([9, 9]))
    assert out.tolist() == [[1, 2, 9], [2, 3, 9]] and length.tolist() == [3, 3] and pos.tolist() == [2, 2]


@pytest.mark.parametrize("backbone,causal", [("SASRec", True), ("SASRec", False), ("GRU4Rec", True), ("BERT4Rec", True)])
def test_shapes_and_padding_never_attends(data_root, backbone, causal):
    root, _, _ = data_root
    config, _, train, _, _, model = build(root, backbone=backbone, causal=causal)
    model.eval()
    batch = batch_of(train)
    rows = batch["item_length"] <= config["MAX_ITEM_LIST_LENGTH"] - 3  # rows with padding
    seq = batch["item_id_list"][rows]
    lengths = batch["item_length"][rows]
    out = model._encode(seq)  # every padding column encoded
    assert out.shape == (seq.shape[0], config["MAX_ITEM_LIST_LENGTH"], 32)
    mask = model.attention_mask(seq).expand(-1, -1, seq.shape[1], -1)  # bidirectional: broadcast over queries
    assert mask.shape == (seq.shape[0], 1, seq.shape[1], seq.shape[1])
    keys_pad = (seq == 0).unsqueeze(1).expand(-1, seq.shape[1], -1)
    assert torch.all(mask[:, 0][keys_pad] < -1000)
    # fewer padding columns must not change any real position: padding never attends
    width = int(lengths.max())
    assert width < seq.shape[1]
    short = model._encode(seq[:, :width])
    valid = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
    assert torch.allclose(out[:, :width][valid], short[valid], atol=1e-5)
    # encode() cuts the padding columns itself: same values at every real position
    trimmed = model.encode(seq)
    assert trimmed.shape == out.shape
    assert torch.allclose(trimmed[:, :width][valid], out[:, :width][valid], atol=1e-5)
    scores = model.full_sort_predict(batch)
    assert scores.shape == (len(batch), model.n_items)


@pytest.mark.parametrize("backbone", ["SASRec", "GRU4Rec"])
def test_causal_option_respected(data_root, backbone):
    root, _, _ = data_root
    seq = torch.tensor([[3, 5, 7, 9, 11, 0, 0, 0]])
    changed = seq.clone()
    changed[0, 4] = 2  # change the 5th item
    for causal in (True, False):
        model = build(root, backbone=backbone, causal=causal)[-1].eval()
        a, b = model.encode(seq), model.encode(changed)
        earlier_same = torch.allclose(a[0, :4], b[0, :4], atol=1e-6)
        assert earlier_same == causal, f"causal={causal}"
        assert not torch.allclose(a[0, 4], b[0, 4])
    assert build(root, backbone="SASRec", causal=True)[-1].attention_mask(seq)[0, 0, 0, 1] < -1000
    assert build(root, backbone="BERT4Rec", causal=True)[-1].causal is False  # cloze is bidirectional


@pytest.mark.parametrize("backbone", BACKBONES)
def test_full_sort_predict_equals_predict(data_root, backbone):
    root, _, _ = data_root
    _, _, _, _, test, model = build(root, backbone=backbone)
    model.eval()
    batch = batch_of(test)
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        items = torch.randint(1, model.n_items, (len(batch),))
        batch.interaction["item_id"] = items
        single = model.predict(batch)
    assert torch.allclose(full[torch.arange(len(batch)), items], single, atol=1e-5)


def test_predict_on_repeated_rows_as_in_sampled_evaluation(data_root):
    """uni100 repeats each user's row for every candidate; predict encodes each sequence once."""
    root, _, _ = data_root
    _, _, _, _, test, model = build(root)
    model.eval()
    batch = batch_of(test)
    repeats = 5
    rows = torch.arange(len(batch)).repeat_interleave(repeats)
    repeated = batch[rows]
    items = torch.randint(1, model.n_items, (len(repeated),))
    repeated.interaction["item_id"] = items
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        scores = model.predict(repeated)
    assert torch.allclose(full[rows, items], scores, atol=1e-5)


# ---------------------------------------------------------------------------- training
@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_trains_and_evaluates_through_recbole(data_root, backbone):
    root, _, _ = data_root
    config, _, train, valid, test, model = build(root, backbone=backbone)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer = Trainer(config, model)
    trainer.fit(train, valid, saved=False)
    result = trainer.evaluate(test, load_best_model=False)
    assert {"hit@10", "ndcg@10", "tail_user/hit@10", "head_item/ndcg@10"} <= set(result)
    moved = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert "item_embedding.weight" in moved and "adapter.0.weight" in moved
    assert not any(k.startswith("llm_item_emb") for k in moved)
    assert model.teacher_refreshes >= 1


def test_whole_mode_trains_each_user_once_per_epoch(data_root):
    root, _, _ = data_root
    _, _, train, _, _, model = build(root)
    kept = torch.cat([model.select_last_rows(batch) for batch in train]).sum()
    assert kept == int((model.user_last_len > 0).sum())
    batch = batch_of(train)
    seq, length, target = batch["item_id_list"], batch["item_length"], batch["item_id"]
    inputs, positions, targets, last = model.training_rows(seq, length, target)
    assert torch.equal(positions.sum(1), length)  # a loss at every position
    assert torch.equal(targets[torch.arange(len(seq)), last], target)
    assert torch.equal(targets[:, :-1][positions[:, 1:]], seq[:, 1:][positions[:, 1:]])  # next item
    prefix = build(root, train_mode="prefix")[-1]
    _, positions, _, _ = prefix.training_rows(seq, length, target)
    assert torch.all(positions.sum(1) == 1)  # RecBole's one sample per prefix


def test_bert4rec_cloze_masks(data_root):
    root, _, _ = data_root
    _, _, train, _, _, model = build(root, backbone="BERT4Rec", mask_ratio=0.5)
    batch = batch_of(train)
    seq, length, target = batch["item_id_list"], batch["item_length"], batch["item_id"]
    torch.manual_seed(0)
    inputs, masked, targets, last = model.training_rows(seq, length, target)
    assert torch.all(inputs[masked] == model.mask_token)
    assert torch.all(masked[torch.arange(len(seq)), last])  # last item always masked
    assert torch.all(targets[torch.arange(len(seq)), last] == target)
    assert torch.all(targets[masked] > 0)  # never a padding position
    ratio = masked.sum() / (length + 1).clamp(max=seq.shape[1]).sum()
    assert 0.4 < ratio < 0.8
    assert model.item_embedding.num_embeddings == model.n_items + 1


def test_batch_teacher_equals_epoch_teacher(data_root):
    root, _, _ = data_root
    model_e = build(root)[-1]
    model_b = build(root, teacher="batch")[-1]
    model_b.load_state_dict(model_e.state_dict())
    users = torch.arange(1, N_USERS + 1)
    t_e, ok_e = model_e.teacher(users)
    t_b, ok_b = model_b.teacher(users)
    assert ok_e.all() and torch.equal(ok_e, ok_b)
    assert torch.allclose(t_e, t_b, atol=1e-5)
    # the teacher is the mean of the similar users' own representations
    sims = model_e.sim_users[users[0]]
    assert len(sims) == 10
    reps = model_e.user_representations(sims)
    assert torch.allclose(t_e[0], reps.mean(0), atol=1e-5)
    assert not t_e.requires_grad


def test_teacher_cache_refreshes_each_epoch(data_root):
    root, _, _ = data_root
    config, _, train, valid, _, model = build(root, epochs=2)
    trainer = Trainer(config, model)
    trainer.fit(train, valid, saved=False)
    assert model.teacher_refreshes == 2
    # the cache holds the representations of the start of the last epoch, not of the trained model
    now = model.user_representations(torch.arange(1, N_USERS + 1))
    assert not torch.allclose(model.teacher_cache[1:], now, atol=1e-6)
    model.train()  # switching modes is no hook: only the trainer's epoch start marks the teacher stale
    assert not model._teacher_stale


def test_distillation_loss_decreases(data_root):
    root, _, _ = data_root
    _, _, train, _, _, model = build(root, alpha=1.0, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    per_epoch = []
    for _ in range(6):
        model.train()
        model.invalidate_teacher()
        total = 0.0
        for batch in train:
            rec, distill = model.calculate_loss(batch)
            optimizer.zero_grad()
            (rec + distill).backward()
            optimizer.step()
            total += distill.item()
        per_epoch.append(total)
    assert per_epoch[-1] < 0.5 * per_epoch[0], per_epoch


# ---------------------------------------------------------------------------- flags / ablations
def test_without_self_distillation_needs_no_similar_users(tmp_path):
    write_fixture(str(tmp_path), with_sim=False)
    config, _, train, valid, _, model = build(str(tmp_path), alpha=0.0)
    assert not model.distill and model.sim_users.shape[1] == 0
    loss = model.calculate_loss(batch_of(train))
    assert torch.is_tensor(loss) and loss.dim() == 0
    with pytest.raises(UserError, match="sim_users"):
        build(str(tmp_path))


def test_without_semantic_view_and_random_init_needs_no_llm_file(tmp_path):
    write_fixture(str(tmp_path), with_llm=False)
    config, _, train, valid, _, model = build(str(tmp_path), use_semantic=False, id_init="random")
    assert model.rep_size == 16 and not hasattr(model, "adapter") and model.cross is None
    Trainer(config, model).fit(train, valid, saved=False)
    with pytest.raises(UserError, match="item_emb"):
        build(str(tmp_path), use_semantic=False)  # PCA init needs the LLM embeddings


def test_without_collaborative_view(data_root):
    root, _, _ = data_root
    config, _, train, valid, _, model = build(root, use_collaborative=False)
    assert model.rep_size == 16 and not hasattr(model, "item_embedding") and model.cross is None
    Trainer(config, model).fit(train, valid, saved=False)
    with pytest.raises(ValueError, match="at least one view"):
        build(root, use_collaborative=False, use_semantic=False)


def _views_of(model, seq, sem_table=None):
    """The ID half and the semantic half of ``encode`` ``[B, L, H]`` each, in eval mode (no dropout)."""
    model.eval()
    with torch.no_grad():
        out = model.encode(seq, sem_table)
    return out[..., : model.hidden_size], out[..., model.hidden_size :]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_cross_attention_mixes_each_view_with_the_other(data_root, backbone):
    """With cross-attention each view's output depends on the *other* view's input; without it the
    views are encoded apart. (Guards against a view attending to itself instead of the other.)"""
    root, _, _ = data_root
    _, _, train, _, _, with_cross = build(root, backbone=backbone)
    without = build(root, backbone=backbone, cross_attention=False)[-1]
    assert with_cross.cross is not None and without.cross is None
    seq = batch_of(train)["item_id_list"][:8]
    for model, mixes in ((with_cross, True), (without, False)):
        sem = model.semantic_item_table()
        other_sem = sem + torch.randn_like(sem)
        id_a, sem_a = _views_of(model, seq, sem)
        id_b, sem_b = _views_of(model, seq, other_sem)
        assert not torch.allclose(sem_a, sem_b)  # the semantic view reads its input
        assert (not torch.allclose(id_a, id_b, atol=1e-6)) == mixes  # the ID view reads the semantic one
        with torch.no_grad():
            model.item_embedding.weight.add_(torch.randn_like(model.item_embedding.weight))
        id_c, sem_c = _views_of(model, seq, sem)
        assert not torch.allclose(id_a, id_c)
        assert (not torch.allclose(sem_a, sem_c, atol=1e-6)) == mixes  # the semantic view reads the ID one
    assert with_cross.item_table().shape == (with_cross.n_items, 32)


@pytest.mark.parametrize("cross", [True, False])
def test_semantic_view_encodes_the_text_embeddings_of_the_sequence(data_root, cross):
    """The semantic half of the user representation changes when (and only when) the LLM embeddings
    of the items *in the sequence* change. (Guards against a zeroed or ignored semantic input.)"""
    root, _, _ = data_root
    _, _, train, _, _, model = build(root, cross_attention=cross)
    model.eval()
    batch = batch_of(train)
    seq, length = batch["item_id_list"][:8], batch["item_length"][:8]
    with torch.no_grad():
        before = model.forward(seq, length)[:, model.hidden_size :]
        outside = torch.ones(model.n_items, dtype=torch.bool)
        outside[seq.unique()] = False
        model.llm_item_emb[outside] += 5.0  # items not in any of these sequences
        unchanged = model.forward(seq, length)[:, model.hidden_size :]
        model.llm_item_emb[seq.unique()[1:]] += 5.0  # the sequences' own items (not padding)
        after = model.forward(seq, length)[:, model.hidden_size :]
    assert torch.allclose(before, unchanged, atol=1e-6)
    assert not torch.allclose(before, after, atol=1e-3)


def test_distillation_loss_is_the_mse_over_users_with_a_teacher_only(data_root):
    """Hand computation of ``alpha * MSE(student, teacher)`` over the batch's users that have at least
    one similar user; users without one add nothing (their teacher is no target of zeros)."""
    root, _, _ = data_root
    _, _, train, _, _, model = build(root, alpha=0.7, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    from recbole.data.interaction import cat_interactions

    # every user's last training row, as one batch
    batch = cat_interactions([b[torch.nonzero(model.select_last_rows(b), as_tuple=True)[0]] for b in train])
    keep = model.select_last_rows(batch)
    users = batch["user_id"][keep]
    assert len(users) == N_USERS
    lonely = users[::2]
    model.sim_users[lonely] = 0  # half of the batch's users have no similar user
    model.eval()
    with torch.no_grad():
        _, distill = model.calculate_loss(batch)
        student = model.forward(batch["item_id_list"][keep], batch["item_length"][keep])
        sims = model.sim_users[users]
        reps = model.user_representations(torch.arange(model.n_users))
        has = (sims > 0).any(dim=1)
        teacher = torch.stack([reps[row[row > 0]].mean(dim=0) if h else torch.zeros(model.rep_size)
                               for row, h in zip(sims, has)])
        squared = (student - teacher) ** 2
        expected = 0.7 * squared[has].sum() / (has.sum() * model.rep_size)
    assert 0 < has.sum() < len(users)
    assert torch.allclose(distill, expected, rtol=1e-4, atol=1e-7)


def test_sim_user_num_and_alpha(data_root):
    root, _, _ = data_root
    assert build(root, sim_user_num=3)[-1].sim_users.shape[1] == 3
    _, _, train, _, _, model = build(root, alpha=0.5)
    batch = batch_of(train)
    torch.manual_seed(1)
    _, scaled = model.calculate_loss(batch)
    model_1 = build(root, alpha=1.0)[-1]
    model_1.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    _, full = model_1.calculate_loss(batch)
    assert torch.allclose(scaled * 2, full, atol=1e-6)


@pytest.mark.parametrize(
    "key,value", [("backbone", "Caser"), ("loss_type", "BPR"), ("train_mode", "all"), ("teacher", "x"), ("id_init", "svd")]
)
def test_bad_options_are_refused(data_root, key, value):
    root, _, _ = data_root
    with pytest.raises(UserError, match=f"Option '{key}' must be"):
        build(root, **{key: value})


def test_semantic_table_is_the_two_layer_adapter(data_root):
    root, _, _ = data_root
    model = build(root)[-1]
    direct = model.adapter(model.llm_item_emb)
    assert torch.allclose(model.semantic_item_table(), direct, atol=1e-5)


def test_batch_without_last_rows_gives_a_zero_loss_of_the_same_form(data_root):
    root, _, _ = data_root
    _, _, train, _, _, model = build(root)
    batch = batch_of(train)
    keep = ~model.select_last_rows(batch)
    batch = batch[torch.nonzero(keep, as_tuple=True)[0]]
    rec, distill = model.calculate_loss(batch)
    assert rec.item() == 0 and distill.item() == 0 and rec.requires_grad
    (rec + distill).backward()


@pytest.mark.parametrize("overrides,needed", [
    ({}, ("item_emb", "sim_users")),
    ({"alpha": 0.0}, ("item_emb",)),
    ({"sim_user_num": 0}, ("item_emb",)),
    ({"use_semantic": False}, ("item_emb", "sim_users")),  # the PCA initialisation still reads them
    ({"use_semantic": False, "id_init": "random"}, ("sim_users",)),
    ({"use_semantic": False, "id_init": "random", "alpha": 0.0}, ()),
])
def test_the_dataset_loads_and_the_run_builds_exactly_what_the_options_need(data_root, overrides, needed):
    from recbole_llmaug.utils import needed_outputs

    config = make_config(data_root[0], **overrides)
    assert LLMESRDataset.needed_outputs(config) == needed
    assert needed_outputs(config) == needed


def test_saved_llmesr_run_tests_again_to_its_own_numbers(tmp_path):
    """A saved LLM-ESR run (semantic table, similar users, teacher) rebuilt from its checkpoint alone
    by ``evaluate_saved_model`` gives the run's own test numbers, full and sampled."""
    from recbole_llmaug.config import make_config as make_llmaug_config
    from recbole_llmaug.quick_start import evaluate_saved_model, train_and_evaluate

    write_fixture(str(tmp_path))
    settings = dict(data_path=str(tmp_path), hidden_size=16, inner_size=32, epochs=2, train_batch_size=16,
                    MAX_ITEM_LIST_LENGTH=8, show_progress=False, state="ERROR", backbone="GRU4Rec",
                    checkpoint_dir=str(tmp_path / "saved"), results_dir=None, extra_test_modes=["uni3"],
                    load_col={"inter": ["user_id", "item_id", "timestamp"]})
    record = train_and_evaluate(make_llmaug_config("LLMESR", "tiny", config_dict=settings), augment=False)
    again = evaluate_saved_model(record["checkpoint"], modes=["full", "uni3"])
    assert again["full"]["result"] == record["test_result"]
    assert again["uni3"]["result"] == record["extra_test_results"]["uni3"]["result"]
