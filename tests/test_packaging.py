"""Installation: a wheel (non-editable ``pip install .``) carries the property files, so the defaults
of overall.yaml and the model files are found without the source checkout."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_non_editable_install_finds_its_property_files(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    code = (
        "import json; from recbole_llmaug.defaults import properties_dir; "
        "from recbole_llmaug.config import load_settings; "
        "s = load_settings('ml-100k', 'LLMESR'); "
        "print(json.dumps({'dir': str(properties_dir()), 'backbone': s['backbone'], "
        "'max_len': s['MAX_ITEM_LIST_LENGTH'], 'topk': s['topk']}))"
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         check=True, capture_output=True, text=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert Path(found["dir"]) == site / "recbole_llmaug" / "properties"
    # overall.yaml, dataset/ml-100k.yaml and model/LLMESR.yaml all took effect
    assert (found["backbone"], found["max_len"], found["topk"]) == ("SASRec", 50, [10])
