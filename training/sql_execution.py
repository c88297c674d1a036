"""Execution accuracy for text-to-SQL: run the predicted and the gold query on filled SQLite databases.

Exact string match punishes correct answers written differently (another alias, reordered AND
conditions, another quote style), and comparing results on EMPTY tables rewards wrong answers
(every SELECT returns nothing). So each row's ``CREATE TABLE`` context is turned into a few
in-memory SQLite databases filled with generated rows, and the prediction counts as correct only
when its result equals the gold query's result on every one of them.

The fill is deterministic (seed + schema + queries) and built so that conditions select something:
the literal values the gold and the predicted query compare columns with are planted in those
columns (with their neighbours, so ``>`` and ``>=`` differ), columns joined by ``a = b`` share one
pool of values, and pools are small so GROUP BY and DISTINCT see repeated values. Columns hold
NULLs only when a query tests them with ``IS [NOT] NULL``; elsewhere ``COUNT(*)`` and
``COUNT(col)`` agree, as they do on the NOT NULL columns real schemas mostly have.

Only one read-only SELECT (or WITH ... SELECT) is ever executed: an SQLite authorizer denies every
other action, and a progress handler stops queries that run too long. A query that fails counts as
wrong and carries its error; nothing here raises on bad SQL.
"""
from __future__ import annotations

import hashlib
import random
import re
import sqlite3
import string
from collections import Counter
from dataclasses import dataclass, field

# Budget of SQLite virtual-machine steps per query (checked every PROGRESS_STEPS steps): large
# enough for any sane query on these small tables, small enough to stop a runaway cross join.
PROGRESS_STEPS = 1_000
MAX_PROGRESS_CALLS = 5_000
# Rows per table in each of the filled databases; several fills with different sizes and values
# make an accidental match much less likely.
FILL_ROW_COUNTS = (6, 15, 30)
POOL_SIZE = 6

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<sstring>'(?:[^']|'')*')
  | (?P<dstring>"(?:[^"]|"")*")
  | (?P<bident>`[^`]*`|\[[^\]]*\])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><=|>=|<>|!=|==|\|\||[-+*/%=<>(),.;])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_COMPARISON_OPS = {"=", "==", "!=", "<>", "<", ">", "<=", ">=", "like"}
_CREATE_TABLE_RE = re.compile(r"\bCREATE\s+TABLE\b", re.IGNORECASE)
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_WORDS = ("alpha", "bravo", "delta", "echo", "harbor", "maple", "orbit", "pine", "quartz",
          "river", "summit", "tango", "violet", "willow", "zephyr", "amber", "cobalt", "ember")


@dataclass(frozen=True)
class Token:
    kind: str  # sstring, dstring, bident, number, ident, op, other
    text: str

    @property
    def is_literal(self) -> bool:
        return self.kind in ("sstring", "dstring", "number")

    def literal_value(self) -> str | int | float:
        if self.kind == "number":
            number = float(self.text)
            return int(number) if number.is_integer() and "." not in self.text else number
        quote = self.text[0]
        return self.text[1:-1].replace(quote * 2, quote)


@dataclass(frozen=True)
class Column:
    table: str
    name: str
    affinity: str  # "integer", "real" or "text"


@dataclass
class QueryHints:
    """What the queries say about the data: compared literals, joined columns, NULL tests."""

    literals: dict[str, list] = field(default_factory=dict)  # column name -> literal values
    links: list[tuple[str, str]] = field(default_factory=list)  # columns compared with each other
    null_tested: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class QueryOutcome:
    rows: list[tuple] | None
    error: str | None


@dataclass(frozen=True)
class ExecutionResult:
    """The verdict for one prediction: ``match`` is False whenever ``error`` is set."""

    match: bool
    error: str | None = None
    gold_error: str | None = None


class SchemaError(ValueError):
    """The row's context holds no usable CREATE TABLE statement."""


def tokenize(sql: str) -> list[Token]:
    """Split SQL into tokens, dropping whitespace (string literals stay whole)."""
    tokens = []
    for match in _TOKEN_RE.finditer(sql):
        kind = match.lastgroup
        if kind != "ws":
            tokens.append(Token(kind, match.group()))
    return tokens


def normalize_sql(sql: str) -> str:
    """Canonical text for exact match: case (outside strings), whitespace, quotes, trailing ';'."""
    tokens = tokenize(sql.strip())
    while tokens and tokens[-1].text == ";":
        tokens.pop()
    parts = []
    for token in tokens:
        if token.kind in ("sstring", "dstring"):
            parts.append("'" + str(token.literal_value()).replace("'", "''") + "'")
        elif token.kind == "bident":
            parts.append(token.text[1:-1].lower())
        else:
            parts.append(token.text.lower())
    return " ".join(parts)


def exact_match(predicted: str, gold: str) -> bool:
    return normalize_sql(predicted) == normalize_sql(gold)


def schema_statements(text: str) -> list[str]:
    """The complete CREATE TABLE statements found in free text (e.g. a system message)."""
    statements = []
    for start in (m.start() for m in _CREATE_TABLE_RE.finditer(text)):
        depth = 0
        for index in range(start, len(text)):
            if text[index] == "(":
                depth += 1
            elif text[index] == ")":
                depth -= 1
                if depth == 0:
                    statements.append(text[start:index + 1])
                    break
    return statements


def extract_schema(text: str) -> str:
    """The CREATE TABLE statements in ``text``, joined by '; ' (empty when there are none)."""
    return "; ".join(schema_statements(text))


def _affinity(declared_type: str) -> str:
    """SQLite's type-affinity rules, reduced to the three kinds of values generated here."""
    declared = declared_type.upper()
    if "INT" in declared:
        return "integer"
    if any(word in declared for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return "real"
    return "text"


def create_schema(connection: sqlite3.Connection, context: str) -> list[Column]:
    """Run the context's CREATE TABLE statements and return the columns SQLite created."""
    statements = schema_statements(context)
    if not statements:
        raise SchemaError(f"context has no complete CREATE TABLE statement: {context[:120]!r}")
    columns: list[Column] = []
    for statement in statements:
        try:
            connection.execute(statement)
        except sqlite3.Error as error:
            raise SchemaError(f"CREATE TABLE failed ({error}): {statement[:120]!r}") from error
    tables = [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    for table in tables:
        for _cid, name, declared, *_rest in connection.execute(f'PRAGMA table_info("{table}")'):
            columns.append(Column(table, name, _affinity(declared or "")))
    return columns


def _column_name(tokens: list[Token], end: int) -> str | None:
    """The column named by an identifier (optionally qualified ``t.col``) ending at ``end``."""
    if not 0 <= end < len(tokens):
        return None
    token = tokens[end]
    if token.kind == "ident":
        return token.text.lower()
    if token.kind in ("bident", "dstring"):
        return token.text[1:-1].lower()
    return None


def query_hints(sql: str, column_names: set[str]) -> QueryHints:
    """Literals compared with columns, columns compared with columns, columns tested for NULL."""
    hints = QueryHints()
    tokens = tokenize(sql)
    lowered = [token.text.lower() for token in tokens]

    def is_column(index: int) -> str | None:
        name = _column_name(tokens, index)
        return name if name in column_names else None

    def add_literal(column: str, token: Token) -> None:
        hints.literals.setdefault(column, []).append(token.literal_value())

    def literal_token(index: int) -> Token | None:
        if 0 <= index < len(tokens):
            token = tokens[index]
            if token.is_literal and not (token.kind == "dstring" and is_column(index)):
                return token
            if lowered[index] == "-" and index + 1 < len(tokens) and tokens[index + 1].kind == "number":
                return Token("number", "-" + tokens[index + 1].text)
        return None

    for index, word in enumerate(lowered):
        if word in _COMPARISON_OPS:
            left_column = is_column(index - 1)
            right = literal_token(index + 1)
            right_column = is_column(index + 1)
            if index + 2 < len(tokens) and lowered[index + 2] == ".":
                right_column = is_column(index + 3)
            if left_column and right:
                add_literal(left_column, right)
            elif left_column and right_column:
                hints.links.append((left_column, right_column))
            left = literal_token(index - 1)
            if left and right_column:
                add_literal(right_column, left)
        elif word == "between":
            column = is_column(index - 1)
            low, high = literal_token(index + 1), literal_token(index + 3)
            if column and low and high:
                add_literal(column, low)
                add_literal(column, high)
        elif word == "in" and index + 1 < len(tokens) and lowered[index + 1] == "(":
            column = is_column(index - 1) or (is_column(index - 2) if lowered[index - 1] == "not" else None)
            cursor = index + 2
            while column and cursor < len(tokens) and lowered[cursor] != ")":
                literal = literal_token(cursor)
                if literal:
                    add_literal(column, literal)
                cursor += 1
        elif word == "is":
            column = is_column(index - 1)
            if column:
                hints.null_tested.add(column)
    return hints


def _merge_hints(hint_list: list[QueryHints]) -> QueryHints:
    merged = QueryHints()
    for hints in hint_list:
        for column, values in hints.literals.items():
            merged.literals.setdefault(column, []).extend(values)
        merged.links.extend(hints.links)
        merged.null_tested |= hints.null_tested
    return merged


def _link_groups(names: list[str], links: list[tuple[str, str]]) -> dict[str, str]:
    """Union-find: columns compared with each other (joins) draw from one shared pool."""
    parent = {name: name for name in names}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for left, right in links:
        if left in parent and right in parent:
            parent[find(left)] = find(right)
    return {name: find(name) for name in names}


def _like_example(pattern: str, rng: random.Random) -> str:
    """A string that matches a LIKE pattern: '%' becomes a few letters, '_' one letter."""
    out = []
    for char in pattern:
        if char == "%":
            out.append("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(0, 3))))
        elif char == "_":
            out.append(rng.choice(string.ascii_lowercase))
        else:
            out.append(char)
    return "".join(out)


def _value_pool(affinity: str, literals: list, rng: random.Random) -> list:
    """A small pool of values for one group of columns: its literals, their neighbours, random ones."""
    pool: list = []
    numbers = [value for value in literals if isinstance(value, (int, float))]
    texts = [value for value in literals if isinstance(value, str)]
    for value in numbers:
        pool.extend([value, value - 1, value + 1])
    for value in texts:
        if "%" in value or "_" in value:
            pool.append(_like_example(value, rng))
        pool.append(value)
        if affinity != "text":
            try:
                number = float(value)
                pool.extend([number - 1, number + 1])
            except ValueError:
                pass
    if numbers or affinity != "text":
        low = int(min(numbers, default=0)) - 20
        high = int(max(numbers, default=100)) + 20
        for _ in range(POOL_SIZE):
            if affinity == "real":
                pool.append(round(rng.uniform(low, high), 2))
            else:
                pool.append(rng.randint(low, high))
    else:
        for _ in range(POOL_SIZE):
            pool.append(f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}" if rng.random() < 0.3 else rng.choice(_WORDS))
    return pool


def fill_database(connection: sqlite3.Connection, columns: list[Column], hints: QueryHints,
                  rows_per_table: int, rng: random.Random) -> None:
    """Insert generated rows into every table; literals of the queries appear in their columns."""
    names = sorted({column.name.lower() for column in columns})
    groups = _link_groups(names, hints.links)
    pools: dict[str, list] = {}
    for group in sorted(set(groups.values())):
        members = [name for name in names if groups[name] == group]
        literals = [value for name in members for value in hints.literals.get(name, [])]
        affinity = next(column.affinity for column in columns if column.name.lower() in members)
        pools[group] = _value_pool(affinity, literals, rng)
    tables: dict[str, list[Column]] = {}
    for column in columns:
        tables.setdefault(column.table, []).append(column)
    for table, table_columns in tables.items():
        placeholders = ", ".join("?" for _ in table_columns)
        quoted = ", ".join(f'"{column.name}"' for column in table_columns)
        for row in range(rows_per_table):
            values = [_cell(column.name.lower(), row, hints, pools[groups[column.name.lower()]], rng)
                      for column in table_columns]
            try:
                connection.execute(f'INSERT OR IGNORE INTO "{table}" ({quoted}) VALUES ({placeholders})',
                                   values)
            except sqlite3.Error:
                continue  # e.g. a text literal offered to an INTEGER PRIMARY KEY: skip that row


def _cell(name: str, row: int, hints: QueryHints, pool: list, rng: random.Random):
    """Row 0 holds every column's first literal and row 1 its last, so that conditions combined
    with AND (or IN lists) select at least one row; the other rows draw from the pool."""
    literals = hints.literals.get(name)
    if literals and row < 2:
        return literals[0] if row == 0 else literals[-1]
    if name in hints.null_tested and rng.random() < 0.25:
        return None
    return rng.choice(pool)


def _authorizer(action: int, *_args) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def run_query(connection: sqlite3.Connection, sql: str) -> QueryOutcome:
    """Run one read-only SELECT; any failure becomes an error message, never an exception."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        return QueryOutcome(None, "empty query")
    first_word = text.split(None, 1)[0].lower()
    if first_word not in ("select", "with"):
        return QueryOutcome(None, f"only SELECT queries are run, got {first_word.upper()!r}")
    calls = 0

    def progress() -> int:
        nonlocal calls
        calls += 1
        return 1 if calls > MAX_PROGRESS_CALLS else 0

    connection.set_authorizer(_authorizer)
    connection.set_progress_handler(progress, PROGRESS_STEPS)
    try:
        rows = connection.execute(text).fetchall()
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as error:
        message = str(error)
        if calls > MAX_PROGRESS_CALLS:
            message = f"query stopped after {MAX_PROGRESS_CALLS * PROGRESS_STEPS} SQLite steps (too slow)"
        return QueryOutcome(None, message)
    finally:
        connection.set_progress_handler(None, PROGRESS_STEPS)
        connection.set_authorizer(None)
    return QueryOutcome(rows, None)


def _normalize_value(value):
    if isinstance(value, float):
        rounded = round(value, 6)
        return int(rounded) if rounded.is_integer() else rounded
    return value


def results_match(predicted: list[tuple], gold: list[tuple], ordered: bool) -> bool:
    """Compare result sets as multisets, or as sequences when the gold query orders its rows."""
    predicted_rows = [tuple(_normalize_value(value) for value in row) for row in predicted]
    gold_rows = [tuple(_normalize_value(value) for value in row) for row in gold]
    if ordered:
        return predicted_rows == gold_rows
    return Counter(predicted_rows) == Counter(gold_rows)


def is_ordered(sql: str) -> bool:
    """Whether the query's rows come in a defined order (an ORDER BY outside string literals)."""
    words = [token.text.lower() for token in tokenize(sql) if token.kind == "ident"]
    return any(a == "order" and b == "by" for a, b in zip(words, words[1:]))


def _fill_seed(seed: int, context: str, gold: str, predicted: str, fill: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{context}\x00{gold}\x00{predicted}\x00{fill}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def execution_match(predicted: str, gold: str, context: str, seed: int = 0,
                    row_counts: tuple[int, ...] = FILL_ROW_COUNTS) -> ExecutionResult:
    """Whether ``predicted`` returns what ``gold`` returns on every filled database for ``context``."""
    ordered = is_ordered(gold)
    for fill, rows_per_table in enumerate(row_counts):
        connection = sqlite3.connect(":memory:")
        try:
            try:
                columns = create_schema(connection, context)
            except SchemaError as error:
                return ExecutionResult(False, error=f"schema: {error}", gold_error=str(error))
            names = {column.name.lower() for column in columns}
            hints = _merge_hints([query_hints(gold, names), query_hints(predicted, names)])
            rng = random.Random(_fill_seed(seed, context, gold, predicted, fill))
            fill_database(connection, columns, hints, rows_per_table, rng)
            gold_outcome = run_query(connection, gold)
            if gold_outcome.error:
                return ExecutionResult(False, error=f"gold query failed: {gold_outcome.error}",
                                       gold_error=gold_outcome.error)
            predicted_outcome = run_query(connection, predicted)
            if predicted_outcome.error:
                return ExecutionResult(False, error=predicted_outcome.error)
            if not results_match(predicted_outcome.rows, gold_outcome.rows, ordered):
                return ExecutionResult(False)
        finally:
            connection.close()
    return ExecutionResult(True)
