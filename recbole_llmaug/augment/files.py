"""The augmentor's view of a dataset's atomic files: locations, id fields, and validated tables.

(Not a RecBole ``Dataset``: the augmentor runs before RecBole loads anything, on the raw files.)"""

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping

import pandas as pd

from recbole_llmaug.augment.atomic import AtomicTable, check_atomic_file, read_atomic, sha256_file
from recbole_llmaug.data.folders import augmented_folder, dataset_dir
from recbole_llmaug.errors import UserError

logger = logging.getLogger(__name__)

EXAMPLES_IN_MANIFEST = 20


@dataclass
class DatasetFiles:
    settings: Mapping

    @property
    def name(self) -> str:
        return self.settings["dataset"]

    @property
    def folder(self) -> Path:
        return dataset_dir(self.settings)

    def path(self, suffix: str) -> Path:
        """An input file of the dataset."""
        return self.folder / f"{self.name}.{suffix}"

    @property
    def output_folder(self) -> Path:
        return augmented_folder(self.settings)

    def output_path(self, suffix: str) -> Path:
        """An augmentor output (next to the dataset, or under ``augment_path``)."""
        return self.output_folder / f"{self.name}.{suffix}"

    @property
    def uid(self) -> str:
        return self.settings.get("USER_ID_FIELD") or "user_id"

    @property
    def iid(self) -> str:
        return self.settings.get("ITEM_ID_FIELD") or "item_id"

    @property
    def time_field(self) -> str:
        return self.settings.get("TIME_FIELD") or "timestamp"

    @property
    def separator(self) -> str:
        return self.settings.get("field_separator") or "\t"

    def read_input(self, suffix: str) -> AtomicTable:
        """One of the dataset's own files, checked first (once per run, shared with training's check:
        header, one value per field, numbers in float fields; see ``check_atomic_file``)."""
        path = self.path(suffix)
        check_atomic_file(path, self.separator, self.settings.get("encoding") or "utf-8",
                          self.settings.get("seq_separator") or " ")
        return read_atomic(path, self.separator)

    def input_hashes(self, *suffixes: str) -> dict:
        """SHA-256 of the dataset's own files (``.inter``, ``.item``...) that exist."""
        return _hashes(self.path(suffix) for suffix in suffixes)

    def output_hashes(self, *suffixes: str) -> dict:
        """SHA-256 of augmentor outputs that another output is computed from."""
        return _hashes(self.output_path(suffix) for suffix in suffixes)

    @cached_property
    def inter(self) -> AtomicTable:
        table = self.read_input("inter")
        table.require(self.uid, self.iid, purpose="every augmentor")
        for field in (self.uid, self.iid):
            empty = table.frame.index[table.frame[field].str.strip() == ""]
            if len(empty):
                raise UserError(
                    f"{table.path} has an empty '{field}' at line {empty[0] + 2} ({len(empty)} row(s) in all). "
                    "Every interaction needs a user and an item id; remove or fix those rows."
                )
        return table

    def inter_with_time(self) -> pd.DataFrame:
        """uid, iid and a float time column, for the leave-one-out split."""
        table = self.inter
        table.require(self.time_field, purpose="ordering each user's history by time (TIME_FIELD)")
        frame = table.frame[[self.uid, self.iid, self.time_field]].copy()
        times = pd.to_numeric(frame[self.time_field], errors="coerce")
        bad = times.index[times.isna()]
        if len(bad):
            raise UserError(
                f"{table.path} field '{self.time_field}' has a non-numeric value "
                f"'{frame[self.time_field].iloc[bad[0]]}' at line {bad[0] + 2}. Timestamps must be numbers."
            )
        frame[self.time_field] = times
        return frame

    @cached_property
    def item(self) -> AtomicTable:
        path = self.path("item")
        if not path.is_file():
            raise UserError(
                f"{path} does not exist, but item and user texts are built from it. Add the dataset's "
                f".item file (item id plus text columns such as title)."
            )
        table = self.read_input("item")
        table.require(self.iid, purpose="matching items to interactions")
        ids = table.frame[self.iid]
        duplicated = ids[ids.duplicated()]
        if len(duplicated):
            raise UserError(
                f"{path} lists item '{duplicated.iloc[0]}' more than once in '{self.iid}' "
                f"({len(duplicated)} duplicate row(s)). Keep one row per item."
            )
        known = set(ids)
        inter_items = pd.unique(self.inter.frame[self.iid])
        covered = sum(item in known for item in inter_items)
        if covered == 0:
            raise UserError(
                f"None of the {len(inter_items)} items in {self.inter.path} ('{self.iid}') appear in {path}. "
                "The two files must use the same item ids; check ITEM_ID_FIELD and the files."
            )
        if covered < len(inter_items):
            logger.warning(
                "%d of %d items in %s have no row in %s; they get no text", len(inter_items) - covered,
                len(inter_items), self.inter.path.name, path.name,
            )
        return table


def _hashes(paths) -> dict:
    return {path.name: sha256_file(path) for path in paths if path.is_file()}


def examples(values, limit: int = EXAMPLES_IN_MANIFEST) -> list:
    return [str(value) for value in list(values)[:limit]]
