"""Text-embedding outputs, shared by every system: item embeddings, user embeddings, similar users.

Each output is declared once, at the bottom of this file, as an :class:`~recbole_llmaug.augment.outputs.Output`:
its file suffix and header, what its freshness depends on (``fingerprint``), how it is built (``build``
writes the file and returns the manifest body: counts, coverage, model, dimension, usage, cost) and how a
RecBole dataset loads it (``load``: tensors aligned with the dataset's internal ids).

The embedding model is imported only when something is built, so that datasets can load these files
without the LLM layer installed.
"""

import logging
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd
import torch

from recbole_llmaug.augment.atomic import format_vector, parse_float_seq, read_atomic, write_atomic
from recbole_llmaug.augment.files import DatasetFiles, examples
from recbole_llmaug.augment.outputs import Output
from recbole_llmaug.augment.text import (
    ITEM_TEXT_VERSION,
    RECBOLE_SPLIT,
    USER_TEXT_SEPARATOR,
    USER_TEXT_VERSION,
    TextTemplate,
    active_interval,
    clean_value,
    leave_one_out_count,
    recbole_filtered,
    split_kind,
    training_histories,
    uses_sequential_split,
)
from recbole_llmaug.defaults import setting
from recbole_llmaug.errors import UserError
from recbole_llmaug.llm.settings import EmbeddingSettings

logger = logging.getLogger(__name__)

ITEM_EMB_HEADER = ("iid:token", "item_emb:float_seq")
USER_EMB_HEADER = ("uid:token", "user_emb:float_seq")
SIM_USERS_HEADER = ("uid:token", "sim_uids:token_seq")
SIM_USERS_VERSION = "sim-users-cosine-v1"
USER_MEAN_VERSION = "user-mean-of-train-items-v1"


def _embedding_fingerprint(settings) -> dict:
    embedding = EmbeddingSettings.from_settings(settings)
    return {"backend": embedding.backend, "model": embedding.model, "normalize": embedding.normalize}


def _template(files: DatasetFiles) -> TextTemplate:
    template = setting(files.settings, "item_text_template")
    return TextTemplate.parse(template or "{%s}" % setting(files.settings, "item_title_field"))


def _embed(texts: List[str], settings, desc: str, output: Path):
    """Vectors for the non-empty texts; rows of empty texts stay zero (reported as missing text).

    With ``ray_address`` set, the texts are sharded over Ray tasks (:mod:`recbole_llmaug.llm.sharding`); the shards
    finished so far are kept next to ``output`` until it is written, so a rerun redoes only the others.
    """
    from recbole_llmaug.llm.embeddings import embed_texts

    embedding = EmbeddingSettings.from_settings(settings)
    present = [index for index, text in enumerate(texts) if text]
    if not present:
        raise UserError(f"None of the {len(texts)} {desc} has any text to embed; check the item titles and templates.")
    if setting(settings, "ray_address"):
        from recbole_llmaug.llm.sharding import embed_texts_sharded

        run = embed_texts_sharded([texts[index] for index in present], settings, output, desc=desc)
    else:
        run = embed_texts([texts[index] for index in present], embedding, settings=settings, desc=desc)
    dimension = run.vectors.shape[1]
    matrix = np.zeros((len(texts), dimension), dtype=np.float32)
    matrix[present] = run.vectors
    usage = {
        "texts": run.texts, "unique_texts": run.unique_texts, "embedded_now": run.embedded,
        "cache_hits": run.cache_hits, "calls": run.stats.get("calls", 0),
        "prompt_tokens": run.stats.get("prompt_tokens", 0), "cost": run.stats.get("cost", 0.0),
        "embedding_wall_time_s": round(run.wall_time_s, 3),
    }
    return matrix, {"backend": embedding.backend, "model": embedding.model, "dimension": dimension,
                    "normalized": embedding.normalize}, usage


# ---------------------------------------------------------------- item_emb

def item_emb_fingerprint(files: DatasetFiles) -> dict:
    return {
        "inputs": files.input_hashes("inter", "item"),
        "text_version": ITEM_TEXT_VERSION,
        "item_text_template": _template(files).pieces,
        "ITEM_ID_FIELD": files.iid,
        "embedding": _embedding_fingerprint(files.settings),
    }


def item_texts(files: DatasetFiles) -> Dict[str, str]:
    """Text of every item in ``.item`` and ``.inter`` ("" when it has none), in a stable order."""
    template = _template(files)
    item = files.item
    item.require(*template.fields, purpose="item_text_template")
    records = item.frame[[files.iid] + template.fields].to_dict("records")
    texts = {record[files.iid]: template.render(record) for record in records}
    for item_id in pd.unique(files.inter.frame[files.iid]):
        texts.setdefault(item_id, "")
    if not any(texts.values()):
        raise UserError(
            f"No item in {item.path} has any text in the fields {template.fields} named by item_text_template "
            "(all empty or 'nan'). Fill the column(s) or change item_text_template."
        )
    return texts


def _write_text_embeddings(texts, header, output, settings, label):
    """Embed each id's text and write one ``id<TAB>vector`` row per id (empty text: zero row)."""
    ids = list(texts)
    matrix, model, usage = _embed([texts[key] for key in ids], settings, label, output)
    rows = write_atomic(output, header, ((key, format_vector(vector)) for key, vector in zip(ids, matrix)))
    without_text = [key for key in ids if not texts[key]]
    return ids, rows, model, usage, without_text


def build_item_emb(files: DatasetFiles, output) -> dict:
    texts = item_texts(files)
    ids, rows, model, usage, without_text = _write_text_embeddings(
        texts, ITEM_EMB_HEADER, output, files.settings, "item texts")
    item_rows = set(files.item.frame[files.iid])
    without_metadata = [item_id for item_id in ids if item_id not in item_rows]
    if without_text:
        logger.warning("%d of %d items have no text; their embedding rows are zero", len(without_text), len(ids))
    return {
        "embedding": model,
        "usage": usage,
        "counts": {
            "rows": rows,
            "items_in_item_file": len(item_rows),
            "items_in_inter_file": int(files.inter.frame[files.iid].nunique()),
            "missing_text": len(without_text),
            "missing_item_row": len(without_metadata),
        },
        "failures": {"missing_text_examples": examples(without_text),
                     "missing_item_row_examples": examples(without_metadata)},
        "example_text": next((texts[item_id] for item_id in ids if texts[item_id]), ""),
    }


# ---------------------------------------------------------------- user_emb

# A RecBole general model whose Config draws a general split (only its split is used, nothing is trained).
GENERAL_SPLIT_MODEL = "BPR"


def _split_settings(settings) -> dict:
    """The split, canonicalised so that the CLI's settings and a RecBole ``Config`` agree."""
    if split_kind(settings) == RECBOLE_SPLIT:
        from recbole_llmaug.augment.recbole_split import split_settings

        return {"recbole": split_settings(DatasetFiles(settings), GENERAL_SPLIT_MODEL)}
    return {
        "leave_out": leave_one_out_count(settings),
        "sequential": uses_sequential_split(settings),
        "filter_inter_by_user_or_item": settings.get("filter_inter_by_user_or_item", True) is not False,
        "user_inter_num_interval": active_interval(settings.get("user_inter_num_interval")),
        "item_inter_num_interval": active_interval(settings.get("item_inter_num_interval")),
    }


def _user_emb_source(files: DatasetFiles) -> str:
    return setting(files.settings, "user_emb_source")


def user_emb_fingerprint(files: DatasetFiles) -> dict:
    if _user_emb_source(files) == "item_mean":
        return {
            "source": "item_mean",
            "version": USER_MEAN_VERSION,
            "items": item_emb_fingerprint(files),  # what the item vectors are built from (not the file: it may not exist yet)
            "split": _split_settings(files.settings),
            "fields": [files.uid, files.iid, files.time_field],
        }
    return {
        "inputs": files.input_hashes("inter", "item"),
        "text_version": USER_TEXT_VERSION,
        "item_title_field": setting(files.settings, "item_title_field"),
        "user_text_max_items": int(setting(files.settings, "user_text_max_items")),
        "split": _split_settings(files.settings),
        "fields": [files.uid, files.iid, files.time_field],
        "embedding": _embedding_fingerprint(files.settings),
    }


def user_train_histories(files: DatasetFiles) -> Dict[str, List[str]]:
    """Training items per user (oldest first under a time order) under the RecBole split the settings
    describe: computed here for leave-one-out, else RecBole's own split (seeded with ``split_seed``)."""
    if split_kind(files.settings) == RECBOLE_SPLIT:
        from recbole_llmaug.augment.recbole_split import recbole_split

        split = recbole_split(files, GENERAL_SPLIT_MODEL)
        return {user: list(entry.train) for user, entry in split.users.items() if entry.train}
    known_items = set(files.item.frame[files.iid])
    inter = recbole_filtered(files.inter_with_time(), files.uid, files.iid, known_items, files.settings)
    return training_histories(inter, files.uid, files.iid, files.time_field, leave_one_out_count(files.settings),
                              sequential=uses_sequential_split(files.settings))


def item_titles(files: DatasetFiles, purpose: str) -> Dict[str, str]:
    """``{item: cleaned title}`` of the items whose ``item_title_field`` is not empty; ``purpose`` names the
    use in the error when the column is missing."""
    title_field = setting(files.settings, "item_title_field")
    files.item.require(title_field, purpose=f"{purpose} (item_title_field)")
    titles = {item: clean_value(title) for item, title in zip(files.item.frame[files.iid], files.item.frame[title_field])}
    return {item: title for item, title in titles.items() if title}


def user_texts(files: DatasetFiles) -> Dict[str, str]:
    """The titles of each user's most recent training items, newest first.

    Newest first so that an embedding model's token limit cuts the oldest titles, not the latest.
    """
    title_field = setting(files.settings, "item_title_field")
    titles = item_titles(files, "user texts")
    if not titles:
        raise UserError(
            f"Every '{title_field}' in {files.item.path} is empty, so no user text can be built. "
            "Fill the titles, or set item_title_field to the column that holds item names."
        )
    limit = int(setting(files.settings, "user_text_max_items"))
    texts = {}
    for user, history in user_train_histories(files).items():
        named = [titles[item] for item in history if titles.get(item)]
        recent = named[::-1][:limit] if limit > 0 else named[::-1]
        texts[user] = USER_TEXT_SEPARATOR.join(recent)
    return texts


def user_mean_vectors(histories: Dict[str, List[str]], item_ids: List[str], item_matrix: np.ndarray,
                      normalize: bool) -> tuple:
    """Each user's vector as the mean of its training items' vectors: ``(users, [n_users, dim], users without any)``.

    Items without a vector (zero rows: no text) are left out of the mean; a user none of whose items
    has one gets a zero row. With ``normalize`` the means are L2-normalised like text embeddings.
    """
    row_of = {item: row for row, item in enumerate(item_ids)}
    usable = np.linalg.norm(item_matrix, axis=1) > 0
    users = list(histories)
    matrix = np.zeros((len(users), item_matrix.shape[1]), dtype=np.float32)
    empty = []
    for index, user in enumerate(users):
        rows = [row_of[item] for item in histories[user] if item in row_of and usable[row_of[item]]]
        if not rows:
            empty.append(user)
            continue
        matrix[index] = item_matrix[rows].mean(axis=0)
    if normalize:
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms > 0, norms, 1.0)
    return users, matrix, empty


def _build_user_emb_from_items(files: DatasetFiles, output) -> dict:
    from recbole_llmaug.augment.runner import ensure_augmented

    item_manifest = ensure_augmented([ITEM_EMB.name], files.settings)[ITEM_EMB.name]
    item_ids, item_matrix = read_embeddings(files.output_path(ITEM_EMB.suffix))
    normalize = EmbeddingSettings.from_settings(files.settings).normalize
    users, matrix, empty = user_mean_vectors(user_train_histories(files), item_ids, item_matrix, normalize)
    rows = write_atomic(output, USER_EMB_HEADER, ((user, format_vector(vector)) for user, vector in zip(users, matrix)))
    if empty:
        logger.warning("%d of %d users have no training item with a vector; their embedding rows are zero",
                       len(empty), len(users))
    all_users = files.inter.frame[files.uid].nunique()
    return {
        "embedding": dict(item_manifest.get("embedding", {}), source="item_mean"),
        "usage": {"calls": 0, "cost": 0.0},
        "counts": {"rows": rows, "users_in_inter_file": int(all_users), "users_dropped_by_filters": int(all_users - len(users)),
                   "missing_text": len(empty)},
        "failures": {"missing_text_examples": examples(empty)},
    }


def build_user_emb(files: DatasetFiles, output) -> dict:
    if _user_emb_source(files) == "item_mean":
        return _build_user_emb_from_items(files, output)
    texts = user_texts(files)
    ids, rows, model, usage, without_text = _write_text_embeddings(
        texts, USER_EMB_HEADER, output, files.settings, "user texts")
    if without_text:
        logger.warning("%d of %d users have no titled training item; their embedding rows are zero",
                       len(without_text), len(ids))
    all_users = files.inter.frame[files.uid].nunique()
    return {
        "embedding": model,
        "usage": usage,
        "counts": {"rows": rows, "users_in_inter_file": int(all_users), "users_dropped_by_filters": int(all_users - len(ids)),
                   "missing_text": len(without_text)},
        "failures": {"missing_text_examples": examples(without_text)},
        "example_text": next((texts[user] for user in ids if texts[user]), ""),
    }


# ---------------------------------------------------------------- sim_users

def sim_users_fingerprint(files: DatasetFiles) -> dict:
    return {
        # the user_emb output it is computed from (under augment_path when set, not the dataset folder)
        "inputs": files.output_hashes(USER_EMB.suffix),
        "version": SIM_USERS_VERSION,
        "sim_user_topn": int(setting(files.settings, "sim_user_topn")),
    }


def read_embeddings(path) -> tuple:
    """Ids and the ``[rows, dim]`` matrix of an ``id<TAB>float_seq`` file (``.itememb``/``.useremb``)."""
    table = read_atomic(path)
    if len(table.types) != 2:
        raise UserError(f"{path} must have two tab-separated columns (id, vector); its header has {list(table.types)}. "
                        "Rebuild it with the augmentor.")
    id_field, vector_field = list(table.types)
    return table.frame[id_field].tolist(), parse_float_seq(table.frame[vector_field], path, vector_field)


def top_similar(matrix: np.ndarray, topn: int, block: int = 1024) -> List[np.ndarray]:
    """Per row: indices of the ``topn`` most cosine-similar other rows, most similar first.

    Rows that are all zero (no text) neither get nor serve as neighbours; equal scores among the
    chosen are ordered by index, so the output is deterministic.
    """
    norms = np.linalg.norm(matrix, axis=1)
    usable = norms > 0
    unit = matrix / np.where(usable, norms, 1.0)[:, None]
    count = len(matrix)
    topn = min(topn, max(int(usable.sum()) - 1, 0))
    neighbours = []
    for start in range(0, count, block):
        scores = unit[start:start + block] @ unit.T
        scores[:, ~usable] = -np.inf
        rows = np.arange(start, min(start + block, count))
        scores[rows - start, rows] = -np.inf
        for offset, row in enumerate(rows):
            if not usable[row] or topn == 0:
                neighbours.append(np.zeros(0, dtype=np.int64))
                continue
            candidates = np.argpartition(-scores[offset], topn - 1)[:topn]
            ordered = candidates[np.lexsort((candidates, -scores[offset, candidates]))]
            neighbours.append(ordered)
    return neighbours


def build_sim_users(files: DatasetFiles, output) -> dict:
    ids, matrix = read_embeddings(files.output_path(USER_EMB.suffix))
    spaced = [user for user in ids if any(char.isspace() for char in user)]
    if spaced:
        raise UserError(f"User id '{spaced[0]}' contains whitespace and cannot be written as a token_seq in {output.name}.")
    topn = int(setting(files.settings, "sim_user_topn"))
    neighbours = top_similar(matrix, topn)
    rows = write_atomic(output, SIM_USERS_HEADER,
                        ((user, " ".join(ids[index] for index in found)) for user, found in zip(ids, neighbours)))
    lonely = [user for user, found in zip(ids, neighbours) if len(found) == 0]
    return {
        "counts": {"rows": rows, "topn": topn, "users_without_neighbours": len(lonely)},
        "failures": {"users_without_neighbours_examples": examples(lonely)},
        "similarity": "cosine over user_emb, self excluded",
    }


# ---------------------------------------------------------------- loading into a RecBole dataset

def load_embedding_table(path: Path, dataset, field: str, count: int):
    """``[count, dim]`` float32 rows indexed by ``dataset``'s internal ids of ``field`` (row 0 =
    padding = zeros), and how many of the dataset's ids the file lacks (their rows stay zero).
    Rows of the file for ids the dataset does not know are ignored."""
    tokens, matrix = read_embeddings(path)
    token2id = dataset.field2token_id[field]
    pairs = [(token2id.get(token), row) for row, token in enumerate(tokens)]
    pairs = [(index, row) for index, row in pairs if index]
    if not pairs:
        raise UserError(f"{path} holds no id of the dataset's '{field}': was it built for another dataset? "
                        "Rebuild it with the augmentor.")
    table = np.zeros((count, matrix.shape[1]), dtype=np.float32)
    indices, rows = map(np.asarray, zip(*pairs))
    table[indices] = matrix[rows]
    return torch.from_numpy(table), count - 1 - len(set(indices.tolist()))


def load_item_emb(path: Path, dataset):
    """``(table [n_items, dim], items missing from the file)`` in RecBole's internal item ids."""
    return load_embedding_table(path, dataset, dataset.iid_field, dataset.item_num)


def load_user_emb(path: Path, dataset):
    """``(table [n_users, dim], users missing from the file)`` in RecBole's internal user ids."""
    return load_embedding_table(path, dataset, dataset.uid_field, dataset.user_num)


def load_sim_users(path: Path, dataset):
    """``[n_users, N]`` internal user ids, most similar first; 0 (RecBole's padding user) = none.

    N is the longest list in the file; users of the file that the dataset lacks are skipped, and so
    is the user itself, so a row may hold fewer (zero-padded)."""
    table = read_atomic(path)
    user_field, list_field = list(table.types)[:2]
    token2id = dataset.field2token_id[dataset.uid_field]
    found = {}
    for token, text in zip(table.frame[user_field], table.frame[list_field]):
        uid = token2id.get(token)
        if not uid:
            continue
        found[uid] = [oid for oid in (token2id.get(other) for other in text.split()) if oid and oid != uid]
    width = max((len(row) for row in found.values()), default=0)
    out = torch.zeros(dataset.user_num, width, dtype=torch.long)
    for uid, row in found.items():
        out[uid, :len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


# ---------------------------------------------------------------- declarations

ITEM_EMB = Output(
    name="item_emb", suffix="itememb", header=ITEM_EMB_HEADER,
    fingerprint=item_emb_fingerprint, build=build_item_emb, load=load_item_emb,
    doc="one text embedding per item (item_text_template over the .item file)",
)
USER_EMB = Output(
    name="user_emb", suffix="useremb", header=USER_EMB_HEADER,
    fingerprint=user_emb_fingerprint, build=build_user_emb, load=load_user_emb,
    doc="one vector per user: the embedding of its training titles, newest first (user_emb_source: text), "
        "or the mean of its training items' .itememb vectors (item_mean)",
)
SIM_USERS = Output(
    name="sim_users", suffix="simuser", header=SIM_USERS_HEADER,
    fingerprint=sim_users_fingerprint, build=build_sim_users, load=load_sim_users, depends_on=("user_emb",),
    doc="each user's sim_user_topn most similar users (cosine over user_emb)",
)
OUTPUTS = (ITEM_EMB, USER_EMB, SIM_USERS)
