"""Shared fixtures: tiny atomic datasets written by the tests themselves, and a quiet RecBole."""

import random
import sys

import pytest
import torch

torch.set_num_threads(1)


INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
ITEM_HEADER = "item_id:token\ttitle:token\tbrand:token\tcategories:token_seq\tprice:float"


def write_tiny_dataset(root, name="tiny", n_users=30, n_items=20, min_len=5, max_len=14, seed=7,
                       with_items=True, inter=None, item=None):
    """The one writer of test datasets: ``root/name/name.inter`` (+ ``.item``) in RecBole's atomic format.

    Generated (default): ``n_users`` users with ``min_len``..``max_len`` distinct items each, in time
    order; item popularity is skewed (low ids popular) so that tail and head groups are both populated;
    the ``.item`` file has titles, brands, categories and prices (every 5th price missing).
    Given: ``inter``/``item`` are the data rows (tab-separated, under the standard headers above),
    written as they are, for tests that need exact rows (ties, gaps, out-of-order times).
    """
    rng = random.Random(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if inter is None:
        weights = [1.0 / (i + 1) for i in range(n_items)]
        rows = []
        for user in range(1, n_users + 1):
            length = rng.randint(min_len, max_len)
            items = []
            while len(items) < length:
                choice = rng.choices(range(1, n_items + 1), weights=weights)[0]
                if choice not in items:
                    items.append(choice)
            rows += [f"u{user}\ti{choice}\t{1000 + 10 * step}" for step, choice in enumerate(items)]
        inter = "\n".join(rows) + "\n"
    (folder / f"{name}.inter").write_text(INTER_HEADER + "\n" + inter, encoding="utf-8")
    if with_items and item is None:
        rows = []
        for index in range(1, n_items + 1):
            price = "" if index % 5 == 0 else f"{index * 1.5:.2f}"
            rows.append(f"i{index}\tProduct number {index}\tBrand{index % 3}\t'Beauty', 'Group{index % 4}'\t{price}")
        item = "\n".join(rows) + "\n"
    if with_items:
        (folder / f"{name}.item").write_text(ITEM_HEADER + "\n" + item, encoding="utf-8")
    return folder


def histories(folder, name="tiny"):
    """``{user: [items in time order]}`` of a dataset written by :func:`write_tiny_dataset`."""
    found = {}
    lines = (folder / f"{name}.inter").read_text(encoding="utf-8").splitlines()[1:]
    for user, item, time in sorted((line.split("\t") for line in lines), key=lambda row: float(row[2])):
        found.setdefault(user, []).append(item)
    return found


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


# ------------------------------------------------------------------ the fake endpoint (parsing and error handling only)
@pytest.fixture
def fake_server():
    """The fake OpenAI-compatible endpoint of ``tests/fake_openai.py``: for unit tests of parsing, validation and
    error handling only (pipeline tests use the real local model)."""
    from fake_openai import FakeOpenAIServer

    server = FakeOpenAIServer()
    yield server
    server.close()


def fake_llm_settings(server, tmp_path, monkeypatch, key="sk-test", no_backoff=True, **overrides):
    """Settings that point the LLM layer at ``server`` (model ``fake-model``, caches under ``tmp_path``), the API
    key ``key`` in the environment; ``no_backoff``: retries without waiting (the bounds are under test, not the
    delays)."""
    monkeypatch.setenv("OPENAI_API_KEY", key)
    if no_backoff:
        monkeypatch.setattr("recbole_llmaug.llm.chat.backoff_delay", lambda *args: 0.0)
    return {"llm_base_url": server.base_url, "llm_model": "fake-model", "llmaug_cache_dir": str(tmp_path / "cache"),
            **overrides}
