"""Long-tail grouped metrics: hand-computed values, equality with RecBole's own, both protocols."""

import json
import math

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_llmaug.config import make_config
from recbole_llmaug.evaluator import LongTailCollector, LongTailEvaluator, LongTailGroups, pareto_threshold
from recbole_llmaug.quick_start import evaluate_saved_model, train_and_evaluate
from recbole_llmaug.utils import get_model


def known_groups(config):
    """Groups with known membership: users 1,2 (and 5) are short-history, items 4,5 are tail."""
    groups = LongTailGroups.__new__(LongTailGroups)
    groups.history = torch.tensor([0, 2, 3, 10, 12, 2])
    groups.popularity = torch.tensor([0, 50, 40, 30, 1, 2])
    groups.user_threshold, groups.item_threshold = 9, 4
    groups.tail_item = groups.popularity < groups.item_threshold
    groups.length_groups = config["user_length_groups"]
    return groups


def test_grouped_metrics_match_hand_computed_values(tiny_dataset, fast_settings):
    config = make_config("SASRec", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset), topk=[2]))
    collector = LongTailCollector(config)
    collector.groups = known_groups(config)
    evaluator = LongTailEvaluator(config)

    def scores(ranking):  # items listed best first; others score lower
        row = torch.full((6,), -10.0)
        for rank, item in enumerate(ranking):
            row[item] = 10.0 - rank
        return row

    # batch 1: u1 hits item 1 at rank 1; u2 hits tail item 5 at rank 2
    collector.eval_batch_collect(
        torch.stack([scores([1, 2]), scores([3, 5])]), Interaction({"user_id": torch.tensor([1, 2])}),
        torch.tensor([0, 1]), torch.tensor([1, 5]),
    )
    # batch 2: u3 misses tail item 4; u4 hits item 2 at rank 1; u5 has two positives (1 head, 4 tail), hits 1 at rank 2
    collector.eval_batch_collect(
        torch.stack([scores([1, 2, 3, 4]), scores([2, 1]), scores([3, 1, 4])]),
        Interaction({"user_id": torch.tensor([3, 4, 5])}),
        torch.tensor([0, 1, 2, 2]), torch.tensor([4, 2, 1, 4]),
    )
    result = evaluator.evaluate(collector.get_data_struct())
    d2 = 1 / math.log2(3)
    # RecBole's NDCG for u5 (2 positives, 1 hit at rank 2): DCG = d2, IDCG = 1 + d2
    expected = {
        "hit@2": 4 / 5, "ndcg@2": (1 + d2 + 0 + 1 + d2 / (1 + d2)) / 5,
        "tail_user/hit@2": 3 / 3, "tail_user/ndcg@2": (1 + d2 + d2 / (1 + d2)) / 3,
        "head_user/hit@2": 1 / 2, "head_user/ndcg@2": 1 / 2,
        "short_user/hit@2": 1.0, "long_user/hit@2": 1 / 2,
        "tail_item/hit@2": 1 / 3, "tail_item/ndcg@2": d2 / 3,
        "head_item/hit@2": 3 / 3, "head_item/ndcg@2": (1 + 1 + d2) / 3,
    }
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-4), key
    assert evaluator.group_sizes["tail_item"] == 3 and evaluator.group_sizes["head_item"] == 3
    assert evaluator.group_sizes["medium_user"] == 0 and "medium_user/hit@2" not in result


def test_pareto_threshold_puts_top_fifth_in_head():
    counts = torch.arange(1, 11).numpy()  # 10 items, popularity 1..10
    threshold = pareto_threshold(counts)
    assert threshold == 9.0  # items with 9 and 10 interactions are the head 20%
    assert int((torch.from_numpy(counts) < threshold).sum()) == 8


def _plain_recbole_test_result(config):
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset)
    trainer = Trainer(config, model)
    trainer.fit(train, valid, saved=False, show_progress=False)
    return trainer.evaluate(test, load_best_model=False)


@pytest.mark.parametrize("mode", ["full", "uni30"])
def test_all_users_numbers_equal_recboles_own(tiny_dataset, fast_settings, mode):
    settings = dict(fast_settings, data_path=str(tiny_dataset), eval_args={
        "split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": mode})
    ours = train_and_evaluate(make_config("SASRec", "tiny", config_dict=settings), saved=False)
    theirs = _plain_recbole_test_result(make_config("SASRec", "tiny", config_dict=settings))
    for key, value in theirs.items():
        assert ours["test_result"][key] == value, key
    sizes = ours["test_group_sizes"]
    assert sizes["tail_user"] + sizes["head_user"] == 30
    assert sizes["tail_item"] + sizes["head_item"] == 30  # leave-one-out: one target per user
    # the groups partition the users, so their weighted mean is the overall number
    for metric in ("hit@10", "ndcg@10"):
        for left, right in (("tail_user", "head_user"), ("tail_item", "head_item")):
            weighted = sum(ours["test_result"].get(f"{g}/{metric}", 0.0) * sizes[g] for g in (left, right)) / 30
            assert weighted == pytest.approx(ours["test_result"][metric], abs=2e-4)
    record = json.loads(open(ours["results_file"]).read())
    assert record["test_result"] == ours["test_result"] and record["timing"]["epochs_trained"] == 1


def test_extra_test_modes_test_the_same_model_under_sampled_protocols(tiny_dataset, fast_settings):
    settings = dict(fast_settings, data_path=str(tiny_dataset))
    plain = train_and_evaluate(make_config("SASRec", "tiny", config_dict=settings), saved=False)
    both = train_and_evaluate(make_config("SASRec", "tiny", config_dict=dict(settings, extra_test_modes=["uni5"])),
                              saved=False)
    assert both["test_result"] == plain["test_result"]  # the extra test leaves the main one untouched
    extra = both["extra_test_results"]["uni5"]
    assert extra["group_sizes"] == both["test_group_sizes"]
    # ranking among 100 sampled negatives can only be better than among all items, group by group
    for key, full_value in both["test_result"].items():
        assert extra["result"][key] >= full_value, key
    # 1 positive + 5 sampled negatives: the positive is always in the top 10
    assert extra["result"]["hit@10"] == 1.0 > both["test_result"]["hit@10"]


def test_a_saved_run_tests_again_to_its_own_numbers(tiny_dataset, fast_settings):
    """``evaluate_saved_model`` rebuilds data and model from the checkpoint alone: full ranking gives the
    run's test result, and a sampled mode the run's own extra test (same seeded negatives)."""
    # BPR with a sampled negative: training draws from the sampler's random stream, as many models do
    settings = dict(fast_settings, data_path=str(tiny_dataset), epochs=2, extra_test_modes=["uni3"], loss_type="BPR",
                    train_neg_sample_args={"distribution": "uniform", "sample_num": 1, "alpha": 1.0,
                                           "dynamic": False, "candidate_num": 0})
    record = train_and_evaluate(make_config("SASRec", "tiny", config_dict=settings), saved=True)
    again = evaluate_saved_model(record["checkpoint"], modes=["full", "uni3"])
    assert again["full"]["result"] == record["test_result"]
    assert again["full"]["group_sizes"] == record["test_group_sizes"]
    assert again["uni3"]["result"] == record["extra_test_results"]["uni3"]["result"]
    assert again["uni3"]["result"] != again["full"]["result"]


def test_extra_test_mode_must_sample_uniformly(tiny_dataset, fast_settings):
    config = make_config("SASRec", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset),
                                                            extra_test_modes=["pop100"]))
    with pytest.raises(ValueError, match="pop100"):
        train_and_evaluate(config, saved=False)
    assert config["eval_args"]["mode"]["test"] == "full" and config["test_neg_sample_args"]["sample_num"] == "none"


def test_runs_started_in_the_same_second_keep_separate_checkpoints(tiny_dataset, fast_settings):
    from recbole_llmaug.trainer import LongTailTrainer

    config = make_config("SASRec", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset)))
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = get_model("SASRec")(config, train_data._dataset)
    files = {LongTailTrainer(config, model).saved_model_file for _ in range(3)}
    assert len(files) == 3
    assert all(f.startswith(str(fast_settings["checkpoint_dir"])) and f.endswith(".pth") for f in files)


@pytest.mark.parametrize("model_name", ["SASRec", "GRU4Rec", "BERT4Rec"])
@pytest.mark.parametrize("split", [{"LS": "valid_and_test"}, {"RS": [0.6, 0.2, 0.2]}])
def test_sampled_scores_of_sequential_models_equal_recboles(tiny_dataset, fast_settings, model_name, split):
    """uniN scores from one full ranking per user equal RecBole's one-row-per-candidate scores; with
    several test rows per user (RS split) the rows hold different sequences and RecBole's path is kept."""
    from recbole_llmaug.trainer import with_longtail

    config = make_config(model_name, "tiny", config_dict=dict(
        fast_settings, data_path=str(tiny_dataset),
        eval_args={"split": split, "order": "TO", "group_by": "user", "mode": "uni5"}))
    init_seed(config["seed"], config["reproducibility"])
    train, _, test = data_preparation(config, create_dataset(config))
    model = get_model(model_name)(config, train._dataset).eval()
    ours, theirs = with_longtail(Trainer)(config, model), Trainer(config, model)
    ours.prepare_groups(train)
    ours.tot_item_num = theirs.tot_item_num = test._dataset.item_num
    several_rows = False
    with torch.no_grad():
        for batch in test:
            several_rows |= len(batch[2]) > int(batch[2][-1]) + 1
            fast, slow = ours._neg_sample_batch_eval(batch)[1], theirs._neg_sample_batch_eval(batch)[1]
            assert torch.equal(torch.isinf(fast), torch.isinf(slow))
            assert torch.allclose(fast[~torch.isinf(fast)], slow[~torch.isinf(slow)], atol=1e-5)
    assert several_rows == ("RS" in split)
