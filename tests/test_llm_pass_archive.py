"""``benchmarks/llm_pass_archive.py``: a pack unpacks to the same cache rows and output bytes."""

import sqlite3
import tarfile

import pytest

from benchmarks.llm_pass_archive import pack, parts_of, unpack


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


def _rows(path, table="answers"):
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT key, value FROM {table} ORDER BY key").fetchall()


def test_parts_hold_only_what_the_earlier_parts_lack_and_unpack_in_order(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    with sqlite3.connect(cache / "chat.sqlite") as db:
        db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("CREATE TABLE failures (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.executemany("INSERT INTO answers VALUES (?, ?)", [("a", b"1"), ("b", b"2")])
    folder = tmp_path / "aug" / "toy"
    folder.mkdir(parents=True)
    (folder / "toy.lrcand").write_text("candidates")
    parts = tmp_path / "results" / "pass"

    assert pack(parts, cache, folder, "toy", ["lrcand", "lredge"]) == ["cache/chat.sqlite", "data/toy.lrcand"]
    with sqlite3.connect(cache / "chat.sqlite") as db:
        db.execute("INSERT INTO answers VALUES ('c', x'33')")
        db.execute("UPDATE answers SET value = x'3232' WHERE key = 'b'")
        db.execute("INSERT INTO failures VALUES ('f', x'30')")
    assert pack(parts, cache, folder, "toy", ["lrcand", "lredge"]) == ["cache/chat.sqlite"]
    assert pack(parts, cache, folder, "toy", ["lrcand", "lredge"]) == []  # nothing new: no part
    (folder / "toy.lredge").write_text("edges")
    assert pack(parts, cache, folder, "toy", ["lrcand", "lredge"]) == ["data/toy.lredge"]
    assert [path.name for path in parts_of(parts)] == ["part-000.tgz", "part-001.tgz", "part-002.tgz"]
    with tarfile.open(parts / "part-001.tgz") as tar:
        tar.extract("cache/chat.sqlite", tmp_path / "second", filter="data")
    assert _rows(tmp_path / "second" / "cache" / "chat.sqlite") == [("b", b"22"), ("c", b"3")]

    new_cache = tmp_path / "new_cache"
    new_cache.mkdir()
    with sqlite3.connect(new_cache / "chat.sqlite") as db:  # a cache of its own: merged into, not replaced
        db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("INSERT INTO answers VALUES ('z', x'39')")
    unpack(parts, new_cache, tmp_path / "new_aug" / "toy")
    assert _rows(new_cache / "chat.sqlite") == [("a", b"1"), ("b", b"22"), ("c", b"3"), ("z", b"9")]
    assert _rows(new_cache / "chat.sqlite", "failures") == [("f", b"0")]
    assert (tmp_path / "new_aug" / "toy" / "toy.lrcand").read_text() == "candidates"
    assert (tmp_path / "new_aug" / "toy" / "toy.lredge").read_text() == "edges"


def test_unpack_of_a_folder_without_parts_says_so(tmp_path):
    with pytest.raises(SystemExit, match="holds no part"):
        unpack(tmp_path, tmp_path / "c", tmp_path / "d")
