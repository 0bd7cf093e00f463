"""Ray Tune search (recbole_llmaug.tune): space files and their defaults, clear errors, per-epoch reports, the
trials table and best config (best first), and a real 2-trial x 1-epoch search on a tiny dataset whose best
config then runs through the command line.

Only the last test starts Ray (in-process, 2 CPUs, ~30 s with the resume); the others take seconds.
"""

import csv
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import write_tiny_dataset
import yaml

import recbole_llmaug.defaults as defaults_module
from recbole_llmaug.errors import UserError
from recbole_llmaug.tune import (
    TUNE_SETTINGS,
    check_space,
    read_space,
    run_tune,
    to_search_space,
    trial_rows,
    tune_defaults,
    tune_defaults_file,
    write_report,
)
from recbole_llmaug.tune.driver import _check_resources, _driver_settings, _search_algorithm, _start_ray
from recbole_llmaug.tune.trial import _trial

REPO = Path(__file__).resolve().parent.parent
SHIPPED_SPACES = sorted((REPO / "properties" / "hyper").glob("*.yaml"))
TINY = {"hidden_size": 16, "inner_size": 32, "embedding_size": 16, "train_batch_size": 64, "eval_batch_size": 64}


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])  # RecBole's Config reads --k=v from argv
    write_tiny_dataset(tmp_path / "data", with_items=False)
    return tmp_path / "data"


def space_file(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ space files


def test_space_file_is_read_into_distributions_and_search_settings(tmp_path):
    path = space_file(tmp_path, """
learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
hidden_dropout_prob: {uniform: [0.1, 0.5]}
n_layers: {choice: [1, 2, 3]}
hidden_size: {randint: [32, 129]}
tune: {num_samples: 3, max_epochs: 4, cpus_per_trial: 0.5}
""")
    params, tune = read_space(path)
    assert params == {
        "learning_rate": ("loguniform", [1e-4, 1e-2]), "hidden_dropout_prob": ("uniform", [0.1, 0.5]),
        "n_layers": ("choice", [1, 2, 3]), "hidden_size": ("randint", [32, 129]),
    }
    assert tune == {"num_samples": 3, "max_epochs": 4, "cpus_per_trial": 0.5}


def test_each_distribution_becomes_the_ray_domain_with_its_bounds():
    from ray.tune.search.sample import Categorical, Float, Integer

    space = to_search_space({
        "learning_rate": ("loguniform", [1e-4, 1e-2]), "hidden_dropout_prob": ("uniform", [0.1, 0.5]),
        "n_layers": ("choice", [1, 2, 3]), "hidden_size": ("randint", [32, 129]),
    })
    lr, dropout, layers, size = (space[k] for k in ("learning_rate", "hidden_dropout_prob", "n_layers", "hidden_size"))
    assert isinstance(lr, Float) and isinstance(lr.sampler, Float._LogUniform) and (lr.lower, lr.upper) == (1e-4, 1e-2)
    assert isinstance(dropout.sampler, Float._Uniform) and (dropout.lower, dropout.upper) == (0.1, 0.5)
    assert isinstance(layers, Categorical) and layers.categories == [1, 2, 3]
    assert isinstance(size, Integer) and (size.lower, size.upper) == (32, 129)  # Ray's upper bound is excluded


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("tune: {num_samples: 2}\n", "is empty"),
    ("learning_rate: 0.01\n", "must be one distribution"),
    ("learning_rate: {loguniform: [1.0e-4, 1.0e-2], uniform: [0, 1]}\n", "must be one distribution"),
    ("learning_rate: {logUniform: [1.0e-4, 1.0e-2]}\n", "Did you mean 'loguniform'"),
    ("learning_rate: {gaussian: [0, 1]}\n", "unknown distribution 'gaussian'"),
    ("n_layers: {choice: []}\n", "non-empty list"),
    ("n_layers: {choice: 3}\n", "non-empty list"),
    ("learning_rate: {uniform: [0.1]}\n", "two numbers"),
    ("learning_rate: {uniform: [a, b]}\n", "two numbers"),
    ("learning_rate: {uniform: [0.5, 0.1]}\n", "low < high"),
    ("learning_rate: {loguniform: [0, 0.1]}\n", "0 < low < high"),
    ("n_layers: {randint: [1.5, 4]}\n", "two integers"),
    ("n_layers: {choice: [1]}\ntune: {num_sample: 2}\n", "did you mean 'num_samples'"),
    ("n_layers: {choice: [1]}\ntune: {num_samples: 0}\n", "'num_samples' must be an integer >= 1"),
    ("n_layers: {choice: [1]}\ntune: {search_alg: grid}\n", "must be one of random, optuna, hyperopt"),
    ("n_layers: {choice: [1]}\ntune: 5\n", "'tune' must hold"),
])
def test_bad_space_files_are_clear_user_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        read_space(space_file(tmp_path, text))


def test_missing_space_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_space(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, message", [
    ("learning_rat: {loguniform: [1.0e-4, 1.0e-2]}\n", "unknown parameter 'learning_rat'.*Did you mean 'learning_rate'"),
    ("no_such_thing: {choice: [1, 2]}\n", "unknown parameter 'no_such_thing'"),
    ("epochs: {choice: [1, 2]}\n", "'epochs' cannot be searched.*max_epochs"),
    ("data_path: {choice: [a, b]}\n", "'data_path' cannot be searched"),
    ("sim_user_topn: {choice: [5, 10]}\n", "augmentation/LLM setting"),
    ("n_layers: {uniform: [1, 3]}\n", "'n_layers' is an integer setting.*randint"),
])
def test_space_names_are_checked_against_the_model_settings(tmp_path, data_root, text, message):
    params, _ = read_space(space_file(tmp_path, text))
    settings, config = _driver_settings("SASRec", "tiny", None, {"data_path": str(data_root)})
    with pytest.raises(UserError, match=message):
        check_space(params, settings, config, "space.yaml")


@pytest.mark.parametrize("path", SHIPPED_SPACES, ids=lambda p: p.stem)
def test_shipped_spaces_are_valid_for_their_model(path, data_root):
    params, tune = read_space(path)
    settings, config = _driver_settings(path.stem, "tiny", None, {"data_path": str(data_root)})
    check_space(params, settings, config, path)
    assert tune["max_epochs"] >= tune["grace_period"]
    for spec in to_search_space(params).values():
        spec.sample()


def test_every_model_has_a_shipped_space():
    models = {p.stem for p in (REPO / "properties" / "model").glob("*.yaml")}
    assert models <= {p.stem for p in SHIPPED_SPACES}


def test_run_tune_rejects_bad_input_before_starting_ray(tmp_path, data_root):
    import ray

    good = space_file(tmp_path, "learning_rate: {loguniform: [1.0e-4, 1.0e-2]}\n")
    kwargs = {"config_dict": {"data_path": str(data_root)}, "output_dir": tmp_path / "out"}
    with pytest.raises(UserError, match="unknown parameter 'hiden_size'"):
        run_tune("SASRec", "tiny", space_file(tmp_path, "hiden_size: {choice: [8]}\n", "bad.yaml"), **kwargs)
    with pytest.raises(UserError, match="no search to resume"):
        run_tune("SASRec", "tiny", good, resume=True, **kwargs)
    with pytest.raises(UserError, match="'grace_period' must be an integer >= 1"):
        run_tune("SASRec", "tiny", good, tune_settings={"grace_period": 0}, **kwargs)
    with pytest.raises(UserError, match="unknown search setting"):
        run_tune("SASRec", "tiny", good, tune_settings={"max_epoch": 2}, **kwargs)
    assert not ray.is_initialized()


def test_search_setting_defaults_are_read_from_properties_tune_yaml(tmp_path, data_root, monkeypatch):
    """Every setting of the 'tune:' section has its default in properties/tune.yaml, and run_tune uses them."""
    assert tune_defaults_file() == defaults_module.properties_dir() / "tune.yaml"
    shipped = tune_defaults()
    assert list(shipped) == list(TUNE_SETTINGS)
    assert shipped["max_epochs"] is None  # ~: the run's own 'epochs'

    props = tmp_path / "props"
    props.mkdir()
    monkeypatch.setattr(defaults_module, "properties_dir", lambda: props)
    text = (REPO / "properties" / "tune.yaml").read_text()
    (props / "tune.yaml").write_text(text.replace("num_samples: 10 ", "num_samples: 7  "))
    assert tune_defaults() == {**shipped, "num_samples": 7}

    (props / "tune.yaml").write_text(text.replace("grace_period: 1 ", "grace_period: 0 "))
    with pytest.raises(UserError, match="Tune defaults .*tune.yaml.*'grace_period' must be an integer >= 1"):
        run_tune("SASRec", "tiny", space_file(tmp_path, "learning_rate: {loguniform: [1.0e-4, 1.0e-2]}\n"),
                 config_dict={"data_path": str(data_root)}, output_dir=tmp_path / "out")
    (props / "tune.yaml").write_text("\n".join(line for line in text.splitlines() if "search_alg:" not in line))
    with pytest.raises(UserError, match="has no default for 'search_alg'"):
        tune_defaults()
    (props / "tune.yaml").unlink()
    with pytest.raises(UserError, match="defaults of the search settings.*are missing"):
        tune_defaults()


def test_trials_that_could_never_start_and_missing_search_packages_are_user_errors(monkeypatch):
    import importlib.util

    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(UserError, match="asks for 1 GPU.*gpus_per_trial: 0 trains on CPU"):
        _check_resources({"cpus_per_trial": 1, "gpus_per_trial": 1}, local=True)
    with pytest.raises(UserError, match="asks for 4 CPU.*raise 'num_cpus'"):
        _check_resources({"cpus_per_trial": 4, "gpus_per_trial": 0}, local=True)
    _check_resources({"cpus_per_trial": 4, "gpus_per_trial": 0}, local=False)  # a warning only
    for name in ("optuna", "hyperopt"):
        if importlib.util.find_spec(name) is None:
            with pytest.raises(UserError, match=f"pip install {name}"):
                _search_algorithm(name, 0)
    assert type(_search_algorithm("random", 0)).__name__ == "BasicVariantGenerator"


def test_a_ray_temp_dir_too_long_for_unix_sockets_is_a_user_error(tmp_path):
    import ray

    with pytest.raises(UserError, match="too long"):
        _start_ray(None, 1, str(tmp_path / ("x" * 50)))
    assert not ray.is_initialized()


# ------------------------------------------------------------------------------------------ one trial


def test_trial_reports_every_epoch_then_best_valid_and_flat_grouped_test_metrics(tmp_path, monkeypatch):
    """The trial function without Ray: what it passes to objective_function and what it reports."""
    import ray.air.session as session

    import recbole_llmaug.quick_start as quick_start

    reports, seen = [], {}
    monkeypatch.setattr(session, "report", lambda metrics: reports.append(dict(metrics)))
    monkeypatch.setattr(session, "get_trial_dir", lambda: str(tmp_path / "trial"))

    def fake_objective(config_dict=None, config_file_list=None, saved=True, callback_fn=None):
        seen.update(config_dict)
        for epoch, score in enumerate([0.1, 0.3, 0.2]):
            callback_fn(epoch, score)
        return {"best_valid_score": 0.3, "best_valid_result": {"ndcg@10": 0.3, "tail_user/ndcg@10": 0.25},
                "test_result": {"hit@10": 0.5, "ndcg@10": 0.28, "tail_item/hit@10": 0.2}}

    monkeypatch.setattr(quick_start, "objective_function", fake_objective)
    base = {"model": "SASRec", "dataset": "tiny", "data_path": "/abs/data", "epochs": 3, "learning_rate": 0.001}
    _trial({"learning_rate": 0.005, "n_layers": 2}, base_settings=base, cpus_per_trial=1, gpus_per_trial=0)

    assert seen["learning_rate"] == 0.005 and seen["n_layers"] == 2 and seen["data_path"] == "/abs/data"
    assert seen["checkpoint_dir"] == str((tmp_path / "trial" / "saved").resolve())
    assert seen["results_dir"] == str((tmp_path / "trial" / "results").resolve())
    assert seen["show_progress"] is False and seen["gpu_id"] == ""
    # epochs 1 and 2 per epoch (the last epoch's score goes with the final report), then the final report
    assert reports[:2] == [
        {"valid_score": 0.1, "best_valid_score": 0.1, "epoch": 1},
        {"valid_score": 0.3, "best_valid_score": 0.3, "epoch": 2},
    ]
    assert reports[2] == {
        "valid_score": 0.3, "best_valid_score": 0.3, "epoch": 3, "valid/ndcg@10": 0.3,
        "valid/tail_user/ndcg@10": 0.25, "test/hit@10": 0.5, "test/ndcg@10": 0.28, "test/tail_item/hit@10": 0.2,
    }
    assert len(reports) == 3


# ------------------------------------------------------------------------------------------ table and best config


REPORT_SETTINGS = {"model": "SASRec", "dataset": "tiny", "metrics": ["Hit", "NDCG"], "topk": [10]}


def hand_row(trial, score, learning_rate, status="done", error=None):
    """A trial row as trial_rows() builds it; done trials carry test metrics derived from their score."""
    tested = status == "done"
    return {
        "trial": trial, "status": status, "params": {"learning_rate": learning_rate, "n_layers": 2}, "epochs": 3,
        "best_valid_score": score, "path": f"/trials/{trial}", "error": error,
        "metrics": {"valid/ndcg@10": score, "test/ndcg@10": score / 2, "test/tail_item/ndcg@10": score / 4}
        if tested else {},
    }


def table_order(markdown):
    """Trial ids of a trials.md table, top to bottom."""
    return [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("|")][2:]


@pytest.mark.parametrize("bigger, expected", [
    (True, ["high", "mid", "low", "failed", "stopped_nan"]),  # e.g. NDCG: largest first
    (False, ["low", "mid", "high", "failed", "stopped_nan"]),  # e.g. a loss: smallest first
])
def test_trials_table_and_csv_are_sorted_best_first_and_best_config_holds_the_best_trial(tmp_path, bigger, expected):
    rows = [
        hand_row("mid", 0.20, 0.002),
        hand_row("failed", None, 0.009, status="error", error="Traceback ...\nRuntimeError: out of memory"),
        hand_row("high", 0.30, 0.003),
        hand_row("stopped_nan", float("nan"), 0.004, status="stopped"),  # unscored: last (in given order)
        hand_row("low", 0.10, 0.001),
    ]
    fixed = {"hidden_size": 16, "eval_args": {"mode": "full"}}
    out = write_report(tmp_path, tmp_path / "trials", rows, ["learning_rate", "n_layers"], REPORT_SETTINGS, fixed,
                       valid_metric="ndcg@10", bigger=bigger, space_path="/spaces/SASRec.yaml")

    markdown = (tmp_path / "trials.md").read_text()
    assert markdown.splitlines()[0] == "# Ray Tune search: SASRec on tiny (/spaces/SASRec.yaml)"
    assert markdown.splitlines()[2] == ("| trial | status | learning_rate | n_layers | epochs | valid ndcg@10 "
                                        "| test ndcg@10 | tail_item ndcg@10 |")
    assert table_order(markdown) == expected and table_order(out["trials_table"]) == expected
    with open(tmp_path / "trials.csv", newline="") as handle:
        assert [row["trial"] for row in csv.DictReader(handle)] == expected

    best = expected[0]
    score = {"high": 0.30, "low": 0.10}[best]
    text = (tmp_path / "best_config.yaml").read_text()
    assert f"# Trial {best}: best valid ndcg@10 = {score:.4f} after 3 epoch(s); " in text
    assert yaml.safe_load(text) == {"hidden_size": 16, "eval_args": {"mode": "full"},
                                    "learning_rate": {"high": 0.003, "low": 0.001}[best], "n_layers": 2}
    assert out["best_params"] == {"learning_rate": {"high": 0.003, "low": 0.001}[best], "n_layers": 2}
    assert out["best_valid_score"] == score
    assert out["best_test_result"] == {"ndcg@10": score / 2, "tail_item/ndcg@10": score / 4}
    assert (out["num_trials"], out["num_errors"]) == (5, 1)


def test_a_search_without_any_scored_trial_writes_the_table_then_names_the_first_error(tmp_path):
    rows = [hand_row("t1", None, 0.001, status="error", error="Traceback ...\nValueError: hidden_size odd"),
            hand_row("t2", None, 0.002, status="error", error="RuntimeError: other")]
    with pytest.raises(UserError, match=r"All 2 trial\(s\) of the search failed.*ValueError: hidden_size odd "
                                        r"\(details in its trial folder /trials/t1\).*--resume"):
        write_report(tmp_path, tmp_path / "trials", rows, ["learning_rate", "n_layers"], REPORT_SETTINGS, {},
                     valid_metric="ndcg@10", bigger=True, space_path="space.yaml")
    assert table_order((tmp_path / "trials.md").read_text()) == ["t1", "t2"]
    assert not (tmp_path / "best_config.yaml").exists()


def test_trial_rows_tell_finished_stopped_and_failed_trials_apart():
    def result(trial_id, metrics, error=None):
        return SimpleNamespace(metrics=metrics, path=f"/exp/_trial_{trial_id}", error=error,
                               config={"learning_rate": 0.004, "n_layers": 1, "unsearched": 5})

    rows = trial_rows([
        result("a", {"trial_id": "a", "epoch": 3, "best_valid_score": 0.3, "valid/ndcg@10": 0.3,
                     "test/ndcg@10": 0.2, "time_this_iter_s": 1.0}),
        result("b", {"trial_id": "b", "epoch": 1, "best_valid_score": 0.1, "valid_score": 0.1}),
        result("c", {}, error=RuntimeError("boom")),
    ], ["learning_rate", "n_layers"])
    assert [(row["trial"], row["status"], row["epochs"], row["best_valid_score"]) for row in rows] == [
        ("a", "done", 3, 0.3), ("b", "stopped", 1, 0.1), ("_trial_c", "error", None, None)]
    assert rows[0]["params"] == {"learning_rate": 0.004, "n_layers": 1}
    assert rows[0]["metrics"] == {"valid/ndcg@10": 0.3, "test/ndcg@10": 0.2}  # Ray's own keys left out
    assert rows[2]["path"] == "/exp/_trial_c" and str(rows[2]["error"]) == "boom"


# ------------------------------------------------------------------------------------------ real search


def ray_processes(marker, wait_s=30.0):
    """Processes whose command line names ``marker`` (Ray's temp folder), after waiting up to ``wait_s``."""
    import psutil

    deadline = time.time() + wait_s
    while True:
        alive = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if marker in " ".join(proc.info["cmdline"] or []):
                    alive.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.5)


def test_two_trial_search_writes_table_and_best_config_that_runs_through_the_cli(tmp_path, data_root, monkeypatch):
    import ray

    from recbole_llmaug.cli import main

    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))  # nothing may land in ~/ray_results
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix sockets live below it
    space = space_file(tmp_path, f"""
learning_rate: {{loguniform: [1.0e-3, 1.0e-2]}}
n_layers: {{choice: [1, 2]}}
tune:
  num_samples: 2
  max_epochs: 1
  cpus_per_trial: 1
  num_cpus: 2
  ray_temp_dir: {ray_tmp}
""")
    overrides = {"data_path": "../data", **{key: str(value) for key, value in TINY.items()}}  # relative to cwd
    try:
        out = run_tune("SASRec", "tiny", space, config_dict=overrides, output_dir="search")
        assert not ray.is_initialized()  # started here, shut down here

        results = cwd / "search"
        assert out["results_dir"] == str(results) and Path(out["experiment_dir"]).is_dir()
        assert sorted(p.name for p in cwd.iterdir()) == ["search"]  # no log/, saved/, results/ in the cwd
        assert not (home / "ray_results").exists()
        assert out["num_trials"] == 2 and out["num_errors"] == 0

        table = out["trials_table"].splitlines()
        assert len(table) == 2 + 2
        for column in ("learning_rate", "n_layers", "valid ndcg@10", "test hit@10", "test ndcg@10",
                       "tail_user hit@10", "tail_user ndcg@10", "tail_item hit@10", "tail_item ndcg@10"):
            assert column in table[0]
        assert (results / "trials.md").read_text() == (
            f"# Ray Tune search: SASRec on tiny ({space.resolve()})\n\n{out['trials_table']}\n")
        with open(results / "trials.csv", newline="") as handle:
            csv_rows = list(csv.DictReader(handle))
        assert "test/tail_item/ndcg@10" in csv_rows[0]
        assert [row["trial"] for row in csv_rows] == table_order(out["trials_table"])
        # each trial kept its checkpoint and result record in its own folder, named after the trainable
        trial_dirs = [p for p in Path(out["experiment_dir"]).iterdir() if p.is_dir()]
        assert len(trial_dirs) == 2 and all(list((p / "saved").glob("SASRec-*.pth")) for p in trial_dirs)
        assert all(p.name.startswith("_trial_") for p in trial_dirs)  # a renamed trainable breaks --resume

        best = yaml.safe_load(Path(out["best_config_file"]).read_text())
        assert set(best) == {"learning_rate", "n_layers", *TINY}  # flat: fixed settings + the best values
        # the best config is the top row of the table, whose validation score is the highest (NDCG@10)
        scores = [float(row["best_valid_score"]) for row in csv_rows]
        assert scores[0] == max(scores) == out["best_valid_score"]
        assert out["best_params"] == {"learning_rate": float(csv_rows[0]["learning_rate"]),
                                      "n_layers": int(csv_rows[0]["n_layers"])}
        assert best == {**{k: v for k, v in TINY.items()}, **out["best_params"]}
        assert "test/hit@10" not in out["best_test_result"] and "tail_item/ndcg@10" in out["best_test_result"]

        code = main(["--model=SASRec", "--dataset=tiny", f"--config_files={out['best_config_file']}",
                     f"--data_path={data_root}", "--epochs=1", "--show_progress=False",
                     f"--checkpoint_dir={tmp_path / 'cli' / 'saved'}", f"--results_dir={tmp_path / 'cli' / 'results'}"])
        assert code == 0
        assert list((tmp_path / "cli" / "results").glob("SASRec-tiny-*.json"))

        # a second search into the same folder must be asked for explicitly; --resume picks the trials up
        with pytest.raises(UserError, match="already holds a search"):
            run_tune("SASRec", "tiny", space, config_dict=overrides, output_dir="search")
        # the command line's --tune/--tune-output/--resume reach the same search
        code = main(["--model=SASRec", "--dataset=tiny", f"--tune={space}", "--tune-output=search", "--resume"]
                    + [f"--{key}={value}" for key, value in overrides.items()])
        assert code == 0 and not ray.is_initialized()
        assert yaml.safe_load(Path(out["best_config_file"]).read_text()) == best  # same trials, same best
    finally:
        if ray.is_initialized():
            ray.shutdown()
        # Ray's processes exit by themselves after the shutdown (they read their logs there first).
        left = ray_processes(ray_tmp)
        for proc in left:  # only processes of the Ray instance this test started
            proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not left, f"Ray processes left running: {[p.info['cmdline'][:2] for p in left]}"
