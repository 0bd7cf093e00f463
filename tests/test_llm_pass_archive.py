"""``benchmarks/llm_pass_archive.py``: a pack unpacks to the same cache rows and output bytes."""

import sqlite3
import tarfile

import pytest

from benchmarks.llm_pass_archive import pack, unpack


def test_pack_then_unpack_gives_the_cache_and_outputs_back(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    with sqlite3.connect(cache / "chat.sqlite") as db:
        db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, value BLOB)")
        db.executemany("INSERT INTO answers VALUES (?, ?)", [("a", b"1"), ("b", b"2")])
    folder = tmp_path / "aug" / "toy"
    folder.mkdir(parents=True)
    for name in ("toy.ccgcand", "toy.ccgcand.manifest.json", "toy.pseudo.llm-ids", "toy.other"):
        (folder / name).write_text(name * 3)
    archive = tmp_path / "results" / "pass.tgz"
    names = pack(archive, cache, folder, "toy", ["ccgcand", "pseudo.llm-ids", "arv.llm"])
    assert names == ["cache/chat.sqlite", "data/toy.ccgcand", "data/toy.ccgcand.manifest.json", "data/toy.pseudo.llm-ids"]

    written = unpack(archive, tmp_path / "new_cache", tmp_path / "new_aug" / "toy")
    assert len(written) == 4
    with sqlite3.connect(tmp_path / "new_cache" / "chat.sqlite") as db:
        assert db.execute("SELECT key, value FROM answers ORDER BY key").fetchall() == [("a", b"1"), ("b", b"2")]
    assert (tmp_path / "new_aug" / "toy" / "toy.pseudo.llm-ids").read_text() == "toy.pseudo.llm-ids" * 3


def test_unpack_refuses_a_path_outside_its_folders(tmp_path):
    archive = tmp_path / "bad.tgz"
    evil = tmp_path / "evil"
    evil.write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(evil, arcname="data/../../evil")
    with pytest.raises(SystemExit, match="not a cache/ or data/ file"):
        unpack(archive, tmp_path / "c", tmp_path / "d")
