"""Compact selection prompts: what a "pick k of these items for this user" request says, and in which order.

Three things make a prompt cheap without changing the task:

* **Shared prefix first.** The task's instruction (identical for every user of a task) is the system
  message and comes first; the user's history and candidates follow. llama.cpp keeps the KV cache of
  a slot's last prompt and reuses its longest common prefix (``cache_prompt``); vLLM and OpenAI cache
  prefixes the same way. Anything that varies per request must therefore come after the instruction.
* **Compact titles.** Titles are cleaned (HTML entities, whitespace, Amazon list quoting) and cut at a
  word boundary to ``llm_title_max_chars``.
* **Short candidate labels.** Candidates are shown as "A".."J" (``llm_candidate_labels: letters``) or
  "1".."P" (``numbers``) instead of their ids: one token each instead of five to ten, in the
  listing, the answer format and the answer; :func:`~recbole_llmaug.llm.selection.select` maps the
  answer back to the ids.
"""

import string
from typing import Mapping, Optional, Sequence

from recbole_llmaug.augment.text import clean_value
from recbole_llmaug.llm.selection import SelectionRequest

ELLIPSIS = "..."
NEXT_ITEM_INSTRUCTION = (
    "Recommend: pick the {k} candidate(s) the user will most likely interact with next. "
    "The user's items are listed oldest first."
)


def compact_title(title: Optional[str], max_chars: int) -> str:
    """``title`` cleaned and, when longer than ``max_chars`` (> 0), cut at the last word boundary that fits."""
    text = clean_value(title or "") or ""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    room = max(max_chars - len(ELLIPSIS), 1)
    cut = text[:room]
    if " " in cut and not text[room].isspace():
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + ELLIPSIS


def candidate_labels(count: int, style: str, ids: Sequence[str] = ()) -> list:
    """``count`` labels: letters A..Z, AA..AZ, BA.. (spreadsheet style), numbers 1..count, or the ids themselves."""
    if style == "ids":
        return [str(item) for item in ids]
    if style == "numbers":
        return [str(index + 1) for index in range(count)]
    if style != "letters":
        raise ValueError(f"unknown label style {style!r}")
    labels = []
    for index in range(count):
        label, number = "", index + 1
        while number:
            number, rest = divmod(number - 1, 26)
            label = string.ascii_uppercase[rest] + label
        labels.append(label)
    return labels


def selection_request(instruction: str, history_titles: Sequence[str], candidate_ids: Sequence[str],
                      candidate_titles: Sequence[str], k: int, label_style: str = "letters",
                      title_max_chars: int = 0) -> SelectionRequest:
    """A :class:`SelectionRequest` with the shared instruction first, then the history, then labelled candidates.

    ``instruction`` may contain ``{k}``. Titles are compacted with :func:`compact_title`.
    """
    labels = candidate_labels(len(candidate_ids), label_style, candidate_ids)
    history = "\n".join(f"- {compact_title(title, title_max_chars)}" for title in history_titles if title)
    listing = "\n".join(f"{label}: {compact_title(title, title_max_chars)}"
                        for label, title in zip(labels, candidate_titles))
    messages = (
        {"role": "system", "content": instruction.format(k=k)},
        {"role": "user", "content": f"Interacted with:\n{history or '(nothing yet)'}\n\nCandidates:\n{listing}"},
    )
    return SelectionRequest(messages, tuple(str(item) for item in candidate_ids), k,
                            None if label_style == "ids" else tuple(labels))


def titles_of(items: Sequence[str], titles: Mapping[str, str]) -> list:
    return [titles.get(item) or "" for item in items]
