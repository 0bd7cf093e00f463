"""Manifests: what an output was built from, so that it is reused only while that still holds.

An output is fresh when its manifest's fingerprint (input file hashes, versions, every setting that
changes the output) equals the current one *and* the output file still has the hash recorded in
the manifest. Anything else is stale and is rebuilt, never mixed with new results.
"""

import json
from pathlib import Path
from typing import Optional, Tuple

from recbole_llmaug.augment.atomic import sha256_file, write_text_atomic

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + MANIFEST_SUFFIX)


def normalised(payload: dict) -> dict:
    """The payload as it will read back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(payload, sort_keys=True, default=str))


def load_manifest(output: Path) -> Optional[dict]:
    try:
        return json.loads(manifest_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def freshness(output: Path, fingerprint: dict) -> Tuple[bool, str]:
    """(is_fresh, why not) for ``output`` against the current ``fingerprint``."""
    if not output.is_file():
        return False, "no output yet"
    manifest = load_manifest(output)
    if manifest is None:
        return False, "no readable manifest"
    if manifest.get("manifest_format") != MANIFEST_FORMAT:
        return False, "manifest format changed"
    if manifest.get("fingerprint") != normalised(fingerprint):
        old, new = manifest.get("fingerprint") or {}, normalised(fingerprint)
        changed = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
        return False, f"changed: {', '.join(changed)}"
    if sha256_file(output) != manifest.get("output", {}).get("sha256"):
        return False, "output file differs from the one the manifest describes"
    return True, ""


def write_manifest(output: Path, manifest: dict) -> None:
    manifest = dict(manifest, manifest_format=MANIFEST_FORMAT)
    write_text_atomic(manifest_path(output), json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
