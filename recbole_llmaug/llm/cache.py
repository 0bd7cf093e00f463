"""A persistent key-value cache in SQLite, safe for concurrent threads and processes.

WAL mode plus one row per key means concurrent writers serialise on SQLite's lock instead of
corrupting a shared file, and every answer is committed as soon as it arrives, so an interrupted
run resumes without repeating a paid call.
"""

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Optional


def stable_hash(payload) -> str:
    """SHA-256 of a JSON-serialisable payload, independent of dict order."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SqliteCache:
    """``get``/``put`` of bytes by string key in one table of one SQLite file."""

    def __init__(self, path: Path, table: str):
        if not table.isidentifier():
            raise ValueError(f"bad table name {table!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._table = table
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False)
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._connection.commit()

    def get(self, key: str) -> Optional[bytes]:
        with self._lock:
            row = self._connection.execute(f"SELECT value FROM {self._table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def get_many(self, keys: Iterable[str]) -> dict:
        """Values of the keys that are present, in chunks to stay under SQLite's parameter limit."""
        keys = list(keys)
        found = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._connection.execute(
                    f"SELECT key, value FROM {self._table} WHERE key IN ({marks})", chunk
                ).fetchall()
                found.update((key, bytes(value)) for key, value in rows)
        return found

    def put(self, key: str, value: bytes) -> None:
        self.put_many([(key, value)])

    def put_many(self, items: Iterable[tuple]) -> None:
        with self._lock, self._connection:
            self._connection.executemany(
                f"INSERT OR REPLACE INTO {self._table} (key, value) VALUES (?, ?)", list(items)
            )

    def delete(self, key: str) -> None:
        with self._lock, self._connection:
            self._connection.execute(f"DELETE FROM {self._table} WHERE key = ?", (key,))

    def __len__(self) -> int:
        with self._lock:
            return self._connection.execute(f"SELECT COUNT(*) FROM {self._table}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._connection.close()
