"""Reading and writing RecBole atomic files, with errors that name the file, field and line.

Inputs are decoded as strict UTF-8 (RecBole's default encoding) so that a bad byte is reported
where it is instead of turning into mojibake in a prompt. Outputs are written to a temporary file
in the same folder and moved into place with ``os.replace``, so readers never see half a file.
"""

import contextlib
import csv
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from recbole_llmaug.errors import UserError


def _file_mode() -> int:
    """Permissions a plain ``open()`` would give (temporary files are created private)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


@dataclass
class AtomicTable:
    path: Path
    types: dict  # field name -> RecBole type ("token", "float", "token_seq", ...)
    frame: pd.DataFrame  # every value as a str, "" where empty

    def require(self, *fields: str, purpose: str) -> None:
        missing = [name for name in fields if name not in self.types]
        if missing:
            raise UserError(
                f"{self.path} has no field {', '.join(repr(name) for name in missing)}, which {purpose} needs "
                f"(its header has {list(self.types)}). Add the column, or point the setting that names it "
                "at a column that exists."
            )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UserError(
            f"{path} is not valid UTF-8: byte {data[error.start:error.start + 1]!r} at line {line} "
            f"(byte offset {error.start}). Re-encode the file as UTF-8, e.g. "
            f"iconv -f latin1 -t utf-8 '{path.name}' > fixed && mv fixed '{path.name}'."
        ) from None


def read_atomic(path: Path, field_separator: str = "\t") -> AtomicTable:
    """All columns of an atomic file as strings; the header's ``name:type`` pairs kept apart."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist. Put the dataset's atomic files in {path.parent}, or fix data_path.")
    text = _decode(path)
    header, _, body = text.partition("\n")
    types = {}
    for column in header.rstrip("\r").split(field_separator):
        name, _, kind = column.partition(":")
        if not name or not kind:
            raise UserError(
                f"The header of {path} has a column '{column}' that is not 'name:type' "
                "(RecBole atomic files need headers like 'item_id:token')."
            )
        types[name] = kind
    if not body.strip():
        return AtomicTable(path=path, types=types, frame=pd.DataFrame(columns=list(types), dtype=str))
    try:
        frame = pd.read_csv(
            io.StringIO(body), sep=field_separator, header=None, names=list(types), dtype=str,
            keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE, engine="c",
        )
    except pd.errors.ParserError as error:
        raise UserError(f"{path} could not be parsed as a tab-separated atomic file: {error}.") from None
    return AtomicTable(path=path, types=types, frame=frame)


@contextlib.contextmanager
def atomic_writer(path: Path):
    """A text handle on a temporary file that replaces ``path`` only when the block succeeds."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="\n", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            yield handle
        os.chmod(handle.name, FILE_MODE)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Write a tab-separated atomic file atomically; returns the number of data rows."""
    count = 0
    with atomic_writer(path) as handle:
        handle.write("\t".join(header) + "\n")
        for row in rows:
            handle.write("\t".join(row) + "\n")
            count += 1
    return count


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_writer(path) as handle:
        handle.write(text)


def format_vector(vector) -> str:
    """A float_seq value: space-separated, 7 significant digits (float32 precision)."""
    return " ".join(f"{value:.7g}" for value in vector.tolist())


def parse_float_seq(values, path: Path, field: str):
    """``float_seq`` values (space-separated numbers) as a float32 matrix ``[len(values), dim]``.

    One parser for every reader of vectors (datasets, the similar-users builder), so that a row of
    another length or a non-number is reported the same way everywhere: file, field and line."""
    rows = []
    for line, value in enumerate(values, start=2):
        try:
            rows.append(np.asarray(value.split(), dtype=np.float32))
        except ValueError:
            raise UserError(f"{path} field '{field}' has a non-numeric value at line {line}. "
                            "Rebuild the file with the augmentor (--augment=...).") from None
        if rows[0].shape != rows[-1].shape:
            raise UserError(f"{path} field '{field}' has {len(rows[-1])} numbers at line {line} but "
                            f"{len(rows[0])} at line 2: every vector must have the same length. "
                            "Rebuild the file with the augmentor (--augment=...).")
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(rows)
