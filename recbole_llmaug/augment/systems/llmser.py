"""LLMSeR (Sun, Liu, Zhu, Tian): pseudo-prior items for short sequences, chosen by an LLM from
collaborative candidates, and a per-user reliability weight.

Outputs (all built from each user's *training* history under RecBole's leave-one-out split, so no
validation or test item reaches a model, a prompt, a candidate pool or a weight):

* ``llmser_candidates`` (``.ccgcand``): Collaborative Candidate Generation. A SASRec trained on
  reversed training sequences ranks, after each augmented user's reversed history, the
  ``llmser_candidates`` items most likely to come *before* its first item (training items excluded).
* ``llmser_arv_candidates`` (``.arvcand``): for Adaptive Reliability Validation, a forward SASRec
  trained on training sequences minus their last item proposes ``llmser_arv_candidates`` items for
  that hidden last training item.
* ``llmser_pseudo_<mode>`` (``.pseudo.<mode>``): the ``llmser_keep`` pseudo-prior items of each user,
  oldest first (the candidate the reverse model ranks first sits right before the real first item).
  Modes: ``llm-ids`` (the LLM selects ``llmser_select`` candidates by id, schema-constrained; the
  semantic filter keeps the ``llmser_keep`` closest to the user's history embedding), ``llm-ids-nofilter``
  (the first ``llmser_keep`` of the LLM's picks), ``llm-text`` (the official answer mode: the LLM
  answers titles in free text; the filter keeps the candidates closest to the answer's embedding),
  ``embedding`` (no LLM: candidates closest to the history embedding), ``none`` (no LLM, no filter:
  the reverse model's top ``llmser_keep``).
* ``llmser_arv_<picker>`` (``.arv.<picker>``): per user, the item the picker (``llm``, ``embedding``,
  ``none`` = the forward model's top 1) chose for the hidden last training item, and
  ``cos(emb(picked), emb(hidden))`` clipped to [0, 1]; the dataset turns it into the user's weight
  (with the decay for long users).

Which users: every user with a training item, or with ``augment_max_length`` set, those whose training
history has at most that many items. Candidates and picks are cached (chat answers, embeddings); the
two SASRec models are retrained only when their fingerprint changes.
"""

import logging
import re
from pathlib import Path
from typing import Dict, List

import numpy as np

from recbole_llmaug.augment.atomic import read_atomic, read_token_lists, write_atomic
from recbole_llmaug.augment.files import DatasetFiles, examples
from recbole_llmaug.augment.outputs import Output, System
from recbole_llmaug.augment.text_embeddings import (
    ITEM_EMB,
    _split_settings,
    item_titles,
    read_embeddings,
    user_train_histories,
)
from recbole_llmaug.defaults import properties_dir, setting
from recbole_llmaug.errors import UserError
from recbole_llmaug.llm.settings import LLMSettings, title_max_chars

logger = logging.getLogger(__name__)

CCG_VERSION = "llmser-ccg-v1"
ARV_VERSION = "llmser-arv-candidates-v1"
SIA_PROMPT_VERSION = "llmser-sia-v2"  # v2: titles cut by llm_title_max_chars (v1: 80 characters)
ARV_PROMPT_VERSION = "llmser-arv-v2"
HISTORY_ITEMS = 20  # most recent training items shown in a prompt
PSEUDO_MODES = ("llm-ids", "llm-ids-nofilter", "llm-text", "embedding", "none")
ARV_PICKERS = ("llm", "embedding", "none")


# ---------------------------------------------------------------- shared pieces

def augmented_users(histories: Dict[str, List[str]], settings) -> List[str]:
    """Users that get pseudo-prior items: all with a training item, or those with at most
    ``augment_max_length`` training items when it is set."""
    limit = setting(settings, "augment_max_length")
    return sorted(user for user, items in histories.items() if items and (limit is None or len(items) <= int(limit)))


def titles_of(files: DatasetFiles) -> Dict[str, str]:
    """The titles in LLMSeR's prompts, cut as every prompt of the LLM stage cuts them (``llm_title_max_chars``,
    at a word boundary): a long product title is shortened, not dropped, and costs fewer prompt tokens."""
    from recbole_llmaug.llm.prompts import compact_title

    limit = title_max_chars(files.settings)
    return {item: compact_title(title, limit) for item, title in item_titles(files, "LLMSeR prompts").items()}


def _model_fingerprint(files: DatasetFiles, epochs_key: str) -> dict:
    sasrec = (properties_dir() / "model" / "SASRec.yaml").read_text(encoding="utf-8")
    return {
        "inputs": files.input_hashes("inter", "item"), "split": _split_settings(files.settings),
        "augment_max_length": setting(files.settings, "augment_max_length"),
        "epochs": int(setting(files.settings, epochs_key)), "sasrec_yaml": sasrec,
        "seed": int(setting(files.settings, "llmser_ccg_seed")),
        "MAX_ITEM_LIST_LENGTH": setting(files.settings, "MAX_ITEM_LIST_LENGTH"),
    }


def _ranker_budget(files: DatasetFiles) -> tuple:
    """Epochs and seed of the reverse (CCG) and forward (ARV) SASRec: the augmentation's own seed, so that
    every training seed of a benchmark shares one set of candidates and of LLM answers."""
    return int(setting(files.settings, "llmser_ccg_epochs")), int(setting(files.settings, "llmser_ccg_seed"))


def _work_dir(files: DatasetFiles) -> Path:
    return files.output_folder / f".{files.name}.llmser_work"


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


class ItemVectors:
    """The item text embeddings (``item_emb`` output) by raw item id, unit length."""

    def __init__(self, files: DatasetFiles):
        ids, matrix = read_embeddings(files.output_path(ITEM_EMB.suffix))
        self.index = {item: row for row, item in enumerate(ids)}
        self.matrix = _unit(matrix)

    def of(self, items) -> np.ndarray:
        return self.matrix[[self.index[item] for item in items if item in self.index]]

    def history(self, items) -> np.ndarray:
        """The user's history embedding: the mean of its items' vectors (zeros when none has one)."""
        rows = self.of(items)
        return rows.mean(axis=0) if len(rows) else np.zeros(self.matrix.shape[1], dtype=np.float32)

    def closest(self, anchor: np.ndarray, items: List[str], k: int) -> List[str]:
        """The ``k`` of ``items`` with the highest cosine to ``anchor`` (stable for ties)."""
        known = [item for item in items if item in self.index]
        if not known:
            return []
        scores = self.of(known) @ _unit(anchor)
        order = sorted(range(len(known)), key=lambda row: (-scores[row], row))
        return [known[row] for row in order[:k]]


# ---------------------------------------------------------------- candidates (CCG and ARV)

def ccg_fingerprint(files: DatasetFiles) -> dict:
    return dict(_model_fingerprint(files, "llmser_ccg_epochs"), version=CCG_VERSION,
                candidates=int(setting(files.settings, "llmser_candidates")))


def build_ccg(files: DatasetFiles, output: Path) -> dict:
    from recbole_llmaug.augment.collaborative import train_ranker

    histories = user_train_histories(files)
    users = augmented_users(histories, files.settings)
    reversed_histories = {user: items[::-1] for user, items in histories.items() if items}
    ranker = train_ranker(reversed_histories, _work_dir(files), "reverse", files.settings, *_ranker_budget(files))
    count = int(setting(files.settings, "llmser_candidates"))
    ranked = ranker.top_k({user: reversed_histories[user] for user in users}, count,
                          exclude={user: set(histories[user]) for user in users})
    rows = write_atomic(output, CCG.header, ((user, " ".join(ranked.get(user, []))) for user in users))
    short = [user for user in users if len(ranked.get(user, [])) < count]
    return {"counts": {"rows": rows, "users": len(users), "candidates_per_user": count,
                       "users_with_fewer_candidates": len(short)},
            "failures": {"users_with_fewer_candidates_examples": examples(short)},
            "model": "RecBole SASRec on reversed training sequences"}


def arv_candidates_fingerprint(files: DatasetFiles) -> dict:
    return dict(_model_fingerprint(files, "llmser_ccg_epochs"), version=ARV_VERSION,
                candidates=int(setting(files.settings, "llmser_arv_candidates")))


def build_arv_candidates(files: DatasetFiles, output: Path) -> dict:
    """For each augmented user with >= 2 training items: its last training item (hidden) and the
    forward model's candidates for it, from the history without it."""
    from recbole_llmaug.augment.collaborative import train_ranker

    histories = user_train_histories(files)
    users = [user for user in augmented_users(histories, files.settings) if len(histories[user]) >= 2]
    truncated = {user: items[:-1] for user, items in histories.items() if len(items) >= 2}
    ranker = train_ranker(truncated, _work_dir(files), "forward", files.settings, *_ranker_budget(files))
    count = int(setting(files.settings, "llmser_arv_candidates"))
    ranked = ranker.top_k({user: truncated[user] for user in users}, count,
                          exclude={user: set(truncated[user]) for user in users})
    rows = write_atomic(output, ARV_CANDIDATES.header,
                        ((user, histories[user][-1], " ".join(ranked.get(user, []))) for user in users))
    hit = sum(histories[user][-1] in ranked.get(user, []) for user in users)
    return {"counts": {"rows": rows, "users": len(users), "candidates_per_user": count,
                       "hidden_item_among_candidates": hit},
            "model": "RecBole SASRec on training sequences minus their last item"}


# ---------------------------------------------------------------- prompts

def history_lines(items: List[str], titles: Dict[str, str]) -> str:
    named = [titles[item] for item in items if item in titles][-HISTORY_ITEMS:]
    return "\n".join(f"- {title}" for title in named)


def candidate_lines(candidates: List[str], titles: Dict[str, str]) -> List[str]:
    return [f"{index + 1}. {titles.get(item, item)}" for index, item in enumerate(candidates)]


def sia_messages(history: List[str], candidates: List[str], titles: Dict[str, str], k: int, free_text: bool):
    """The selection prompt: the same instruction first (a shared prefix the server can reuse),
    then the user's titles and the numbered candidates."""
    ask = (f"Answer with the titles of the {k} candidates, one per line." if free_text
           else f"Pick the {k} candidates by number.")
    return (
        {"role": "system", "content": "You know which products people buy together. Given a customer's purchases, "
                                      "pick the candidate products they most likely bought BEFORE all of them."},
        {"role": "user", "content": "Purchases, oldest first:\n" + history_lines(history, titles)
                                    + "\n\nCandidates:\n" + "\n".join(candidate_lines(candidates, titles)) + "\n\n" + ask},
    )


def arv_messages(history: List[str], candidates: List[str], titles: Dict[str, str]):
    return (
        {"role": "system", "content": "You know which products people buy together. Given a customer's purchases, "
                                      "pick the candidate product they most likely buy NEXT."},
        {"role": "user", "content": "Purchases, oldest first:\n" + history_lines(history, titles)
                                    + "\n\nCandidates:\n" + "\n".join(candidate_lines(candidates, titles))
                                    + "\n\nPick 1 candidate by number."},
    )


def _select_all(settings, prompts: List[tuple], desc: str, version: str):
    """Schema-constrained selections for ``prompts`` = [(messages, candidates, k)] -> (picked raw ids
    per prompt or None, usage). Candidates are labelled 1..P in the prompt and mapped back."""
    from recbole_llmaug.llm import SelectionRequest, open_chat_client, run_many

    requests = [SelectionRequest(messages, tuple(str(i + 1) for i in range(len(cands))), k)
                for messages, cands, k in prompts]
    with open_chat_client(settings) as client:
        results = run_many(client, requests, version, desc=desc)
        usage = dict(client.stats.as_dict(), model=client.model)
    picked = [[cands[int(label) - 1] for label in result.ids] if result.valid else None
              for (_, cands, _), result in zip(prompts, results)]
    return picked, usage


def free_text_all(settings, prompts: List[tuple], desc: str, version: str):
    """Free-text answers for ``prompts`` = [messages] -> (answer text or None per prompt, usage)."""
    from recbole_llmaug.llm import LLMCallError, open_chat_client
    from recbole_llmaug.llm.selection import run_pool

    with open_chat_client(settings) as client:
        def one(messages):
            try:
                return client.complete(list(messages), version).text.strip() or None
            except LLMCallError:
                client.stats.add(failures=1)
                return None

        answers = run_pool(client, one, prompts, desc)
        usage = dict(client.stats.as_dict(), model=client.model)
    return answers, usage


def _embed_answers(answers: List[str], settings) -> Dict[str, np.ndarray]:
    from recbole_llmaug.llm.embeddings import embed_texts
    from recbole_llmaug.llm.settings import EmbeddingSettings

    texts = sorted({answer for answer in answers if answer})
    if not texts:
        return {}
    run = embed_texts(texts, EmbeddingSettings.from_settings(settings), settings=settings, desc="LLMSeR answers")
    return dict(zip(texts, run.vectors))


# ---------------------------------------------------------------- pseudo-prior items

def pseudo_fingerprint(mode: str):
    def fingerprint(files: DatasetFiles) -> dict:
        found = {
            "mode": mode, "prompt_version": SIA_PROMPT_VERSION, "title_chars": title_max_chars(files.settings),
            "history_items": HISTORY_ITEMS,
            "candidates": files.output_hashes(CCG.suffix), "item_emb": files.output_hashes(ITEM_EMB.suffix),
            "select": int(setting(files.settings, "llmser_select")), "keep": int(setting(files.settings, "llmser_keep")),
            "item_title_field": setting(files.settings, "item_title_field"),
        }
        if mode.startswith("llm"):
            found["llm"] = LLMSettings.fingerprint_of(files.settings)
        return found
    return fingerprint


def _chronological(kept: List[str], candidates: List[str]) -> List[str]:
    """Pseudo-prior items oldest first: the reverse model's first candidate (most likely right before
    the real first item) comes last."""
    rank = {item: index for index, item in enumerate(candidates)}
    return sorted(kept, key=lambda item: -rank[item])


def pseudo_items(mode: str, histories, candidates, vectors: ItemVectors, titles, settings):
    """``{user: pseudo items oldest first}`` and the report of the selection (usage, failures, filter)."""
    keep = int(setting(settings, "llmser_keep"))
    pick = max(keep, int(setting(settings, "llmser_select")))
    users = [user for user in sorted(candidates) if candidates[user]]
    report = {"users": len(users), "failures": []}
    chosen = {}
    if mode == "none":
        chosen = {user: candidates[user][:keep] for user in users}
    elif mode == "embedding":
        chosen = {user: vectors.closest(vectors.history(histories[user]), candidates[user], keep) for user in users}
    elif mode in ("llm-ids", "llm-ids-nofilter"):
        prompts = [(sia_messages(histories[user], candidates[user], titles, min(pick, len(candidates[user])), False),
                    candidates[user], min(pick, len(candidates[user]))) for user in users]
        picked, report["usage"] = _select_all(settings, prompts, "LLMSeR selections", SIA_PROMPT_VERSION)
        kept_share = []
        for user, items in zip(users, picked):
            if items is None:
                report["failures"].append(user)
                continue
            if mode == "llm-ids":
                chosen[user] = vectors.closest(vectors.history(histories[user]), items, keep)
            else:
                chosen[user] = items[:keep]
            kept_share.append(len(chosen[user]) / len(items))
        report["filter_kept_share_of_llm_picks"] = float(np.mean(kept_share)) if kept_share else None
    elif mode == "llm-text":
        prompts = [sia_messages(histories[user], candidates[user], titles, min(pick, len(candidates[user])), True)
                   for user in users]
        answers, report["usage"] = free_text_all(settings, prompts, "LLMSeR answers", SIA_PROMPT_VERSION)
        answer_vectors = _embed_answers(answers, settings)
        named_share = []
        for user, answer in zip(users, answers):
            if not answer:
                report["failures"].append(user)
                continue
            chosen[user] = vectors.closest(answer_vectors[answer], candidates[user], keep)
            lowered = answer.lower()
            named = [item for item in chosen[user] if titles.get(item, "\0").lower()[:40] in lowered]
            named_share.append(len(named) / max(1, len(chosen[user])))
        # how many of the kept candidates the answer actually named (the rest the filter supplied)
        report["kept_items_named_by_the_llm_share"] = float(np.mean(named_share)) if named_share else None
    else:
        raise UserError(f"Unknown LLMSeR pseudo-item mode '{mode}'; use one of {PSEUDO_MODES}.")
    return {user: _chronological(items, candidates[user]) for user, items in chosen.items()}, report


def pseudo_builder(mode: str):
    def build(files: DatasetFiles, output: Path) -> dict:
        histories = user_train_histories(files)
        candidates = read_token_lists(files.output_path(CCG.suffix))
        found, report = pseudo_items(mode, histories, candidates, ItemVectors(files), titles_of(files), files.settings)
        rows = write_atomic(output, PSEUDO_HEADER, ((user, " ".join(items)) for user, items in sorted(found.items())))
        failures = report.pop("failures")
        return {"mode": mode, "counts": dict(rows=rows, users=report.pop("users"), failures=len(failures)),
                "failures": {"users_without_an_answer_examples": examples(failures)}, **report}
    return build


# ---------------------------------------------------------------- reliability (ARV)

def arv_fingerprint(picker: str):
    def fingerprint(files: DatasetFiles) -> dict:
        found = {"picker": picker, "prompt_version": ARV_PROMPT_VERSION, "title_chars": title_max_chars(files.settings),
                 "history_items": HISTORY_ITEMS, "candidates": files.output_hashes(ARV_CANDIDATES.suffix),
                 "item_emb": files.output_hashes(ITEM_EMB.suffix),
                 "item_title_field": setting(files.settings, "item_title_field")}
        if picker == "llm":
            found["llm"] = LLMSettings.fingerprint_of(files.settings)
        return found
    return fingerprint


def arv_weights(picker: str, histories, hidden_and_candidates, vectors: ItemVectors, titles, settings):
    """``{user: (picked, hidden, cos(picked, hidden) clipped to [0, 1])}`` and the selection report."""
    users = [user for user in sorted(hidden_and_candidates) if hidden_and_candidates[user][1]]
    report = {"users": len(users), "failures": []}
    picks = {}
    if picker == "none":
        picks = {user: hidden_and_candidates[user][1][0] for user in users}
    elif picker == "embedding":
        picks = {user: (vectors.closest(vectors.history(histories[user][:-1]), hidden_and_candidates[user][1], 1) or [None])[0]
                 for user in users}
    elif picker == "llm":
        prompts = [(arv_messages(histories[user][:-1], hidden_and_candidates[user][1], titles),
                    hidden_and_candidates[user][1], 1) for user in users]
        picked, report["usage"] = _select_all(settings, prompts, "LLMSeR reliability", ARV_PROMPT_VERSION)
        for user, items in zip(users, picked):
            if items is None:
                report["failures"].append(user)
            else:
                picks[user] = items[0]
    else:
        raise UserError(f"Unknown LLMSeR reliability picker '{picker}'; use one of {ARV_PICKERS}.")
    found = {}
    for user, item in picks.items():
        hidden = hidden_and_candidates[user][0]
        if item is None or item not in vectors.index or hidden not in vectors.index:
            report["failures"].append(user)
            continue
        cosine = float(vectors.of([item])[0] @ vectors.of([hidden])[0])
        found[user] = (item, hidden, min(1.0, max(0.0, cosine)))
    return found, report


def arv_builder(picker: str):
    def build(files: DatasetFiles, output: Path) -> dict:
        histories = user_train_histories(files)
        table = read_atomic(files.output_path(ARV_CANDIDATES.suffix))
        first, hidden_field, list_field = list(table.types)[:3]
        given = {user: (hidden, text.split()) for user, hidden, text in
                 zip(table.frame[first], table.frame[hidden_field], table.frame[list_field])}
        found, report = arv_weights(picker, histories, given, ItemVectors(files), titles_of(files), files.settings)
        rows = write_atomic(output, ARV_HEADER, ((user, f"{weight:.6g}", picked, hidden)
                                                 for user, (picked, hidden, weight) in sorted(found.items())))
        failures = report.pop("failures")
        weights = [weight for _, _, weight in found.values()]
        return {"picker": picker, "counts": dict(rows=rows, users=report.pop("users"), failures=len(failures)),
                "failures": {"users_without_a_weight_examples": examples(failures)},
                "picked_is_hidden_share": (sum(p == h for p, h, _ in found.values()) / len(found)) if found else None,
                "mean_cosine": float(np.mean(weights)) if weights else None, **report}
    return build


# ---------------------------------------------------------------- loading into LLMSeRDataset

def load_pseudo(path: Path, dataset):
    """``[n_users, M]`` internal item ids of each user's pseudo-prior items, oldest first, left-aligned,
    0-padded; items the dataset does not know are skipped."""
    import torch

    lists = read_token_lists(path)
    users, items = dataset.field2token_id[dataset.uid_field], dataset.field2token_id[dataset.iid_field]
    rows = {users[user]: [items[item] for item in found if item in items] for user, found in lists.items() if user in users}
    width = max((len(row) for row in rows.values()), default=0)
    out = torch.zeros(dataset.user_num, width, dtype=torch.long)
    for uid, row in rows.items():
        out[uid, :len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def load_arv(path: Path, dataset):
    """``[n_users]`` reliability (cosine in [0, 1]) of each user, NaN where the file has none."""
    import torch

    table = read_atomic(path)
    user_field, weight_field = list(table.types)[:2]
    users = dataset.field2token_id[dataset.uid_field]
    out = torch.full((dataset.user_num,), float("nan"))
    for user, weight in zip(table.frame[user_field], table.frame[weight_field]):
        if user in users:
            out[users[user]] = float(weight)
    return out


# ---------------------------------------------------------------- declarations

def mode_name(mode: str) -> str:
    return "llmser_pseudo_" + re.sub(r"\W", "_", mode)


PSEUDO_HEADER = ("uid:token", "pseudo_items:token_seq")
ARV_HEADER = ("uid:token", "reliability:float", "picked:token", "hidden:token")

CCG = Output(
    name="llmser_candidates", suffix="ccgcand", header=("uid:token", "candidates:token_seq"),
    fingerprint=ccg_fingerprint, build=build_ccg, load=lambda path, dataset: read_token_lists(path),
    doc="LLMSeR: the reverse SASRec's pseudo-prior candidates per augmented user",
)
ARV_CANDIDATES = Output(
    name="llmser_arv_candidates", suffix="arvcand", header=("uid:token", "hidden:token", "candidates:token_seq"),
    fingerprint=arv_candidates_fingerprint, build=build_arv_candidates, load=lambda path, dataset: read_atomic(path),
    doc="LLMSeR: the forward SASRec's candidates for each user's hidden last training item",
)
PSEUDO = {
    mode: Output(
        name=mode_name(mode), suffix=f"pseudo.{mode}", header=PSEUDO_HEADER, fingerprint=pseudo_fingerprint(mode),
        build=pseudo_builder(mode), load=load_pseudo, depends_on=("item_emb", "llmser_candidates"),
        doc=f"LLMSeR pseudo-prior items ({mode})",
    ) for mode in PSEUDO_MODES
}
ARV = {
    picker: Output(
        name=f"llmser_arv_{picker}", suffix=f"arv.{picker}", header=ARV_HEADER, fingerprint=arv_fingerprint(picker),
        build=arv_builder(picker), load=load_arv, depends_on=("item_emb", "llmser_arv_candidates"),
        doc=f"LLMSeR reliability of each user ({picker} picker)",
    ) for picker in ARV_PICKERS
}
OUTPUTS = (CCG, ARV_CANDIDATES, *PSEUDO.values(), *ARV.values())


def selected_outputs(settings) -> tuple:
    """The outputs an LLMSeR run trains on: the pseudo-prior items of ``llmser_pseudo`` and, with ARV on,
    the reliability of ``llmser_reliability`` (what ``--augment=llmser`` builds under the same settings)."""
    names = [PSEUDO[settings["llmser_pseudo"]].name]
    if settings["llmser_arv"]:
        names.append(ARV[settings["llmser_reliability"]].name)
    return tuple(names)


SYSTEM = System(
    name="llmser", outputs=(PSEUDO["llm-ids"].name, ARV["llm"].name), split="sequential", model="LLMSeR",
    doc="LLMSeR: pseudo-prior items and each user's reliability, chosen as llmser_pseudo and "
        "llmser_reliability say (default: the LLM picks both)",
    select=selected_outputs,
)
