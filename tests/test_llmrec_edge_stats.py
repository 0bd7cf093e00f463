"""``benchmarks/llmrec_edge_stats.py``: ranks of the LLM's picks among the candidates and their held-out
shares, on a hand-made two-user augmentation."""

import pytest

from benchmarks import llmrec_edge_stats


def write(folder, name, header, rows):
    (folder / f"toy.{name}").write_text("\n".join([header] + ["\t".join(row) for row in rows]) + "\n")


def test_edge_stats_by_hand(tmp_path, capsys):
    folder = tmp_path / "toy"
    folder.mkdir()
    write(folder, "lrcand", "uid:token\tcandidates:token_seq", [("u1", "a b c"), ("u2", "c a b")])
    write(folder, "lredge", "uid:token\tpos:token\tneg:token", [("u1", "a", "b"), ("u2", "b", "c")])
    write(folder, "llmrec_valid.inter", "user_id:token\titem_id:token", [("u1", "a")])
    write(folder, "llmrec_test.inter", "user_id:token\titem_id:token", [("u2", "c"), ("u2", "a")])
    stats = llmrec_edge_stats.edge_stats(folder, "toy")
    assert stats["held_at"] == [2, 1, 0]  # rank 1: u1's a and u2's c; rank 2: u2's a
    assert stats["liked"] == {0: 1, 2: 1} and stats["disliked"] == {1: 1, 0: 1}
    assert (stats["held_liked"], stats["held_disliked"]) == (1, 1)
    assert stats["held_liked_if_by_rank"] == pytest.approx(2 / 2 + 0 / 2)
    llmrec_edge_stats.main(["--data_dir", str(tmp_path), "--dataset", "toy"])
    assert "| 1 | 1.000 | 1 | 1 |" in capsys.readouterr().out
    (folder / "toy.lredge").unlink()
    with pytest.raises(SystemExit, match="toy.lredge"):
        llmrec_edge_stats.main(["--data_dir", str(tmp_path), "--dataset", "toy"])
