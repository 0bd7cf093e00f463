"""LLMSeR: leak-free augmentation (reverse/forward candidate models, selection, filter, reliability),
the dataset's weights, the dual-channel loss per backbone, and runs through RecBole's trainer.

The augmentation fixture uses the real embedding model and the real local LLM (SmolLM2 behind the
embedded llama.cpp server) on a tiny dataset whose validation and test items occur nowhere else, so a
leak of either into a model, a prompt, a candidate or a weight is visible.
"""

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_tiny_dataset

from recbole_llmaug.augment.atomic import read_atomic
from recbole_llmaug.augment.systems import llmser as system
from recbole_llmaug.config import load_settings, make_config
from recbole_llmaug.errors import UserError
from recbole_llmaug.model.sequential_recommender.llmser import LLMSeR, prepend

N_USERS, N_ITEMS = 12, 12
SMALL = {"llmser_candidates": 5, "llmser_select": 3, "llmser_keep": 2, "llmser_arv_candidates": 3,
         "llmser_ccg_epochs": 1, "MAX_ITEM_LIST_LENGTH": 10}
MODEL = {"hidden_size": 16, "inner_size": 32, "embedding_size": 16, "n_heads": 1, "n_layers": 1, "epochs": 1,
         "train_batch_size": 16, "eval_batch_size": 64, "show_progress": False, "state": "ERROR"}


def histories_with_private_holdouts(seed=5):
    """Users with 3-6 training items from a small catalogue, then a validation item ``v<u>`` and a
    test item ``t<u>`` that nobody else has."""
    rng = random.Random(seed)
    found = {}
    for user in range(1, N_USERS + 1):
        items = rng.sample([f"i{i}" for i in range(1, N_ITEMS + 1)], rng.randint(3, 6))
        found[f"u{user}"] = items + [f"v{user}", f"t{user}"]
    return found


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """Data root, folders and the settings of one LLMSeR augmentation (default modes: LLM picks by id,
    LLM reliability) with every prompt the LLM was sent."""
    root = tmp_path_factory.mktemp("llmser")
    sequences = histories_with_private_holdouts()
    inter = "".join(f"{user}\t{item}\t{100 + step}\n" for user, items in sequences.items() for step, item in enumerate(items))
    names = [f"i{i}" for i in range(1, N_ITEMS + 1)] + [f"{kind}{u}" for u in range(1, N_USERS + 1) for kind in "vt"]
    titles = {name: (f"Lipstick shade {name}" if name.startswith("i") else f"Held out {name} serum") for name in names}
    item = "".join(f"{name}\t{titles[name]}\tBrand\t'Beauty'\t9.5\n" for name in names)
    write_tiny_dataset(root / "data", inter=inter, item=item)
    overrides = dict(SMALL, data_path=str(root / "data"), augment_path=str(root / "aug"),
                     llmaug_cache_dir=str(root / "cache"), checkpoint_dir=str(root / "saved"), results_dir=None, **MODEL)
    prompts = []
    real_select = system._select_all

    def recording_select(settings, requests, desc, version):  # the real LLM, with the prompts kept
        prompts.extend(messages for messages, _, _ in requests)
        return real_select(settings, requests, desc, version)

    patch = pytest.MonkeyPatch()
    patch.setattr(system, "_select_all", recording_select)
    patch.setattr(sys, "argv", [sys.argv[0]])
    try:
        from recbole.utils import ModelType

        from recbole_llmaug.augment import run_augmentor

        settings = load_settings("tiny", "LLMSeR", config_dict=overrides)
        manifest = run_augmentor("llmser", dict(settings, MODEL_TYPE=ModelType.SEQUENTIAL))
    finally:
        patch.undo()
    return {"root": root, "out": root / "aug" / "tiny", "sequences": sequences, "overrides": overrides,
            "prompts": prompts, "manifest": manifest, "settings": settings}


def rows(path):
    table = read_atomic(path)
    return table.frame.values.tolist()


def held_out(sequences):
    return {item for items in sequences.values() for item in items[-2:]}


# ---------------------------------------------------------------------------- augmentation
def test_the_candidate_models_see_only_training_sequences(augmented):
    """The reverse model trains on reversed training sequences, the forward one on training sequences
    minus their last item: exactly, and neither ever sees a validation or test item."""
    work = augmented["out"] / ".tiny.llmser_work"
    for name, expected in (("reverse", lambda items: items[:-2][::-1]), ("forward", lambda items: items[:-3])):
        found = {}
        for user, item, step in sorted(rows(work / name / f"{name}.inter"), key=lambda row: float(row[2])):
            found.setdefault(user, []).append(item)
        wanted = {user: expected(items) for user, items in augmented["sequences"].items() if expected(items)}
        assert found == wanted, name


def test_no_validation_or_test_item_reaches_a_candidate_a_prompt_or_a_weight(augmented):
    secret = held_out(augmented["sequences"])
    out = augmented["out"]
    for suffix in ("ccgcand", "arvcand", "pseudo.llm-ids", "arv.llm"):
        for row in rows(out / f"tiny.{suffix}"):
            assert not secret & set(" ".join(row[1:]).split()), (suffix, row)
    texts = [message["content"] for messages in augmented["prompts"] for message in messages]
    assert len(augmented["prompts"]) == 2 * N_USERS  # one selection and one reliability pick per user
    assert not [text for text in texts if "Held out" in text]
    # the hidden item of the reliability check is the last *training* item
    hidden = {user: row[0] for user, *row in rows(out / "tiny.arvcand")}
    assert hidden == {user: items[-3] for user, items in augmented["sequences"].items()}


def test_the_llm_pass_is_recorded_in_the_manifest_and_rerun_for_free(augmented):
    pseudo = augmented["manifest"]["outputs"]["llmser_pseudo_llm_ids"]
    assert pseudo["usage"]["calls"] + pseudo["usage"]["cache_hits"] >= N_USERS
    assert pseudo["counts"]["users"] == N_USERS and pseudo["counts"]["rows"] == N_USERS - pseudo["counts"]["failures"]
    assert 0 < pseudo["filter_kept_share_of_llm_picks"] <= 1
    from recbole.utils import ModelType

    from recbole_llmaug.augment import run_augmentor

    again = run_augmentor("llmser", dict(augmented["settings"], MODEL_TYPE=ModelType.SEQUENTIAL))
    assert all(manifest["reused"] for manifest in again["outputs"].values())


def test_pseudo_items_are_kept_candidates_oldest_first(augmented):
    candidates = system.read_token_lists(augmented["out"] / "tiny.ccgcand")
    for user, items in system.read_token_lists(augmented["out"] / "tiny.pseudo.llm-ids").items():
        assert len(items) == SMALL["llmser_keep"] and set(items) <= set(candidates[user])
        ranks = [candidates[user].index(item) for item in items]
        assert ranks == sorted(ranks, reverse=True)  # the reverse model's best candidate is last
        assert not set(items) & set(augmented["sequences"][user])  # never one of the user's own items


def test_free_text_mode_keeps_the_candidates_closest_to_the_answer(augmented):
    """The official answer mode (``llm-text``) with the real local LLM: the prompts hold no held-out
    title, and the filter keeps, per user, the ``llmser_keep`` candidates whose item embeddings are most
    cosine-similar to the embedding of the LLM's free-text answer (hallucinated titles cannot enter)."""
    from recbole.utils import ModelType

    from recbole_llmaug.augment import run_augmentor
    from recbole_llmaug.augment.text_embeddings import read_embeddings

    answers, prompts = [], []
    real_free_text = system.free_text_all

    def recording(settings, messages, desc, version):  # the real LLM, with prompts and answers kept
        prompts.extend(messages)
        found, usage = real_free_text(settings, messages, desc, version)
        answers.extend(found)
        return found, usage

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(system, "free_text_all", recording)
        settings = dict(augmented["settings"], llmser_pseudo="llm-text", MODEL_TYPE=ModelType.SEQUENTIAL)
        manifest = run_augmentor(system.mode_name("llm-text"), settings)
    report = manifest  # one output: its own manifest
    assert report["usage"]["calls"] >= 1 and len(prompts) == N_USERS
    assert not [m["content"] for messages in prompts for m in messages if "Held out" in m["content"]]
    candidates = system.read_token_lists(augmented["out"] / "tiny.ccgcand")
    ids, matrix = read_embeddings(augmented["out"] / "tiny.itememb")
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    row_of = {item: row for row, item in enumerate(ids)}
    kept = system.read_token_lists(augmented["out"] / "tiny.pseudo.llm-text")
    answer_of = {user: answer for user, answer in zip(sorted(augmented["sequences"]), answers) if answer}
    assert set(kept) == set(answer_of) and answer_of  # users are prompted in sorted order
    vectors = system._embed_answers(answers, settings)
    for user, answer in answer_of.items():
        query = vectors[answer] / np.linalg.norm(vectors[answer])
        similarity = {item: float(unit[row_of[item]] @ query) for item in candidates[user]}
        best = sorted(candidates[user], key=lambda item: -similarity[item])[:SMALL["llmser_keep"]]
        assert set(kept[user]) == set(best), (user, answer)


def test_the_semantic_filter_keeps_the_m_picks_closest_to_the_history(augmented, monkeypatch):
    """The selection logic with fixed picks in place of the LLM (a stand-in, for this unit only)."""
    files = system.DatasetFiles(dict(augmented["settings"]))
    vectors = system.ItemVectors(files)
    histories = system.user_train_histories(files)
    candidates = system.read_token_lists(augmented["out"] / "tiny.ccgcand")
    picks = {user: found[:3] for user, found in candidates.items()}
    monkeypatch.setattr(system, "_select_all", lambda settings, prompts, desc, version:
                        ([picks[user] for user in sorted(picks)], {"calls": 0}))
    found, report = system.pseudo_items("llm-ids", histories, candidates, vectors, {}, augmented["settings"])
    for user, items in found.items():
        anchor = vectors.history(histories[user])
        scores = {item: float(vectors.of([item])[0] @ (anchor / np.linalg.norm(anchor))) for item in picks[user]}
        best = sorted(picks[user], key=lambda item: -scores[item])[:2]
        assert sorted(items) == sorted(best)
    assert report["filter_kept_share_of_llm_picks"] == pytest.approx(2 / 3)
    unfiltered, _ = system.pseudo_items("llm-ids-nofilter", histories, candidates, vectors, {}, augmented["settings"])
    assert {user: sorted(items) for user, items in unfiltered.items()} == {user: sorted(p[:2]) for user, p in picks.items()}


def test_the_reliability_is_the_cosine_of_the_pick_and_the_hidden_item(augmented):
    files = system.DatasetFiles(dict(augmented["settings"]))
    vectors = system.ItemVectors(files)
    given = {user: (hidden, cands.split()) for user, hidden, cands in rows(augmented["out"] / "tiny.arvcand")}
    found, _ = system.arv_weights("none", system.user_train_histories(files), given, vectors, {}, augmented["settings"])
    ids, matrix = system.read_embeddings(augmented["out"] / "tiny.itememb")
    table = dict(zip(ids, matrix))
    for user, (picked, hidden, weight) in found.items():
        assert picked == given[user][1][0]  # 'none': the forward model's top 1
        a, b = table[picked], table[hidden]
        assert weight == pytest.approx(max(0.0, float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))), abs=1e-5)
    for user, weight, picked, hidden in rows(augmented["out"] / "tiny.arv.llm"):
        a, b = table[picked], table[hidden]
        assert float(weight) == pytest.approx(max(0.0, float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))), abs=1e-5)


# ---------------------------------------------------------------------------- dataset and model
def build(augmented, **overrides):
    from recbole.data import data_preparation

    from recbole_llmaug.utils import create_dataset

    config = make_config("LLMSeR", "tiny", config_dict=dict(augmented["overrides"], **overrides))
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    torch.manual_seed(0)
    return config, train, valid, test, LLMSeR(config, train.dataset)


def test_weights_decay_above_t_and_are_zero_without_pseudo_items(augmented):
    config, train, *_ = build(augmented, llmser_decay_length=4, llmser_decay=0.25)
    dataset = train.dataset
    lengths = dataset.training_lengths()
    reliability = dataset.augmented_output("llmser_arv_llm")
    weights = dataset.user_weights()
    pseudo = (dataset.pseudo_items() > 0).any(dim=1)
    tokens = dataset.field2id_token["user_id"]
    for uid in range(1, dataset.user_num):
        assert lengths[uid] == len(augmented["sequences"][tokens[uid]]) - 2
        base = reliability[uid] if not torch.isnan(reliability[uid]) else 0.5
        expected = base * (0.25 if lengths[uid] > 4 else 1.0) if pseudo[uid] else 0.0
        assert weights[uid] == pytest.approx(float(expected))
    assert (lengths[1:] > 4).any() and (lengths[1:] <= 4).any()
    fixed = build(augmented, llmser_arv=False, llmser_fixed_weight=0.8)[1].dataset.user_weights()
    expected = torch.where(lengths > 4, 0.4, 0.8) * pseudo  # default decay 0.5 above T = 4
    assert torch.allclose(fixed[1:], expected[1:].float())


def test_prepend_puts_the_prefix_in_front_and_drops_the_oldest_items_when_full():
    seq = torch.tensor([[5, 6, 0, 0], [5, 6, 7, 8], [5, 0, 0, 0]])
    prefix = torch.tensor([[1, 2], [1, 2], [0, 0]])
    out, length, shift = prepend(seq, torch.tensor([2, 4, 1]), prefix, torch.tensor([2, 2, 0]))
    assert out.tolist() == [[1, 2, 5, 6], [5, 6, 7, 8], [5, 0, 0, 0]]  # a full row keeps its real items
    assert length.tolist() == [4, 4, 1] and shift.tolist() == [2, 0, 0]


@pytest.mark.parametrize("backbone", ["SASRec", "GRU4Rec"])
def test_dual_channel_loss_is_per_sample_for_left_to_right_backbones(augmented, backbone):
    """``mean_u[w_u L_aug(u) + (1 - w_u) L_orig(u)]`` by hand, which differs from the official
    ``mean(L) * sum(w)`` form."""
    _, train, *_ = build(augmented, backbone=backbone, llmser_arv=False, llmser_fixed_weight=0.7)
    model = train_model = build(augmented, backbone=backbone)[-1]
    model.eval()
    batch = next(iter(train))
    users = batch["user_id"]
    weight = model.weights[users]
    assert (weight > 0).any() and (weight < weight.max()).any()  # different weights in one batch
    bb = model.backbone
    with torch.no_grad():
        def losses(seq, length):
            out = bb.forward(seq, length)
            return F.cross_entropy(out @ bb.item_embedding.weight.t(), batch["item_id"], reduction="none")

        original = losses(batch["item_id_list"], batch["item_length"])
        seq, length, _ = prepend(batch["item_id_list"], batch["item_length"], model.pseudo[users], model.pseudo_len[users])
        augmented_losses = losses(seq, length)
        expected = (weight * augmented_losses + (1 - weight) * original).mean()
        official = augmented_losses.mean() * weight.sum() + original.mean() * (1 - weight).sum()
        got = model.calculate_loss(batch)
    assert got == pytest.approx(float(expected), rel=1e-5)
    assert float(official) != pytest.approx(float(expected), rel=1e-3)
    assert train_model is model


def test_dual_channel_loss_of_bert4rec_weights_each_rows_masked_positions(augmented):
    _, train, *_ = build(augmented, backbone="BERT4Rec")
    model = build(augmented, backbone="BERT4Rec")[-1]
    model.eval()
    batch = next(iter(train))
    users = batch["user_id"]
    weight = model.weights[users]
    bb = model.backbone
    with torch.no_grad():
        def row_sums(seq, index, targets):
            out = bb.forward(seq)
            picked = torch.stack([out[row, index[row]] for row in range(len(seq))])  # [B, mask_len, H]
            logits = picked @ bb.item_embedding.weight[: bb.n_items].t() + bb.output_bias
            per = F.cross_entropy(logits.reshape(-1, bb.n_items), batch["Pos_item_id"].reshape(-1), reduction="none")
            return (per.view(index.shape) * targets).sum(1)

        masked, index = batch["Mask_item_id_list"], batch["MASK_INDEX"]
        targets = (index > 0).float()
        original = row_sums(masked, index, targets)
        seq, _, shift = prepend(masked, batch["item_length"], model.pseudo[users], model.pseudo_len[users])
        augmented_sums = row_sums(seq, index + shift.unsqueeze(1), targets)
        # each masked item is scored at its new place: same item under the mask, behind the pseudo items
        assert torch.equal(seq.gather(1, (index + shift.unsqueeze(1))), masked.gather(1, index))
        expected = ((1 - weight) * original).sum() / targets.sum() + (weight * augmented_sums).sum() / targets.sum()
        official = (augmented_sums.sum() / targets.sum()) * weight.sum() + (original.sum() / targets.sum()) * (1 - weight).sum()
        got = model.calculate_loss(batch)
    assert got == pytest.approx(float(expected), rel=1e-5)
    assert float(official) != pytest.approx(float(expected), rel=1e-3)


@pytest.mark.parametrize("backbone", ["SASRec", "GRU4Rec", "BERT4Rec"])
def test_with_every_weight_zero_it_trains_exactly_as_its_backbone(augmented, backbone):
    """A real run of each through RecBole's trainer: LLMSeR with w = 0 and the backbone itself, same
    seed, same data: the same test numbers."""
    from recbole_llmaug.quick_start import run_recbole_llmaug

    settings = dict(augmented["overrides"], backbone=backbone, llmser_arv=False, llmser_fixed_weight=0.0,
                    llmser_inference="original")
    ours = run_recbole_llmaug("LLMSeR", "tiny", config_dict=settings)
    theirs = run_recbole_llmaug(backbone, "tiny", config_dict=settings)
    assert ours["test_result"] == theirs["test_result"]
    assert ours["best_valid_result"] == theirs["best_valid_result"]


def test_augmented_inference_scores_the_pseudo_items_in_front(augmented):
    config, train, _, test, model = build(augmented)
    model.eval()
    batch = next(iter(test))[0]
    users = batch["user_id"]
    has = model.pseudo_len[users] > 0
    assert has.any()
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        original = model.backbone.full_sort_predict(batch)
        seq, length, _ = prepend(batch["item_id_list"], batch["item_length"], model.pseudo[users], model.pseudo_len[users])
        from recbole.data.interaction import Interaction

        by_hand = model.backbone.full_sort_predict(Interaction(dict(batch.interaction, item_id_list=seq, item_length=length)))
    assert torch.allclose(scores, by_hand)
    assert not torch.allclose(scores.view(len(users), -1)[has], original.view(len(users), -1)[has])
    model.augmented_inference = False
    with torch.no_grad():
        assert torch.allclose(model.full_sort_predict(batch), original)


def test_llmser_trains_with_weights_through_the_cli(augmented, tmp_path):
    import json

    from recbole_llmaug.cli import main

    overrides = dict(augmented["overrides"], results_dir=str(tmp_path / "results"))
    code = main(["--model=LLMSeR", "--dataset=tiny"] + [f"--{key}={value}" for key, value in overrides.items()])
    assert code == 0
    record = json.loads(next((tmp_path / "results").glob("LLMSeR-tiny-*.json")).read_text())
    sizes = record["test_group_sizes"]
    assert sizes["short_user"] + sizes["medium_user"] + sizes["long_user"] == N_USERS
    assert record["config"]["llmser_pseudo"] == "llm-ids" and record["timing"]["epochs_trained"] == 1


# ---------------------------------------------------------------------------- LLM-ESR on LLMSeR's sequences
COMPOSED = {"hidden_size": 16, "inner_size": 32, "n_heads": 1, "n_layers": 1, "sim_user_num": 3}


def build_composed(augmented, **overrides):
    """LLMESRSeR on the fixture (its LLMSeR outputs, plus LLM-ESR's built here with the real embedder),
    and an LLMESR with the same settings and initial parameters."""
    from recbole.data import data_preparation

    from recbole_llmaug.model.sequential_recommender.llmesr import LLMESR
    from recbole_llmaug.model.sequential_recommender.llmesrser import LLMESRSeR
    from recbole_llmaug.quick_start import prepare_augmentations
    from recbole_llmaug.utils import create_dataset

    config = make_config("LLMESRSeR", "tiny", config_dict=dict(augmented["overrides"], **COMPOSED, **overrides))
    prepare_augmentations(config)
    train, valid, test = data_preparation(config, create_dataset(config))
    torch.manual_seed(0)
    composed = LLMESRSeR(config, train.dataset)
    torch.manual_seed(0)
    plain = LLMESR(config, train.dataset)
    return config, train, test, composed, plain


def one_row(batch, row, seq=None):
    """Row ``row`` of ``batch`` as a batch of one, its item sequence replaced by ``seq`` (a list)."""
    from recbole.data.interaction import Interaction

    fields = {key: value[row : row + 1].clone() for key, value in batch.interaction.items()}
    if seq is not None:
        width = fields["item_id_list"].shape[1]
        seq = seq[-width:]
        fields["item_id_list"] = torch.tensor([seq + [0] * (width - len(seq))])
        fields["item_length"] = torch.tensor([len(seq)])
    return Interaction(fields)


def test_composed_settings_are_llmsers_then_llmesrs():
    settings = load_settings("tiny", "LLMESRSeR")
    assert settings["llmser_keep"] == 12 and settings["llmser_inference"] == "augmented"  # LLMSeR.yaml
    assert settings["hidden_size"] == 64 and settings["alpha"] == 0.1  # LLMESR.yaml


def test_the_none_choices_can_be_given_on_the_command_line():
    # `--llmser_pseudo=none` reads as ~ (as in yaml); the choice named 'none' must still be chosen
    settings = load_settings("tiny", "LLMSeR", config_dict={"llmser_pseudo": "none", "llmser_reliability": "None"})
    assert settings["llmser_pseudo"] == "none" and settings["llmser_reliability"] == "none"
    with pytest.raises(UserError, match="Option 'llmser_pseudo' must be"):
        load_settings("tiny", "LLMSeR", config_dict={"llmser_pseudo": "nothing"})


@pytest.mark.parametrize("backbone", ["SASRec", "BERT4Rec"])
def test_composed_loss_with_every_weight_zero_is_llmesrs(augmented, backbone):
    """Same seed, same batch, training mode (dropout, BERT4Rec's random masks): LLMESR's two loss terms."""
    _, train, _, composed, plain = build_composed(augmented, backbone=backbone, llmser_arv=False,
                                                 llmser_fixed_weight=0.0)
    batch = next(iter(train))
    assert not (composed.weights > 0).any() and (composed.pseudo_len > 0).any()
    torch.manual_seed(1)
    ours = composed.calculate_loss(batch)
    torch.manual_seed(1)
    theirs = plain.calculate_loss(batch)
    assert torch.allclose(torch.stack(ours), torch.stack(theirs), rtol=1e-5, atol=1e-7)


def test_composed_loss_weights_each_row_by_hand(augmented):
    """Prefix training (one loss position per row): ``sum_r[(1-w) L(r) + w L(pseudo + r)] / rows`` for the
    rec term and the same per row with a teacher for the distillation term, each ``L`` from LLMESR's own
    loss of a one-row batch whose augmented sequence is built by hand; differs from the official form."""
    from recbole_llmaug.model.sequential_recommender.llmesr import LLMESR

    _, train, _, model, _ = build_composed(augmented, train_mode="prefix")
    model.eval()
    batch = next(iter(train))
    users = batch["user_id"]
    weight = model.weights[users]
    assert (weight > 0).any() and (weight < weight.max()).any()
    with torch.no_grad():
        model.refresh_teacher_cache()
        _, has_teacher = model.teacher(users)
        rec, distill = [], []
        for row, user in enumerate(users.tolist()):
            real = batch["item_id_list"][row, : batch["item_length"][row]].tolist()
            pseudo = [item for item in model.pseudo[user].tolist() if item]
            original = LLMESR.calculate_loss(model, one_row(batch, row))
            augmented_loss = LLMESR.calculate_loss(model, one_row(batch, row, pseudo + real))
            w = float(weight[row])
            rec.append((1 - w) * original[0] + w * augmented_loss[0])
            distill.append((1 - w) * original[1] + w * augmented_loss[1])
        expected_rec = torch.stack(rec).mean()
        expected_distill = torch.stack(distill).sum() / has_teacher.sum()
        got_rec, got_distill = model.calculate_loss(batch)
    assert has_teacher.any()
    assert got_rec == pytest.approx(float(expected_rec), rel=1e-5)
    assert got_distill == pytest.approx(float(expected_distill), rel=1e-5)
    with torch.no_grad():
        official = torch.stack([LLMESR.calculate_loss(model, one_row(batch, r))[0] for r in range(len(users))]).mean()
    assert float(official) * float(weight.sum()) != pytest.approx(float(expected_rec), rel=1e-3)


def test_shift_right_moves_rows_behind_the_prefix():
    from recbole_llmaug.model.sequential_recommender.llmesrser import shift_right

    values = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert shift_right(values, torch.tensor([1, 0])).tolist() == [[0, 1, 2, 3], [4, 5, 0, 0]]


def test_composed_model_trains_through_recboles_trainer_and_scores_augmented_sequences(augmented, tmp_path):
    from recbole_llmaug.quick_start import run_recbole_llmaug

    settings = dict(augmented["overrides"], **COMPOSED, results_dir=str(tmp_path / "results"))
    record = run_recbole_llmaug("LLMESRSeR", "tiny", config_dict=settings)
    assert record["timing"]["epochs_trained"] == 1 and 0 <= record["test_result"]["hit@10"] <= 1
    assert {"tiny.itememb", "tiny.simuser"} <= {path.name for path in augmented["out"].iterdir()}
    config, _, test, model, plain = build_composed(augmented)
    model.eval()
    plain.eval()
    batch = next(iter(test))[0]
    with torch.no_grad():
        from recbole_llmaug.model.sequential_recommender.llmser import with_prefix

        assert torch.allclose(model.full_sort_predict(batch), plain.full_sort_predict(with_prefix(model, batch)))


def test_a_training_seed_reuses_the_candidates_and_llmser_ccg_seed_rebuilds_them(augmented):
    """A benchmark's seeds 2020, 2021, 2022 share one set of candidates (and LLM answers): the candidate
    models' fingerprint follows ``llmser_ccg_seed``, not the run's ``seed``."""
    from recbole_llmaug.augment.files import DatasetFiles

    settings = augmented["settings"]
    base = system.ccg_fingerprint(DatasetFiles(settings))
    assert system.ccg_fingerprint(DatasetFiles(dict(settings, seed=2021))) == base
    assert system.arv_candidates_fingerprint(DatasetFiles(dict(settings, seed=2021))) == \
        system.arv_candidates_fingerprint(DatasetFiles(settings))
    assert system.ccg_fingerprint(DatasetFiles(dict(settings, llmser_ccg_seed=7))) != base


def test_augment_llmser_builds_the_outputs_its_settings_choose(augmented):
    """``--augment=llmser --llmser_pseudo=none --llmser_reliability=embedding`` builds what such a run trains
    on (it used to build the default LLM outputs whatever the settings said)."""
    from recbole.utils import ModelType

    from recbole_llmaug.augment import run_augmentor

    settings = load_settings("tiny", "LLMSeR", config_dict=dict(
        augmented["overrides"], llmser_pseudo="none", llmser_reliability="embedding"))
    built = run_augmentor("llmser", dict(settings, MODEL_TYPE=ModelType.SEQUENTIAL))["outputs"]
    chosen = [system.PSEUDO["none"].name, system.ARV["embedding"].name]
    assert [name for name in built if name in {*chosen, system.PSEUDO["llm-ids"].name, system.ARV["llm"].name}] == chosen
    assert not any(built[name]["reused"] for name in chosen)
    assert (augmented["out"] / "tiny.pseudo.none").is_file() and (augmented["out"] / "tiny.arv.embedding").is_file()
    without_arv = load_settings("tiny", "LLMSeR", config_dict=dict(augmented["overrides"], llmser_arv=False))
    assert system.SYSTEM.outputs_under(without_arv) == (system.PSEUDO["llm-ids"].name,)
