"""``benchmarks/compare.py``: the comparison report built from a handful of tiny run records (no training):
means, gains and the paired test by hand, pending pairs, seed pairing, and the two figures."""

import dataclasses
import json

import pytest
from scipy.stats import ttest_rel

from benchmarks import compare
from benchmarks.harness.reports import result_key


def runs(name, values_by_seed, seeds=True):
    """Run records whose every (group, ndcg@10) key has the seed's value (tail items: a tenth of it)."""
    records = []
    for seed, value in values_by_seed.items():
        result = {result_key(g, "ndcg@10"): value for g in ("all", "tail_user", "head_user", "head_item")}
        result[result_key("tail_item", "ndcg@10")] = value / 10
        records.append({"name": name, "test_result": result} | ({"seed": seed} if seeds else {}))
    return records


@pytest.fixture
def results(tmp_path, monkeypatch):
    base = runs("Base", {1: 0.10, 2: 0.12, 3: 0.14})
    better = runs("Sys", {3: 0.150, 1: 0.111, 2: 0.132})  # gains 0.011, 0.012, 0.010, listed out of seed order
    (tmp_path / "rep.json").write_text(json.dumps({"command": "x", "results": {"Base": base, "Sys": better}}))
    (tmp_path / "cost.json").write_text(json.dumps({"price_per_million": {"input": 1, "output": 2, "embedding": 0},
                                                    "variants": [{"variant": "Sys", "usd": 0.5, "pass_calls": 10}]}))
    monkeypatch.setattr(compare, "PAIRS", [
        compare.Pair("toy", "S", "Sys", "Base", "rep", "bench toy", "cost", "Sys"),
        compare.Pair("toy", "Later", "Other", "Base", "missing_report", "bench later"),
        compare.Pair("elsewhere", "S", "Sys", "Base", "rep", "bench"),
    ])
    return tmp_path


def test_report_from_records_by_hand(results):
    text = compare.report("toy", results, results / "out" / "cmp", command="python benchmarks/compare.py")
    p = ttest_rel([0.111, 0.132, 0.150], [0.10, 0.12, 0.14]).pvalue
    assert p < 0.01  # consistent gains: two stars
    assert "| toy | S: Sys | Base | 0.1200 ± 0.0200 | 0.1310 ± 0.0195 | +0.0110** |" in text
    assert "| toy | Later: Other | Base | pending |" in text
    assert "elsewhere" not in text  # another dataset's pair
    assert "| S: Sys vs Base | rep | 1, 2, 3 | cost ($0.50, 10 LLM calls) | `bench toy` |" in text
    for figure in ("cmp_headline.png", "cmp_groups.png", "cmp_cost.png"):
        assert (results / "out" / figure).read_bytes()[:4] == b"\x89PNG"
        assert f"]({figure})" in text
    assert (results / "out" / "cmp.md").read_text() == text


def test_pairs_by_seed_and_by_position_and_no_test_without_spread():
    base = runs("B", {1: 0.1, 2: 0.2})
    system = runs("S", {2: 0.25, 1: 0.1})
    pairs, p = compare.paired(base, system, "ndcg@10")
    assert sorted(pairs) == [(0.1, 0.1), (0.2, 0.25)] and p is not None and compare.mark(p) == ""
    # older records without seeds pair by position
    pairs, _ = compare.paired(runs("B", {1: 0.1, 2: 0.2}, seeds=False), runs("S", {1: 0.3, 2: 0.4}, seeds=False),
                              "ndcg@10")
    assert pairs == [(0.1, 0.3), (0.2, 0.4)]
    # the same gain on every seed: no spread, no test (a t statistic would divide by zero)
    _, p = compare.paired(runs("B", {1: 0.1, 2: 0.2}), runs("S", {1: 0.2, 2: 0.3}), "ndcg@10")
    assert p is None
    assert (compare.mark(0.001), compare.mark(0.03), compare.mark(0.2), compare.mark(None)) == ("**", "*", "", "")


def test_a_sampled_protocol_reads_extra_tests_and_its_own_report(results):
    """``--protocol uni100``: a full-ranking run's ``extra_test_results`` entry, or a run trained under uni100
    (``<report>_uni100.json``); a pair with neither is pending."""
    data = json.loads((results / "rep.json").read_text())
    for run in data["results"]["Base"]:
        run["extra_test_results"] = {"uni100": {"ndcg@10": 0.5}}
    (results / "rep.json").write_text(json.dumps(data))
    trained = runs("Sys", {1: 0.6, 2: 0.6, 3: 0.6})
    for run in trained:
        run["protocol"] = "uni100"
    (results / "rep_uni100.json").write_text(json.dumps({"command": "y", "results": {"Sys": trained}}))
    text = compare.report("toy", results, results / "u", protocol="uni100")
    assert "test protocol `uni100`" in text
    assert "| toy | S: Sys | Base | 0.5000 ± 0.0000 | 0.6000 ± 0.0000 | +0.1000 |" in text
    assert compare.compare_pair(compare.PAIRS[0], results, protocol="pop50") is None  # never tested so


def test_run_starts_each_pending_pairs_command_once_into_its_report(results, monkeypatch):
    """``--run``: the recorded pair is not run; two pending pairs sharing a command run it once, with the
    pair's report as ``--results``; a pair no single command makes is only printed."""
    monkeypatch.setattr(compare, "PAIRS", [
        compare.Pair("toy", "S", "Sys", "Base", "rep", "python benchmarks/bench_toy.py run --models Base Sys"),
        compare.Pair("toy", "L", "Other", "Base", "later", "python benchmarks/bench_toy.py run --epochs 2"),
        compare.Pair("toy", "L", "Third", "Base", "later", "python benchmarks/bench_toy.py run --epochs 2"),
        compare.Pair("toy", "T", "Sys", "Base", "a+b", "README: by hand"),
    ])
    calls = []
    done = compare.run_missing(compare.PAIRS, results, extra_args=["--jobs", "2"],
                               call=lambda argv, cwd: calls.append(argv) or 0)
    assert [argv[1:] for argv in calls] == [["benchmarks/bench_toy.py", "run", "--epochs", "2", "--results",
                                             str(results / "later"), "--jobs", "2"]]
    assert done == calls
    dry = compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: 1 / 0, dry_run=True)  # never calls
    assert [argv[1:] for argv in dry] == [calls[0][1:-2]]
    with pytest.raises(SystemExit, match="exited with 3"):
        compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: 3)


def test_run_writes_a_declared_missing_cost_table_after_the_runs(results, monkeypatch):
    """``--run`` then writes each missing cost table a pair declares a command for, from the pair's report
    (after its benchmark), once for the pairs sharing it; a table already there, or one whose report is
    still missing, is not written."""
    cost = "python benchmarks/cost.py --data_dir d --dataset toy --uses Sys=x"
    monkeypatch.setattr(compare, "PAIRS", [
        compare.Pair("toy", "S", "Sys", "Base", "rep", "python benchmarks/bench_toy.py run", "newcost", "Sys", cost),
        compare.Pair("toy", "S", "Base", "Base", "rep", "python benchmarks/bench_toy.py run", "newcost", "Base", cost),
        compare.Pair("toy", "S", "Sys", "Base", "rep", "python benchmarks/bench_toy.py run", "cost", "Sys", cost),
        compare.Pair("toy", "T", "Sys", "Base", "a+b", "README: by hand", "othercost", "Sys", cost),
    ])
    calls = []
    compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: calls.append(argv) or 0)
    assert [argv[1:] for argv in calls] == [["benchmarks/cost.py", "--data_dir", "d", "--dataset", "toy", "--uses",
                                             "Sys=x", "--results", str(results / "rep.json"), "--out",
                                             str(results / "newcost")]]
    (results / "newcost.json").write_text("{}")
    assert compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: 1 / 0) == []
    with pytest.raises(SystemExit, match="exited with 2"):
        (results / "newcost.json").unlink()
        compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: 2)


def test_run_finishes_a_report_that_an_interrupted_benchmark_left_short_of_its_seeds(results, monkeypatch):
    """A report holding some of the seeds its command names (written after each run, then cut short) is
    run again (the harness trains only what is missing), and its cost table waits for the last seed;
    records older than seeds count one seed each."""
    command = "python benchmarks/bench_toy.py run --seeds 1 2 3 --jobs 2"
    assert compare.command_seeds(command) == [1, 2, 3] and compare.command_seeds("python b.py run") == []
    cost = "python benchmarks/cost.py --uses Sys=x"
    monkeypatch.setattr(compare, "PAIRS", [compare.Pair("toy", "S", "Sys", "Base", "rep", command, "newcost", "Sys",
                                                        cost)])
    data = json.loads((results / "rep.json").read_text())
    (results / "rep.json").write_text(json.dumps(dict(data, results={"Base": data["results"]["Base"],
                                                                     "Sys": data["results"]["Sys"][:2]})))
    assert compare.compare_pair(compare.PAIRS[0], results) is not None  # in the report, but not complete
    unseeded = compare.Pair("toy", "S", "Sys", "Base", "rep", "python benchmarks/bench_toy.py run")
    assert compare.complete(unseeded, results)  # no seeds named: one run of each is enough
    assert not compare.complete(dataclasses.replace(unseeded, variant="Absent"), results)  # no run of it
    calls = []
    compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: calls.append(argv) or 0)
    assert [argv[1:3] for argv in calls] == [["benchmarks/bench_toy.py", "run"]]  # and no cost table yet
    (results / "rep.json").write_text(json.dumps(data))
    calls.clear()
    compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: calls.append(argv) or 0)
    assert [argv[1] for argv in calls] == ["benchmarks/cost.py"]
    for run in data["results"]["Base"] + data["results"]["Sys"]:
        del run["seed"]
    (results / "rep.json").write_text(json.dumps(data))
    (results / "newcost.json").write_text("{}")
    assert compare.run_missing(compare.PAIRS, results, call=lambda argv, cwd: 1 / 0) == []


def test_records_without_seeds_count_their_runs(results):
    data = json.loads((results / "rep.json").read_text())
    for run in data["results"]["Base"] + data["results"]["Sys"]:
        del run["seed"]
    (results / "rep.json").write_text(json.dumps(data))
    text = compare.report("toy", results, results / "out" / "cmp")
    assert "| S: Sys vs Base | rep | 3 runs (seeds in its command) |" in text


def test_a_sampled_protocol_reads_retests_only_for_variants_without_such_runs(results):
    """``<report>_retest.json`` gives the uni100 tests of a variant the report has none of (Sys); Base's own
    extra tests win over its retest, so no seed is counted twice."""
    data = json.loads((results / "rep.json").read_text())
    for run in data["results"]["Base"]:
        run["extra_test_results"] = {"uni100": {"ndcg@10": 0.5}}
    (results / "rep.json").write_text(json.dumps(data))
    retests = {name: [{"seed": seed, "tests": {"uni100": {"result": {"ndcg@10": value}}}}
                      for seed, value in values.items()]
               for name, values in (("Base", {1: 0.9, 2: 0.9, 3: 0.9}), ("Sys", {1: 0.7, 2: 0.6, 3: 0.8}))}
    (results / "rep_retest.json").write_text(json.dumps({"command": "r", "results": retests}))
    result = compare.compare_pair(compare.PAIRS[0], results, protocol="uni100")
    assert result["groups"]["all"]["backbone"] == [0.5, 0.5, 0.5]
    assert sorted(result["groups"]["all"]["system"]) == [0.6, 0.7, 0.8]
    assert sorted(compare.compare_pair(compare.PAIRS[0], results, protocol="full")["groups"]["all"]["backbone"]) == [
        0.10, 0.12, 0.14]


def test_composition_table_adds_the_two_gains_and_compares_the_composed_one(results, monkeypatch):
    records = {"Base": runs("Base", {1: 0.10, 2: 0.12, 3: 0.14}), "A": runs("A", {1: 0.12, 2: 0.14, 3: 0.16}),
               "B": runs("B", {1: 0.11, 2: 0.13, 3: 0.15}), "AB": runs("AB", {1: 0.125, 2: 0.145, 3: 0.165})}
    (results / "comp.json").write_text(json.dumps({"command": "c", "results": records}))
    monkeypatch.setattr(compare, "COMPOSITIONS", [compare.Composition("toy", "Base", "A", "B", "AB", "comp", "x"),
                                                  compare.Composition("toy", "Base", "A", "B", "C", "comp", "x")])
    text = compare.report("toy", results, results / "out" / "cmp")
    assert "| toy | Base | all | A | +0.0200 | B | +0.0100 | +0.0300 | AB | +0.0250 | +0.0050 |" in text
    assert "| toy | Base | all | A | +0.0200 | B | +0.0100 | pending | C | pending | pending |" in text
    # the margin is tested against the better system alone (A), paired by seed
    records["AC"] = runs("AC", {1: 0.126, 2: 0.147, 3: 0.165})
    (results / "comp.json").write_text(json.dumps({"command": "c", "results": records}))
    monkeypatch.setattr(compare, "COMPOSITIONS", [compare.Composition("toy", "Base", "B", "A", "AC", "comp", "x")])
    p = ttest_rel([0.126, 0.147, 0.165], [0.12, 0.14, 0.16]).pvalue
    assert p < 0.05
    text = compare.report("toy", results, results / "out" / "cmp")
    gain_p = ttest_rel([0.126, 0.147, 0.165], [0.10, 0.12, 0.14]).pvalue
    assert f"| AC | +0.0260{compare.mark(gain_p)} | +0.0060{compare.mark(p)} |" in text


def test_every_declared_command_parses_with_its_benchmarks_parser():
    """``--run`` starts these commands: each names a script here, variants its spec knows and options its
    parser takes (with the ``--results`` that ``--run`` adds)."""
    import importlib
    import shlex

    from benchmarks.harness import build_parser

    commands = {pair.command for pair in compare.PAIRS if compare.runnable(pair)}
    commands |= {pair.command for c in compare.COMPOSITIONS for pair in c.pairs()}
    assert len(commands) >= 8
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["python", argv[1]] and argv[1].startswith("benchmarks/bench_")
        spec = importlib.import_module("benchmarks." + argv[1][len("benchmarks/"):-len(".py")]).SPEC
        args = build_parser(spec).parse_args(argv[2:] + ["--results", "x"])
        spec.resolve(args.models or spec.default_variants)
        assert args.settings is None or (compare.REPO_ROOT / args.settings).is_file(), command


def test_every_declared_cost_command_parses_and_names_its_pairs_variant():
    """The cost tables ``--run`` writes: each command takes cost.py's options (with the ``--results`` and
    ``--out`` that ``--run`` adds) and prices the variant its pairs read from the table."""
    import shlex

    from benchmarks import cost

    pairs = [pair for pair in compare.PAIRS if pair.cost_command]
    assert pairs
    for pair in pairs:
        argv = shlex.split(pair.cost_command)
        assert argv[:2] == ["python", "benchmarks/cost.py"]
        args = cost.build_parser().parse_args(argv[2:] + ["--results", "x.json", "--out", "y"])
        uses, baselines = cost.parse_uses(args.uses)
        assert pair.cost_variant in uses, pair
        assert baselines.get(pair.cost_variant, args.baseline) == pair.backbone, pair


def test_a_gpu_section_has_its_own_tables_figure_and_sources_and_reads_pending_without_its_report(results,
                                                                                                  monkeypatch):
    """A second budget (``GPU_SECTIONS``) reads its own reports after the main matrix; a missing one is pending
    and nothing else changes; ``--run`` never starts its commands (they run on another machine)."""
    monkeypatch.setattr(compare, "GPU_SECTIONS", [compare.Section("On a GPU", "Longer.", "gpu", (
        compare.Pair("toy", "S", "Sys", "Base", "rep", "on the GPU machine: bench"),
        compare.Pair("toy", "L", "Other", "Base", "gpu_missing", "on the GPU machine: later")))])
    text = compare.report("toy", results, results / "out" / "cmp")
    main, section = text.split("## On a GPU\n")
    assert "| toy | S: Sys | Base | 0.1200 ± 0.0200 | 0.1310 ± 0.0195 | +0.0110** |" in section
    assert "| toy | L: Other | Base | pending |" in section and "gpu_missing" not in main
    assert "| S: Sys vs Base | rep | 1, 2, 3 | n/a | `on the GPU machine: bench` |" in section
    assert (results / "out" / "cmp_gpu_groups.png").read_bytes()[:4] == b"\x89PNG"
    assert "](cmp_gpu_groups.png)" in section and "cmp_gpu_groups" not in main
    assert "On a GPU" not in compare.report("elsewhere", results, results / "out" / "other")  # no pair of it
    started = []
    monkeypatch.setattr(compare, "run_missing", lambda pairs, *args, **kwargs: started.extend(pairs) or [])
    compare.main(["--dataset", "toy", "--results", str(results), "--out", str(results / "out" / "cmp"), "--run"])
    assert started and all("GPU machine" not in pair.command for pair in started)


def test_every_gpu_section_command_passes_arguments_its_benchmark_takes():
    """A GPU section's command is run by hand through ``benchmarks/device/start.sh``, which hands its
    arguments to ``bench_$BENCH.py run``: they parse there and name variants its spec knows."""
    import importlib
    import shlex

    from benchmarks.harness import build_parser

    commands = {pair.command for section in compare.GPU_SECTIONS for pair in section.pairs}
    commands |= {pair.command for section in compare.GPU_SECTIONS for c in section.compositions for pair in c.pairs()}
    assert commands
    for command in commands:
        argv = shlex.split(command.split("start.sh", 1)[1].split("&&", 1)[0])
        bench = command.split("BENCH=", 1)[1].split()[0] if "BENCH=" in command else "llmesr"
        spec = importlib.import_module(f"benchmarks.bench_{bench}").SPEC
        args = build_parser(spec).parse_args(["run", *argv, "--results", "x"])  # start.sh: bench_$BENCH.py run "$@"
        spec.resolve(args.models or spec.default_variants)


def test_the_cost_panels_read_usd_calls_tokens_and_hours_and_leave_out_what_a_table_lacks():
    row = {"usd": 0.5, "pass_calls": 10, "pass_prompt_tokens": 1_000_000, "pass_completion_tokens": 500_000,
           "embedding_tokens": 500_000, "pass_wall_time_s": 7200}
    assert [value_of(row) for _, value_of in compare.COST_AXES] == [0.5, 10, 2.0, 2.0]
    assert [value_of({"usd": 0.5}) for _, value_of in compare.COST_AXES] == [0.5, None, None, None]
