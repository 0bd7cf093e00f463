"""Pickers: "choose k of these candidate items for this user", by the LLM or without one.

One interface for every selection task of the seed systems (LLMSeR's M' pseudo-prior items among P
candidates, a 1-of-10 pick for its reliability check) so that the LLM can be compared with, or replaced
by, a baseline that calls no model (``picker`` setting):

* ``llm``: a compact prompt (:mod:`.prompts`: shared instruction first, short labels, cut titles)
  answered through :func:`~recbole_llmaug.llm.selection.run_many` (cache, retries, validation, progress);
* ``embedding``: candidates ranked by cosine to the user's history embedding, the mean of the vectors
  of its training items (``item_vectors``, e.g. the ``.itememb`` output); the no-LLM baseline;
* ``random``: k candidates drawn uniformly, seeded per task (the same task gets the same pick).

Every picker returns one :class:`PickResult` per :class:`PickTask`, in order, ids most preferred first
(for ``llm`` the order of the model's answer).
"""

import contextlib
import hashlib
import random
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np

from recbole_llmaug.defaults import setting
from recbole_llmaug.llm.prompts import NEXT_ITEM_INSTRUCTION, selection_request, titles_of

PICKERS = ("llm", "embedding", "random")


@dataclass(frozen=True)
class PickTask:
    key: str  # who the pick is for (a user id): seeds ``random``, names failures
    history: tuple  # the user's training item ids, oldest first
    candidates: tuple  # candidate item ids
    k: int = 1


@dataclass
class PickResult:
    ids: list  # k candidate ids, most preferred first ([] when the pick failed)
    valid: bool
    cached: bool = False
    error: Optional[str] = None
    scores: Optional[list] = None  # embedding picker: the cosine of each candidate, in candidate order


class RandomPicker:
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def pick_many(self, tasks: Sequence[PickTask], desc: str = "random picks") -> list:
        results = []
        for task in tasks:
            digest = hashlib.sha256(f"{self.seed}\0{task.key}\0{'|'.join(task.candidates)}".encode()).digest()
            rng = random.Random(int.from_bytes(digest[:8], "big"))
            results.append(PickResult(rng.sample(list(task.candidates), min(task.k, len(task.candidates))), True))
        return results


class EmbeddingPicker:
    """Cosine between each candidate's vector and the mean of the history's vectors; the top k."""

    name = "embedding"

    def __init__(self, item_vectors: Mapping[str, np.ndarray]):
        self.item_vectors = item_vectors

    def _unit(self, item) -> Optional[np.ndarray]:
        vector = self.item_vectors.get(item)
        if vector is None:
            return None
        norm = float(np.linalg.norm(vector))
        return None if norm == 0 else np.asarray(vector, dtype=np.float64) / norm

    def pick_many(self, tasks: Sequence[PickTask], desc: str = "embedding picks") -> list:
        results = []
        for task in tasks:
            history = [vector for vector in map(self._unit, task.history) if vector is not None]
            if not history:
                results.append(PickResult([], False, error=f"{task.key}: no history item has a vector"))
                continue
            profile = np.mean(history, axis=0)  # [dim]
            scores = []
            for item in task.candidates:
                vector = self._unit(item)
                scores.append(float(vector @ profile) if vector is not None else -np.inf)
            # Most similar first; equal scores keep the candidates' order (stable).
            order = sorted(range(len(scores)), key=lambda index: -scores[index])
            chosen = [task.candidates[index] for index in order[:min(task.k, len(order))]]
            results.append(PickResult(chosen, True, scores=scores))
        return results


class LLMPicker:
    """Compact selection prompts answered by the configured LLM (or the embedded server).

    ``client`` None with ``sharded_settings``: the requests go to Ray tasks (``ray_address``), each with
    its own client, through :func:`~recbole_llmaug.llm.sharding.run_many_sharded`.
    """

    name = "llm"

    def __init__(self, client, titles: Mapping[str, str], prompt_version: str,
                 instruction: str, label_style: str, title_max_chars: int, history_max_items: int, sharded_settings: Optional[Mapping] = None):
        self.client = client
        self.sharded_settings = sharded_settings
        self.titles = titles
        self.prompt_version = prompt_version
        self.instruction = instruction
        self.label_style = label_style
        self.title_max_chars = title_max_chars
        self.history_max_items = history_max_items

    def requests(self, tasks: Sequence[PickTask]) -> list:
        """The :class:`~recbole_llmaug.llm.selection.SelectionRequest` of each task (the latest history items)."""
        limit = self.history_max_items
        return [
            selection_request(self.instruction, titles_of(task.history[-limit:] if limit > 0 else task.history,
                                                          self.titles),
                              task.candidates, titles_of(task.candidates, self.titles), task.k, self.label_style,
                              self.title_max_chars)
            for task in tasks
        ]

    def pick_many(self, tasks: Sequence[PickTask], desc: str = "LLM picks") -> list:
        if self.client is None:
            from recbole_llmaug.llm.sharding import run_many_sharded

            results = run_many_sharded(self.requests(tasks), self.sharded_settings, self.prompt_version, desc=desc)
        else:
            from recbole_llmaug.llm.selection import run_many

            results = run_many(self.client, self.requests(tasks), self.prompt_version, desc=desc)
        return [PickResult(result.ids, result.valid, result.cached, result.error) for result in results]


@contextlib.contextmanager
def open_picker(settings: Mapping, prompt_version: str, titles: Optional[Mapping[str, str]] = None,
                item_vectors: Optional[Mapping[str, np.ndarray]] = None, kind: Optional[str] = None,
                instruction: str = NEXT_ITEM_INSTRUCTION) -> Iterator:
    """The picker the ``picker`` setting names (or ``kind``), ready to ``pick_many``.

    ``llm`` needs ``titles`` (item id -> title) and opens the chat client (the embedded server is
    stopped when the block ends; with ``ray_address`` set, no client here: Ray tasks open their own);
    ``embedding`` needs ``item_vectors`` (item id -> vector); ``random`` is seeded by the ``seed`` setting.
    """
    kind = kind or setting(settings, "picker")
    if kind not in PICKERS:
        from recbole_llmaug.errors import UserError

        raise UserError(f"Unknown picker '{kind}'. Use one of {', '.join(PICKERS)}.")
    if kind == "random":
        yield RandomPicker(int(setting(settings, "seed")))
        return
    if kind == "embedding":
        if item_vectors is None:
            raise ValueError("the embedding picker needs item_vectors (item id -> vector)")
        yield EmbeddingPicker(item_vectors)
        return
    if titles is None:
        raise ValueError("the llm picker needs titles (item id -> title)")
    from recbole_llmaug.llm.chat import open_chat_client

    options = dict(label_style=setting(settings, "llm_candidate_labels"),
                   title_max_chars=int(setting(settings, "llm_title_max_chars")),
                   history_max_items=int(setting(settings, "user_text_max_items")))
    if setting(settings, "ray_address"):
        yield LLMPicker(None, titles, prompt_version, instruction, sharded_settings=settings, **options)
        return
    with open_chat_client(settings) as client:
        yield LLMPicker(client, titles, prompt_version, instruction, **options)
