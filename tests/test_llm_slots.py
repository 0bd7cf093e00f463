"""``benchmarks/llm_slots.sh``: bad input exits 2 with its usage before any server starts or any row is written
(a measuring window is minutes of the machine's two cores)."""

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "llm_slots.sh"
RESULTS = SCRIPT.parent / "results" / "llm_slots.md"


@pytest.mark.parametrize("args, says", [
    ([], "give a window length and at least one number of slots"),
    (["360"], "give a window length and at least one number of slots"),
    (["360", "4", "x"], "'x' is not a positive whole number"),
    (["360", "0"], "'0' is not a positive whole number"),
    (["-5", "4"], "'-5' is not a positive whole number"),
    (["30", "4"], "a window of 30 s is too short to measure"),
])
def test_bad_input_exits_2_with_its_usage_and_writes_no_row(args, says):
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "PY": "/nonexistent/python"})
    assert done.returncode == 2 and "usage: llm_slots.sh SECONDS SLOTS" in done.stderr and says in done.stderr
    assert (RESULTS.read_bytes() if RESULTS.exists() else None) == before
