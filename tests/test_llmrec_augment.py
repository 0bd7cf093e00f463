"""LLMRec's augmentation: RecBole's own split (and ``split_seed``), the base model's candidates, the LLM's
BPR triples, item attributes and user profiles, the augmented interaction files a RecBole general model
trains on, and reruns that cost nothing.

The pipeline fixture runs ``--augment=llmrec`` once with the real local LLM (SmolLM2 behind the embedded
llama.cpp server) and the real embedding model on a tiny dataset under the general random split; every
title is distinct (none contains another), so a validation or test title in a user's prompt is visible.
Tests named ``test_fake_server_...`` are unit tests of answer validation against a scripted fake endpoint.
"""

import json
import random
import sys
from pathlib import Path

import pytest
from conftest import fake_llm_settings, write_tiny_dataset
from fake_openai import chat_body

from recbole_llmaug.augment.atomic import read_atomic
from recbole_llmaug.augment.files import DatasetFiles
from recbole_llmaug.augment.recbole_split import recbole_split
from recbole_llmaug.augment.systems import llmrec as system
from recbole_llmaug.config import load_settings, make_config, read_yaml, settings_from_config

MODEL_YAML = Path(__file__).resolve().parent.parent / "properties" / "model" / "LLMRec.yaml"
GENERAL_SPLIT = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"}
N_USERS, N_ITEMS = 8, 12
QUIET = {"show_progress": False, "state": "ERROR", "llm_threads": 1, "embedding_threads": 1, "llm_concurrency": 2}
TRAIN = {"epochs": 1, "embedding_size": 8, "train_batch_size": 64, "eval_batch_size": 64}


def write_data(root, seed=3):
    rng = random.Random(seed)
    names = [f"i{index}" for index in range(1, N_ITEMS + 1)]
    inter = "".join(f"u{user}\t{item}\t{100 + step}\n" for user in range(1, N_USERS + 1)
                    for step, item in enumerate(rng.sample(names, rng.randint(5, 8))))
    item = "".join(f"{name}\tShade {name} lipstick\tBrand\t'Beauty'\t9.5\n" for name in names)
    return write_tiny_dataset(root, inter=inter, item=item)


def augment_args(root, extra=()):
    args = ["--augment=llmrec", "--model=LLMRec", "--dataset=tiny", f"--data_path={root / 'data'}",
            f"--augment_path={root / 'aug'}", f"--llmaug_cache_dir={root / 'cache'}",
            "--llmrec_base_epochs=2", "--llmrec_candidates=4", f"--checkpoint_dir={root / 'saved'}"]
    return args + [f"--{key}={value}" for key, value in QUIET.items()] + list(extra)


def manifest(path):
    return json.loads(path.with_name(path.name + ".manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """One ``--augment=llmrec`` pass with the real LLM; every user prompt it sent, and RecBole's split."""
    from recbole_llmaug.cli import main

    root = tmp_path_factory.mktemp("llmrec")
    write_data(root / "data")
    requests = []
    real_run = system._run_json

    def recording(files, batch, version, desc, output):  # the real LLM, with the requests kept
        requests.extend((version, request) for request in batch)
        return real_run(files, batch, version, desc, output)

    patch = pytest.MonkeyPatch()
    patch.setattr(system, "_run_json", recording)
    patch.setattr(sys, "argv", [sys.argv[0]])
    try:
        assert main(augment_args(root)) == 0
        settings = load_settings("tiny", "LLMRec", None, {"data_path": str(root / "data"), **QUIET})
        split = recbole_split(DatasetFiles(settings), "LightGCN")
    finally:
        patch.undo()
    return {"root": root, "out": root / "aug" / "tiny", "requests": requests, "split": split.users}


def rows(path):
    return read_atomic(path).frame.values.tolist()


def test_candidates_exclude_training_items_and_the_base_model_sees_only_training_pairs(augmented):
    split, out = augmented["split"], augmented["out"]
    candidates = {user: text.split() for user, text in rows(out / "tiny.lrcand")}
    assert set(candidates) == set(split)
    for user, items in candidates.items():
        assert len(items) == 4 and not set(items) & set(split[user].train)
    trained = {(user, item) for user, item in rows(out / ".tiny.llmrec_work" / "base" / "base.inter")}
    assert trained == {(user, item) for user, parts in split.items() for item in parts.train}


def test_each_triple_is_a_liked_and_a_disliked_candidate_of_its_user(augmented):
    out = augmented["out"]
    candidates = {user: text.split() for user, text in rows(out / "tiny.lrcand")}
    triples = rows(out / "tiny.lredge")
    assert triples, "SmolLM2 gave no valid answer at all"
    for user, pos, neg in triples:
        assert pos in candidates[user] and neg in candidates[user] and pos != neg
    body = manifest(out / "tiny.lredge")
    assert body["counts"]["rows"] + body["counts"]["failures"] == len(candidates)
    assert body["usage"]["calls"] >= len(candidates)


def test_no_validation_or_test_title_reaches_a_user_history_in_a_prompt(augmented):
    """Histories are training titles only (a candidate may be a held-out item: the base model ranks it,
    knowing nothing of it, which is the task)."""
    split = augmented["split"]
    user_prompts = [request for version, request in augmented["requests"]
                    if version in (system.EDGES_PROMPT_VERSION, system.PROFILES_PROMPT_VERSION)]
    assert len(user_prompts) == 2 * N_USERS
    for request in user_prompts:
        text = request.messages[-1]["content"].split("\n\nCandidates:")[0]
        user = next(user for user, parts in split.items()
                    if all(f"Shade {item} lipstick" in text for item in parts.train))
        for item in split[user].valid + split[user].test:
            assert f"Shade {item} lipstick" not in text
        assert all(f"Shade {item} lipstick" in text for item in split[user].train)


def test_attributes_and_profiles_are_embedded_from_their_valid_fields(augmented):
    out = augmented["out"]
    for suffix, key in (("itemattr", "item"), ("userprof", "user")):
        objects = [json.loads(line) for line in (out / f"tiny.{suffix}.jsonl").read_text().splitlines()]
        embedded = {row[0] for row in rows(out / f"tiny.{suffix}")}
        assert embedded == {entry[key] for entry in objects if entry["text"]}
        for entry in objects:
            assert not set(entry["missing"]) & set(entry["value"])
        assert manifest(out / f"tiny.{suffix}")["objects"]["file"] == f"tiny.{suffix}.jsonl"


def test_a_rerun_makes_no_model_call_and_does_not_retrain_the_base_model(augmented, capsys):
    from recbole_llmaug.cli import main

    root, out = augmented["root"], augmented["out"]
    base = out / ".tiny.llmrec_work" / "base" / "base.inter"
    trained_at = base.stat().st_mtime_ns
    assert main(augment_args(root)) == 0
    assert capsys.readouterr().out.count("reused") == 5
    for suffix in ("lredge", "itemattr", "userprof"):  # outputs gone, caches kept: rebuilt without a call
        (out / f"tiny.{suffix}").unlink()
    assert main(augment_args(root)) == 0
    for suffix in ("lredge", "itemattr", "userprof"):
        body = manifest(out / f"tiny.{suffix}")
        assert body["usage"]["calls"] == 0 and body.get("embedding_usage", {}).get("calls", 0) == 0
    assert manifest(out / "tiny.lrcand")["created_at"] and base.stat().st_mtime_ns == trained_at


# ------------------------------------------------------------------ the augmented interaction files

def test_llmrec_inter_loads_with_benchmark_filename_and_a_general_model_trains_on_it(augmented, tmp_path):
    from recbole_llmaug.quick_start import _data_and_model, run_recbole_llmaug

    out, split = augmented["out"], augmented["split"]
    edges = rows(out / "tiny.lredge")
    overrides = dict(QUIET, **TRAIN, data_path=str(out.parent), benchmark_filename=list(system.BENCHMARK_PARTS),
                     checkpoint_dir=str(tmp_path / "saved"), results_dir=str(tmp_path / "results"))
    config = make_config("BPR", "tiny", None, dict(overrides))
    _, train_data, valid_data, test_data, _ = _data_and_model(config)

    def pairs(data):
        dataset = data.dataset
        users, items = dataset.field2id_token[dataset.uid_field], dataset.field2id_token[dataset.iid_field]
        return sorted(zip(users[dataset.inter_feat[dataset.uid_field].numpy()],
                          items[dataset.inter_feat[dataset.iid_field].numpy()]))

    assert pairs(train_data) == sorted([(u, i) for u, p in split.items() for i in p.train]
                                       + [(user, pos) for user, pos, _ in edges])
    assert pairs(valid_data) == sorted((u, i) for u, p in split.items() for i in p.valid)
    assert pairs(test_data) == sorted((u, i) for u, p in split.items() for i in p.test)
    assert read_atomic(out / "tiny.llmrec_valid.inter").frame.columns.tolist() == ["user_id", "item_id", "timestamp"]
    record = run_recbole_llmaug("BPR", "tiny", None, overrides)
    assert record["timing"]["epochs_trained"] == 1 and "ndcg@10" in record["test_result"]


# ------------------------------------------------------------------ RecBole's split and split_seed

def split_of_a_training_run(root, overrides):
    from recbole_llmaug.quick_start import _data_and_model

    config = make_config("BPR", "tiny", None, dict(QUIET, **TRAIN, data_path=str(root), eval_args=GENERAL_SPLIT,
                                                   **overrides))
    _, train_data, valid_data, test_data, _ = _data_and_model(config)
    found = {}
    for part, data in enumerate((train_data, valid_data, test_data)):
        dataset = data.dataset
        users, items = dataset.field2id_token[dataset.uid_field], dataset.field2id_token[dataset.iid_field]
        for user, item in zip(users[dataset.inter_feat[dataset.uid_field].numpy()],
                              items[dataset.inter_feat[dataset.iid_field].numpy()]):
            found.setdefault(user, ([], [], []))[part].append(item)
    return found, config


def as_sets(split):
    return {user: tuple(sorted(part) for part in (parts.train, parts.valid, parts.test)) for user, parts in split.items()}


def test_the_split_function_equals_recboles_own_split_in_a_training_run(tmp_path):
    write_tiny_dataset(tmp_path)
    for overrides in ({"seed": 11}, {"seed": 11, "split_seed": 5}):
        trained, config = split_of_a_training_run(tmp_path, overrides)
        ours = as_sets(recbole_split(DatasetFiles(settings_from_config(config)), "LightGCN").users)
        assert ours == {user: tuple(sorted(part) for part in parts) for user, parts in trained.items()}


def test_split_seed_fixes_the_split_across_seeds(tmp_path):
    write_tiny_dataset(tmp_path)
    fixed = [split_of_a_training_run(tmp_path, {"seed": seed, "split_seed": 7})[0] for seed in (1, 2)]
    assert fixed[0] == fixed[1]
    free = [split_of_a_training_run(tmp_path, {"seed": seed})[0] for seed in (1, 2)]
    assert free[0] != free[1]  # split_seed ~ follows seed (RecBole's behaviour)



def test_the_split_is_drawn_once_per_inputs_and_settings_and_again_when_they_change(tmp_path, monkeypatch):
    """An LLMRec pass asks for RecBole's split from several steps (candidates, user texts under another
    general model, the augmented interaction files): one draw serves them all; a new split seed draws again."""
    from recbole_llmaug.augment import recbole_split as module

    write_tiny_dataset(tmp_path)
    draws = []
    real = module._draw_split
    monkeypatch.setattr(module, "_draw_split", lambda files, model: draws.append(model) or real(files, model))
    settings = dict(dataset="tiny", data_path=str(tmp_path), eval_args=GENERAL_SPLIT, seed=11)
    first = recbole_split(DatasetFiles(settings), "LightGCN")
    assert recbole_split(DatasetFiles(settings), "BPR") is first  # same split for every general model
    other = recbole_split(DatasetFiles(dict(settings, split_seed=5)), "LightGCN")
    assert draws == ["LightGCN", "LightGCN"] and as_sets(other.users) != as_sets(first.users)

# ------------------------------------------------------------------ answer validation (fake endpoint)

@pytest.fixture
def fake_settings(tmp_path, monkeypatch, fake_server):
    return fake_server, fake_llm_settings(fake_server, tmp_path, monkeypatch, llm_max_retries=1, llm_timeout=5.0,
                                          llm_concurrency=1)


def test_fake_server_an_attribute_failing_validation_is_missing_not_invented(fake_settings):
    from recbole_llmaug.llm.chat import open_chat_client
    from recbole_llmaug.llm.structured import generate_json

    server, settings = fake_settings
    server.queue(200, chat_body(json.dumps({"director": "x" * 41, "country": "USA", "budget": "1M"})))
    request = system.attribute_request("Toy Story (1995)", ["director", "country", "language"], 40)
    with open_chat_client(settings) as client:
        result = generate_json(client, request.messages, request.schema, system.ATTRIBUTES_PROMPT_VERSION)
    assert result.valid and result.value == {"country": "USA"}
    assert result.missing == ["director", "language"] and result.dropped == ["budget"]
    assert system._render(result.value, {"director": "Director", "country": "Country"}) == "Country: USA"


def test_fake_server_an_edge_naming_one_candidate_twice_is_retried_then_a_failure(fake_settings):
    from recbole_llmaug.llm.chat import open_chat_client
    from recbole_llmaug.llm.structured import run_many_json

    server, settings = fake_settings
    server.default = (200, chat_body('{"liked": "B", "disliked": "B"}'), {}, 0.0)
    request, labels = system.edge_request(["i1"], ["i2", "i3", "i4"], {"i1": "One", "i2": "Two"}, _files(settings))
    assert labels == ["A", "B", "C"] and request.schema["properties"]["liked"]["enum"] == labels
    with open_chat_client(settings) as client:
        result = run_many_json(client, [request], system.EDGES_PROMPT_VERSION)[0]
        assert not result.valid and "different" in result.error and len(server.requests) == 3
        server.default = (200, chat_body('{"liked": "C", "disliked": "A"}'), {}, 0.0)
        replayed = run_many_json(client, [request], system.EDGES_PROMPT_VERSION)[0]  # a resumed pass: no call
        assert not replayed.valid and replayed.error == result.error and len(server.requests) == 3
    with open_chat_client(dict(settings, llm_retry_failed=True)) as client:
        again = run_many_json(client, [request], system.EDGES_PROMPT_VERSION)[0]  # asked again
    assert again.valid and again.value == {"liked": "C", "disliked": "A"}


def _files(settings):
    return DatasetFiles(dict(settings, dataset="tiny", data_path="/nonexistent"))


def test_the_augmentation_options_are_declared_with_their_defaults_in_the_model_yaml():
    from recbole_llmaug.options import validate

    part = read_yaml(MODEL_YAML)
    declared = {option.name for option in system.AUGMENT_OPTIONS}
    assert declared <= set(part) and all(option.stage == "augment" for option in system.AUGMENT_OPTIONS)
    validate(dict(part), system.AUGMENT_OPTIONS)
    with pytest.raises(Exception, match="llmrec_candidates"):
        validate({"llmrec_candidates": 1}, system.AUGMENT_OPTIONS)


def test_one_output_built_alone_reads_its_systems_options_and_split(monkeypatch):
    """``--augment=llmrec_item_attributes`` with no ``--model`` reads LLMRec.yaml and follows the general split,
    as ``--augment=llmrec`` does (it failed with a TypeError: the option it needs was unset). Shared outputs
    such as ``item_emb`` belong to no system."""
    import recbole_llmaug.augment as augment
    from recbole.utils import ModelType

    from recbole_llmaug import cli
    from recbole_llmaug.augment.outputs import system_of

    assert system_of(["llmrec_user_profiles"]).name == "llmrec" == system_of(["llmrec_candidates"]).name
    assert system_of(["llmser_arv_none"]).name == "llmser" and system_of(["item_emb"]) is None
    seen = {}

    def record(name, settings):  # stands in for the stage itself: only the settings it gets are checked
        seen.update(settings, augmentor=name)
        return {"augmentor": name, "dataset": "ml-100k", "outputs": {}}

    monkeypatch.setattr(augment, "run_augmentor", record)
    assert cli.main(["--augment=llmrec_item_attributes", "--dataset=ml-100k"]) == 0
    assert seen["augmentor"] == "llmrec_item_attributes" and seen["MODEL_TYPE"] == ModelType.GENERAL
    assert seen["llmrec_attribute_max_chars"] == read_yaml(MODEL_YAML)["llmrec_attribute_max_chars"] is not None


def test_llmrec_trains_end_to_end_on_its_real_augmentation(augmented, monkeypatch):
    """The pipeline: the real LLM pass of the fixture, then ``LLMRec`` through the run entry with every
    part on; the run builds what is still missing (the user text vectors, under RecBole's random split)
    without a chat call, loads the triples, attributes and profiles, and trains through RecBole's trainer."""
    from recbole_llmaug.quick_start import run_recbole_llmaug

    root = augmented["root"]

    def no_chat(*_args, **_kwargs):
        raise AssertionError("the LLM pass is done: training must not call the LLM again")

    monkeypatch.setattr(system, "_run_json", no_chat)
    config = dict(QUIET, **TRAIN, data_path=str(root / "data"), augment_path=str(root / "aug"),
                  llmaug_cache_dir=str(root / "cache"), checkpoint_dir=str(root / "saved"), llmrec_base_epochs=2,
                  llmrec_candidates=4, topk=[5, 10], valid_metric="NDCG@10", llmrec_omega1=0.5)
    record = run_recbole_llmaug("LLMRec", "tiny", config_dict=config)
    assert record["timing"]["epochs_trained"] == 1 and "ndcg@10" in record["test_result"]
    assert (root / "aug" / "tiny" / "tiny.useremb").is_file()
    users = read_atomic(root / "aug" / "tiny" / "tiny.useremb").frame.iloc[:, 0].tolist()
    assert sorted(users) == sorted(user for user, entry in augmented["split"].items() if entry.train)
