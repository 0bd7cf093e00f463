"""LLMRec, the model: pruning, the symmetric adjacency, the augmented triples in the loss, the side
features, the trained MAE decoder, LightGCN faithfulness with every part off, ``needed_outputs`` per
ablation, and a run through the project's run entry with the grouped evaluation.

The augmentor's outputs (``.lredge``, ``.itemattr``, ``.userprof``, ``.itememb``, ``.useremb``) are written
here directly, in the contract's formats (``augment/systems/llmrec.py``), with random vectors: these tests
are about the model, not the LLM.
"""

import math

import numpy as np
import pytest
import torch
from conftest import write_tiny_dataset
from recbole.data import data_preparation
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_llmaug.augment.systems.llmrec import EDGES, ITEM_ATTRIBUTES, USER_PROFILES
from recbole_llmaug.config import make_config
from recbole_llmaug.data.llmrec import LLMRecDataset
from recbole_llmaug.model.general_recommender.llmrec import LLMRec, prune, scaled_cosine_error
from recbole_llmaug.utils import create_dataset, get_model

N_USERS, N_ITEMS = 30, 20
SMALL = {"epochs": 1, "show_progress": False, "state": "ERROR", "train_batch_size": 64, "eval_batch_size": 64,
         "embedding_size": 16, "n_layers": 2}
EVERYTHING_OFF = {"llmrec_aug_edges": False, "llmrec_omega1": 0.0, "llmrec_prune": "off", "llmrec_mae": False}
EDGE_ROWS = [(f"u{u}", f"i{u % N_ITEMS + 1}", f"i{(u + 7) % N_ITEMS + 1}") for u in range(1, N_USERS + 1, 2)]


def write_vectors(path, header, ids, dim, rng):
    rows = "".join(f"{token}\t{' '.join(f'{v:.6f}' for v in rng.normal(size=dim))}\n" for token in ids)
    path.write_text("\t".join(header) + "\n" + rows, encoding="utf-8")


@pytest.fixture
def data(tmp_path):
    """Settings of a tiny dataset whose augmented files are in ``augment_path``."""
    write_tiny_dataset(tmp_path / "data", n_users=N_USERS, n_items=N_ITEMS)
    out = tmp_path / "aug" / "tiny"
    out.mkdir(parents=True)
    rng = np.random.default_rng(3)
    items, users = [f"i{i}" for i in range(1, N_ITEMS + 1)], [f"u{u}" for u in range(1, N_USERS + 1)]
    write_vectors(out / "tiny.itememb", ("iid:token", "item_emb:float_seq"), items, 8, rng)
    write_vectors(out / "tiny.useremb", ("uid:token", "user_emb:float_seq"), users, 8, rng)
    write_vectors(out / f"tiny.{ITEM_ATTRIBUTES.suffix}", ITEM_ATTRIBUTES.header, items[:-2], 6, rng)  # 2 items lack attributes
    write_vectors(out / f"tiny.{USER_PROFILES.suffix}", USER_PROFILES.header, users, 5, rng)
    (out / f"tiny.{EDGES.suffix}").write_text(
        "\t".join(EDGES.header) + "\n" + "".join("\t".join(row) + "\n" for row in EDGE_ROWS), encoding="utf-8")
    return dict(SMALL, data_path=str(tmp_path / "data"), augment_path=str(tmp_path / "aug"),
                checkpoint_dir=str(tmp_path / "saved"), results_dir=str(tmp_path / "results"))


def build(model, settings, **overrides):
    """Config, split and a fresh model, seeded as the project's run does (quick_start._data_and_model)."""
    config = make_config(model, "tiny", config_dict=dict(settings, **overrides))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    instance = get_model(model)(config, train_data.dataset).to(config["device"])
    return config, train_data, valid_data, instance


# ------------------------------------------------------------------------------------------ pruning


def test_pruning_drops_the_highest_losses_and_paper_literal_keeps_them():
    losses = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0, 0.5, 6.0, 2.5, 0.1, 7.0])
    # rate 0.3 of 10 rows: 3 dropped, 7 kept
    assert prune(losses, 0.3, "lowest_kept").item() == pytest.approx(np.mean([0.1, 0.5, 1.0, 2.0, 2.5, 3.0, 4.0]))
    assert prune(losses, 0.3, "paper_literal").item() == pytest.approx(np.mean([7.0, 6.0, 5.0, 4.0, 3.0, 2.5, 2.0]))
    assert prune(losses, 0.3, "off").item() == pytest.approx(losses.mean().item())
    assert prune(losses, 0.0, "lowest_kept").item() == pytest.approx(losses.mean().item())
    assert prune(losses, 0.999, "lowest_kept").item() == pytest.approx(0.1)  # at least one row is kept


def test_pruning_reaches_the_gradient_of_the_kept_rows_only():
    losses = torch.tensor([3.0, 1.0, 2.0, 9.0], requires_grad=True)
    prune(losses, 0.5, "lowest_kept").backward()
    assert losses.grad.tolist() == [0.0, 0.5, 0.5, 0.0]


def test_scaled_cosine_error_is_one_minus_cosine_to_the_power_gamma():
    a, b = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    assert scaled_cosine_error(a, b, 2.0).item() == pytest.approx((1.0 ** 2 + 0.0) / 2)
    c = torch.tensor([[1.0, 0.0]])
    d = torch.tensor([[1.0, 1.0]])
    assert scaled_cosine_error(c, d, 3.0).item() == pytest.approx((1 - 1 / math.sqrt(2)) ** 3)


# ------------------------------------------------------------------------------------------ graph


def test_adjacency_is_symmetrically_normalised_over_the_training_interactions(data):
    _, train_data, _, model = build("LLMRec", data, **EVERYTHING_OFF)
    inter = train_data.dataset.inter_feat
    n_users, n_items = model.n_users, model.n_items
    adjacency = torch.zeros(n_users + n_items, n_users + n_items, dtype=torch.float64)
    users, items = inter["user_id"].long(), inter["item_id"].long()
    adjacency[users, n_users + items] = 1
    adjacency[n_users + items, users] = 1
    degree = adjacency.sum(dim=1)
    scale = torch.where(degree > 0, degree.clamp(min=1e-12) ** -0.5, torch.zeros_like(degree))
    expected = scale[:, None] * adjacency * scale[None, :]
    got = model.norm_adj_matrix.to_dense().double()
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got, got.T)  # one-sided (row) normalisation would not be symmetric
    # only training interactions: a validation/test pair of the split is not an edge unless also in training
    assert int((expected > 0).sum()) == 2 * len(set(zip(users.tolist(), items.tolist())))


# ------------------------------------------------------------------------------------------ faithfulness


def train_epochs(model, train_data, config, epochs=2):
    trainer = Trainer(config, model)
    losses = [float(trainer._train_epoch(train_data, epoch, show_progress=False)) for epoch in range(epochs)]
    model.eval()
    users = torch.arange(1, model.n_users)
    from recbole.data.interaction import Interaction

    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({"user_id": users})).view(len(users), -1)
    return losses, scores


def test_with_every_part_off_it_trains_exactly_as_recboles_lightgcn(data):
    """Same seed, same split, same negatives: the same losses and scores as RecBole's LightGCN."""
    common = dict(data, embedding_size=16, n_layers=2, reg_weight=1e-4, learning_rate=0.01,
                  eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"})
    config_l, train_l, _, lightgcn = build("LightGCN", common)
    losses_l, scores_l = train_epochs(lightgcn, train_l, config_l)
    config_r, train_r, _, llmrec = build("LLMRec", common, **EVERYTHING_OFF)
    assert type(llmrec).__mro__[1].__name__ == "LightGCN"
    losses_r, scores_r = train_epochs(llmrec, train_r, config_r)
    assert losses_r == losses_l
    assert torch.equal(scores_r, scores_l)
    # the comparison can tell: pruning alone changes the run
    config_p, train_p, _, pruned = build("LLMRec", common, **dict(EVERYTHING_OFF, llmrec_prune="lowest_kept"))
    assert train_epochs(pruned, train_p, config_p)[0] != losses_l


def test_extra_parts_change_neither_the_id_embeddings_nor_the_random_stream_after_them(data):
    _, _, _, plain = build("LLMRec", data, **EVERYTHING_OFF)
    stream_plain = torch.random.get_rng_state()
    _, _, _, full = build("LLMRec", data)
    stream_full = torch.random.get_rng_state()
    assert len(full.projections) == 4 and len(full.decoders) == 2
    assert torch.equal(plain.user_embedding.weight, full.user_embedding.weight)
    assert torch.equal(plain.item_embedding.weight, full.item_embedding.weight)
    assert torch.equal(stream_plain, stream_full)  # training (masks, sampled triples) draws the same numbers


# ------------------------------------------------------------------------------------------ loss parts


def test_augmented_triples_in_a_batch_come_from_the_loaded_file(data):
    config, train_data, _, model = build("LLMRec", data, **dict(EVERYTHING_OFF, llmrec_aug_edges=True,
                                                              llmrec_aug_share=0.5))
    dataset = train_data.dataset
    tokens = {(dataset.id2token("user_id", u), dataset.id2token("item_id", p), dataset.id2token("item_id", n))
              for u, p, n in model.aug_triples.tolist()}
    assert tokens == set(EDGE_ROWS)
    torch.manual_seed(0)
    drawn = model.sample_augmented(64)
    assert drawn.shape == (32, 3)
    assert {tuple(row) for row in drawn.tolist()} <= {tuple(row) for row in model.aug_triples.tolist()}

    # the loss is RecBole's BPR (+ L2) over the batch rows followed by exactly those triples
    batch = next(iter(train_data)).to(model.device)
    torch.manual_seed(1)
    loss = model.calculate_loss(batch)
    torch.manual_seed(1)
    drawn = model.sample_augmented(len(batch))
    assert drawn.shape[0] == round(0.5 * len(batch)) > 0
    user = torch.cat([batch["user_id"], drawn[:, 0]])
    pos = torch.cat([batch["item_id"], drawn[:, 1]])
    neg = torch.cat([batch["neg_item_id"], drawn[:, 2]])
    with torch.no_grad():
        users_e, items_e = model.forward()
    diff = (users_e[user] * items_e[pos]).sum(1) - (users_e[user] * items_e[neg]).sum(1)
    bpr = -torch.log(1e-10 + torch.sigmoid(diff)).mean()
    reg = (model.user_embedding(user).norm() + model.item_embedding(pos).norm() + model.item_embedding(neg).norm()) / len(user)
    assert loss.item() == pytest.approx((bpr + config["reg_weight"] * reg).item(), rel=1e-5)


def test_side_features_are_added_normalised_with_scale_omega1(data):
    _, _, _, model = build("LLMRec", data, llmrec_omega1=0.3, llmrec_mae=False)
    assert [name for _, name in model.sources] == ["user_emb", USER_PROFILES.name, "item_emb", ITEM_ATTRIBUTES.name]
    model.eval()
    with torch.no_grad():
        users, items = model.forward()
        id_users, id_items = LLMRec.__mro__[1].forward(model)  # LightGCN's own propagation of the IDs
        channels = model.side_channels()
    side = torch.nn.functional.normalize(channels, dim=-1).sum(dim=1)
    assert torch.allclose(users, id_users + 0.3 * side[: model.n_users], atol=1e-6)
    assert torch.allclose(items, id_items + 0.3 * side[model.n_users:], atol=1e-6)
    # propagated: an item source reaches the users (layer 1), a user source the items
    assert channels[1: model.n_users, 2].abs().sum() > 0 and channels[model.n_users + 1:, 0].abs().sum() > 0


def test_the_mae_decoder_and_mask_tokens_are_trained(data):
    config, train_data, _, model = build("LLMRec", data, llmrec_mae_weight=1.0, llmrec_mask_rate=0.3)
    assert set(model.decoders) == {"item_emb", ITEM_ATTRIBUTES.name}
    before = {name: param.detach().clone() for name, param in model.named_parameters()
              if name.startswith(("decoders.", "mask_tokens."))}
    assert len(before) == 6
    Trainer(config, model)._train_epoch(train_data, 0, show_progress=False)
    for name, value in before.items():
        assert not torch.equal(value, dict(model.named_parameters())[name]), name


def test_masked_items_see_the_mask_token_and_the_loss_reconstructs_their_original_rows(data):
    _, _, _, model = build("LLMRec", data, llmrec_mae_weight=1.0)
    masked = torch.tensor([1, 4])
    with torch.no_grad():
        plain, hidden = model.side_channels(), model.side_channels(masked)
    items = model.n_users + masked
    assert not torch.allclose(plain[items, 2], hidden[items, 2])  # the item's own channel changed
    assert torch.equal(plain[: model.n_users, 0], hidden[: model.n_users, 0])  # user sources untouched
    decoder, original = model.decoders["item_emb"], model.features_item_emb[masked]
    with torch.no_grad():
        expected = scaled_cosine_error(decoder(hidden[items, 2]), original, 2.0)
        present = model.features_llmrec_item_attributes[masked].abs().sum(1) > 0
        expected += scaled_cosine_error(model.decoders[ITEM_ATTRIBUTES.name](hidden[items[present], 3]),
                                        model.features_llmrec_item_attributes[masked][present], 2.0)
        assert model.mae_loss(hidden, masked).item() == pytest.approx(expected.item(), rel=1e-6)


# ------------------------------------------------------------------------------------------ evaluation


def test_predict_matches_full_sort_and_the_eval_cache_is_dropped_by_training(data):
    config, train_data, _, model = build("LLMRec", data)
    from recbole.data.interaction import Interaction

    model.eval()
    users = torch.tensor([1, 2, 3])
    with torch.no_grad():
        full = model.full_sort_predict(Interaction({"user_id": users})).view(3, -1)
        pairs = model.predict(Interaction({"user_id": users.repeat_interleave(4), "item_id": torch.arange(1, 5).repeat(3)}))
    assert torch.allclose(full[:, 1:5].reshape(-1), pairs, atol=1e-6)
    assert model.restore_user_e is not None
    model.train()
    model.calculate_loss(next(iter(train_data)))
    assert model.restore_user_e is None and model.restore_item_e is None


# ------------------------------------------------------------------------------------------ data


@pytest.mark.parametrize("overrides, expected", [
    ({}, (EDGES.name, "user_emb", USER_PROFILES.name, "item_emb", ITEM_ATTRIBUTES.name)),
    ({"llmrec_aug_edges": False}, ("user_emb", USER_PROFILES.name, "item_emb", ITEM_ATTRIBUTES.name)),
    ({"llmrec_aug_share": 0.0}, ("user_emb", USER_PROFILES.name, "item_emb", ITEM_ATTRIBUTES.name)),
    ({"llmrec_user_profiles": False}, (EDGES.name, "user_emb", "item_emb", ITEM_ATTRIBUTES.name)),
    ({"llmrec_user_profiles": False, "llmrec_item_attributes": False}, (EDGES.name, "user_emb", "item_emb")),
    ({"llmrec_text_features": False}, (EDGES.name, USER_PROFILES.name, ITEM_ATTRIBUTES.name)),
    ({"llmrec_omega1": 0.0}, (EDGES.name,)),
    ({"llmrec_prune": "off", "llmrec_mae": False}, (EDGES.name, "user_emb", USER_PROFILES.name, "item_emb",
                                                    ITEM_ATTRIBUTES.name)),
    (EVERYTHING_OFF, ()),
])
def test_needed_outputs_follow_the_ablation_options(data, overrides, expected):
    config = make_config("LLMRec", "tiny", config_dict=dict(data, **overrides))
    assert LLMRecDataset.needed_outputs(config) == expected


def test_an_ablation_loads_without_the_files_of_its_disabled_parts(data, tmp_path):
    for suffix in (ITEM_ATTRIBUTES.suffix, USER_PROFILES.suffix, EDGES.suffix):
        (tmp_path / "aug" / "tiny" / f"tiny.{suffix}").unlink()
    _, _, _, model = build("LLMRec", data, llmrec_aug_edges=False, llmrec_user_profiles=False,
                           llmrec_item_attributes=False)
    assert [name for _, name in model.sources] == ["user_emb", "item_emb"] and model.aug_triples.shape == (0, 3)


# ------------------------------------------------------------------------------------------ a run


def test_a_run_through_the_run_entry_trains_validates_and_reports_groups(data):
    from recbole_llmaug.quick_start import run_recbole_llmaug

    # topk 50 of the protocol is more than the tiny catalogue holds
    record = run_recbole_llmaug("LLMRec", "tiny", config_dict=dict(data, epochs=2, topk=[10, 20]), augment=False)
    config = record["config"]
    assert config["eval_args"]["split"] == {"RS": [0.8, 0.1, 0.1]} and config["valid_metric"] == "NDCG@20"
    assert "ndcg@20" in record["best_valid_result"]
    test = record["test_result"]
    for key in ("recall@10", "ndcg@20", "precision@20", "hit@10", "tail_user/hit@10", "head_item/ndcg@10"):
        assert key in test and 0 <= test[key] <= 1, key
    assert record["test_group_sizes"]["tail_user"] + record["test_group_sizes"]["head_user"] > 0
    assert record["timing"]["epochs_trained"] == 2 and record["checkpoint"]
