"""Shared fixtures: tiny atomic datasets written by the tests themselves, and a quiet RecBole."""

import random
import sys

import pytest
import torch

torch.set_num_threads(1)


def write_tiny_dataset(root, name="tiny", n_users=30, n_items=20, min_len=5, max_len=14, seed=7,
                       with_items=True):
    """A small chronological dataset in RecBole's atomic format: ``root/name/name.inter`` (+ ``.item``).

    Item popularity is skewed (low ids popular) so that tail and head groups are both populated.
    """
    rng = random.Random(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = [1.0 / (i + 1) for i in range(n_items)]
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(1, n_users + 1):
        length = rng.randint(min_len, max_len)
        items = []
        while len(items) < length:
            item = rng.choices(range(1, n_items + 1), weights=weights)[0]
            if item not in items:
                items.append(item)
        for step, item in enumerate(items):
            lines.append(f"u{user}\ti{item}\t{1000 + 10 * step}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if with_items:
        rows = ["item_id:token\ttitle:token\tbrand:token\tprice:float"]
        for item in range(1, n_items + 1):
            price = "" if item % 5 == 0 else f"{item * 1.5:.2f}"
            rows.append(f"i{item}\tProduct number {item}\tBrand{item % 3}\t{price}")
        (folder / f"{name}.item").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def tiny_dataset(tmp_path):
    """Path of the data root (pass as ``data_path``) holding dataset ``tiny``."""
    write_tiny_dataset(tmp_path)
    return tmp_path


@pytest.fixture
def fast_settings(tmp_path):
    """Overrides that make a RecBole run take seconds: tiny model, one epoch, files under tmp."""
    return {
        "epochs": 1,
        "show_progress": False,
        "state": "ERROR",
        "checkpoint_dir": str(tmp_path / "saved"),
        "results_dir": str(tmp_path / "results"),
        "eval_batch_size": 64,
        "train_batch_size": 64,
        "hidden_size": 16,
        "embedding_size": 16,
        "inner_size": 32,
        "n_heads": 1,
        "n_layers": 1,
        "MAX_ITEM_LIST_LENGTH": 10,
    }


@pytest.fixture(autouse=True)
def clean_argv(monkeypatch):
    """pytest's own arguments must not reach RecBole's Config (it also guards against this itself)."""
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
