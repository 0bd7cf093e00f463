"""``benchmarks/device/``: the scripts that carry a benchmark to a lent GPU machine refuse bad input before
they fetch, replace or start anything (the lease is short; a half-packed ``.devcarry`` would travel)."""

import os
import subprocess
from pathlib import Path

DEVICE = Path(__file__).resolve().parent.parent / "benchmarks" / "device"


def run(script, *args, cwd, env=None):
    return subprocess.run(["bash", str(DEVICE / script), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_pack_names_the_missing_output_or_data_and_writes_nothing(tmp_path):
    aug, data = tmp_path / "aug", tmp_path / "data"
    aug.mkdir()
    data.mkdir()
    (aug / "beauty.itememb").write_text("x")  # its manifest is missing
    done = run("pack.sh", str(aug), str(data), "itememb", cwd=tmp_path)
    assert done.returncode != 0 and f"{aug}/beauty.itememb.manifest.json is missing" in done.stderr
    (aug / "beauty.itememb.manifest.json").write_text("{}")
    done = run("pack.sh", str(aug), str(data), "itememb", cwd=tmp_path)
    assert done.returncode != 0 and f"{data}/beauty.inter is missing" in done.stderr
    assert not (tmp_path / ".devcarry").exists()


def test_start_refuses_an_unknown_benchmark(tmp_path):
    done = run("start.sh", "--epochs", "1", cwd=tmp_path, env={"BENCH": "nosuch"})
    assert done.returncode != 0 and "BENCH=nosuch: no benchmarks/bench_nosuch.py" in done.stderr


def test_the_llm_pass_scripts_refuse_missing_data_and_an_unknown_step(tmp_path):
    """``llm_pass/prepare.sh`` names the missing Beauty file before it replaces ``.devcarry/llm*`` (a half-made
    carry would travel); ``llm_pass/setup.sh`` takes only the steps 1, 2, 3."""
    carry = DEVICE.parent.parent / ".devcarry" / "llm1"
    before = sorted(carry.rglob("*")) if carry.exists() else None
    done = run("llm_pass/prepare.sh", str(tmp_path / "nodata"), cwd=tmp_path)
    assert done.returncode != 0 and f"{tmp_path}/nodata/beauty.inter is missing" in done.stderr
    assert (sorted(carry.rglob("*")) if carry.exists() else None) == before
    done = run("llm_pass/setup.sh", "4", cwd=tmp_path)
    assert done.returncode != 0 and "usage: setup.sh 1|2|3" in done.stderr
