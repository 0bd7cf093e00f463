"""The texts that get embedded: item descriptions from a per-dataset template, and user histories.

Template rule: each ``{field}`` owns the literal text just before it (its separator and label,
e.g. ``". Brand: "`` before ``{brand}``). A field that is missing, empty or "nan" is dropped
together with that text, so nothing prints as "nan" and no label dangles; the first field that is
present drops its leading separator punctuation but keeps its label.
"""

import html
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

import numpy as np
import pandas as pd

from recbole_llmaug.errors import UserError

ITEM_TEXT_VERSION = "item-text-v1"
USER_TEXT_VERSION = "user-text-v1-newest-first"
USER_TEXT_SEPARATOR = "; "
MISSING_VALUES = {"", "nan", "none", "null", "n/a"}
_QUOTED_LIST_ITEM = re.compile(r"""'([^']*)'|"([^"]*)\"""")
_LEADING_SEPARATOR = re.compile(r"^[^\w]*")


def clean_value(raw: str) -> Optional[str]:
    """Readable text for one field value, or None when it is missing."""
    value = html.unescape(raw).strip()
    if value.lower() in MISSING_VALUES:
        return None
    if value[:1] in "'\"":  # Amazon category lists: "'Beauty', 'Makeup'"
        parts = [single or double for single, double in _QUOTED_LIST_ITEM.findall(value)]
        parts = [part.strip() for part in parts if part.strip()]
        value = ", ".join(parts) if parts else value.strip("'\" ")
    value = " ".join(value.split())
    return value or None


@dataclass(frozen=True)
class TextTemplate:
    pieces: tuple  # (separator, label, field)
    trailer: str

    @classmethod
    def parse(cls, template: str) -> "TextTemplate":
        pieces, trailer = [], ""
        for literal, field, spec, conversion in string.Formatter().parse(template):
            if field is None:
                trailer = literal
                continue
            if not field or spec or conversion:
                raise UserError(
                    f"item_text_template '{template}' must use plain named fields like {{title}}, "
                    "without format specs or positional {}."
                )
            separator = _LEADING_SEPARATOR.match(literal).group(0) if pieces else ""
            pieces.append((separator, literal[len(separator):], field))
        if not pieces:
            raise UserError(f"item_text_template '{template}' names no field; use e.g. '{{title}}. Brand: {{brand}}'.")
        return cls(tuple(pieces), trailer)

    @property
    def fields(self) -> List[str]:
        return [field for _, _, field in self.pieces]

    def render(self, values: Mapping[str, str]) -> str:
        parts = []
        for separator, label, field in self.pieces:
            value = clean_value(values.get(field, ""))
            if value is None:
                continue
            parts.append((separator if parts else "") + label + value)
        return "".join(parts) + self.trailer if parts else ""


def parse_interval(text) -> Optional[tuple]:
    """RecBole's ``"[5,inf)"`` interval string as (low, low_closed, high, high_closed); None if unset."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([\[(])\s*([^,]*)\s*,\s*([^\])]*)\s*([\])])\s*", str(text))
    if not match:
        raise UserError(f"Interaction-count interval '{text}' is not like '[5,inf)'.")
    opening, low, high, closing = match.groups()
    return float(low), opening == "[", float(high), closing == "]"


def _inside(count, interval) -> bool:
    low, low_closed, high, high_closed = interval
    return (count >= low if low_closed else count > low) and (count <= high if high_closed else count < high)


def active_interval(text) -> Optional[tuple]:
    """The parsed interval, or None when it filters nothing (unset or RecBole's "[0,inf)")."""
    interval = parse_interval(text)
    if interval is None or (interval[0] <= 0 and interval[2] == float("inf")):
        return None
    return interval


def recbole_filtered(inter: pd.DataFrame, uid: str, iid: str, known_items: Optional[set], settings: Mapping) -> pd.DataFrame:
    """The interactions RecBole keeps, for the filters it applies by default or that are configured.

    Mirrors ``filter_inter_by_user_or_item`` (drop interactions of items without a row in ``.item``)
    and the ``user_inter_num_interval``/``item_inter_num_interval`` k-core loop.
    """
    if settings.get("filter_inter_by_user_or_item", True) is not False and known_items is not None:
        inter = inter[inter[iid].isin(known_items)]
    user_interval = active_interval(settings.get("user_inter_num_interval"))
    item_interval = active_interval(settings.get("item_inter_num_interval"))
    while user_interval or item_interval:
        keep = pd.Series(True, index=inter.index)
        for field, interval in ((uid, user_interval), (iid, item_interval)):
            if interval:
                counts = inter[field].map(Counter(inter[field]))
                keep &= counts.map(lambda count, interval=interval: _inside(count, interval))
        if keep.all():
            break
        inter = inter[keep]
    return inter


LEAVE_ONE_OUT, RECBOLE_SPLIT = "leave_one_out", "recbole"


def _leave_one_out_mode(settings: Mapping) -> Optional[str]:
    """``eval_args``' leave-one-out mode (``valid_and_test`` ...) when it splits that way in time order, else None."""
    eval_args = settings.get("eval_args") or {}
    split = eval_args.get("split") or {"LS": "valid_and_test"}
    mode = split.get("LS") if isinstance(split, dict) else None
    ok = eval_args.get("order", "TO") == "TO" and mode in ("valid_and_test", "valid_only", "test_only")
    return mode if ok else None


def split_kind(settings: Mapping) -> str:
    """How the augmentor finds each user's training items: ``leave_one_out`` (time-ordered leave-one-out,
    what the sequential systems use: computed from the files) or ``recbole`` (any other split of a general
    model, e.g. LLMRec's random 8:1:1: taken from RecBole itself). A sequential run must split leave-one-out."""
    if _leave_one_out_mode(settings) is not None:
        return LEAVE_ONE_OUT
    if uses_sequential_split(settings):
        leave_one_out_count(settings)  # raises the UserError that says how to fix eval_args
    return RECBOLE_SPLIT


def leave_one_out_count(settings: Mapping) -> int:
    """How many of each user's last interactions RecBole holds out (valid + test)."""
    mode = _leave_one_out_mode(settings)
    if mode is None:
        raise UserError(
            f"User texts use the training history of a leave-one-out split ordered by time, but eval_args is "
            f"{settings.get('eval_args') or {}}. Use eval_args: {{split: {{LS: valid_and_test}}, order: TO}} for "
            f"LLM augmentation."
        )
    return 2 if mode == "valid_and_test" else 1


def uses_sequential_split(settings: Mapping) -> bool:
    """Whether RecBole splits the data the sequential way for this run.

    From ``MODEL_TYPE`` (the model's type in a built RecBole ``Config``; the runner sets it from the
    augmented system's declared split when no model is given), else sequential, as for LLM-ESR.
    """
    model_type = settings.get("MODEL_TYPE")
    if model_type is None:
        return True
    return getattr(model_type, "name", str(model_type).rpartition(".")[2]) == "SEQUENTIAL"


def training_histories(inter: pd.DataFrame, uid: str, iid: str, time_field: str, holdout: int,
                       sequential: bool = True) -> Dict[str, List[str]]:
    """Each user's training items, oldest first, exactly as RecBole's leave-one-out split makes them.

    RecBole sorts all interactions by time with a stable sort (ties keep their file order), groups
    them by user, and holds out the last ``holdout`` rows of each user, but never a user's only row.
    A sequential dataset has one row per item after the first (that item is the target, the ones
    before it the input), so a user with 2 items keeps both for training, one with 3 keeps 2;
    other datasets have one row per item.
    """
    timestamps = inter[time_field].to_numpy(dtype=np.float64)
    order = np.argsort(timestamps, kind="stable")
    users = inter[uid].to_numpy()[order]
    items = inter[iid].to_numpy()[order]
    grouped: Dict[str, List[str]] = {}
    for user, item in zip(users, items):
        grouped.setdefault(user, []).append(item)
    for user, history in grouped.items():
        rows = len(history) - 1 if sequential else len(history)
        held_out = min(holdout, max(rows - 1, 0))
        grouped[user] = history[:len(history) - held_out]
    return grouped
