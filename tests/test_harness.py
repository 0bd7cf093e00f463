"""The benchmark harness (``benchmarks/harness``): reports from hand-made run records, variant names,
the command line of ``bench_llmesr.py``, the committed LLM-ESR reports rebuilt from their JSON, and
one end-to-end run, logs and retest on a tiny dataset in child processes.

No training except the end-to-end test (one 1-epoch SASRec on 30 users, ~20 s on one thread).
"""

import json
import math
import shlex
import tarfile
from pathlib import Path

import pytest

from benchmarks.bench_llmesr import SPEC
from benchmarks.harness import BenchSpec, Variant, build_parser, main, reports, variant_grid
from benchmarks.harness.logs import records_from_logs
from benchmarks.harness.runner import run_config, run_markdown
from benchmarks.harness.spec import GROUPS, METRICS
from recbole_llmaug.errors import UserError

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
KEYS = [reports.result_key(g, m) for g in GROUPS for m in METRICS]  # all/hit@10, ..., head_item/ndcg@10


def run_record(name, seed, values, epochs=5, finished=True, **extra):
    """A finished ``run`` record whose test result has ``values[j]`` for the j-th (group, metric)."""
    return {"name": name, "seed": seed, "protocol": "full", "test_result": dict(zip(KEYS, values)),
            "seconds_per_epoch": 10.0 * seed % 7 + 1, "epochs_trained": epochs, "finished": finished,
            "peak_rss_mb": 1000.0 + seed, "peak_gpu_mb": None} | extra


def spread_records(name="A"):
    """Three seeds; (group, metric) j has mean 0.05 + 0.01 j and values mean -/0/+ 0.002 (j + 1):
    its sample std (n - 1) is 0.002 (j + 1), its population std 0.002 (j + 1) sqrt(2/3)."""
    return [run_record(name, seed, [0.05 + 0.01 * j + step * 0.002 * (j + 1) for j in range(len(KEYS))])
            for seed, step in zip((2020, 2021, 2022), (-1, 0, 1))]


def row_of(table, name):
    """Cells of ``name``'s row in a markdown table."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == name:
            return cells[1:]
    raise AssertionError(f"no row {name} in\n{table}")


# ------------------------------------------------------------------------------------------ reports
def test_mean_and_sample_std_per_group_over_seeds():
    summary = reports.summarize(spread_records())["A"]
    assert summary["runs"] == 3 and summary["seeds"] == [2020, 2021, 2022]
    for j, key in enumerate(KEYS):
        cell = summary["metrics"][key]
        assert cell["n"] == 3
        assert cell["mean"] == pytest.approx(0.05 + 0.01 * j)
        assert cell["std"] == pytest.approx(0.002 * (j + 1))  # n - 1; population std would be 0.82x this


def test_hand_computed_mean_and_std():
    # all/hit@10 over three seeds: 0.10, 0.12, 0.17 -> mean 0.13, sample std sqrt(0.0026 / 2) = 0.036056
    records = [run_record("A", seed, [value] + [0.0] * (len(KEYS) - 1))
               for seed, value in zip((1, 2, 3), (0.10, 0.12, 0.17))]
    cell = reports.summarize(records)["A"]["metrics"]["hit@10"]
    assert (cell["mean"], cell["std"]) == (pytest.approx(0.13), pytest.approx(math.sqrt(0.0026 / 2)))
    assert row_of(reports.runs_table(records), "A")[0] == "0.1300 ± 0.0361"


def test_table_has_every_group_in_order_with_its_own_numbers():
    table = reports.runs_table(spread_records())
    header = table.splitlines()[0]
    assert header == ("| model | all hit | all ndcg | tail_user hit | tail_user ndcg | head_user hit | "
                      "head_user ndcg | tail_item hit | tail_item ndcg | head_item hit | head_item ndcg | s/epoch | "
                      "epochs | peak RSS MB |")
    cells = row_of(table, "A")
    expected = [f"{0.05 + 0.01 * j:.4f} ± {0.002 * (j + 1):.4f}" for j in range(len(KEYS))]
    assert cells[:len(KEYS)] == expected
    # s/epoch: mean of the runs'; epochs per run; peak RSS: the largest run's
    seconds = [10.0 * seed % 7 + 1 for seed in (2020, 2021, 2022)]
    assert cells[len(KEYS):] == [f"{sum(seconds) / 3:.1f}", "5/5/5", "3022"]


def test_failed_runs_are_not_counted_and_a_variant_without_runs_is_pending():
    records = [
        run_record("B", 2020, [0.20] * len(KEYS)),
        run_record("B", 2021, [0.30] * len(KEYS), epochs=3, finished=False),
        {"name": "B", "seed": 2022, "failed": True},
        {"name": "D", "seed": 2020, "failed": True},
    ]
    summary = reports.summarize(records, names=["B", "C", "D"])
    assert list(summary) == ["B", "C", "D"]
    assert (summary["B"]["runs"], summary["B"]["failed"], summary["B"]["seeds"]) == (2, 1, [2020, 2021])
    assert summary["B"]["metrics"]["tail_item/ndcg@10"]["mean"] == pytest.approx(0.25)
    assert summary["B"]["metrics"]["tail_item/ndcg@10"]["std"] == pytest.approx(math.sqrt(0.005))
    assert summary["C"]["runs"] == 0 and summary["C"]["failed"] == 0
    table = reports.runs_table(records, names=["B", "C", "D"])
    assert row_of(table, "B")[len(KEYS) + 1] == "5/3*"  # two runs counted, the second cut short
    assert row_of(table, "C") == ["pending"] * (len(KEYS) + 3)
    assert row_of(table, "D") == ["failed"] * (len(KEYS) + 3)


def test_a_single_run_shows_its_value_without_spread():
    table = reports.runs_table([run_record("A", 1, [0.1234] * len(KEYS))])
    assert row_of(table, "A")[:2] == ["0.1234", "0.1234"]


def test_retest_reproduction_check_says_different_when_one_number_differs():
    result = dict(zip(KEYS, [0.01 * (j + 1) for j in range(len(KEYS))]))
    changed = dict(result, **{"tail_item/ndcg@10": result["tail_item/ndcg@10"] + 1e-4})

    def retested(name, seed, tested):
        return {"name": name, "seed": seed, "recorded_test_result": result, "seconds_per_epoch": 1.0,
                "epochs_trained": 1, "peak_rss_mb": 100.0,
                "tests": {"full": {"result": tested}, "uni100": {"result": tested}}}

    records = [retested("A", 2020, dict(result)), retested("A", 2021, changed)]
    assert [reports.reproduces(r) for r in records] == [True, False]
    page = reports.retest_report(records, title="X", command="cmd", modes=["full", "uni100"])
    assert "- A seed 2020: identical\n- A seed 2021: DIFFERENT" in page
    assert "Tested under `full`:" in page and "Tested under `uni100`:" in page
    # without `full` among the modes there is nothing to compare
    assert "identical" not in reports.retest_report(records, title="X", command="cmd", modes=["uni100"])


def test_a_retest_keeps_the_earlier_retests_runs_it_does_not_test_again(tmp_path):
    """Runs trained later (another session, the earlier checkpoints gone) are retested into the same report:
    the earlier runs stay unless retested now or not tested under every mode asked; the page names both."""
    from benchmarks.harness.runner import earlier_retests

    def retested(name, seed, modes, **extra):
        return {"name": name, "seed": seed, "recorded_test_result": {"ndcg@10": 0.1}, "seconds_per_epoch": 1.0,
                "epochs_trained": 1, "peak_rss_mb": 100.0,
                "tests": {mode: {"result": {"ndcg@10": 0.1}} for mode in modes}} | extra

    earlier = [retested("A", 2020, ["full", "uni100"]), retested("A", 2021, ["full", "uni100"]),
               retested("B", 2020, ["uni100"]), retested("C", 2020, ["full", "uni100"], failed=True)]
    path = tmp_path / "r_retest.json"
    assert earlier_retests(path, ["full", "uni100"], set()) == ([], [])  # no earlier report
    path.write_text(json.dumps({"command": "old cmd", "results": reports.by_name(earlier)}))
    kept, commands = earlier_retests(path, ["full", "uni100"], {("A", 2021)})
    assert [(run["name"], run["seed"]) for run in kept] == [("A", 2020)] and commands == ["old cmd"]
    assert [(run["name"], run["seed"]) for run in earlier_retests(path, ["uni100"], set())[0]] == [
        ("A", 2020), ("A", 2021), ("B", 2020)]
    page = reports.retest_report(kept, title="X", command="new cmd", modes=["full", "uni100"],
                                 kept_commands=commands)
    assert "Command: `new cmd`" in page and "not retested since): `old cmd`." in page
    path.write_text("{not json")
    with pytest.raises(UserError, match="Move it away"):
        earlier_retests(path, ["full"], set())


def test_reproduction_is_checked_under_the_runs_own_test_mode():
    recorded = {"hit@10": 0.5, "ndcg@10": 0.3}
    run = {"name": "A", "seed": 7, "recorded_mode": "uni100", "recorded_test_result": recorded,
           "tests": {"full": {"result": {"hit@10": 0.1, "ndcg@10": 0.05}}, "uni100": {"result": dict(recorded)}}}
    assert reports.reproduction_lines([run]) == ["- A seed 7 (`uni100`): identical"]
    only_full = dict(run, tests={"full": run["tests"]["full"]})
    assert reports.reproduces(only_full) is None
    assert reports.reproduction_lines([only_full]) == [
        "- A seed 7 (`uni100`): not checked (not retested under `uni100`)"]
    page = reports.retest_report([run], title="X", command="cmd", modes=["full", "uni100"])
    assert "Each run's own test protocol again" in page and "Full ranking again" not in page


def test_timing_table_ratio_to_the_reference():
    def timed(name, seconds):
        return {"name": name, "epoch_seconds": seconds, "train_rows": 10, "batches": 2, "params": 5,
                "peak_rss_mb": 99.6}

    table = reports.timing_table([timed("SASRec", [100.0, 120.0, 200.0]), timed("X", [30.0, 60.0, 90.0]),
                                  {"name": "Y", "failed": True}], reference="SASRec")
    assert row_of(table, "X") == ["60.0", "3", "0.50", "10", "2", "5", "100"]  # medians 60 / 120
    assert row_of(table, "Y")[0] == "failed"
    without = reports.timing_table([timed("X", [30.0, 60.0, 90.0]), {"name": "Y", "failed": True}])
    assert "x " not in without.splitlines()[0]
    assert row_of(without, "X") == ["60.0", "3", "10", "2", "5", "100"]
    assert all(line.count("|") == 8 for line in without.splitlines())


def test_records_from_results_keeps_failed_runs_of_older_reports():
    records = reports.records_from_results({"A": [{"test_result": {}}, None], "B": []})
    assert records == [{"test_result": {}, "name": "A"}, {"name": "A", "failed": True}]


# ------------------------------------------------------------------------------------------ variants
def test_unknown_variant_is_a_user_error_listing_the_known_ones():
    with pytest.raises(UserError) as error:
        SPEC.resolve(["SASRec", "LLMESR-GRU4Rec-nope"])
    message = str(error.value)
    assert "'LLMESR-GRU4Rec-nope'" in message
    for known in ("SASRec", "LLMESR-GRU4Rec", "LLMESR-BERT4Rec-base", "LLMESR-SASRec-batchteacher"):
        assert f" {known} " in message or f" {known}." in message


def test_unknown_variant_on_the_command_line_exits_2_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(SPEC, ["run", "--models", "GRU4Rec", "Nope", "--work_dir", str(tmp_path / "work"),
                    "--data_path", str(tmp_path)])
    assert stop.value.code == 2
    assert "Unknown LLM-ESR variant 'Nope'" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_variant_names_resolve_to_model_and_overrides():
    gru = SPEC.variant("LLMESR-GRU4Rec")
    assert (gru.model, gru.overrides) == ("LLMESR", {"backbone": "GRU4Rec", "n_layers": 1, "hidden_dropout_prob": 0.3})
    base = SPEC.variant("LLMESR-BERT4Rec-base")
    assert base.overrides == {"backbone": "BERT4Rec", "mask_ratio": 0.2, "use_semantic": False,
                              "id_init": "random", "alpha": 0.0}
    assert (SPEC.variant("SASRec").model, SPEC.variant("SASRec").overrides) == ("SASRec", {})
    assert SPEC.resolve(["LLMESR", "LLMESR-SASRec", "GRU4Rec"]) == ["LLMESR-SASRec", "GRU4Rec"]  # alias, once


def test_a_record_maps_back_to_the_most_specific_variant():
    config = {"backbone": "SASRec", "alpha": 0.0, "use_semantic": False, "id_init": "random", "teacher": "epoch"}
    assert SPEC.name_of_record({"model": "LLMESR", "config": config}) == "LLMESR-SASRec-base"
    assert SPEC.name_of_record({"model": "LLMESR", "config": dict(config, use_semantic=True)}) == "LLMESR-SASRec-noSD"
    assert SPEC.name_of_record({"model": "LLMESR", "config": {"backbone": "GRU4Rec", "n_layers": 1,
                                                              "hidden_dropout_prob": 0.3}}) == "LLMESR-GRU4Rec"
    assert SPEC.name_of_record({"model": "SASRec", "config": {"alpha": 0.0}}) == "SASRec"
    assert SPEC.name_of_record({"model": "NARM", "config": {}}) == "NARM"



def test_llmrec_spec_shares_the_tune_protocol_and_maps_augmented_file_runs_back():
    """bench_llmrec: every variant runs under benchmarks/llmrec_protocol.yaml (the file the Ray Tune commands
    pass with --config_files), and a LightGCN run on llmrec_train.inter is reported as LightGCN-aug."""
    import yaml

    from benchmarks.bench_llmrec import SPEC as LLMREC

    protocol = yaml.safe_load((REPO / "benchmarks" / "llmrec_protocol.yaml").read_text())
    assert LLMREC.settings == protocol and protocol["eval_args"]["split"] == {"RS": [0.8, 0.1, 0.1]}
    augmented = {"benchmark_filename": ["llmrec_train", "llmrec_valid", "llmrec_test"]}
    assert LLMREC.name_of_record({"model": "LightGCN", "config": augmented}) == "LightGCN-aug"
    assert LLMREC.name_of_record({"model": "LightGCN", "config": {"benchmark_filename": None}}) == "LightGCN"
    assert LLMREC.variant("LLMRec-noProfileAttr").overrides == {"llmrec_user_profiles": False,
                                                                 "llmrec_item_attributes": False}


def test_extra_tables_show_their_own_columns_with_the_cutoffs_named():
    metrics = ("recall@10", "recall@20")
    record = {"name": "A", "seed": 1, "protocol": "full", "seconds_per_epoch": 1.0, "epochs_trained": 3,
              "peak_rss_mb": 10.0, "test_result": {"recall@10": 0.1, "recall@20": 0.2, "hit@10": 0.3, "ndcg@10": 0.4,
                                                   "tail_user/hit@10": 0.5, "tail_user/ndcg@10": 0.6}}
    page = reports.run_report([record], title="T", command="c", description="d", protocol="full", names=["A"],
                              groups=("all",), metrics=metrics,
                              extra_tables=(("Groups", ("all", "tail_user"), METRICS),))
    main_table, groups_table = page.split("Groups:")
    assert "| model | all recall@10 | all recall@20 |" in main_table and row_of(main_table, "A")[:2] == ["0.1000", "0.2000"]
    assert "| model | all hit | all ndcg | tail_user hit | tail_user ndcg |" in groups_table
    assert row_of(groups_table, "A")[:4] == ["0.3000", "0.4000", "0.5000", "0.6000"]

def test_variant_grid_names_and_later_axes_win():
    grid = variant_grid("M", "Model", {"a": {"x": 1}, "b": {"x": 2}}, {"": {}, "no": {"x": 0, "y": 1}})
    assert [(v.name, v.overrides) for v in grid] == [
        ("M-a", {"x": 1}), ("M-a-no", {"x": 0, "y": 1}), ("M-b", {"x": 2}), ("M-b-no", {"x": 0, "y": 1})]


def test_a_spec_naming_an_undeclared_default_fails_when_declared():
    with pytest.raises(ValueError, match="not among the variants: B"):
        BenchSpec(title="T", slug="t", script="bench_t.py", dataset="d", variants=[Variant("A", "SASRec")],
                  default_variants=["A", "B"])


# ------------------------------------------------------------------------------------------ bench_llmesr
README_COMMANDS = [  # README's LLM-ESR section, benchmarks/device/start.sh, the module docstring
    "run --models SASRec LLMESR-SASRec --seeds 2020 2021 2022 --epochs 5 --stopping_step 5 --jobs 2 --threads 1 "
    "--also_test uni100 --work_dir /tmp/w --llm_cache_dir /tmp/w/cache --results benchmarks/results/x",
    "retest --records a.json b.json --modes full uni100 --jobs 2 --threads 1 --work_dir /tmp/w --results r",
    "timing --epochs 1 --no_augment --work_dir /tmp/llmesr_rand",
    "logs --work_dir /tmp/w --results benchmarks/results/llmesr_gpu_20ep",
    "run --epochs 20 --stopping_step 5 --jobs 16 --eval_batch_size 4096 --also_test uni100 --seeds 2020 2021 2022 "
    "--no_augment --device gpu --data_path /tmp/data --work_dir /tmp/work --results /tmp/res/llmesr",
    "run --epochs 30 --seeds 2020 2021 2022 --protocol uni100",
]


@pytest.mark.parametrize("command", README_COMMANDS)
def test_documented_command_lines_parse(command):
    args = build_parser(SPEC).parse_args(shlex.split(command))
    assert args.command == command.split()[0]


def test_the_llmrec_benchmark_ranks_hundreds_of_users_per_evaluation_batch():
    """General models rank eval_batch_size // n_items users per batch: the harness's 512 would be one
    Beauty user a batch (22,363 batches); bench_llmrec's default keeps Beauty's batches in the hundreds."""
    from benchmarks.bench_llmrec import SPEC as LLMREC

    assert build_parser(LLMREC).parse_args(["run"]).eval_batch_size // 12101 >= 256
    assert build_parser(LLMREC).parse_args(["run", "--eval_batch_size", "64"]).eval_batch_size == 64
    assert build_parser(SPEC).parse_args(["run"]).eval_batch_size == 512  # sequential rows: unchanged


def test_a_child_gets_the_spec_settings_under_the_command_line_under_the_variant():
    args = build_parser(SPEC).parse_args(shlex.split(
        "run --epochs 5 --stopping_step 3 --batch_size 128 --also_test uni100 --device gpu --work_dir /w "
        "--llm_cache_dir /c"))
    variant = SPEC.variant("LLMESR-GRU4Rec-noSD")
    config = run_config(SPEC, args, 2021, "uni100") | variant.overrides
    assert config == {
        "data_path": "/w", "seed": 2021, "epochs": 5, "stopping_step": 3, "train_batch_size": 128,
        "eval_batch_size": 512, "show_progress": False, "use_gpu": True, "extra_test_modes": ["uni100"],
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni100"},
        "checkpoint_dir": "/w/saved", "results_dir": "/w/records", "llmaug_cache_dir": "/c",
        "backbone": "GRU4Rec", "n_layers": 1, "hidden_dropout_prob": 0.3, "alpha": 0.0}
    assert "mode" not in SPEC.settings["eval_args"]  # the spec's settings are not modified


def test_a_settings_file_goes_over_the_spec_and_under_the_command_line_and_the_variant(tmp_path):
    """``--settings best_config.yaml``: a tuned search's values for every run; the budget stays the command
    line's and a variant's own overrides still win."""
    best = tmp_path / "best_config.yaml"
    best.write_text("learning_rate: 0.005\nepochs: 300\nalpha: 0.7\neval_args: {split: {RS: [0.8, 0.1, 0.1]}}\n")
    args = build_parser(SPEC).parse_args(shlex.split(f"run --epochs 5 --work_dir /w --settings {best}"))
    config = run_config(SPEC, args, 2021, "full") | SPEC.variant("LLMESR-GRU4Rec-noSD").overrides
    assert config["learning_rate"] == 0.005 and config["epochs"] == 5 and config["alpha"] == 0.0
    assert config["eval_args"] == {"split": {"RS": [0.8, 0.1, 0.1]}, "mode": "full"}
    best.write_text("- not a mapping\n")
    with pytest.raises(UserError, match="no 'key: value' settings"):
        run_config(SPEC, args, 2021, "full")
    args.settings = str(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="Cannot read --settings"):
        run_config(SPEC, args, 2021, "full")


@pytest.mark.parametrize("stem", ["llmesr_cpu_sasrec_5ep", "llmesr_cpu_gru4rec_5ep", "llmesr_cpu_bert4rec_3ep"])
def test_committed_run_and_retest_reports_rebuild_from_their_json(stem):
    """The format is unchanged: the committed pages (made before the harness) come out again from
    their JSON and recorded command line, up to the elapsed time and the hand-written reading."""
    data = json.loads((RESULTS / f"{stem}.json").read_text())
    args = build_parser(SPEC).parse_args(shlex.split(data["command"])[2:])
    records = reports.records_from_results(data["results"])
    page = run_markdown(SPEC, args, data["command"], records, list(data["results"]), "full", elapsed=0)
    committed = (RESULTS / f"{stem}.md").read_text()
    assert page.split("\nElapsed:")[0] == committed.split("\nElapsed:")[0]

    data = json.loads((RESULTS / f"{stem}_retest.json").read_text())
    args = build_parser(SPEC).parse_args(shlex.split(data["command"])[2:])
    page = reports.retest_report(reports.records_from_results(data["results"]), title=SPEC.title,
                                 command=data["command"], modes=args.modes, elapsed=0)
    assert page.split("\nElapsed:")[0] == (RESULTS / f"{stem}_retest.md").read_text().split("\nElapsed:")[0]


def test_committed_logs_report_rebuilds_from_the_committed_logs(tmp_path):
    with tarfile.open(RESULTS / "llmesr_gpu_20ep_logs.tgz") as archive:
        archive.extractall(tmp_path, filter="data")
    records = records_from_logs(tmp_path / "logs", "full")
    names = SPEC.report_order({record["name"] for record in records})
    page = reports.logs_report(records, protocol="full", source="benchmarks/results/llmesr_gpu_20ep_logs.tgz",
                               names=names)
    assert page == (RESULTS / "llmesr_gpu_20ep_valid_from_logs.md").read_text()


# ------------------------------------------------------------------------------------------ end to end
def test_run_logs_and_retest_end_to_end_on_a_tiny_dataset(tiny_dataset, tmp_path, capsys, monkeypatch):
    """One 1-epoch SASRec in a child process: its report and JSON, the validation table read back from
    its log, and a retest of its checkpoint that gives its recorded test result again."""
    monkeypatch.chdir(tmp_path)  # RecBole writes log/ under the current folder (the children inherit it)
    spec = BenchSpec(
        title="Tiny", slug="tiny", script="bench_tiny.py", dataset="tiny", data_files=("inter", "item"),
        variants=[Variant("SASRec", "SASRec"), Variant("SASRec-wide", "SASRec", {"hidden_size": 32})],
        default_variants=["SASRec", "SASRec-wide"],
        settings={"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user"},
                  "hidden_size": 16, "inner_size": 32, "n_heads": 1, "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 10},
    )
    work, results = tmp_path / "work", str(tmp_path / "res" / "tiny")
    main(spec, ["run", "--models", "SASRec", "--seeds", "2020", "--epochs", "1", "--batch_size", "64",
                "--data_path", str(tiny_dataset), "--work_dir", str(work), "--results", results])
    data = json.loads(Path(results + ".json").read_text())
    assert list(data["results"]) == ["SASRec"]
    (run,) = data["results"]["SASRec"]
    assert (run["name"], run["seed"], run["protocol"], run["epochs_trained"]) == ("SASRec", 2020, "full", 1)
    page = Path(results + ".md").read_text()
    assert page.startswith("# Tiny benchmark (run)\n\ntiny, leave-one-out, protocol `full`")
    assert row_of(page, "SASRec")[0] == f"{run['test_result']['hit@10']:.4f}"
    assert (work / "tiny" / "tiny.inter").is_symlink()

    main(spec, ["logs", "--work_dir", str(work), "--results", results])
    (from_log,) = json.loads(Path(results + "_valid_from_logs.json").read_text())["SASRec"]
    assert from_log["best_valid_result"] == pytest.approx(run["best_valid_result"])

    main(spec, ["retest", "--records", run["record_file"], "--modes", "full", "--work_dir", str(work),
                "--results", results])
    assert "- SASRec seed 2020: identical" in Path(results + "_retest.md").read_text()

    # the same run again is recorded (same model, inputs, settings, seed and code): not trained again,
    # whichever report next to --results holds it; another setting or --reuse none trains
    from benchmarks.harness import runner

    trained = []
    monkeypatch.setattr(runner, "spawn", lambda job, *rest: trained.append(job["config"]["train_batch_size"]))
    again = str(tmp_path / "res" / "tiny_again")
    tiny_run = ["run", "--models", "SASRec", "--seeds", "2020", "--epochs", "1", "--data_path", str(tiny_dataset),
                "--work_dir", str(work), "--results", again]
    main(spec, tiny_run + ["--batch_size", "64"])
    assert trained == []
    (reused,) = json.loads(Path(again + ".json").read_text())["results"]["SASRec"]
    assert reused["test_result"] == run["test_result"] and reused["run_key"] == run["run_key"]
    assert "1 of the 1 runs were recorded before" in Path(again + ".md").read_text()
    main(spec, tiny_run + ["--batch_size", "32"])
    main(spec, tiny_run + ["--batch_size", "64", "--reuse", "none"])
    assert trained == [32, 64]
    # --recorded_only trains nothing: the recorded seed is collected, the other left out of the row
    collected = str(tmp_path / "res" / "tiny_collected")
    main(spec, [arg if arg != again else collected for arg in tiny_run]
         + ["--batch_size", "64", "--seeds", "2020", "2021", "--models", "SASRec", "SASRec-wide", "--recorded_only"])
    assert trained == [32, 64]
    data = json.loads(Path(collected + ".json").read_text())["results"]
    assert [run["seed"] for run in data["SASRec"]] == [2020] and data["SASRec-wide"] == []
    page = Path(collected + ".md").read_text()
    assert "Collected from recorded runs (`--recorded_only`" in page and "1 recorded" in page
    assert row_of(page, "SASRec")[0] == f"{run['test_result']['hit@10']:.4f}" and row_of(page, "SASRec-wide")[0] == "pending"
    assert "SASRec seed=2021 protocol=full: not recorded, left pending" in capsys.readouterr().out


def test_run_key_ignores_where_files_go_and_code_version_decides_reuse(tmp_path):
    from benchmarks.harness import reuse

    config = {"seed": 2020, "epochs": 5, "data_path": "/a", "checkpoint_dir": "/a/saved", "eval_batch_size": 512}
    key = reuse.run_key("SASRec", "beauty", config, {"beauty.inter": "ab"})
    moved = dict(config, data_path="/b", checkpoint_dir="/b/saved", eval_batch_size=64)
    assert reuse.run_key("SASRec", "beauty", moved, {"beauty.inter": "ab"}) == key
    assert reuse.run_key("SASRec", "beauty", dict(config, seed=2021), {"beauty.inter": "ab"}) != key
    assert reuse.run_key("SASRec", "beauty", config, {"beauty.inter": "cd"}) != key
    assert reuse.run_key("GRU4Rec", "beauty", config, {"beauty.inter": "ab"}) != key
    old = {"run_key": key, "code_version": "old", "test_result": {}}
    assert reuse.find([old], key, "new", "same-code") is None
    assert reuse.find([old], key, "new", "same-config") is old
    assert reuse.find([old], key, "old", "none") is None
    # the code version follows the package's source
    root = tmp_path / "repo"
    for name in ("recbole_llmaug/a.py", "properties/overall.yaml", "benchmarks/harness/child.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x = 1\n")
    before = reuse.code_version(root)
    (root / "recbole_llmaug" / "a.py").write_text("x = 2\n")
    assert reuse.code_version(root) != before


def test_work_folder_links_the_specs_files_with_dotted_suffixes_and_hashes_only_the_inputs(tmp_path):
    from argparse import Namespace

    from benchmarks.harness import reuse
    from benchmarks.harness.runner import prepare_work_dir

    source = tmp_path / "data" / "toy"
    source.mkdir(parents=True)
    for name in ("toy.inter", "toy.item", "toy.pseudo.llm-ids", "toy.pseudo.llm-ids.manifest.json", "toy.arv.llm",
                 "toy.notes", "other.inter"):
        (source / name).write_text(name)
    spec = BenchSpec(title="T", slug="t", script="t.py", dataset="toy", variants=[Variant("A", "SASRec")],
                     default_variants=["A"], data_files=("inter", "item", "pseudo.llm-ids"))
    args = Namespace(data_path=str(tmp_path / "data"), dataset="toy", work_dir=str(tmp_path / "work"))
    prepare_work_dir(spec, args)
    linked = sorted(path.name for path in (tmp_path / "work" / "toy").iterdir())
    assert linked == ["toy.inter", "toy.item", "toy.pseudo.llm-ids", "toy.pseudo.llm-ids.manifest.json"]
    assert sorted(reuse.input_hashes(tmp_path / "work" / "toy")) == ["toy.inter", "toy.item"]


def test_work_folder_links_the_interaction_files_a_variant_names_in_benchmark_filename(tmp_path):
    """A variant that reads augmented interaction files (LLMRec's ``LightGCN-aug``) finds them when it is
    trained alone: it failed with "llmrec_train.inter not exist" when no LLMRec run had linked them first."""
    from argparse import Namespace

    from benchmarks.bench_llmrec import SPEC as LLMREC
    from benchmarks.harness import reuse
    from benchmarks.harness.runner import prepare_work_dir

    source = tmp_path / "data" / "toy"
    source.mkdir(parents=True)
    for name in ("toy.inter", "toy.item", "toy.aug_train.inter", "toy.aug_train.inter.manifest.json",
                 "toy.aug_valid.inter", "toy.aug_test.inter", "toy.other_train.inter"):
        (source / name).write_text(name)
    files = {"benchmark_filename": ["aug_train", "aug_valid", "aug_test"]}
    spec = BenchSpec(title="T", slug="t", script="t.py", dataset="toy",
                     variants=[Variant("A", "BPR"), Variant("A-aug", "BPR", files)], default_variants=["A"],
                     data_files=("inter", "item"))
    args = Namespace(data_path=str(tmp_path / "data"), dataset="toy", work_dir=str(tmp_path / "work"))
    prepare_work_dir(spec, args)
    linked = sorted(path.name for path in (tmp_path / "work" / "toy").iterdir())
    assert linked == ["toy.aug_test.inter", "toy.aug_train.inter", "toy.aug_train.inter.manifest.json",
                      "toy.aug_valid.inter", "toy.inter", "toy.item"]
    assert sorted(reuse.input_hashes(tmp_path / "work" / "toy")) == ["toy.inter", "toy.item"]  # run keys unchanged
    assert {"llmrec_train.inter", "llmrec_valid.inter", "llmrec_test.inter"} <= set(LLMREC.linked_kinds)


def test_a_run_waits_for_an_output_another_process_is_building_in_data_path(tmp_path):
    """The harness's child links what ``--data_path`` has or is building rather than building it again
    in its work folder (where its own lock would not stop a second, paid, LLM pass)."""
    import subprocess
    import sys
    import time

    from benchmarks.harness.child import link_from_source

    source, folder = tmp_path / "source", tmp_path / "work"
    source.mkdir()
    folder.mkdir()
    (source / "toy.done").write_text("d")  # finished before (an unpacked archive has no lock file)
    (source / "toy.done.manifest.json").write_text("{}")
    (folder / "toy.mine").write_text("own")  # the work folder's own output is left alone
    (source / "toy.mine").write_text("other")
    # a second process holds the lock of 'toy.busy' for a moment, then writes it (as --augment does)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom filelock import FileLock\n"
        f"source = Path({str(source)!r})\n"
        "with FileLock(str(source / '.toy.busy.lock')):\n"
        "    print('held', flush=True)\n    time.sleep(1.5)\n"
        "    (source / 'toy.busy').write_text('b')\n    (source / 'toy.busy.manifest.json').write_text('{}')\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    said, started = [], time.monotonic()
    linked = link_from_source(folder, source, ["toy.done", "toy.mine", "toy.busy", "toy.absent"],
                              log=lambda text, **_: said.append(text))
    assert holder.wait(timeout=30) == 0
    assert time.monotonic() - started >= 1.0 and said and "toy.busy" in said[0]
    assert sorted(linked) == ["toy.busy", "toy.busy.manifest.json", "toy.done", "toy.done.manifest.json"]
    assert (folder / "toy.busy").read_text() == "b" and (folder / "toy.busy").is_symlink()
    assert (folder / "toy.mine").read_text() == "own" and not (folder / "toy.absent").exists()


def test_a_run_links_from_data_path_the_outputs_its_settings_need_and_no_others(tmp_path):
    from benchmarks.harness.child import wait_for_source_outputs

    work, source = tmp_path / "work" / "toy", tmp_path / "source"
    work.mkdir(parents=True)
    source.mkdir()
    (work / "toy.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t1\n")
    for suffix in ("ccgcand", "arvcand", "pseudo.none", "arv.none", "pseudo.llm-ids", "arv.llm"):
        (source / f"toy.{suffix}").write_text("x")
    wait_for_source_outputs({"model": "LLMSeR", "dataset": "toy", "source": str(source), "config": {
        "data_path": str(tmp_path / "work"), "llmser_pseudo": "none", "llmser_reliability": "none"}})
    # LLMSeR without the LLM: the reverse model's picks, unit weights, and the candidates they come from
    assert sorted(path.name for path in work.iterdir() if path.is_symlink()) == [
        "toy.arv.none", "toy.arvcand", "toy.ccgcand", "toy.pseudo.none"]
