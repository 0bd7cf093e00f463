"""Helpers for LLM-ESR: reading the augmentor's files, PCA, and the per-user training sequences.

Kept apart from the model so that the tests can check each piece on its own.
"""

import os

import numpy as np
import torch

from recbole_llmaug.augment.atomic import read_atomic
from recbole_llmaug.config import augmented_folder, settings_from_config

ITEM_EMB_SUFFIX = "itememb"
SIM_USER_SUFFIX = "simuser"


def augmented_file(config, suffix):
    """``<dataset>.<suffix>`` in the augmentor's output folder (the dataset folder, or ``augment_path``)."""
    return str(augmented_folder(settings_from_config(config)) / f"{config['dataset']}.{suffix}")


def _missing(path, what):
    return FileNotFoundError(
        f"LLM-ESR needs the {what} file '{path}', written by the augmentor. Run the augmentation first "
        "(run_recbole_llmaug.py does it for --model=LLMESR), or switch the view off "
        "(use_semantic: False and id_init: random need no item embeddings; alpha: 0 needs no similar users)."
    )


def _read_two_columns(path):
    """The first two columns of an augmentor's atomic file, as strings."""
    frame = read_atomic(path).frame
    if frame.shape[1] < 2:
        raise ValueError(f"'{path}' must have two tab-separated columns, found {list(frame.columns)}")
    return frame.iloc[:, 0].tolist(), frame.iloc[:, 1].tolist()


def load_item_embeddings(path, token2id, n_items):
    """Matrix ``[n_items, dim]`` indexed by RecBole's internal item id (row 0 = padding = zeros).

    Items of the dataset that the file lacks keep a zero row; their count is returned.
    Rows of the file for items that are not in the dataset are ignored.
    """
    if not os.path.isfile(path):
        raise _missing(path, "item embedding")
    tokens, vectors = _read_two_columns(path)
    rows, values = [], []
    for token, text in zip(tokens, vectors):
        idx = token2id.get(token)
        if idx is None or idx == 0:
            continue
        rows.append(idx)
        values.append(np.asarray(text.split(), dtype=np.float32))
    if not values:
        raise ValueError(f"'{path}' holds no item of the dataset: are the item ids the dataset's raw tokens?")
    dims = {len(v) for v in values}
    if len(dims) != 1:
        raise ValueError(f"'{path}': embeddings of different lengths {sorted(dims)}")
    table = np.zeros((n_items, dims.pop()), dtype=np.float32)
    table[np.asarray(rows)] = np.stack(values)
    missing = n_items - 1 - len(set(rows))
    return torch.from_numpy(table), missing


def load_similar_users(path, token2id, n_users, n_sim):
    """``[n_users, n_sim]`` internal user ids, most similar first; 0 (RecBole's padding user) = none.

    Users of the file that the dataset lacks are skipped, and so is the user itself.
    """
    if not os.path.isfile(path):
        raise _missing(path, "similar-user")
    tokens, sims = _read_two_columns(path)
    table = np.zeros((n_users, n_sim), dtype=np.int64)
    for token, text in zip(tokens, sims):
        uid = token2id.get(token)
        if uid is None or uid == 0:
            continue
        found = []
        for other in text.split():
            oid = token2id.get(other)
            if oid is None or oid == 0 or oid == uid:
                continue
            found.append(oid)
            if len(found) == n_sim:
                break
        table[uid, : len(found)] = found
    return torch.from_numpy(table)


def pca_init(table, dim, generator=None, std=0.02):
    """Project the item rows ``1..`` of ``table`` on their top ``dim`` principal components.

    Returns ``[n_rows, dim]`` with row 0 (padding) zero. Rows that are all zero (items without an
    embedding) and dimensions beyond the rank get ``N(0, std)`` values instead.
    """
    x = table[1:].double()
    present = x.abs().sum(dim=1) > 0
    out = torch.zeros(table.shape[0], dim, dtype=torch.float32)
    noise = torch.randn(table.shape[0], dim, generator=generator) * std
    if present.sum() >= 2:
        xp = x[present]
        xp = xp - xp.mean(dim=0, keepdim=True)
        _, _, vh = torch.linalg.svd(xp, full_matrices=False)
        k = min(dim, vh.shape[0])
        proj = (xp @ vh[:k].T).float()
        block = noise[1:].clone()
        block[present.nonzero(as_tuple=True)[0][:, None], torch.arange(k)[None, :]] = proj
        out[1:] = block
    else:
        out[1:] = noise[1:]
    return out


def last_training_rows(dataset, uid_field, seq_field, len_field, iid_field):
    """Each user's last (longest) training prefix row: ``seq [U, L]``, ``length [U]``, ``target [U]``.

    ``dataset`` is the training split of a RecBole ``SequentialDataset``: its rows are the augmented
    prefixes whose targets are training items, so the prefix plus its target is the user's training
    sequence (truncated to the last ``MAX_ITEM_LIST_LENGTH + 1`` items). Users without a training
    row get length 0.
    """
    inter = dataset.inter_feat
    if seq_field not in inter:
        raise ValueError(
            "LLMESR must be built on the training split of a sequential dataset "
            f"(train_data.dataset); this dataset has no '{seq_field}' field."
        )
    uid = inter[uid_field].numpy()
    length = inter[len_field].numpy()
    n_users = dataset.user_num
    max_len = inter[seq_field].shape[1]
    seq_out = torch.zeros(n_users, max_len, dtype=torch.long)
    len_out = torch.zeros(n_users, dtype=torch.long)
    tgt_out = torch.zeros(n_users, dtype=torch.long)
    if len(uid) == 0:
        return seq_out, len_out, tgt_out
    # rows are chronological within a user; the last row of the longest length is the latest prefix
    order = np.lexsort((np.arange(len(uid)), length, uid))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = uid[order][1:] != uid[order][:-1]
    pick = torch.as_tensor(order[last])
    users = torch.as_tensor(uid[order[last]])
    seq_out[users] = inter[seq_field][pick]
    len_out[users] = inter[len_field][pick]
    tgt_out[users] = inter[iid_field][pick]
    return seq_out, len_out, tgt_out


def append_item(seq, length, items):
    """Append ``items[b]`` after the ``length[b]`` items of row ``b`` (left-aligned, 0-padded).

    A full row drops its oldest item. Returns the new rows, their lengths and the appended position.
    """
    batch, width = seq.shape
    ext = torch.cat([seq, seq.new_zeros(batch, 1)], dim=1)
    ext[torch.arange(batch, device=seq.device), length] = items
    full = (length >= width).unsqueeze(1)
    out = torch.where(full, ext[:, 1:], ext[:, :width])
    new_length = torch.clamp(length + 1, max=width)
    return out, new_length, new_length - 1
