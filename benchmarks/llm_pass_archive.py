"""Keep an LLM pass across machines: pack its answer cache and augmented outputs into small archives
under ``benchmarks/results/``, and unpack them where the augmentor looks, so that a pass cut short resumes
and a finished one reproduces its outputs with no model call.

``--archive`` is either one ``.tgz`` or a folder of parts. ``pack`` into a ``.tgz`` copies
``<cache_dir>/chat.sqlite`` through SQLite's backup (consistent even while a pass is writing), compacts it,
and adds ``<augment_path>/<dataset>/<dataset>.<suffix>`` and its manifest for every ``--outputs`` suffix
that exists. ``pack`` into a folder adds one ``part-NNN.tgz`` holding only what the earlier parts lack:
the cache rows that are new or changed and the outputs whose bytes changed. A pass longer than a session
is committed part by part (each commit adds what the pass did since the last one, not the whole cache
again), so that a machine that loses its disk loses at most the work since the last part.
``unpack`` puts them back, parts in order: cache rows are merged into ``--cache_dir``'s ``chat.sqlite``
(a row already there is replaced by the archive's), ``data/*`` files are written into
``<augment_path>/<dataset>/`` (a later part's file replaces an earlier one's).

    python benchmarks/llm_pass_archive.py pack --dataset beauty --augment_path ../runs/ls/data \\
        --cache_dir ../runs/ls/cache --outputs ccgcand arvcand pseudo.llm-ids arv.llm \\
        --archive benchmarks/results/llmser_beauty_llm_pass.tgz
    python benchmarks/llm_pass_archive.py unpack --dataset beauty --augment_path ../runs/ls/data \\
        --cache_dir ../runs/ls/cache --archive benchmarks/results/llmser_beauty_llm_pass.tgz
"""

import argparse
import hashlib
import re
import sqlite3
import tarfile
import tempfile
from pathlib import Path

CHAT_CACHE = "chat.sqlite"
PART = re.compile(r"part-(\d{3,})\.tgz")


def _backup(cache_dir: Path, copy: Path) -> None:
    """A consistent, compacted copy of ``cache_dir``'s cache, even while a pass is writing to it."""
    source = sqlite3.connect(cache_dir / CHAT_CACHE)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
        target.execute("VACUUM")
    finally:
        source.close()
        target.close()


def _tables(db: sqlite3.Connection, schema: str = "main") -> dict:
    """``{table: CREATE TABLE statement}`` of one attached database."""
    rows = db.execute(f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = 'table'").fetchall()
    return {name: sql for name, sql in rows if not name.startswith("sqlite_")}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parts_of(folder: Path) -> list:
    """The folder's ``part-NNN.tgz`` files in the order they were written."""
    found = [(int(PART.fullmatch(path.name).group(1)), path) for path in folder.glob("part-*.tgz")
             if PART.fullmatch(path.name)]
    return [path for _, path in sorted(found)]


def _members(archive: Path):
    """``(kind, name, bytes)`` of each ``cache/`` or ``data/`` file in ``archive``; refuses anything else."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isdir():
                continue
            kind, _, name = member.name.removeprefix("./").partition("/")  # tar -C folder . writes ./cache/...
            if not member.isfile() or kind not in ("cache", "data") or "/" in name or name in ("", ".", ".."):
                raise SystemExit(f"error: {archive} holds '{member.name}', which is not a cache/ or data/ file")
            yield kind, name, tar.extractfile(member).read()


def _output_files(folder: Path, dataset: str, outputs) -> list:
    return [path for suffix in outputs
            for path in (folder / f"{dataset}.{suffix}", folder / f"{dataset}.{suffix}.manifest.json")
            if path.is_file()]


def pack(archive: Path, cache_dir: Path, folder: Path, dataset: str, outputs) -> list:
    """Write ``archive`` (one ``.tgz``, or a new part in a folder); returns the names it holds."""
    if archive.suffix != ".tgz":
        return pack_part(archive, cache_dir, folder, dataset, outputs)
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / CHAT_CACHE
        _backup(cache_dir, copy)
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(copy, arcname=f"cache/{CHAT_CACHE}")
            names.append(f"cache/{CHAT_CACHE}")
            for path in _output_files(folder, dataset, outputs):
                tar.add(path, arcname=f"data/{path.name}")
                names.append(f"data/{path.name}")
    return names


def pack_part(parts: Path, cache_dir: Path, folder: Path, dataset: str, outputs) -> list:
    """Add ``part-NNN.tgz`` to ``parts`` with the cache rows and outputs the earlier parts lack.

    Returns its names, or ``[]`` (and writes no part) when nothing changed since the last one.
    """
    earlier = parts_of(parts) if parts.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        known_rows, known_data = set(), {}
        for index, part in enumerate(earlier):
            for kind, name, data in _members(part):
                if kind == "data":
                    known_data[name] = _digest(data)
                    continue
                old = tmp / f"old{index}.sqlite"
                old.write_bytes(data)
                with sqlite3.connect(old) as db:
                    for table in _tables(db):
                        known_rows.update((table, key, _digest(bytes(value)))
                                          for key, value in db.execute(f"SELECT key, value FROM {table}"))
        copy = tmp / "current.sqlite"
        _backup(cache_dir, copy)
        delta = tmp / CHAT_CACHE
        new_rows = 0
        with sqlite3.connect(copy) as source, sqlite3.connect(delta) as target:
            for table, create in _tables(source).items():
                target.execute(create)
                fresh = [(key, value) for key, value in source.execute(f"SELECT key, value FROM {table}")
                         if (table, key, _digest(bytes(value))) not in known_rows]
                target.executemany(f"INSERT INTO {table} (key, value) VALUES (?, ?)", fresh)
                new_rows += len(fresh)
        changed = [path for path in _output_files(folder, dataset, outputs)
                   if known_data.get(path.name) != _digest(path.read_bytes())]
        if not new_rows and not changed:
            return []
        number = int(PART.fullmatch(earlier[-1].name).group(1)) + 1 if earlier else 0
        parts.mkdir(parents=True, exist_ok=True)
        names = []
        with tarfile.open(parts / f"part-{number:03d}.tgz", "w:gz") as tar:
            if new_rows:
                tar.add(delta, arcname=f"cache/{CHAT_CACHE}")
                names.append(f"cache/{CHAT_CACHE}")
            for path in changed:
                tar.add(path, arcname=f"data/{path.name}")
                names.append(f"data/{path.name}")
    return names


def _merge_cache(data: bytes, target: Path) -> None:
    """Insert every row of the cache file ``data`` into ``target`` (created if missing), replacing its own."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        incoming = Path(tmp) / CHAT_CACHE
        incoming.write_bytes(data)
        db = sqlite3.connect(target)
        try:
            db.execute("ATTACH DATABASE ? AS incoming", (str(incoming),))
            have = _tables(db)
            with db:
                for table, create in _tables(db, "incoming").items():
                    if table not in have:
                        db.execute(create)
                    db.execute(f"INSERT OR REPLACE INTO main.{table} (key, value) "
                               f"SELECT key, value FROM incoming.{table}")
            db.execute("DETACH DATABASE incoming")
        finally:
            db.close()


def unpack(archive: Path, cache_dir: Path, folder: Path) -> list:
    """Merge ``archive``'s (or each part's, in order) ``cache/`` into ``cache_dir`` and write its ``data/``
    into ``folder``; returns the files written."""
    archives = parts_of(archive) if archive.is_dir() else [archive]
    if not archives:
        raise SystemExit(f"error: {archive} holds no part-NNN.tgz")
    written = []
    for one in archives:
        for kind, name, data in _members(one):
            target = (cache_dir if kind == "cache" else folder) / name
            if kind == "cache":
                _merge_cache(data, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            if target not in written:
                written.append(target)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("pack", "unpack"))
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--augment_path", required=True, help="the augmentor's --augment_path")
    parser.add_argument("--cache_dir", required=True, help="the augmentor's --llmaug_cache_dir")
    parser.add_argument("--archive", required=True,
                        help="the .tgz to write or read, or a folder of parts (pack adds a part to it)")
    parser.add_argument("--outputs", nargs="*", default=[], help="output suffixes to pack (with their manifests)")
    args = parser.parse_args(argv)
    folder = Path(args.augment_path) / args.dataset
    archive = Path(args.archive)
    if args.command == "pack":
        if not (Path(args.cache_dir) / CHAT_CACHE).is_file():
            raise SystemExit(f"error: no {CHAT_CACHE} in {args.cache_dir}: is it the augmentor's --llmaug_cache_dir?")
        names = pack(archive, Path(args.cache_dir), folder, args.dataset, args.outputs)
        if not names:
            print(f"{archive}: nothing new since its last part; no part written")
            return
        written = archive if archive.suffix == ".tgz" else parts_of(archive)[-1]
        print(f"{written}: {len(names)} files ({written.stat().st_size / 1e6:.2f} MB): {' '.join(names)}")
    else:
        written = unpack(archive, Path(args.cache_dir), folder)
        print("\n".join(str(path) for path in written))


if __name__ == "__main__":
    main()
