"""Reading, checking and writing RecBole atomic files, with errors that name the file, field and line.

Inputs are decoded strictly (UTF-8, RecBole's default encoding) so that a bad byte is reported
where it is instead of turning into mojibake in a prompt. :func:`check_atomic_file` validates a
dataset's own files once per run, before RecBole or the augmentor reads them, so that a damaged file
is reported at its line instead of crashing far away or being read shifted.

Outputs are written to a temporary file in the same folder and moved into place with ``os.replace``,
so readers never see half a file. A writer killed hard (SIGKILL, power loss) leaves its temporary
file behind; the next write of the same target removes such leftovers (see :func:`remove_stale_temps`).
"""

import contextlib
import csv
import difflib
import glob
import hashlib
import io
import os
import re
import socket
import tempfile
import time
import zlib
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


def _decode(path: Path, encoding: str = "utf-8") -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except LookupError:
        raise UserError(f"encoding '{encoding}' (set for reading {path}) is not an encoding Python knows. "
                        "Fix the 'encoding' setting (RecBole's default is utf-8).") from None
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        if utf8:
            fix = (f"Re-encode the file as UTF-8, e.g. "
                   f"iconv -f latin1 -t utf-8 '{path.name}' > fixed && mv fixed '{path.name}'.")
        else:
            fix = "Re-encode the file, or set 'encoding' to the file's encoding."
        raise UserError(
            f"{path} is not valid {'UTF-8' if utf8 else encoding}: byte "
            f"{data[error.start:error.start + 1]!r} at line {line} (byte offset {error.start}). {fix}"
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


def read_token_lists(path: Path) -> dict:
    """A two-column ``id:token  items:token_seq`` file (candidates, pseudo items...) as ``{id: [item, ...]}``."""
    table = read_atomic(path)
    first, second = list(table.types)[:2]
    return {key: text.split() for key, text in zip(table.frame[first], table.frame[second])}


# ---------------------------------------------------------------- checking a dataset's own files

# RecBole's field types (recbole.utils.FeatureType); its Dataset rejects any other with a bare ValueError.
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
_SHOWN = 60  # characters of a bad line or value quoted in a message

try:  # the strings pandas (and so RecBole's reader) takes for a missing value
    from pandas._libs.parsers import STR_NA_VALUES as _NA_VALUES
except ImportError:  # pragma: no cover - an older/newer pandas: empty means missing
    _NA_VALUES = {""}

_checked = {}  # (path, size, mtime, separators, encoding) -> field types, so each file is read once per run


def _shown(text: str) -> str:
    text = repr(text)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 4] + "...'"


def _header_types(path: Path, header: str, separator: str) -> dict:
    """``name -> type`` of a header line, with every problem RecBole would trip over named."""
    example = "'user_id:token<TAB>item_id:token<TAB>timestamp:float'"
    if header.startswith("\ufeff"):
        raise UserError(f"{path} starts with a byte-order mark (BOM) before its header. Save the file as UTF-8 "
                        "without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE).")
    if not header.strip():
        raise UserError(f"{path} has no header: its first line is empty. The first line of an atomic file names "
                        f"its fields as name:type, separated by tabs, e.g. {example}.")
    types = {}
    columns = header.split(separator)
    for number, column in enumerate(columns, start=1):
        name, colon, kind = column.partition(":")
        if column == "" and number == len(columns) and number > 1:
            raise UserError(f"The header (line 1) of {path} ends with a tab after its last field, which makes an "
                            "empty extra field. Remove the trailing tab.")
        if not colon or not name or ":" in kind:
            raise UserError(
                f"The header (line 1) of {path} has field {number} {_shown(column)}, which is not 'name:type'. "
                f"RecBole atomic files start with a header like {example}; if the first line is data, add "
                "such a header line above it."
            )
        if kind not in FIELD_TYPES:
            close = difflib.get_close_matches(kind, FIELD_TYPES, n=1, cutoff=0.5)
            hint = f" Did you mean '{name}:{close[0]}'?" if close else ""
            raise UserError(
                f"The header (line 1) of {path} gives field '{name}' the type '{kind}', which RecBole does not "
                f"know: the types are {', '.join(FIELD_TYPES)}.{hint}"
            )
        if name in types:
            raise UserError(f"The header (line 1) of {path} names field '{name}' twice. Rename one of them.")
        types[name] = kind
    return types


def _bad_number(values: pd.Series, is_seq: bool, seq_separator: str):
    """Position and text of the first value that is neither missing nor a number (nor, for a
    ``float_seq``, a list of numbers); None when all are fine."""
    if is_seq:
        parts = values.str.split(seq_separator if seq_separator else None).explode()
        parts = parts[parts.notna() & (parts != "")]
        numbers = pd.to_numeric(parts, errors="coerce")
        bad = parts.index[numbers.isna().to_numpy() & ~parts.str.lower().isin(("nan", "inf", "-inf")).to_numpy()]
        return (bad[0], values.iloc[bad[0]]) if len(bad) else None
    missing = values.isin(_NA_VALUES) | (values.str.strip() == "")
    numbers = pd.to_numeric(values.where(~missing), errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & ~missing.to_numpy())
    return (bad[0], values.iloc[bad[0]]) if len(bad) else None


def _check_quotes(path: Path, body: str, separator: str, data_lines: list, width: int) -> None:
    """RecBole's reader (pandas) treats a value that starts with a double quote as quoted: it runs to
    the closing quote, across tabs and line ends. The augmentor reads values as they are. Both must
    see the same rows, or one of them would silently read shifted values."""
    reader = csv.reader(io.StringIO(body), delimiter=separator, quotechar='"', doublequote=True)
    row_index = 0
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        last_line = reader.line_num + 1  # + the header line
        first_line = data_lines[row_index] if row_index < len(data_lines) else last_line
        if len(row) != width or first_line != last_line:
            raise UserError(
                f"{path} line {first_line}: a value starts with a double quote (\"), so RecBole reads it as a "
                f"quoted value that runs to the next quote{f' (here up to line {last_line})' if last_line != first_line else ''}, "
                "and the line's fields no longer match the header. Remove that quote, or quote the whole value "
                "(\"...\") with any quote inside it doubled and no tab or line break inside it."
            )
        row_index += 1


def check_atomic_file(path, separator: str = "\t", encoding: str = "utf-8", seq_separator: str = " ") -> dict:
    """Check one of a dataset's atomic files the way RecBole will read it; returns ``{field: type}``.

    Checked: a header of ``name:type`` fields with RecBole's types (token, token_seq, float,
    float_seq), at least one data row, every data row with exactly the header's number of fields (a
    trailing tab is an extra, empty field: pandas would silently shift the columns), quoted values
    that RecBole and the augmentor read alike, and numbers (or nothing) in float and float_seq fields.
    Any problem is a :class:`UserError` naming the file, the line and the field. Blank lines are
    skipped, as RecBole skips them.

    Each file is read once per process: a file already checked (same size and modification time)
    is not read again, so that the augmentor and training of one run share the check.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist. Put the dataset's atomic files in {path.parent}, or fix data_path.")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, separator, encoding, seq_separator)
    if key in _checked:
        return dict(_checked[key])
    text = _decode(path, encoding)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    header, _, body = text.partition("\n")
    types = _header_types(path, header, separator)
    width = len(types)
    # (line number, line) of every data row; a line that is blank (no separator, only spaces) is skipped
    rows = [(number, line) for number, line in enumerate(body.split("\n"), start=2)
            if line.strip() or separator in line]
    if not rows:
        raise UserError(
            f"{path} has a header but no data rows. Every atomic file that a run reads needs at least one row; "
            "fill the file, or remove it if the dataset does not need it."
        )
    counts = np.fromiter((line.count(separator) for _, line in rows), dtype=np.int64, count=len(rows)) + 1
    wrong = np.flatnonzero(counts != width)
    if len(wrong):
        number, line = rows[wrong[0]]
        fields = line.split(separator)
        where = f"line {number}" + (f" (the first of {len(wrong)} such lines)" if len(wrong) > 1 else "")
        if len(fields) == width + 1 and fields[-1] == "":
            problem = (f"ends with a tab after its last value: that is an extra, empty field, so the line has "
                       f"{len(fields)} fields where the header ({', '.join(types)}) has {width}. Remove the "
                       "trailing tab(s)")
        else:
            quoted = " (a value in double quotes may not hold a tab either)" if '"' in line else ""
            problem = (f"has {len(fields)} fields where the header ({', '.join(types)}) has {width}: "
                       f"{_shown(line)}. A value may not contain a tab{quoted}, and each line needs one value "
                       "per header field (an empty one between two tabs when missing): fix the line")
        raise UserError(f"{path} {where} {problem}.")
    if '"' in body:
        _check_quotes(path, body, separator, [number for number, _ in rows], width)
    numeric = [index for index, kind in enumerate(types.values()) if kind in ("float", "float_seq")]
    if numeric:
        # Rows are aligned and quotes are consistent by now, so pandas' C reader (quotes removed, as
        # RecBole reads them) gives row k of ``rows`` as row k.
        values = pd.read_csv(
            io.StringIO("\n".join(line for _, line in rows)), sep=separator, header=None, usecols=numeric,
            dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False, engine="c",
        )
        names, kinds = list(types), list(types.values())
        for index in numeric:
            bad = _bad_number(values[index], kinds[index] == "float_seq", seq_separator)
            if bad is not None:
                position, value = bad
                what = ("numbers separated by " + repr(seq_separator)) if kinds[index] == "float_seq" else "a number"
                raise UserError(
                    f"{path} line {rows[position][0]}, field '{names[index]}' ({kinds[index]}): {_shown(value)} is "
                    f"not {what}. Fix the value (leave it empty when it is missing), or declare the field as "
                    f"'{names[index]}:token' if it is not numeric."
                )
    _checked[key] = dict(types)
    return types


# A temporary file is named ``.<target>.<host>-<pid>.<random>.tmp``: the host and the writer's pid let
# the next writer of the same target tell a leftover of a killed process from a write in progress.
STALE_TEMP_SECONDS = 15 * 60
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_HOST}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to another user
        return True
    return True


def remove_stale_temps(path: Path, max_age_s: float = STALE_TEMP_SECONDS) -> list:
    """Remove temporary files that earlier writers of ``path`` left behind; returns the removed paths.

    A leftover is removed when its writer was a process on this machine that no longer exists (its pid
    is in the name), or, when the writer cannot be checked (another machine sharing the folder, or a
    file named before this scheme), when it has not been modified for ``max_age_s`` (15 minutes: a
    writer streams its rows, so a live write touches its file far more often). A temporary file of a
    live process on this machine is never touched, however old: a concurrent writer is not disturbed.
    """
    path = Path(path)
    pattern = re.compile(r"^\." + re.escape(path.name) + r"\.(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.)?[^.]+\.tmp$")
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return removed
    now = time.time()
    for candidate in candidates:
        match = pattern.match(candidate.name)
        if match is None:
            continue
        try:
            if match.group("host") == _HOST:
                stale = not _pid_alive(int(match.group("pid")))
            else:
                stale = now - candidate.stat().st_mtime > max_age_s
            if stale:
                candidate.unlink()
                removed.append(candidate)
        except OSError:  # gone already (another writer cleaned it), or not ours to remove
            continue
    return removed


def _temp_file(path: Path):
    remove_stale_temps(path)
    return tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="\n", dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp", delete=False
    )


@contextlib.contextmanager
def atomic_writer(path: Path):
    """A text handle on a temporary file that replaces ``path`` only when the block succeeds."""
    path = Path(path)
    handle = _temp_file(path)
    try:
        with handle:
            yield handle
        os.chmod(handle.name, FILE_MODE)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_new_file_atomic(text: str, candidates: Iterable[Path], temp_for: Path) -> Path:
    """Write ``text`` under the first of ``candidates`` that does not exist yet, atomically, and return it.

    Never replaces an existing file, even when another process picks the same name at the same moment:
    the complete temporary file is hard-linked to the name, which fails if the name is taken. (Where the
    file system has no hard links, the name is checked and then replaced, which is atomic for readers.)
    ``temp_for``: the stable target name the temporary file is named after, so that a leftover of a
    killed writer is removed by the next write (see :func:`remove_stale_temps`).
    """
    handle = _temp_file(Path(temp_for))
    try:
        with handle:
            handle.write(text)
        os.chmod(handle.name, FILE_MODE)
        for candidate in candidates:
            candidate = Path(candidate)
            try:
                os.link(handle.name, candidate)
            except FileExistsError:
                continue
            except OSError:  # no hard links here
                if candidate.exists():
                    continue
                os.replace(handle.name, candidate)
                return candidate
            return candidate
        raise FileExistsError(f"every candidate name for {temp_for} is taken")
    finally:
        Path(handle.name).unlink(missing_ok=True)


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
