"""The augmentor stage on tiny fixtures, with the real bundled all-MiniLM-L6-v2 (offline).

Covers: item texts from a template (missing fields skipped, never "nan"), training histories equal
to RecBole's own leave-one-out split, the three output files and their manifests, reuse of fresh
outputs, rebuild of stale ones, and clear errors for bad input.
"""

import json
import sys

import numpy as np
import pytest
from conftest import write_tiny_dataset

from recbole_llmaug.augment import ensure_augmented, run_augmentor
from recbole_llmaug.augment.files import DatasetFiles
from recbole_llmaug.augment.text_embeddings import item_texts, top_similar, user_texts, user_train_histories
from recbole_llmaug.augment.text import TextTemplate, clean_value
from recbole_llmaug.errors import UserError

BEAUTY_TEMPLATE = "{title}. Brand: {brand}. Categories: {categories}. Price: {price}"

# Rows deliberately out of time order, interleaved across users, with same-time ties whose file
# order is the intended one (as in Beauty). Users have 1, 2, 3, 4 and 6 interactions.
INTER_ROWS = """\
u6\ti1\t10
u4\ti3\t5
u6\ti2\t10
u3\ti4\t7
u6\ti5\t3
u4\ti1\t5
u2\ti2\t1
u6\ti3\t10
u3\ti5\t7
u4\ti6\t9
u6\ti6\t20
u1\ti4\t2
u2\ti6\t1
u3\ti1\t8
u6\ti4\t15
u4\ti2\t5
"""

ITEM_ROWS = """\
i1\tRed Lipstick\tCOKA\t'Beauty', 'Makeup', 'Lips'\t5.04
i2\tLip Liner &amp; Pencil\t\t'Beauty'\t
i3\tnan\tAcme\t\t3.5
i4\tHair Gel\tnan\t'Beauty', 'Hair Care'\t19.99
i5\tShampoo\tAcme\t\t
i6\tNail Polish\tGlossy\t'Beauty', 'Nails'\t7
"""


def write_dataset(root, name="tiny", inter=INTER_ROWS, item=ITEM_ROWS):
    return write_tiny_dataset(root, name, inter=inter, item=item, with_items=item is not None)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory):
    """One embedding cache for the module: each text is embedded by MiniLM once."""
    return tmp_path_factory.mktemp("llmaug_cache")


@pytest.fixture
def settings(tmp_path, embedding_cache):
    write_dataset(tmp_path)
    return {
        "dataset": "tiny", "data_path": str(tmp_path), "llmaug_cache_dir": str(embedding_cache),
        "item_text_template": BEAUTY_TEMPLATE, "sim_user_topn": 2,
    }


def read_rows(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


# ------------------------------------------------------------------ texts

def test_template_skips_missing_fields_with_their_labels():
    template = TextTemplate.parse(BEAUTY_TEMPLATE)
    full = {"title": "Red Lipstick", "brand": "COKA", "categories": "'Beauty', 'Makeup'", "price": "5.04"}
    assert template.render(full) == "Red Lipstick. Brand: COKA. Categories: Beauty, Makeup. Price: 5.04"
    assert template.render(dict(full, brand="nan", price="")) == "Red Lipstick. Categories: Beauty, Makeup"
    assert template.render(dict(full, title="NaN")) == "Brand: COKA. Categories: Beauty, Makeup. Price: 5.04"
    assert template.render({"title": "", "brand": "None"}) == ""
    assert clean_value("Lip Liner &amp; Pencil  ") == "Lip Liner & Pencil"


def test_item_texts_cover_item_and_inter_files(settings):
    texts = item_texts(DatasetFiles(settings))
    assert texts["i1"] == "Red Lipstick. Brand: COKA. Categories: Beauty, Makeup, Lips. Price: 5.04"
    assert texts["i2"] == "Lip Liner & Pencil. Categories: Beauty"
    assert texts["i3"] == "Brand: Acme. Price: 3.5"
    assert texts["i4"] == "Hair Gel. Categories: Beauty, Hair Care. Price: 19.99"
    assert not any("nan" in text.lower() for text in texts.values())


def recbole_train_histories(tmp_path, model, monkeypatch):
    """Training items per user (oldest first) from RecBole's own dataset split."""
    from recbole.config import Config
    from recbole.data import create_dataset
    from recbole.utils import ModelType

    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    config = Config(model=model, dataset="tiny", config_dict={
        "data_path": str(tmp_path), "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "train_neg_sample_args": None, "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
        "MAX_ITEM_LIST_LENGTH": 50, "show_progress": False, "state": "ERROR",
    })
    dataset = create_dataset(config)
    train = dataset.build()[0]
    users = dataset.id2token("user_id", train.inter_feat["user_id"].numpy())
    targets = dataset.id2token("item_id", train.inter_feat["item_id"].numpy())
    histories = {}
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        lists = train.inter_feat["item_id_list"].numpy()
        lengths = train.inter_feat["item_length"].numpy()
        for user, prefix, length, target in zip(users, lists, lengths, targets):
            sequence = list(dataset.id2token("item_id", prefix[:length])) + [target]
            if len(sequence) > len(histories.get(user, [])):
                histories[user] = sequence
    else:
        for user, target in zip(users, targets):
            histories.setdefault(user, []).append(target)
    return histories


@pytest.mark.parametrize("model", ["SASRec", "BPR"])
def test_training_histories_match_recbole_split(tmp_path, monkeypatch, model):
    write_dataset(tmp_path)
    from recbole_llmaug.utils import get_model

    settings = {"dataset": "tiny", "data_path": str(tmp_path), "MODEL_TYPE": get_model(model).type}
    ours = user_train_histories(DatasetFiles(settings))
    theirs = recbole_train_histories(tmp_path, model, monkeypatch)
    # A sequential dataset has no row for a user with a single interaction; every other user matches.
    assert {user: history for user, history in ours.items() if user in theirs} == theirs
    assert set(ours) - set(theirs) == ({"u1"} if model == "SASRec" else set())
    assert ours["u6"] == ["i5", "i1", "i2", "i3"]  # ties at t=10 keep file order; i4 valid, i6 test


def test_user_text_is_newest_training_titles_first(settings):
    texts = user_texts(DatasetFiles(dict(settings, user_text_max_items=2)))
    # u6 trains on i5, i1, i2, i3 (i3 has no title): the two newest titled ones, newest first.
    assert texts["u6"] == "Lip Liner & Pencil; Red Lipstick"
    assert texts["u4"] == "Red Lipstick"  # i3 (no title), i1; i2 is valid, i6 test
    # Sequential split: a user with 2 or 3 items trains on 2 of them (RecBole holds out target rows).
    assert texts["u2"] == "Nail Polish; Lip Liner & Pencil"
    assert texts["u3"] == "Shampoo; Hair Gel"  # i1 is the test item


# ------------------------------------------------------------------ pipeline

def test_llmesr_pipeline_writes_outputs_and_manifests(settings, tmp_path):
    manifest = run_augmentor("llmesr", settings)
    folder = tmp_path / "tiny"
    assert set(manifest["outputs"]) == {"item_emb", "user_emb", "sim_users"}

    header, rows = read_rows(folder / "tiny.itememb")
    assert header == ["iid:token", "item_emb:float_seq"]
    assert sorted(row[0] for row in rows) == ["i1", "i2", "i3", "i4", "i5", "i6"]
    vectors = np.array([row[1].split() for row in rows], dtype=np.float32)
    assert vectors.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    header, rows = read_rows(folder / "tiny.useremb")
    assert header == ["uid:token", "user_emb:float_seq"]
    assert sorted(row[0] for row in rows) == ["u1", "u2", "u3", "u4", "u6"]

    header, rows = read_rows(folder / "tiny.simuser")
    assert header == ["uid:token", "sim_uids:token_seq"]
    for user, neighbours in rows:
        assert len(neighbours.split()) == 2 and user not in neighbours.split()

    item_manifest = json.loads((folder / "tiny.itememb.manifest.json").read_text())
    assert item_manifest["embedding"] == {
        "backend": "sentence-transformers", "model": "all-MiniLM-L6-v2", "dimension": 384, "normalized": True,
    }
    assert set(item_manifest["fingerprint"]["inputs"]) == {"tiny.inter", "tiny.item"}
    assert item_manifest["counts"]["rows"] == 6 and item_manifest["counts"]["missing_text"] == 0
    assert item_manifest["fingerprint"]["text_version"]
    assert "wall_time_s" in item_manifest and "usage" in item_manifest
    # the local model's tokens are counted (what a hosted embedding model would bill): at least the two
    # special tokens and a word per title, at most the 256 the model reads
    assert 6 * 3 <= item_manifest["usage"]["prompt_tokens"] <= 6 * 256
    assert item_manifest["usage"]["cost"] == 0.0
    assert not list(folder.glob("*.tmp"))


def test_fresh_outputs_are_reused_and_stale_ones_rebuilt(settings, tmp_path):
    ensure_augmented(["sim_users"], settings)
    folder = tmp_path / "tiny"
    assert (folder / "tiny.useremb").is_file() and (folder / "tiny.simuser").is_file()
    assert not (folder / "tiny.itememb").exists()

    again = run_augmentor("llmesr", settings)
    assert again["outputs"]["user_emb"]["reused"] and again["outputs"]["sim_users"]["reused"]
    assert not again["outputs"]["item_emb"]["reused"]

    changed = run_augmentor("sim_users", dict(settings, sim_user_topn=1))
    assert not changed["reused"] and changed["counts"]["topn"] == 1

    with open(folder / "tiny.inter", "a", encoding="utf-8") as handle:
        handle.write("u2\ti5\t30\n")
    rebuilt = run_augmentor("llmesr", settings)
    assert not any(manifest["reused"] for manifest in rebuilt["outputs"].values())
    # Every text was embedded before, so the rebuild needs no model call.
    assert rebuilt["outputs"]["user_emb"]["usage"]["embedded_now"] == 0

    (folder / "tiny.itememb").write_text("iid:token\titem_emb:float_seq\ni1\t0 0\n", encoding="utf-8")
    assert not run_augmentor("item_emb", settings)["reused"]


def test_partial_coverage_is_reported(tmp_path, embedding_cache):
    write_dataset(tmp_path, inter=INTER_ROWS + "u2\ti99\t50\n")
    settings = {"dataset": "tiny", "data_path": str(tmp_path), "llmaug_cache_dir": str(embedding_cache)}
    manifest = run_augmentor("item_emb", settings)  # default template: the title only
    assert manifest["counts"]["missing_item_row"] == 1
    assert manifest["failures"]["missing_item_row_examples"] == ["i99"]
    assert set(manifest["failures"]["missing_text_examples"]) == {"i3", "i99"}
    rows = dict(read_rows(tmp_path / "tiny" / "tiny.itememb")[1])
    assert set(rows["i99"].split()) == {"0"}


def test_top_similar_excludes_self_and_empty_rows():
    matrix = np.array([[1, 0], [0.9, 0.1], [0, 1], [0, 0]], dtype=np.float32)
    found = top_similar(matrix, 2, block=2)
    assert [list(row) for row in found] == [[1, 2], [0, 2], [1, 0], []]


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("breakage, expected", [
    ("no_title_column", ["tiny.item", "'title'"]),
    ("empty_titles", ["tiny.item", "'title'", "empty"]),
    ("foreign_ids", ["tiny.inter", "tiny.item", "item_id"]),
    ("latin1_bytes", ["tiny.item", "UTF-8", "line 3"]),
    ("no_item_file", ["tiny.item", "does not exist"]),
    ("bad_timestamp", ["tiny.inter", "'timestamp'", "line 2"]),
])
def test_bad_input_names_file_and_field(tmp_path, embedding_cache, breakage, expected):
    folder = write_dataset(tmp_path)
    item_file = folder / "tiny.item"
    if breakage == "no_title_column":
        item_file.write_text("item_id:token\tname:token\ni1\tRed Lipstick\n", encoding="utf-8")
    elif breakage == "empty_titles":
        item_file.write_text("item_id:token\ttitle:token\ni1\t\ni2\tnan\n", encoding="utf-8")
    elif breakage == "foreign_ids":
        item_file.write_text("item_id:token\ttitle:token\nx1\tRed Lipstick\n", encoding="utf-8")
    elif breakage == "latin1_bytes":
        item_file.write_bytes("item_id:token\ttitle:token\ni1\tok\ni2\tCr\u00e8me\n".encode("latin-1"))
    elif breakage == "no_item_file":
        item_file.unlink()
    elif breakage == "bad_timestamp":
        (folder / "tiny.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\tyesterday\n")
    settings = {"dataset": "tiny", "data_path": str(tmp_path), "llmaug_cache_dir": str(embedding_cache)}
    augmentor = "user_emb" if breakage in ("empty_titles", "bad_timestamp") else "item_emb"
    with pytest.raises(UserError) as caught:
        run_augmentor(augmentor, settings)
    for fragment in expected:
        assert fragment in str(caught.value)
    assert not (folder / "tiny.itememb").exists() and not (folder / "tiny.useremb").exists()


def test_unknown_augmentor_and_missing_dataset(tmp_path):
    with pytest.raises(UserError, match="Unknown augmentor 'item_embs'"):
        run_augmentor("item_embs", {"dataset": "tiny", "data_path": str(write_dataset(tmp_path).parent)})
    with pytest.raises(UserError, match="not found"):
        run_augmentor("item_emb", {"dataset": "nothere", "data_path": str(tmp_path)})


def test_unavailable_embedding_model_fails_clearly(settings):
    with pytest.raises(UserError, match="not available offline"):
        run_augmentor("item_emb", dict(settings, embedding_model="no-such-org/no-such-model-xyz",
                                        llmaug_cache_dir=settings["data_path"] + "/fresh_cache"))


def test_outputs_built_from_the_cli_are_reused_by_training(settings, tmp_path, monkeypatch):
    """Training passes RecBole's full ``Config`` dict; its extra/defaulted keys must not look like a change."""
    from recbole.config import Config

    run_augmentor("llmesr", settings)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    config = Config(model="SASRec", dataset="tiny", config_dict=dict(
        settings, eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        train_neg_sample_args=None, user_inter_num_interval="[0,inf)", state="ERROR",
    ))
    from_training = dict(config.final_config_dict, data_path=settings["data_path"])
    manifest = run_augmentor("llmesr", from_training)
    assert all(member["reused"] for member in manifest["outputs"].values())


def test_a_failed_rebuild_leaves_the_previous_output_intact(settings, tmp_path, monkeypatch):
    from recbole_llmaug.augment import text_embeddings

    run_augmentor("item_emb", settings)
    output = tmp_path / "tiny" / "tiny.itememb"
    before = output.read_bytes()
    written = []

    def failing_format(vector):
        written.append(vector)
        if len(written) == 3:
            raise KeyboardInterrupt  # e.g. the user pressed Ctrl-C mid-write
        return "0"

    monkeypatch.setattr(text_embeddings, "format_vector", failing_format)
    changed = dict(settings, item_text_template="{title}")
    with pytest.raises(KeyboardInterrupt):
        run_augmentor("item_emb", changed)
    assert output.read_bytes() == before
    assert not [path for path in output.parent.iterdir() if path.name.endswith(".tmp")]
    monkeypatch.undo()
    assert run_augmentor("item_emb", settings)["reused"]
    assert not run_augmentor("item_emb", changed)["reused"]


def test_augment_path_keeps_outputs_out_of_the_data_folder(settings, tmp_path):
    data_folder = tmp_path / "tiny"
    before = sorted(p.name for p in data_folder.iterdir())
    elsewhere = tmp_path / "derived"
    manifest = run_augmentor("llmesr", dict(settings, augment_path=str(elsewhere)))
    assert manifest["outputs"]["sim_users"]["output"]["file"] == "tiny.simuser"
    assert sorted(p.name for p in data_folder.iterdir()) == before  # the data folder is untouched
    for suffix in ("itememb", "useremb", "simuser"):
        assert (elsewhere / "tiny" / f"tiny.{suffix}").is_file()
        assert (elsewhere / "tiny" / f"tiny.{suffix}.manifest.json").is_file()
