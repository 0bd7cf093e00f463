"""The cost table (``benchmarks/cost.py``): manifests' usage summed per variant, priced, and a variant's
gain over its baseline divided by that cost, from hand-made manifests and run records."""

import json

import pytest

from benchmarks import cost

PRICE = {"input": 1.0, "output": 4.0, "embedding": 0.5}  # USD per million tokens: round numbers to check by hand


def llm_manifest(calls, prompt, answer, embedded, seconds, hits=0, cached=None):
    """A manifest as the LLM stages write it: the chat usage, then the embedding of the answers.
    ``cached``: the reused answers' (prompt, answer) tokens; None: a manifest from before those were kept."""
    usage = {"calls": calls, "cache_hits": hits, "failures": 1, "prompt_tokens": prompt,
             "completion_tokens": answer, "cost": 0.0}
    if cached is not None:
        usage.update(cached_prompt_tokens=cached[0], cached_completion_tokens=cached[1])
    return {"usage": usage, "embedding_usage": {"calls": 1, "prompt_tokens": embedded}, "wall_time_s": seconds}


def write_fixture(tmp_path):
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    manifests = {
        "lredge": llm_manifest(100, 30_000, 500, 0, 1800.0),
        # an older manifest: 7 answers reused, their tokens extrapolated from the 50 calls (200 + 40 each)
        "itemattr": llm_manifest(50, 10_000, 2_000, 4_000, 1800.0, hits=7),
        # a pass resumed across runs: 20 calls now, 80 answers reused whose tokens the cache kept
        "userprof": llm_manifest(20, 5_000, 1_000, 0, 100.0, hits=80, cached=(16_000, 3_000)),
        # rebuilt entirely from the cache: no call to scale a wall time from
        "lrcand": llm_manifest(0, 0, 0, 0, 5.0, hits=30, cached=(9_000, 900)),
        # an older manifest rebuilt entirely from the cache: its tokens cannot be known
        "oldrebuild": llm_manifest(0, 0, 0, 0, 5.0, hits=12),
        # an embedding-only output (text_embeddings): its usage is the embedding model's
        "itememb": {"usage": {"calls": 2, "prompt_tokens": 6_000, "cost": 0.0}, "embedding": {"model": "m"},
                    "wall_time_s": 60.0},
    }
    for suffix, manifest in manifests.items():
        (folder / f"toy.{suffix}.manifest.json").write_text(json.dumps(manifest))
    runs = lambda name, values: [{"name": name, "seed": seed, "test_result": {"ndcg@20": value}}  # noqa: E731
                                 for seed, value in zip((1, 2, 3), values)]
    results = {"Base": runs("Base", [0.10, 0.12, 0.14]), "Aug": runs("Aug", [0.13, 0.15, 0.17]),
               "Both": runs("Both", [0.11, 0.12, 0.13])}
    (tmp_path / "r.json").write_text(json.dumps({"command": "x", "results": results}))
    return tmp_path


def test_stage_usage_reads_llm_and_embedding_only_manifests(tmp_path):
    stages = cost.read_stages(write_fixture(tmp_path) / "data", "toy", ["lredge", "itemattr", "itememb"])
    assert stages["lredge"]["calls"] == 100 and stages["lredge"]["completion_tokens"] == 500
    assert stages["itemattr"]["cache_hits"] == 7 and stages["itemattr"]["embedding_tokens"] == 4_000
    # the embedding-only output's calls are embedding batches, not LLM calls
    assert stages["itememb"]["calls"] == 0 and stages["itememb"]["embedding_tokens"] == 6_000
    assert stages["lredge"]["estimated"] == [] and stages["lredge"]["pass_wall_time_s"] == 1800.0


def test_a_resumed_pass_is_costed_from_an_empty_cache(tmp_path):
    stages = cost.read_stages(write_fixture(tmp_path) / "data", "toy", ["itemattr", "userprof", "lrcand"])
    old, resumed, rebuilt = stages["itemattr"], stages["userprof"], stages["lrcand"]
    assert (old["pass_calls"], old["pass_prompt_tokens"], old["pass_completion_tokens"]) == (57, 11_400, 2_280)
    assert old["pass_wall_time_s"] == pytest.approx(1800.0 * 57 / 50) and old["estimated"] == ["tokens", "wall time"]
    assert (resumed["pass_calls"], resumed["pass_prompt_tokens"], resumed["pass_completion_tokens"]) == (100, 21_000, 4_000)
    assert resumed["pass_wall_time_s"] == pytest.approx(500.0) and resumed["estimated"] == ["wall time"]
    assert rebuilt["pass_prompt_tokens"] == 9_000 and rebuilt["pass_wall_time_s"] is None
    both = cost.total(stages, ["userprof", "lrcand"])
    assert both["pass_calls"] == 130 and both["pass_wall_time_s"] is None and both["estimated"] == ["wall time"]
    assert cost.dollars(resumed, PRICE) == pytest.approx((21_000 * 1.0 + 4_000 * 4.0) / 1e6)


def test_unknown_tokens_are_reported_unknown_not_zero(tmp_path):
    stages = cost.read_stages(write_fixture(tmp_path) / "data", "toy", ["oldrebuild", "lredge"])
    old = stages["oldrebuild"]
    assert old["pass_calls"] == 12 and old["pass_prompt_tokens"] is None and old["pass_completion_tokens"] is None
    assert cost.dollars(old, PRICE) is None and cost.total(stages, ["oldrebuild", "lredge"])["pass_prompt_tokens"] is None
    rows = cost.cost_rows(stages, {"Aug": ["oldrebuild", "lredge"]}, [], "Base", ["ndcg@20"], PRICE)
    assert rows[0]["usd"] is None and rows[0]["metrics"]["ndcg@20"]["per_usd"] is None
    text = cost.markdown(stages, rows, "Base", PRICE, "cmd")
    assert "| .oldrebuild | 12 | 12 | 1 | ~n/a | ~n/a | 0 | ~n/a | ~n/a |" in text


def test_cost_rows_price_and_gain_per_cost_by_hand(tmp_path):
    folder = write_fixture(tmp_path)
    stages = cost.read_stages(folder / "data", "toy", ["lredge", "itemattr", "itememb"])
    records = cost.read_records(folder / "r.json")
    rows = cost.cost_rows(stages, {"Aug": ["lredge"], "Both": ["lredge", "itemattr", "itememb"]},
                          records, "Base", ["ndcg@20"], PRICE)
    aug, both = rows
    assert aug["usd"] == pytest.approx((30_000 * 1.0 + 500 * 4.0) / 1e6)
    # itemattr from an empty cache: 57 calls, 11,400 + 2,280 tokens, 1800 s * 57 / 50 (see the fixture)
    assert both["usd"] == pytest.approx((41_400 * 1.0 + 2_780 * 4.0 + 10_000 * 0.5) / 1e6)
    assert both["pass_calls"] == 157 and both["pass_wall_time_s"] == pytest.approx(1800.0 + 2052.0 + 60.0)
    assert both["calls"] == 150 and both["wall_time_s"] == 3660.0  # the manifests' own runs
    cell = aug["metrics"]["ndcg@20"]
    assert cell["baseline"] == pytest.approx(0.12) and cell["value"] == pytest.approx(0.15) and cell["seeds"] == 3
    assert cell["gain"] == pytest.approx(0.03) and cell["relative"] == pytest.approx(0.25)
    assert cell["per_usd"] == pytest.approx(0.03 / aug["usd"])
    assert cell["per_hour"] == pytest.approx(0.03 / 0.5) and cell["per_1k_calls"] == pytest.approx(0.3)
    assert both["metrics"]["ndcg@20"]["gain"] == pytest.approx(0.0)


def test_command_line_writes_the_report_and_names_a_missing_manifest(tmp_path, capsys):
    folder = write_fixture(tmp_path)
    common = ["--data_dir", str(folder / "data"), "--dataset", "toy", "--results", str(folder / "r.json"),
              "--baseline", "Base", "--metrics", "ndcg@20", "--price", "1", "4", "0.5", "--out", str(folder / "c")]
    cost.main(common + ["--uses", "Aug=lredge"])
    text = (folder / "c.md").read_text()
    assert "| Aug | Base | lredge | 100 | 0.50 | 0.0320 | +0.0300 | +25.0% | +0.937 | +0.0600 | +0.3000 | 3 |" in text
    # a second report's runs are pooled with the first's (a variant benchmarked in a later run)
    later = {"Late": [{"name": "Late", "seed": 1, "test_result": {"ndcg@20": 0.18}}]}
    (folder / "later.json").write_text(json.dumps({"command": "y", "results": later}))
    pooled = [arg if arg != str(folder / "r.json") else f"{folder / 'r.json'} {folder / 'later.json'}" for arg in common]
    cost.main(" ".join(pooled).split() + ["--uses", "Late=lredge", "Late2:Both=lredge"])
    text = (folder / "c.md").read_text()
    # Late has run seed 1 only: compared with Base's seed 1 (0.18 - 0.10), not with Base's mean over 3 seeds
    assert "| Late | Base | lredge | 100 | 0.50 | 0.0320 | +0.0800 | +80.0% | +2.500 | +0.1600 | +0.8000 | 1 |" in text
    assert "| Late2 | Both | lredge | 100 | 0.50 | 0.0320 | n/a |" in text  # its own baseline; no runs of Late2
    assert json.loads((folder / "c.json").read_text())["variants"][0]["usd"] == pytest.approx(0.032)
    cost.main(common + ["--uses", "Resumed=userprof", "Rebuilt=lrcand"])  # from an empty cache, ~ where scaled
    text = (folder / "c.md").read_text()
    assert "| .userprof | 100 | 80 | 1 | 21000 | 4000 | 0 | ~0.14 | 0.0370 |" in text
    assert "| Resumed | Base | userprof | 100 | ~0.14 | 0.0370 |" in text
    assert "| Rebuilt | Base | lrcand | 30 | ~n/a | 0.0126 |" in text
    with pytest.raises(SystemExit, match="toy.useremb.manifest.json"):
        cost.main(common + ["--uses", "Aug=lredge,useremb"])
    with pytest.raises(SystemExit, match="VARIANT"):
        cost.main(common + ["--uses", "Aug"])


def test_gains_are_over_matched_seeds_and_records_without_seeds_pair_by_position():
    runs = lambda name, seeds, values: [{"name": name, "seed": s, "test_result": {"m": v}}  # noqa: E731
                                        for s, v in zip(seeds, values)]
    records = runs("Base", [1, 2, 3], [0.10, 0.20, 0.30]) + runs("Sys", [3], [0.35])
    assert cost.matched_means(records, "Sys", "Base", "m") == (pytest.approx(0.30), pytest.approx(0.35), 1)
    assert cost.matched_means(records + runs("Other", [4], [0.5]), "Other", "Base", "m") == (None, None, 0)
    older = runs("Base", [None] * 3, [0.10, 0.20, 0.30]) + runs("Sys", [None] * 2, [0.30, 0.40])
    # as compare.py pairs them: the first two runs of Base against the two of Sys
    assert cost.matched_means(older, "Sys", "Base", "m") == (pytest.approx(0.15), pytest.approx(0.35), 2)
