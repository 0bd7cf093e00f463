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


def test_pareto_threshold_keeps_one_head_entry_among_few():
    """Fewer than five entries: 20% rounds up to one head entry, the largest; none: no head at all."""
    assert pareto_threshold([5]) == 5.0
    assert pareto_threshold([1, 3, 2]) == 3.0
    assert pareto_threshold([]) == math.inf


# A hand-made dataset; each user's last two items are valid/test, the rest is training:
# a has 6 training items, b 4, d 3, e 2 (so e's only training row is the 1-item prefix); z has a single
# interaction, so a sequential model gets no training row for it (no prefix) and a general model one.
# i8 and i99 occur only in valid/test; i99 is the last new item in the file and z the last user, so
# they get the highest ids.
EDGE_HISTORIES = {
    "a": ["i1", "i2", "i3", "i5", "i6", "i7", "i4", "i8"],
    "e": ["i1", "i9", "i6", "i7"],
    "b": ["i1", "i2", "i4", "i5", "i3", "i99"],
    "d": ["i1", "i2", "i7", "i6", "i3"],
    "z": ["i1"],
}
EDGE_USERS = ["a", "e", "b", "d"]
EDGE_HISTORY = {"a": 6, "e": 2, "b": 4, "d": 3}  # training history length; z: 0 sequential, 1 general
EDGE_POPULARITY = {"i1": 4, "i2": 3, "i3": 1, "i4": 1, "i5": 2, "i6": 1, "i7": 2, "i8": 0, "i9": 1, "i99": 0}


@pytest.fixture
def edge_dataset(tmp_path):
    folder = tmp_path / "edges"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{user}\t{item}\t{100 * index + step}" for index, (user, items) in enumerate(EDGE_HISTORIES.items())
              for step, item in enumerate(items)]
    (folder / "edges.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def edge_groups(edge_dataset, fast_settings, model="SASRec", **settings):
    config = make_config(model, "edges", config_dict=dict(fast_settings, data_path=str(edge_dataset), **settings))
    train, _, _ = data_preparation(config, create_dataset(config))
    return LongTailGroups(config, train._dataset), train._dataset


def by_token(dataset, field, tensor, tokens):
    return {token: tensor[int(dataset.token2id(field, token))].item() for token in tokens}


@pytest.mark.parametrize("model", ["SASRec", "BPR"])
def test_history_and_popularity_count_every_training_interaction(edge_dataset, fast_settings, model):
    """Sequential training rows hold each user's first item only as a 1-item prefix; it must be
    counted once, for the user and for the item. Items seen only in valid/test have popularity 0."""
    groups, dataset = edge_groups(edge_dataset, fast_settings, model)
    assert groups.history.shape == (dataset.user_num,) and groups.popularity.shape == (dataset.item_num,)
    history = dict(EDGE_HISTORY, z=0 if model == "SASRec" else 1)
    popularity = dict(EDGE_POPULARITY, i1=4 if model == "SASRec" else 5)
    assert by_token(dataset, "user_id", groups.history, history) == history
    assert by_token(dataset, "item_id", groups.popularity, popularity) == popularity
    assert groups.history[0] == 0 and groups.popularity[0] == 0  # padding


def test_default_thresholds_are_pareto_over_real_users_and_items(edge_dataset, fast_settings):
    """Id 0 (padding) takes no part: the head is the top fifth of the real users and items."""
    groups, _ = edge_groups(edge_dataset, fast_settings)
    assert groups.user_threshold == 6.0  # 5 users -> 1 head user: a (6); without a it would be 4
    assert groups.item_threshold == 3.0  # 10 items -> 2 head items: i1 (4), i2 (3); without i1 it would be 2


def test_users_whose_history_equals_the_threshold_are_head_users(edge_dataset, fast_settings):
    groups, dataset = edge_groups(edge_dataset, fast_settings, tail_user_threshold=4)
    assert groups.user_threshold == 4.0
    users = torch.tensor([int(dataset.token2id("user_id", user)) for user in EDGE_USERS])
    masks = groups.user_masks(users)
    assert masks["tail_user"].tolist() == [False, True, False, True]  # a, e, b, d: b has exactly 4, head
    assert masks["head_user"].tolist() == [True, False, True, False]


def test_items_whose_popularity_equals_the_threshold_are_head_items(edge_dataset, fast_settings):
    groups, dataset = edge_groups(edge_dataset, fast_settings, tail_item_threshold=2)
    assert groups.item_threshold == 2.0
    tail = by_token(dataset, "item_id", groups.tail_item, EDGE_POPULARITY)
    assert tail == {item: count < 2 for item, count in EDGE_POPULARITY.items()}
    assert tail["i5"] is False and tail["i7"] is False  # exactly 2 interactions: head


def test_length_groups_include_their_low_bound_and_exclude_their_high_bound(edge_dataset, fast_settings):
    """user_length_groups are [low, high): with short [0,4), medium [4,6), long [6,inf), b (4) is
    medium and a (6) is long."""
    groups, dataset = edge_groups(edge_dataset, fast_settings, user_length_groups={
        "short": [0, 4], "medium": [4, 6], "long": [6, None]})
    users = torch.tensor([int(dataset.token2id("user_id", user)) for user in EDGE_USERS])
    masks = groups.user_masks(users)  # a (6), e (2), b (4), d (3)
    assert list(masks) == ["tail_user", "head_user", "short_user", "medium_user", "long_user"]
    assert masks["short_user"].tolist() == [False, True, False, True]
    assert masks["medium_user"].tolist() == [False, False, True, False]
    assert masks["long_user"].tolist() == [True, False, False, False]


def test_without_training_data_the_collector_gives_recboles_numbers_only(tiny_dataset, fast_settings):
    """A trainer that evaluates without ``fit``/``prepare_groups`` has no groups: RecBole's own
    overall numbers, no group entries, no group sizes."""
    from recbole.evaluator import Collector, Evaluator

    config = make_config("SASRec", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset), topk=[2]))
    ours, theirs = LongTailCollector(config), Collector(config)
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.8, 0.1, 0.3, 0.7]])
    batch = (scores, Interaction({"user_id": torch.tensor([1, 2])}), torch.tensor([0, 1]), torch.tensor([2, 1]))
    ours.eval_batch_collect(*batch)
    theirs.eval_batch_collect(*batch)
    evaluator = LongTailEvaluator(config)
    result = evaluator.evaluate(ours.get_data_struct())
    assert result == Evaluator(config).evaluate(theirs.get_data_struct())
    assert result == {"hit@2": 0.5, "ndcg@2": pytest.approx(0.5 / math.log2(3), abs=1e-4)}  # u1 hits item 2 at rank 2
    assert evaluator.group_sizes == {}


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


def test_metrics_beyond_the_topk_list_are_reported_overall_only(tiny_dataset, fast_settings):
    """GAUC needs each row's full ranking, not its top-k hits: RecBole's overall number, no per-group
    ones. (RecBole 1.2.1's own collector fails on the metrics that need training counts, such as
    ItemCoverage and AveragePopularity, with or without this package.)"""
    settings = dict(fast_settings, data_path=str(tiny_dataset), metrics=["Hit", "NDCG", "GAUC"])
    ours = train_and_evaluate(make_config("SASRec", "tiny", config_dict=settings), saved=False)["test_result"]
    theirs = _plain_recbole_test_result(make_config("SASRec", "tiny", config_dict=settings))
    assert {key: value for key, value in ours.items() if "/" not in key} == theirs
    assert set(theirs) == {"hit@10", "ndcg@10", "gauc"}
    assert {key.split("/")[1] for key in ours if "/" in key} == {"hit@10", "ndcg@10"}


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
    # the sampled mode first: it must leave nothing behind that the full ranking would pick up
    again = evaluate_saved_model(record["checkpoint"], modes=["uni3", "full"])
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
