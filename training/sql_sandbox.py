"""The one place SQL from a data row or a model runs: an in-memory SQLite database that cannot escape.

Everything execution accuracy runs (a row's CREATE TABLE / INSERT context, the generated fill rows,
the gold query and the predicted query) goes through ``Sandbox.run``. A statement can never write a
file, attach a database, change a setting, run for ever or take the process's memory:

- an authorizer allows, per phase, only what that phase needs: ``SCHEMA`` creates tables and
  indexes and inserts rows (no triggers, views, virtual tables, temp objects, ATTACH, PRAGMA,
  DELETE, UPDATE, DROP, ALTER); ``QUERY`` only reads (SELECT, WITH, recursive CTEs, functions);
- a step budget: a progress handler counts SQLite virtual-machine steps and stops a statement
  that uses up its budget (deterministic, unlike a clock; a time limit per phase backs it up for
  statements whose every step is slow);
- SQLite's own limits (``Connection.setlimit``) keep every value, statement, expression and
  result row small, so no single step can allocate much (``zeroblob(2000000000)``,
  ``printf('%.*c', 2000000000, 'x')`` and ``group_concat`` over huge strings fail at once with
  "string or blob too big");
- a hard heap limit for SQLite (``PRAGMA hard_heap_limit``, set before the authorizer exists; it
  is process-wide and can only be lowered, so other SQLite users in the process keep working
  unless they need more than it), temp storage in memory, and a cap on the rows and bytes a query
  may hand back to Python.

Any failure is raised as ``SandboxError`` with a ``kind`` ("denied", "budget", "too_large",
"error") and SQLite's message.
"""

from __future__ import annotations

import enum
import re
import sqlite3
import time
from collections.abc import Iterable

# SQLite virtual-machine steps between two calls of the progress handler.
PROGRESS_STEPS = 1_000
# Progress-handler calls a phase may use: 5,000 x 1,000 = 5 million steps, far more than any sane
# query needs on tables of a few dozen rows, and a fraction of a second of work.
DEFAULT_STEP_BUDGET = 5_000
# A backstop to the step budget, for steps that are each slow (string functions on long values):
# it only ever stops statements the step budget would take minutes to stop.
PHASE_SECONDS = 10.0
HEAP_LIMIT_BYTES = 512 * 1024 * 1024
MAX_RESULT_ROWS = 100_000
MAX_RESULT_BYTES = 32 * 1024 * 1024

# Far above what a text-to-SQL schema or query needs, far below what could hurt.
LIMITS = {
    # One string, blob or row. Also bounds the work of one step: instr() or replace() on two
    # values of this length takes some 50 ms at worst.
    sqlite3.SQLITE_LIMIT_LENGTH: 50_000,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 1_000_000,  # one statement's text
    sqlite3.SQLITE_LIMIT_COLUMN: 256,  # columns of a table, result, index, GROUP BY, ORDER BY
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 200,
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 50,
    sqlite3.SQLITE_LIMIT_VDBE_OP: 250_000,  # size of one compiled statement
    sqlite3.SQLITE_LIMIT_FUNCTION_ARG: 32,
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 1_000,
    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER: 512,
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 1,
    sqlite3.SQLITE_LIMIT_WORKER_THREADS: 0,
}

_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}
_SCHEMA_ACTIONS = _READ_ACTIONS | {
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_REINDEX,
}
# Internal bookkeeping SQLite does while creating a table (it updates its own schema table).
_SCHEMA_TABLES = {"sqlite_master", "sqlite_schema"}
# Functions no row or model may call, whatever the phase.
DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
# printf conversions: flags, width (digits or *), precision (. digits or .*), type.
_PRINTF_SPEC = re.compile(r"%[-+ 0#,!]*(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%]?)")
# What the sandbox itself may read when it lists the created tables and columns.
_INTROSPECTION_PRAGMAS = {"table_info", "table_xinfo"}


class Phase(enum.Enum):
    SCHEMA = "schema"  # the row's context and the fill: create tables and indexes, insert rows
    QUERY = "query"  # gold and predicted queries: read only
    INTROSPECT = "introspect"  # the sandbox listing tables and columns


class SandboxError(Exception):
    """A statement the sandbox stopped or SQLite rejected; ``kind`` says which."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "denied", "budget", "too_large" or "error"


def quote_identifier(name: str) -> str:
    """``name`` as an SQLite identifier that means exactly ``name``, whatever it holds."""
    return '"' + name.replace('"', '""') + '"'


def _lower_heap_limit(connection: sqlite3.Connection) -> None:
    """Set SQLite's process-wide hard heap limit; the pragma only ever lowers it."""
    connection.execute(f"PRAGMA hard_heap_limit = {HEAP_LIMIT_BYTES}").fetchall()


class Sandbox:
    """One in-memory database; ``run`` executes one statement under the current phase's rules."""

    def __init__(self, step_budget: int = DEFAULT_STEP_BUDGET, phase_seconds: float = PHASE_SECONDS):
        self.step_budget = step_budget
        self.phase_seconds = phase_seconds
        self._deadline = time.monotonic() + phase_seconds
        self._out_of_time = False
        self.progress_calls = 0  # over the sandbox's life, for callers that report the work done
        self._phase_calls = 0
        self._phase = Phase.SCHEMA
        self._stopped = False  # the progress handler stopped the running statement
        self._function_error: str | None = None
        # Autocommit (no implicit BEGIN) and no statement cache: every statement is prepared, and
        # so authorized, anew.
        self.connection = sqlite3.connect(":memory:", isolation_level=None, cached_statements=0, check_same_thread=True)
        try:
            _lower_heap_limit(self.connection)
            self.connection.execute("PRAGMA temp_store = MEMORY").fetchall()
            self.connection.execute("PRAGMA trusted_schema = OFF").fetchall()
            for limit, value in LIMITS.items():
                self.connection.setlimit(limit, value)
            # SQLite's own printf walks a huge %c precision one character at a time inside a
            # single step; the replacement refuses widths beyond the length limit first.
            self._printf = sqlite3.connect(":memory:", isolation_level=None, cached_statements=0)
            self._printf.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, LIMITS[sqlite3.SQLITE_LIMIT_LENGTH])
            for name in ("printf", "format"):
                self.connection.create_function(name, -1, self._bounded_printf, deterministic=True)
            self.connection.set_authorizer(self._authorize)
            self.connection.set_progress_handler(self._progress, PROGRESS_STEPS)
        except BaseException:
            self.connection.close()
            raise

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()
        self._printf.close()

    def begin_phase(self, phase: Phase) -> None:
        """Switch the rules and give the phase a fresh step budget."""
        self._phase = phase
        self._phase_calls = 0
        self._deadline = time.monotonic() + self.phase_seconds
        self._out_of_time = False
        # Changing the authorizer expires every prepared statement, so none outlives its phase.
        self.connection.set_authorizer(self._authorize)

    @property
    def phase_budget_used(self) -> int:
        return self._phase_calls

    def _progress(self) -> int:
        self.progress_calls += 1
        self._phase_calls += 1
        if self._phase_calls > self.step_budget:
            self._stopped = True
            return 1
        if time.monotonic() > self._deadline:
            self._stopped = self._out_of_time = True
            return 1
        return 0

    def _bounded_printf(self, *arguments):
        """SQLite's printf, after checking that no width or precision exceeds the length limit."""
        if not arguments or not isinstance(arguments[0], str):
            return (
                self._printf.execute("SELECT printf(" + ", ".join("?" * len(arguments)) + ")", arguments).fetchone()[0]
                if arguments
                else None
            )
        limit = LIMITS[sqlite3.SQLITE_LIMIT_LENGTH]
        next_argument = 1
        for spec in _PRINTF_SPEC.finditer(arguments[0]):
            for part in spec.group(1), spec.group(2):
                if part == "*":
                    value = arguments[next_argument] if next_argument < len(arguments) else 0
                    next_argument += 1
                    try:
                        size = abs(int(value or 0))
                    except (TypeError, ValueError, OverflowError):
                        size = 0
                elif part:
                    size = int(part[:12])
                else:
                    size = 0
                if size > limit:
                    self._function_error = f"printf width or precision {size} exceeds the length limit {limit}"
                    raise ValueError(self._function_error)
            if spec.group(3) not in ("%", ""):
                next_argument += 1
        placeholders = ", ".join("?" for _ in arguments)
        return self._printf.execute(f"SELECT printf({placeholders})", arguments).fetchone()[0]

    def _authorize(self, action: int, arg1, arg2, _database, _trigger) -> int:
        phase = self._phase
        if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in DENIED_FUNCTIONS:
            return sqlite3.SQLITE_DENY
        if phase is Phase.INTROSPECT:
            allowed = (
                action in _READ_ACTIONS
                or (action == sqlite3.SQLITE_PRAGMA and str(arg1).lower() in _INTROSPECTION_PRAGMAS)
                or (action == sqlite3.SQLITE_UPDATE and str(arg1).lower() in _SCHEMA_TABLES)
            )
        elif phase is Phase.SCHEMA:
            allowed = action in _SCHEMA_ACTIONS or (
                action == sqlite3.SQLITE_UPDATE and str(arg1).lower() in _SCHEMA_TABLES
            )
        else:
            allowed = action in _READ_ACTIONS
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY

    def _failure(self, error: BaseException) -> SandboxError:
        if self._stopped and self._out_of_time:
            return SandboxError(
                "budget", f"stopped after {self.phase_seconds:g} s (time limit of the {self._phase.value} phase)"
            )
        if self._stopped:
            return SandboxError(
                "budget",
                f"stopped after {self.step_budget * PROGRESS_STEPS} SQLite "
                f"steps (step budget of the {self._phase.value} phase)",
            )
        message = str(error) or type(error).__name__
        if self._function_error:
            return SandboxError("too_large", self._function_error)
        if isinstance(error, MemoryError):
            return SandboxError("too_large", f"out of memory (SQLite heap limit {HEAP_LIMIT_BYTES} bytes)")
        if "not authorized" in message:
            allowed = "only reads" if self._phase is Phase.QUERY else "only CREATE TABLE, CREATE INDEX and INSERT"
            return SandboxError("denied", f"{message} (the {self._phase.value} phase allows {allowed})")
        if "too big" in message or "too large" in message or "too many" in message:
            return SandboxError("too_large", message)
        return SandboxError("error", message)

    def run(self, sql: str, parameters: Iterable = ()) -> list[tuple]:
        """Execute one statement; its rows, at most MAX_RESULT_ROWS of at most MAX_RESULT_BYTES."""
        self._stopped = False
        self._function_error = None
        try:
            cursor = self.connection.execute(sql, tuple(parameters))
            rows: list[tuple] = []
            size = 0
            while True:
                batch = cursor.fetchmany(256)
                if not batch:
                    return rows
                for row in batch:
                    size += sum(len(value) if isinstance(value, (str, bytes)) else 8 for value in row)
                rows.extend(batch)
                if len(rows) > MAX_RESULT_ROWS or size > MAX_RESULT_BYTES:
                    raise SandboxError(
                        "too_large", f"result larger than {MAX_RESULT_ROWS} rows or {MAX_RESULT_BYTES} bytes"
                    )
        except SandboxError:
            raise
        except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, MemoryError, TypeError) as error:
            raise self._failure(error) from None

    def insert_many(self, sql: str, rows: Iterable[tuple]) -> int:
        """Insert rows one by one; a row SQLite rejects (type, constraint) is skipped. Returns rows kept."""
        kept = 0
        for row in rows:
            self._stopped = False
            self._function_error = None
            try:
                self.connection.execute(sql, row)
                kept += 1
            except sqlite3.IntegrityError:
                continue
            except (sqlite3.Error, OverflowError, ValueError, MemoryError) as error:
                failure = self._failure(error)
                if failure.kind in ("budget", "denied", "too_large"):
                    raise failure from None
                if "datatype mismatch" in str(error) or "cannot store" in str(error):
                    continue  # e.g. text offered to an INTEGER PRIMARY KEY or a STRICT column
                raise failure from None
        return kept

    def tables(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(table, [(column, declared type), ...]) for every table the schema created, in order."""
        previous = self._phase
        self.begin_phase(Phase.INTROSPECT)
        try:
            names = [
                row[0]
                for row in self.run(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
                    "ESCAPE '\\' ORDER BY rowid"
                )
            ]
            return [
                (
                    name,
                    [
                        (column, declared or "")
                        for column, declared in self.run("SELECT name, type FROM pragma_table_info(?)", (name,))
                    ],
                )
                for name in names
            ]
        finally:
            self.begin_phase(previous)
