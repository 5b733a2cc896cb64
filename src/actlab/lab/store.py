"""The results store: one SQLite database per output folder, one row per finished run.

Guarantees, and how they are kept:

* **No partial row, no corrupt file.** A run's row is inserted in one
  transaction after the run has finished; SQLite's journal (WAL, synchronous=FULL)
  makes a kill at any moment leave either the whole row or none.
* **No duplicate.** The primary key is the hash of the run's configuration
  (:meth:`~actlab.lab.config.RunSpec.config_hash`), so the same run can never be
  stored twice. A finished (``ok``) row is never replaced; a ``failed`` row is
  replaced by a later attempt (``--retry-failed``).
* **No lost result with several writers.** Writes take the write lock up front
  (``BEGIN IMMEDIATE``) and wait for it (busy timeout) instead of failing.
* **Versioned.** A ``meta`` table records the schema version; a database written
  by a newer, incompatible actlab is refused with a clear message.

WAL needs a local file system (not NFS); see ``docs/lab.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunSpec
from .runner import RunResult

__all__ = ["SCHEMA_VERSION", "DB_NAME", "StoreError", "StoredRun", "ResultStore", "read_results", "database_path"]

SCHEMA_VERSION = 1
DB_NAME = "results.sqlite"
#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    config_hash    TEXT PRIMARY KEY,
    status         TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    task           TEXT NOT NULL,
    model          TEXT NOT NULL,
    activation     TEXT NOT NULL,
    seed           INTEGER NOT NULL,
    group_key      TEXT NOT NULL,
    metric         TEXT,
    test_value     REAL,
    error          TEXT,
    spec_json      TEXT NOT NULL,
    result_json    TEXT NOT NULL,
    actlab_version TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_group ON runs (group_key, activation, seed);
"""

_COLUMNS = (
    "config_hash",
    "status",
    "task",
    "model",
    "activation",
    "seed",
    "group_key",
    "metric",
    "test_value",
    "error",
    "spec_json",
    "result_json",
    "actlab_version",
    "created_at",
)

# A finished run is never replaced; a failed one is, by its retry (whatever the retry's outcome).
_INSERT = f"""
INSERT INTO runs ({", ".join(_COLUMNS)}) VALUES ({", ".join("?" * len(_COLUMNS))})
ON CONFLICT (config_hash) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])}
WHERE runs.status = 'failed'
"""


class StoreError(RuntimeError):
    """The results database cannot be opened, read or written; the message says which file and why."""


@dataclass(frozen=True)
class StoredRun:
    """One row of the store: the run's configuration, its result and when it was stored."""

    spec: RunSpec
    result: RunResult
    created_at: str

    @property
    def config_hash(self) -> str:
        return self.result.config_hash


def database_path(location: str | os.PathLike) -> Path:
    """The database file of an output folder (a path to the file itself is accepted too)."""
    path = Path(location)
    return path if path.suffix == ".sqlite" or path.is_file() else path / DB_NAME


class ResultStore:
    """Open (and with ``create=True`` create) the results database of an output folder.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, location: str | os.PathLike, *, create: bool = True) -> None:
        self.path = database_path(location)
        if not create and not self.path.exists():
            raise StoreError(
                f"no results database at {self.path} (run `actlab compare --out {self.path.parent}` first)"
            )
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create the output folder {self.path.parent}: {err.strerror or err}") from None
        with self._errors("open"):
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            with self._errors("open"):
                self._db.execute("PRAGMA synchronous = FULL")
                self._retry_while_busy(lambda: self._check_or_create_schema(create))
        except BaseException:
            self._db.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as err:
            text = str(err)
            if "not a database" in text or "malformed" in text or "corrupt" in text:
                raise StoreError(
                    f"{self.path} is not a readable actlab results database ({text}); "
                    "it is damaged or is some other file — move it away, or choose another --out folder"
                ) from None
            raise StoreError(f"cannot {action} the results database {self.path}: {text}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from the start (no lock-upgrade deadlock)."""
        with self._errors("write"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _retry_while_busy(self, step: Any) -> Any:
        """Run ``step``, retrying it while another process holds the database.

        SQLite answers "database is locked" without waiting on its busy timeout in a few cases,
        notably switching a new file to WAL while a second process opens it at the same moment
        (two workers starting a study on a fresh folder). ``step`` must be idempotent.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.01
        while True:
            try:
                return step()
            except sqlite3.OperationalError as err:
                text = str(err)
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(2 * delay, 0.5)

    def _check_or_create_schema(self, create: bool) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and create:
            # WAL: readers (`actlab results` during a study) never block the writer.
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._write() as db:  # executescript would commit on its own; one statement at a time
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            return
        if not {"meta", "runs"} <= tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not an actlab results database (tables: {sorted(tables)}); "
                "choose another --out folder"
            )
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row and str(row[0]).isdigit() else None
        if version is None:
            raise StoreError(f"{self.path} has no schema version; it was not written by actlab")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} uses results schema {version}, newer than this actlab understands ({SCHEMA_VERSION}); "
                "upgrade actlab to read it"
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- runs --------------------------------------------------------------------------------
    def statuses(self, hashes: Iterable[str] | None = None) -> dict[str, str]:
        """``config_hash -> status`` of the stored runs (restricted to ``hashes`` when given)."""
        with self._errors("read"):
            rows = self._db.execute("SELECT config_hash, status FROM runs").fetchall()
        wanted = None if hashes is None else set(hashes)
        return {h: s for h, s in rows if wanted is None or h in wanted}

    def record(self, spec: RunSpec, result: RunResult) -> bool:
        """Store a finished run in one transaction; ``False`` if an ``ok`` row for it already exists."""
        from .._version import __version__

        key = spec.config_hash()
        if result.config_hash != key:
            raise ValueError(f"result {result.config_hash[:12]} does not belong to run {key[:12]} ({spec.label})")
        row = (
            key,
            result.status,
            spec.task,
            spec.model,
            spec.activation.label,
            spec.seed,
            spec.group_key(),
            result.metric,
            result.test_value,
            result.error,
            json.dumps(spec.to_dict(), sort_keys=True),
            json.dumps(result.to_dict()),
            __version__,
            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        with self._write() as db:
            return db.execute(_INSERT, row).rowcount > 0

    def runs(self, hashes: Iterable[str] | None = None) -> list[StoredRun]:
        """Every stored run (or those in ``hashes``), ordered by task, model, activation, seed."""
        with self._errors("read"):
            rows = self._db.execute(
                "SELECT config_hash, spec_json, result_json, created_at FROM runs ORDER BY task, model, activation, seed"
            ).fetchall()
        wanted = None if hashes is None else set(hashes)
        out = []
        for key, spec_json, result_json, created_at in rows:
            if wanted is not None and key not in wanted:
                continue
            try:
                spec = RunSpec.from_dict(json.loads(spec_json))
                result = RunResult.from_dict(json.loads(result_json))
            except (ValueError, TypeError, KeyError) as err:
                raise StoreError(f"{self.path}: the row of run {key[:12]} cannot be decoded ({err})") from None
            out.append(StoredRun(spec, result, created_at))
        return out

    # -- study metadata ----------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` (e.g. the last study's baseline and test)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._errors("read"):
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``"ok"`` when the file is sound)."""
        with self._errors("check"):
            return "\n".join(r[0] for r in self._db.execute("PRAGMA integrity_check"))


def read_results(location: str | os.PathLike) -> list[StoredRun]:
    """All runs stored in an output folder (or a ``.sqlite`` file)."""
    with ResultStore(location, create=False) as store:
        return store.runs()
