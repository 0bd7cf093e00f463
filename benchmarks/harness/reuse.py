"""Which runs are already recorded, so that a matrix run again trains only what is missing.

A run is the same run when it trains the same model on the same input files under the same settings
(its *run key*) with the same code (its *code version*). Both are stored in every run record the harness
writes. ``run`` then looks for a finished record with the same key among the reports next to its own (the
folder of ``--results``: every benchmark's reports, so a backbone recorded by one benchmark serves another
with the same settings) and reuses it instead of training again.

* The run key hashes the model class, the dataset name, the sha256 of the dataset's atomic files linked
  from the data folder (not the augmented files linked next to them), and the run's settings without
  the ones that only say where files go or how fast the evaluation batches are (``NOT_RESULTS``). The
  seed and the eval mode are settings, so they are in it.
* The code version hashes the package's source and property files (``recbole_llmaug/``, ``properties/``) and
  the harness child that trains: a change in any of them may change a result, so by default
  (``--reuse same-code``) it trains again; ``--reuse same-config`` trusts records of other code versions
  (the report says so), ``--reuse none`` trains everything.

Records written before keys existed carry none and are never reused (``compare.py`` still collects them).
"""

import hashlib
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CODE_FOLDERS = (("recbole_llmaug", ("*.py", "*.yaml")), ("properties", ("*.yaml",)))
CODE_FILES = ("benchmarks/harness/child.py",)
# Settings that do not change a run's numbers: where files go, logging, the evaluation batch size.
NOT_RESULTS = frozenset({"data_path", "checkpoint_dir", "results_dir", "show_progress", "eval_batch_size",
                         "llmaug_cache_dir"})
MODES = ("same-code", "same-config", "none")
INPUT_KINDS = ("inter", "item", "user", "kg", "link", "net")  # RecBole's atomic files


def code_version(root: Path = REPO_ROOT) -> str:
    """12 hex digits over the files that decide a run's numbers (their paths and bytes, sorted)."""
    files = [path for folder, patterns in CODE_FOLDERS for pattern in patterns for path in (root / folder).rglob(pattern)]
    files += [root / name for name in CODE_FILES]
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def input_hashes(folder: Path) -> dict:
    """``{file name: sha256}`` of the dataset's own atomic files (``INPUT_KINDS``) linked into a work folder's
    dataset folder. Augmented files linked next to them are left out: they are derived from these inputs
    and the run's settings (their manifests check that), so a run reads the same whether they were linked
    or built in the work folder."""
    from recbole_llmaug.augment.atomic import sha256_file

    return {path.name: sha256_file(path) for path in sorted(Path(folder).iterdir())
            if path.is_symlink() and path.name.split(".", 1)[-1] in INPUT_KINDS}


def run_key(model: str, dataset: str, config: dict, inputs: dict) -> str:
    """16 hex digits naming what a run trains: model, dataset, inputs' hashes, result-relevant settings."""
    settings = {key: value for key, value in config.items() if key not in NOT_RESULTS}
    text = json.dumps({"model": model, "dataset": dataset, "inputs": inputs, "config": settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_runs(folder: Path) -> list:
    """The finished records with a run key in the reports (``*.json`` with ``results``) of ``folder``."""
    from benchmarks.harness.reports import read_records

    records = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            found = read_records(path)
        except (KeyError, TypeError, AttributeError, ValueError):  # a cost table or another JSON, not a report
            continue
        records += [record for record in found if record.get("run_key") and not record.get("failed")]
    return records


def find(records: list, key: str, version: str, mode: str):
    """The newest-listed record to reuse for ``key`` under ``mode``, or ``None`` (train it)."""
    if mode == "none":
        return None
    for record in reversed(records):
        if record["run_key"] == key and (mode == "same-config" or record.get("code_version") == version):
            return record
    return None
