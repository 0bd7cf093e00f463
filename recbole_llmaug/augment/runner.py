"""Running augmentors: reuse fresh outputs, rebuild stale ones, write output + manifest atomically.

A file lock per output keeps parallel processes (e.g. Ray Tune trials calling
:func:`ensure_augmented` at once) from building the same file twice or reading it half-written.
"""

import datetime
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping

from filelock import FileLock

from recbole_llmaug.augment import embedding_augmentors as emb
from recbole_llmaug.augment.atomic import sha256_file
from recbole_llmaug.augment.dataset import DatasetFiles
from recbole_llmaug.augment.manifest import freshness, load_manifest, normalised, write_manifest
from recbole_llmaug.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augmentor:
    name: str
    suffix: str  # output file: <dataset>.<suffix>
    depends_on: tuple
    fingerprint: Callable[[DatasetFiles], dict]
    build: Callable[[DatasetFiles, object], dict]


AUGMENTORS: Dict[str, Augmentor] = {
    spec.name: spec for spec in (
        Augmentor("item_emb", "itememb", (), emb.item_emb_fingerprint, emb.build_item_emb),
        Augmentor("user_emb", "useremb", (), emb.user_emb_fingerprint, emb.build_user_emb),
        Augmentor("sim_users", "simuser", ("user_emb",), emb.sim_users_fingerprint, emb.build_sim_users),
    )
}
GROUPS = {"llmesr": ("item_emb", "user_emb", "sim_users")}


def expand(names: Iterable[str]) -> List[str]:
    """Augmentor names with groups unfolded and dependencies first, each once."""
    ordered: List[str] = []

    def visit(name):
        if name in GROUPS:
            for member in GROUPS[name]:
                visit(member)
            return
        if name not in AUGMENTORS:
            known = sorted(AUGMENTORS) + sorted(GROUPS)
            raise UserError(f"Unknown augmentor '{name}'. Choose one of {known}, e.g. --augment=llmesr.")
        for dependency in AUGMENTORS[name].depends_on:
            visit(dependency)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def _prepare(settings: Mapping) -> DatasetFiles:
    from recbole_llmaug.data import check_dataset

    check_dataset(settings)
    files = DatasetFiles(settings)
    files.output_folder.mkdir(parents=True, exist_ok=True)
    if not os.access(files.output_folder, os.W_OK):
        raise UserError(
            f"Augmentor outputs go to {files.output_folder}, which is not writable. "
            "Pass --augment_path=<writable dir> to write them elsewhere."
        )
    return files


def _run_one(spec: Augmentor, files: DatasetFiles) -> dict:
    output = files.output_path(spec.suffix)
    with FileLock(str(output.with_name(f".{output.name}.lock"))):
        fingerprint = spec.fingerprint(files)
        fresh, reason = freshness(output, fingerprint)
        if fresh:
            logger.info("%s: reusing %s (manifest matches inputs and settings)", spec.name, output)
            return dict(load_manifest(output), reused=True)
        logger.info("%s: building %s (%s)", spec.name, output, reason)
        started = time.perf_counter()
        report = spec.build(files, output)
        manifest = {
            "augmentor": spec.name,
            "dataset": files.name,
            "output": {"file": output.name, "sha256": sha256_file(output)},
            "fingerprint": normalised(fingerprint),
            **report,
            "wall_time_s": round(time.perf_counter() - started, 3),
            "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        write_manifest(output, manifest)
        logger.info("%s: wrote %s in %.1fs", spec.name, output, manifest["wall_time_s"])
        return dict(manifest, reused=False)


def run_augmentor(name: str, settings: Mapping) -> dict:
    """Build (or reuse) one augmentor's output and return its manifest.

    A group such as ``llmesr`` returns ``{"augmentor": name, "outputs": {member: manifest}}``.
    """
    files = _prepare(settings)
    manifests = {member: _run_one(AUGMENTORS[member], files) for member in expand([name])}
    if name in manifests:
        return manifests[name]
    return {"augmentor": name, "dataset": files.name, "outputs": manifests}


def ensure_augmented(names: List[str], settings: Mapping) -> None:
    """Make sure the outputs of ``names`` (and their dependencies) exist and are fresh."""
    files = _prepare(settings)
    for member in expand(names):
        _run_one(AUGMENTORS[member], files)
