"""Running the augmentor stage: reuse fresh outputs, rebuild stale ones, write output + manifest atomically.

What exists is declared in :mod:`recbole_llmaug.augment.outputs`; this module only runs it.

A file lock per output keeps parallel processes (e.g. Ray Tune trials calling
:func:`ensure_augmented` at once) from building the same file twice or reading it half-written.
"""

import datetime
import logging
import os
import time
from typing import Dict, Iterable, List, Mapping

from filelock import FileLock

from recbole_llmaug.augment.atomic import sha256_file
from recbole_llmaug.augment.files import DatasetFiles
from recbole_llmaug.augment.manifest import freshness, load_manifest, normalised, write_manifest
from recbole_llmaug.augment.outputs import Output, expand, get_output, system_of
from recbole_llmaug.data.folders import check_dataset
from recbole_llmaug.errors import UserError

logger = logging.getLogger(__name__)


def _prepare(names: Iterable[str], settings: Mapping) -> DatasetFiles:
    """Check the dataset (its files once per run, ``.item`` included: item texts come from it), the
    output folder, and which split the outputs follow."""
    check_dataset(settings, also=("item",))
    system = system_of(names)
    if settings.get("MODEL_TYPE") is None and system is not None:
        from recbole.utils import ModelType

        split = ModelType.SEQUENTIAL if system.split == "sequential" else ModelType.GENERAL
        settings = dict(settings, MODEL_TYPE=split)
    files = DatasetFiles(settings)
    files.output_folder.mkdir(parents=True, exist_ok=True)
    if not os.access(files.output_folder, os.W_OK):
        raise UserError(
            f"Augmentor outputs go to {files.output_folder}, which is not writable. "
            "Pass --augment_path=<writable dir> to write them elsewhere."
        )
    return files


def _run_one(spec: Output, files: DatasetFiles) -> dict:
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


class AugmentationInterrupted(KeyboardInterrupt):
    """Ctrl-C during the augmentor; the message says what was kept and what rerunning does."""


def _interrupted(current: str, done: Dict[str, dict], files: DatasetFiles) -> AugmentationInterrupted:
    from recbole_llmaug.llm.settings import cache_dir

    spec = get_output(current)
    kept = ", ".join(f"{name} ({files.output_path(get_output(name).suffix).name})" for name in done) or "no output"
    return AugmentationInterrupted(
        f"Interrupted while building {current} ({files.output_path(spec.suffix)}): that file was not written "
        f"(outputs are replaced only when complete). Kept: {kept} finished; every LLM answer and embedding "
        f"computed so far is cached in {cache_dir(files.settings)}. Rerun the same command to continue: "
        "finished outputs are reused and cached texts are not sent to the model again."
    )


def _run_all(members: List[str], files: DatasetFiles) -> Dict[str, dict]:
    done: Dict[str, dict] = {}
    for member in members:
        try:
            done[member] = _run_one(get_output(member), files)
        except KeyboardInterrupt:
            raise _interrupted(member, done, files) from None
    return done


def run_augmentor(name: str, settings: Mapping) -> dict:
    """Build (or reuse) one output, or every output of a system (those its settings select, see
    :class:`~recbole_llmaug.augment.outputs.System`), and return its manifest.

    A system such as ``llmesr`` returns ``{"augmentor": name, "outputs": {member: manifest}}``.
    """
    members = expand([name], settings)
    files = _prepare([name], settings)
    manifests = _run_all(members, files)
    if name in manifests:
        return manifests[name]
    return {"augmentor": name, "dataset": files.name, "outputs": manifests}


def ensure_augmented(names: List[str], settings: Mapping) -> Dict[str, dict]:
    """Make sure the outputs of ``names`` (and their dependencies) exist and are fresh; their manifests."""
    members = expand(names, settings)
    files = _prepare(names, settings)
    return _run_all(members, files)
