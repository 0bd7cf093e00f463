"""Keep an LLM pass across machines: pack its answer cache and augmented outputs into one small archive
under ``benchmarks/results/``, and unpack it where the augmentor looks, so that a pass cut short resumes
and a finished one reproduces its outputs with no model call.

``pack`` copies ``<cache_dir>/chat.sqlite`` through SQLite's backup (consistent even while a pass is
writing) and compacts it, and adds ``<augment_path>/<dataset>/<dataset>.<suffix>`` and its manifest for
every ``--outputs`` suffix that exists. ``unpack`` puts them back: ``cache/*`` into ``--cache_dir``,
``data/*`` into ``<augment_path>/<dataset>/``.

    python benchmarks/llm_pass_archive.py pack --dataset beauty --augment_path ../runs/ls/data \\
        --cache_dir ../runs/ls/cache --outputs ccgcand arvcand pseudo.llm-ids arv.llm \\
        --archive benchmarks/results/llmser_beauty_llm_pass.tgz
    python benchmarks/llm_pass_archive.py unpack --dataset beauty --augment_path ../runs/ls/data \\
        --cache_dir ../runs/ls/cache --archive benchmarks/results/llmser_beauty_llm_pass.tgz
"""

import argparse
import sqlite3
import tarfile
import tempfile
from pathlib import Path

CHAT_CACHE = "chat.sqlite"


def pack(archive: Path, cache_dir: Path, folder: Path, dataset: str, outputs) -> list:
    """Write ``archive``; returns the names it holds."""
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / CHAT_CACHE
        source = sqlite3.connect(cache_dir / CHAT_CACHE)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
            target.execute("VACUUM")
        finally:
            source.close()
            target.close()
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(copy, arcname=f"cache/{CHAT_CACHE}")
            names.append(f"cache/{CHAT_CACHE}")
            for suffix in outputs:
                for path in (folder / f"{dataset}.{suffix}", folder / f"{dataset}.{suffix}.manifest.json"):
                    if path.is_file():
                        tar.add(path, arcname=f"data/{path.name}")
                        names.append(f"data/{path.name}")
    return names


def unpack(archive: Path, cache_dir: Path, folder: Path) -> list:
    """Extract ``archive``'s ``cache/`` into ``cache_dir`` and ``data/`` into ``folder``; returns the files."""
    written = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isdir():
                continue
            kind, _, name = member.name.removeprefix("./").partition("/")  # tar -C folder . writes ./cache/...
            if not member.isfile() or kind not in ("cache", "data") or "/" in name or name in ("", ".", ".."):
                raise SystemExit(f"error: {archive} holds '{member.name}', which is not a cache/ or data/ file")
            target = (cache_dir if kind == "cache" else folder) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            written.append(target)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("pack", "unpack"))
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--augment_path", required=True, help="the augmentor's --augment_path")
    parser.add_argument("--cache_dir", required=True, help="the augmentor's --llmaug_cache_dir")
    parser.add_argument("--archive", required=True, help="the .tgz to write or read")
    parser.add_argument("--outputs", nargs="*", default=[], help="output suffixes to pack (with their manifests)")
    args = parser.parse_args(argv)
    folder = Path(args.augment_path) / args.dataset
    if args.command == "pack":
        names = pack(Path(args.archive), Path(args.cache_dir), folder, args.dataset, args.outputs)
        print(f"{args.archive}: {len(names)} files ({Path(args.archive).stat().st_size / 1e6:.2f} MB): {' '.join(names)}")
    else:
        written = unpack(Path(args.archive), Path(args.cache_dir), folder)
        print("\n".join(str(path) for path in written))


if __name__ == "__main__":
    main()
