"""The command line: RecBole-style runs of our and RecBole's models, and clear errors for bad input."""

import json
import shutil
from pathlib import Path

import pytest

import recbole_llmaug.config as config_module
import recbole_llmaug.data.folders as folders_module
from recbole_llmaug.cli import augment_summary, main
from recbole_llmaug.config import make_config


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def overrides(settings):
    return [f"--{key}={value}" for key, value in settings.items()]


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "BERT4Rec", "LightGCN"])
def test_baselines_train_and_report_groups_through_the_cli(model, tiny_dataset, fast_settings, capsys, tmp_path):
    code, output = run_cli([f"--model={model}", "--dataset=tiny", f"--data_path={tiny_dataset}"] + overrides(fast_settings), capsys)
    assert code == 0, output
    [record_file] = (tmp_path / "results").glob(f"{model}-tiny-*.json")
    record = json.loads(record_file.read_text())
    assert record["model"] == model and record["timing"]["epochs_trained"] == 1  # --epochs=1 reached the run
    result, sizes = record["test_result"], record["test_group_sizes"]
    # each pair of groups partitions the 30 test users (one target each), so the size-weighted mean
    # of a pair is the overall number
    for left, right in (("tail_user", "head_user"), ("tail_item", "head_item")):
        assert sizes[left] + sizes[right] == 30, (left, right)
        for metric in ("hit@10", "ndcg@10"):
            weighted = sum(result.get(f"{group}/{metric}", 0.0) * sizes[group] for group in (left, right)) / 30
            assert weighted == pytest.approx(result[metric], abs=2e-4), (left, metric)
    assert sizes["short_user"] + sizes["medium_user"] + sizes["long_user"] == 30
    assert Path(record["checkpoint"]).is_file()


def test_config_files_are_layered_after_property_files(tiny_dataset, fast_settings, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("learning_rate: 0.005\nhidden_size: 24\n")
    config = make_config("SASRec", "tiny", [str(extra)], {"data_path": str(tiny_dataset), "hidden_size": "32"})
    assert config["learning_rate"] == 0.005  # file beats properties/model/SASRec.yaml (0.001)
    assert config["hidden_size"] == 32  # command line beats the file
    assert config["train_neg_sample_args"]["distribution"] == "none"  # from properties/model/SASRec.yaml


def test_unknown_model_is_a_clear_error(capsys, tiny_dataset):
    code, output = run_cli(["--model=SASrec", "--dataset=tiny", f"--data_path={tiny_dataset}"], capsys)
    assert code == 2 and "Unknown model 'SASrec'" in output and "SASRec" in output
    assert "Traceback" not in output


def test_missing_dataset_names_the_file_and_how_to_get_it(capsys, tmp_path):
    code, output = run_cli(["--model=SASRec", "--dataset=beauty", f"--data_path={tmp_path}"], capsys)
    assert code == 2 and "beauty.inter" in output and "--data_path" in output


def test_bad_yaml_names_file_and_line(capsys, tiny_dataset, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: [0.1\n")
    code, output = run_cli(["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}", f"--config_files={bad}"], capsys)
    assert code == 2 and "bad.yaml" in output and "line" in output


def test_missing_column_is_named(capsys, tiny_dataset):
    load_col = "{'inter': ['user_id', 'item_id', 'timestamp', 'rating']}"
    code, output = run_cli(["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}", f"--load_col={load_col}"], capsys)
    assert code == 2 and "'rating'" in output and "tiny.inter" in output


def test_malformed_argument_is_rejected(capsys, tiny_dataset):
    code, output = run_cli(["--model=SASRec", "--dataset=tiny", "epochs=3"], capsys)
    assert code == 2 and "epochs=3" in output


def test_ml100k_is_copied_from_recbole_and_data_path_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "default_data_path", lambda: tmp_path / "atomic")
    monkeypatch.setattr(folders_module, "default_data_path", lambda: tmp_path / "atomic")
    config = make_config("SASRec", "ml-100k", config_dict={"state": "ERROR"})
    assert (tmp_path / "atomic" / "ml-100k" / "ml-100k.inter").is_file()
    assert config["data_path"] == str(tmp_path / "atomic" / "ml-100k")  # not RecBole's bundled folder

    elsewhere = tmp_path / "mine"
    shutil.copytree(tmp_path / "atomic" / "ml-100k", elsewhere / "ml-100k")
    config = make_config("SASRec", "ml-100k", config_dict={"data_path": str(elsewhere)})
    assert config["data_path"] == str(elsewhere / "ml-100k")
    assert config["MAX_ITEM_LIST_LENGTH"] == 50  # properties/dataset/ml-100k.yaml took effect


@pytest.mark.parametrize("option", ["--resume", "--ray-address=auto", "--tune-output=out"])
def test_search_options_without_tune_are_an_error(option, capsys, tiny_dataset):
    code, output = run_cli(["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}", option], capsys)
    assert code == 2 and "--tune=SPACE.yaml" in output and "Traceback" not in output


def test_augment_summary_names_texts_only_for_embedding_outputs():
    """An LLM output's usage has calls and hits but no text counts: its line must not read '0 distinct texts'."""
    result = {"augmentor": "llmrec", "dataset": "toy", "outputs": {
        "attributes": {"output": {"file": "toy.itemattr"}, "counts": {"rows": 3}, "wall_time_s": 2.0,
                       "usage": {"calls": 3, "cache_hits": 1}},
        "item_emb": {"output": {"file": "toy.itememb"}, "counts": {"rows": 3}, "wall_time_s": 1.0,
                     "usage": {"calls": 1, "cache_hits": 0, "unique_texts": 3, "embedded_now": 3}}}}
    text = augment_summary(result)
    assert "attributes: built toy.itemattr, 3 rows, 3 model calls, 1 cache hits, 2.0 s" in text
    assert "item_emb: built toy.itememb, 3 rows, 3 distinct texts: 3 computed now in 1 model calls" in text
