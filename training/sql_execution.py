"""Execution accuracy for text-to-SQL: run the predicted and the gold query on filled SQLite databases.

Exact string match punishes correct answers written differently (another alias, reordered AND
conditions, another quote style), and comparing results on EMPTY tables rewards wrong answers
(every SELECT returns nothing). So each row's context is turned into a few in-memory SQLite
databases filled with generated rows (a small "test suite" of databases, as in distilled test
suites for text-to-SQL), and the prediction counts as correct only when its result equals the gold
query's result on every one of them.

Everything runs in ``sql_sandbox.Sandbox``: the context may only create tables and indexes and
insert rows, the queries may only read, every phase has a step budget, and SQLite's limits keep
every value and statement small. ``execution_match`` never raises: whatever goes wrong becomes a
verdict with ``match=False`` and an ``error``; ``scorable=False`` marks the rows that could not be
scored at all (unusable context, a gold query that fails or runs out of budget) apart from wrong
predictions.

The fill is deterministic (seed + schema + queries) and built so that conditions select something
and near misses differ: the literals the gold and the predicted query compare columns with (found
with sqlglot's SQLite parser) are planted in those columns, with their neighbours (literal - 1 and
+ 1, so ``>`` and ``>=`` differ), a case variant of text (so ``=`` and ``LIKE`` differ), strings that
match a LIKE pattern and strings that nearly do. The first two rows hold every column's literals
together (AND); elsewhere a column holds one of its literals a third of the time, independently of
the others (OR). Columns joined by ``a = b`` share one pool of values; pools are small in small
fills (GROUP BY and DISTINCT see repeated values) and larger in large ones. Columns hold NULLs only
when a query tests them with ``IS [NOT] NULL``; elsewhere ``COUNT(*)`` and ``COUNT(col)`` agree, as
they do on the NOT NULL columns real schemas mostly have. Numbers of any size are read as SQLite
reads them: an integer literal beyond 64 bits is a REAL.

The context is read in one linear pass. A table declared twice (sql-create-context declares one
per use) becomes one table with the columns of both, and when the context holds only CREATE TABLE
statements, only the tables the queries name are created and filled.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
import sqlite3
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sql_sandbox import DEFAULT_STEP_BUDGET, LIMITS, Phase, Sandbox, SandboxError, quote_identifier
from sqlglot import exp
from sqlglot.tokens import TokenType

# Rows per table in each of the filled databases; several fills with different sizes and values
# make an accidental match much less likely.
FILL_ROW_COUNTS = (6, 15, 30)
POOL_SIZE = 6
# Step budget (progress-handler calls of sql_sandbox.PROGRESS_STEPS steps) of each phase: the context, the
# fill, the gold query and the predicted query each get their own.
MAX_PROGRESS_CALLS = DEFAULT_STEP_BUDGET
# Phases with a budget of their own in each fill: the context, listing its tables, the fill, the
# gold query, the prediction.
PHASES_PER_FILL = 5
# Longest query text given to the parser (SQLite refuses longer statements anyway).
MAX_PARSED_LENGTH = LIMITS[sqlite3.SQLITE_LIMIT_SQL_LENGTH]
# Longest context whose repeated CREATE TABLE statements are merged (real ones are far shorter).
MAX_MERGED_CONTEXT = 20_000

_DIALECT = sqlglot.Dialect.get_or_raise("sqlite")
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_WORDS = (
    "alpha",
    "bravo",
    "delta",
    "echo",
    "harbor",
    "maple",
    "orbit",
    "pine",
    "quartz",
    "river",
    "summit",
    "tango",
    "violet",
    "willow",
    "zephyr",
    "amber",
    "cobalt",
    "ember",
)
_COMPARISONS = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Like,
    exp.ILike,
    exp.Glob,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
)
# First tokens of a context that is SQL (rather than free text holding CREATE TABLE statements).
_STATEMENT_STARTS = {
    getattr(TokenType, name)
    for name in (
        "CREATE",
        "INSERT",
        "REPLACE",
        "DROP",
        "PRAGMA",
        "DELETE",
        "UPDATE",
        "ALTER",
        "ATTACH",
        "DETACH",
        "SELECT",
        "WITH",
        "BEGIN",
        "COMMIT",
        "VALUES",
        "ANALYZE",
        "VACUUM",
    )
    if hasattr(TokenType, name)
}

# The schema scanner: one forward pass over the text (see scan_schema).
_CREATE_TABLE_RE = re.compile(r"\bCREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TABLE\b", re.IGNORECASE)
_INSIDE_RE = re.compile(
    r"(?P<create>\bCREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TABLE\b)|(?P<quote>['\"`\[])"
    r"|(?P<open>\()|(?P<close>\))",
    re.IGNORECASE,
)
_TABLE_OPTIONS_RE = re.compile(r"(?:\s*,?\s*(?:WITHOUT\s+ROWID|STRICT)\b)+", re.IGNORECASE)
_LEADING_COMMENTS_RE = re.compile(r"(?:\s+|--[^\n]*|/\*(?:[^*]|\*(?!/))*\*/)*")


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
    like_patterns: dict[str, list[str]] = field(default_factory=dict)  # column -> LIKE patterns

    def add_literal(self, column: str, value: Any) -> None:
        """Note `value` as compared with `column`; None (no constant) notes nothing."""
        if value is not None:
            self.literals.setdefault(column, []).append(value)


@dataclass(frozen=True)
class QueryOutcome:
    rows: list[tuple] | None
    error: str | None


@dataclass(frozen=True)
class ExecutionResult:
    """The verdict for one prediction: ``match`` is False whenever ``error`` is set.

    ``gold_error`` holds why the gold query (or the schema) failed. ``scorable`` is False when the
    row could not be scored at all (its context is unusable, the gold query fails or runs out of
    its step budget, or scoring itself failed): then ``error`` says why and the prediction was not
    judged. ``progress_calls`` counts the SQLite progress-handler calls (one per
    ``sql_sandbox.PROGRESS_STEPS`` virtual-machine steps) all fills used, the work scoring did.
    """

    match: bool
    error: str | None = None
    gold_error: str | None = None
    scorable: bool = True
    progress_calls: int = 0


class SchemaError(ValueError):
    """The row's context holds no usable CREATE TABLE statement."""


# ---------------------------------------------------------------- reading SQL text


def _tokens(sql: str) -> list | None:
    """sqlglot's SQLite tokens, or None when the text does not tokenize (e.g. an open quote)."""
    if len(sql) > MAX_PARSED_LENGTH:
        return None
    try:
        return _DIALECT.tokenize(sql)
    except Exception:  # sqlglot raises TokenError, and others on odd input
        return None


def parse_query(sql: str) -> exp.Expression | None:
    """The query's syntax tree from sqlglot's SQLite dialect, or None when it does not parse.

    Trees are cached (a gold query is scored against many predictions): read them, never change them."""
    return _parse_cached(sql)


@functools.lru_cache(maxsize=1024)
def _parse_cached(sql: str) -> exp.Expression | None:
    text = _strip_semicolons(sql)
    if not text or len(text) > MAX_PARSED_LENGTH:
        return None
    try:
        trees = [tree for tree in sqlglot.parse(text, read=_DIALECT) if isinstance(tree, exp.Expression)]
    except Exception:  # ParseError, TokenError, RecursionError on deep nesting
        return None
    return trees[0] if len(trees) == 1 else None


def _strip_semicolons(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def normalize_sql(sql: str) -> str:
    """Canonical text for exact match: case (outside strings), whitespace, quotes, comments, ';'.

    Double-quoted words become string literals (SQLite reads an unknown one as a string), bracketed
    and backticked identifiers become bare lowercase names."""
    text = sql.strip()
    tokens = _tokens(text)
    if tokens is None:
        return " ".join(_strip_semicolons(text).lower().split())
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        tokens.pop()
    parts = []
    for token in tokens:
        raw = text[token.start : token.end + 1]
        if token.token_type == TokenType.STRING or (token.token_type == TokenType.IDENTIFIER and raw[:1] == '"'):
            parts.append("'" + token.text.replace("'", "''") + "'")
        elif token.token_type == TokenType.IDENTIFIER:
            parts.append(token.text.lower())
        else:
            parts.append(" ".join(raw.lower().split()))
    return " ".join(parts)


def exact_match(predicted: str, gold: str) -> bool:
    return normalize_sql(predicted) == normalize_sql(gold)


def is_ordered(sql: str) -> bool:
    """Whether the query's rows come in a defined order: an ORDER BY on the outermost query."""
    tree = parse_query(sql)
    if tree is not None:
        while isinstance(tree, exp.Subquery):
            tree = tree.this
        return bool(tree.args.get("order"))
    tokens = _tokens(sql) or []
    return any(token.token_type == TokenType.ORDER_BY for token in tokens)


# ---------------------------------------------------------------- finding the schema


def scan_schema(text: str) -> tuple[list[str], list[int]]:
    """The complete CREATE TABLE statements in free text, and the offsets the scanner searched from.

    One forward pass: every search starts where the one before ended (the offsets only grow), so
    the work is linear in the length of the text. A statement ends at the parenthesis that closes
    its column list (plus ``WITHOUT ROWID`` / ``STRICT``); quotes inside it are skipped whole; a
    CREATE TABLE inside an unclosed one starts over; text after an unclosed quote is not searched."""
    statements: list[str] = []
    searched_from: list[int] = []
    position = 0
    while True:
        searched_from.append(position)
        found = _CREATE_TABLE_RE.search(text, position)
        if not found:
            return statements, searched_from
        start, position, depth = found.start(), found.end(), 0
        while True:
            searched_from.append(position)
            event = _INSIDE_RE.search(text, position)
            if not event:
                return statements, searched_from
            position = event.end()
            if event.lastgroup == "create":
                start, depth = event.start(), 0
            elif event.lastgroup == "quote":
                position = _after_quote(text, event.start())
                if position < 0:
                    return statements, searched_from
            elif event.lastgroup == "open":
                depth += 1
            elif depth <= 1:  # the closing parenthesis of the column list, or a stray one
                if depth == 1:
                    options = _TABLE_OPTIONS_RE.match(text, position)
                    if options:
                        position = options.end()
                    statements.append(text[start:position])
                break
            else:
                depth -= 1


def _after_quote(text: str, start: int) -> int:
    """The offset after the quoted text opening at ``start`` ('' "" `` escapes), -1 if it never closes."""
    quote = text[start]
    close = "]" if quote == "[" else quote
    position = start + 1
    while True:
        end = text.find(close, position)
        if end < 0:
            return -1
        if close != "]" and text.startswith(close, end + 1):
            position = end + 2
            continue
        return end + 1


def schema_statements(text: str) -> list[str]:
    """The complete CREATE TABLE statements found in free text (e.g. a system message)."""
    return scan_schema(text)[0]


def extract_schema(text: str) -> str:
    """The CREATE TABLE statements in ``text``, joined by '; ' (empty when there are none)."""
    return "; ".join(schema_statements(text))


def context_statements(context: str) -> list[str]:
    """The statements a row's context asks to run.

    A context that is SQL (its first token starts a statement) is split at its semicolons, so every
    statement in it is run, and checked, by the sandbox; free text holding CREATE TABLE statements
    (a system message) gives those statements."""
    tokens = _tokens(context)
    if not tokens or tokens[0].token_type not in _STATEMENT_STARTS:
        return schema_statements(context)
    statements: list[str] = []
    first = last = None  # the first and last token of the statement being read
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if first is not None and last is not None:
                statements.append(context[first.start : last.end + 1])
            first = last = None
        else:
            first = first or token
            last = token
    if first is not None and last is not None:
        statements.append(context[first.start : last.end + 1])
    return statements


def _affinity(declared_type: str) -> str:
    """SQLite's type-affinity rules, reduced to the three kinds of values generated here."""
    declared = declared_type.upper()
    if "INT" in declared:
        return "integer"
    if any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if any(word in declared for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return "real"
    return "text"


def merge_repeated_tables(statements: list[str]) -> list[str]:
    """One CREATE TABLE per table: later declarations of a table add their new columns to the first.

    sql-create-context declares a table once for each part of the query that uses it, each time
    with the columns that part needs, and sometimes one column twice in two spellings (``Major``,
    ``major``). SQLite refuses both; read as one table with every column they name, the row can be
    scored. Statements are returned unchanged when no table or column repeats (or the context is
    too long to be worth reading twice)."""
    if sum(len(statement) for statement in statements) > MAX_MERGED_CONTEXT:
        return statements
    tables: dict[str, tuple[int, exp.Expression, dict[str, exp.Expression]]] = {}
    repeated = False
    kept: list[str | None] = []
    for statement in statements:
        tree = parse_query_any(statement) if _CREATE_TABLE_RE.match(statement) else None
        schema = tree.this if isinstance(tree, exp.Create) else None
        if (
            not isinstance(schema, exp.Schema)
            or not isinstance(schema.this, exp.Table)
            or not all(isinstance(item, exp.ColumnDef) for item in schema.expressions)
        ):
            kept.append(statement)
            continue
        name = schema.this.name.lower()
        columns = tables[name][2] if name in tables else {}
        for column in schema.expressions:
            if column.name.lower() in columns:
                repeated = True
            else:
                columns[column.name.lower()] = column
        if name in tables:
            repeated = True
            continue
        tables[name] = (len(kept), schema.this, columns)
        kept.append(None)
    if not repeated:
        return statements
    for index, table, columns in tables.values():
        definitions = ", ".join(column.sql(dialect=_DIALECT, identify=True) for column in columns.values())
        kept[index] = f"CREATE TABLE {quote_identifier(table.name)} ({definitions})"
    return [statement for statement in kept if statement is not None]


def parse_query_any(sql: str) -> exp.Expression | None:
    """Any one statement's syntax tree (CREATE TABLE included), or None."""
    try:
        trees = [tree for tree in sqlglot.parse(sql, read=_DIALECT) if isinstance(tree, exp.Expression)]
    except Exception:
        return None
    return trees[0] if len(trees) == 1 else None


_CREATE_HEADER_WORDS = {TokenType.CREATE, TokenType.TABLE, TokenType.NOT, TokenType.EXISTS} | {
    getattr(TokenType, name) for name in ("TEMPORARY", "IF") if hasattr(TokenType, name)
}


def created_table(statement: str) -> str | None:
    """The lowercase name of the table a CREATE TABLE statement creates, or None (not one, unclear)."""
    if not _CREATE_TABLE_RE.match(statement):
        return None
    header_end = statement.find("(")
    tokens = _tokens(statement[:header_end] if header_end > 0 else statement[:1000])
    names = [
        token
        for token in tokens or []
        if token.token_type not in _CREATE_HEADER_WORDS and token.text.upper() not in ("TEMP", "IF")
    ]
    if not names or (
        names[0].token_type not in (TokenType.VAR, TokenType.IDENTIFIER) and not names[0].text.isidentifier()
    ):
        return None
    if len(names) >= 3 and names[1].token_type == TokenType.DOT:
        return names[2].text.lower()  # schema.table
    return names[0].text.lower()


def statements_for_tables(statements: list[str], tables: set[str] | None) -> list[str]:
    """Only the CREATE TABLE statements of the tables the queries read, when the context holds
    nothing but CREATE TABLE statements: SQLite's work per CREATE TABLE grows with the number of
    tables already there, so a context of thousands of tables would use up the step budget."""
    if tables is None:
        return statements
    names = [created_table(statement) for statement in statements]
    if any(name is None for name in names):
        return statements
    chosen = [statement for statement, name in zip(statements, names, strict=True) if name in tables]
    return chosen or statements


@functools.lru_cache(maxsize=256)
def _prepared_context(context: str) -> list[str]:
    """The context's statements, repeated tables merged; cached, as one context serves many queries."""
    return merge_repeated_tables(context_statements(context))


def create_schema(sandbox: Sandbox, context: str, statements: list[str] | None = None) -> list[Column]:
    """Run the context's statements in the sandbox and return the columns SQLite created."""
    if statements is None:
        statements = merge_repeated_tables(context_statements(context))
    if not any(_CREATE_TABLE_RE.match(statement) for statement in statements):
        raise SchemaError(f"context has no complete CREATE TABLE statement: {context[:120]!r}")
    sandbox.begin_phase(Phase.SCHEMA)
    for number, statement in enumerate(statements, 1):
        try:
            sandbox.run(statement)
        except SandboxError as error:
            raise SchemaError(f"statement {number} of the context failed ({error}): {statement[:120]!r}") from None
    columns = [
        Column(table, name, _affinity(declared))
        for table, table_columns in sandbox.tables()
        for name, declared in table_columns
    ]
    if not columns:
        raise SchemaError(f"context created no table with columns: {context[:120]!r}")
    return columns


# ---------------------------------------------------------------- what the queries compare


def sqlite_number(text: str) -> int | float | None:
    """A numeric literal's value as SQLite reads it: integers beyond 64 bits become REAL."""
    literal = text.strip().lower()
    if literal.startswith("0x"):
        digits = literal[2:]
        if not digits or len(digits) > 16 or any(c not in string.hexdigits for c in digits):
            return None  # SQLite: "hex literal too big"
        value = int(digits, 16)
        return value - 2**64 if value > _INT64_MAX else value
    if literal.isdigit() and literal.isascii():
        if len(literal) <= 19 and int(literal) <= _INT64_MAX:
            return int(literal)
        return float(literal)  # never OverflowError: a huge one is inf, as in SQLite
    try:
        return float(literal)
    except ValueError:
        return None


def _literal_value(node: exp.Expression | None, column_names: set[str]):
    """The constant ``node`` stands for, or None: literals, -literals, unknown "double-quoted" words
    (None for a missing node too)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal):
        return str(node.this) if node.is_string else sqlite_number(str(node.this))
    if isinstance(node, exp.Neg):
        inner = node.this
        if isinstance(inner, exp.Literal) and not inner.is_string:
            if str(inner.this) == str(-_INT64_MIN):
                return _INT64_MIN
            value = sqlite_number(str(inner.this))
            return None if value is None else -value
        return None
    if isinstance(node, exp.Boolean):
        return 1 if node.this else 0
    if isinstance(node, exp.HexString):
        return sqlite_number("0x" + str(node.this)) if not str(node.this).isdigit() else int(node.this)
    if isinstance(node, exp.Column) and not node.table and node.this.quoted and node.name.lower() not in column_names:
        return node.name  # SQLite reads an unknown double-quoted identifier as a string
    return None


# Wrappers whose argument a compared literal says something about: MAX(x) > 5 wants x near 5,
# and so do SUM(x) > 5 (a group of one row), lower(x) = 'a' and CAST(x AS INT) = 3.
_UNWRAPPED = (exp.Paren, exp.Max, exp.Min, exp.Sum, exp.Avg, exp.Lower, exp.Upper, exp.Cast, exp.Abs, exp.Trim)


def _column_name(node: exp.Expression, column_names: set[str]) -> str | None:
    while isinstance(node, _UNWRAPPED) and isinstance(node.this, exp.Expression):
        node = node.this
    if isinstance(node, exp.Column) and node.name.lower() in column_names:
        return node.name.lower()
    return None


def query_hints(sql: str, column_names: set[str], tree: exp.Expression | None = None) -> QueryHints:
    """Literals compared with columns, columns compared with columns, columns tested for NULL.

    A query sqlglot cannot parse gives no hints (its fill is then only random values)."""
    hints = QueryHints()
    tree = tree if tree is not None else parse_query(sql)
    if tree is None:
        return hints
    for node in tree.walk():
        if isinstance(node, _COMPARISONS):
            _comparison_hints(node, column_names, hints)
        elif isinstance(node, exp.Between):
            _between_hints(node, column_names, hints)
        elif isinstance(node, exp.In):
            _in_hints(node, column_names, hints)
        elif isinstance(node, exp.Is):
            column = _column_name(node.this, column_names)
            if column:
                hints.null_tested.add(column)
    return hints


def _comparison_hints(node: exp.Expression, column_names: set[str], hints: QueryHints) -> None:
    """`a = b` links two columns; `a = 5` (either way round) and `a LIKE 'x%'` give a literal."""
    left = _column_name(node.this, column_names)
    right = _column_name(node.expression, column_names)
    if left and right:
        hints.links.append((left, right))
        return
    column = left or right
    if not column:
        return
    value = _literal_value(node.expression if left else node.this, column_names)
    if value is None:
        return
    if isinstance(node, (exp.Like, exp.ILike)) and isinstance(value, str):
        hints.like_patterns.setdefault(column, []).append(value)
    hints.add_literal(column, value)


def _between_hints(node: exp.Between, column_names: set[str], hints: QueryHints) -> None:
    column = _column_name(node.this, column_names)
    if column:
        hints.add_literal(column, _literal_value(node.args.get("low"), column_names))
        hints.add_literal(column, _literal_value(node.args.get("high"), column_names))


def _in_hints(node: exp.In, column_names: set[str], hints: QueryHints) -> None:
    column = _column_name(node.this, column_names)
    if column:
        for item in node.expressions:
            hints.add_literal(column, _literal_value(item, column_names))


def referenced_tables(tree: exp.Expression) -> set[str]:
    """Lowercase names of the tables (and CTEs) a query reads."""
    return {table.name.lower() for table in tree.find_all(exp.Table)}


def _merge_hints(hint_list: list[QueryHints]) -> QueryHints:
    merged = QueryHints()
    for hints in hint_list:
        for column, values in hints.literals.items():
            merged.literals.setdefault(column, []).extend(values)
        for column, patterns in hints.like_patterns.items():
            merged.like_patterns.setdefault(column, []).extend(patterns)
        merged.links.extend(hints.links)
        merged.null_tested |= hints.null_tested
    return merged


# ---------------------------------------------------------------- filling the databases


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
    for char in pattern[: LIMITS[sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH]]:
        if char == "%":
            out.append("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(0, 3))))
        elif char == "_":
            out.append(rng.choice(string.ascii_lowercase))
        else:
            out.append(char)
    return "".join(out)


def _near_miss(text: str) -> str:
    """A string one character away from ``text``'s fixed part, so a LIKE pattern just misses it."""
    fixed = text.replace("%", "").replace("_", "")
    if not fixed:
        return "~"
    return ("~" if fixed[0] != "~" else "^") + fixed[1:]


def _int64(value: int) -> bool:
    return _INT64_MIN <= value <= _INT64_MAX


def _clamp64(value: int) -> int:
    return min(max(value, _INT64_MIN), _INT64_MAX)


def _numeric_neighbours(value: int | float) -> list:
    """The value and its neighbours (-1, +1) where SQLite can store them."""
    if isinstance(value, int):
        return [v for v in (value, value - 1, value + 1) if _int64(v)]
    if not math.isfinite(value):
        return [value]
    return [value, value - 1, value + 1]


def _value_pool(
    affinity: str, literals: list, patterns: list[str], rng: random.Random, pool_size: int = POOL_SIZE
) -> list:
    """A small pool of values for one group of columns: its literals, their neighbours, random ones."""
    pool: list = []
    numbers = [value for value in literals if isinstance(value, (int, float))]
    texts = [value for value in literals if isinstance(value, str)]
    for value in numbers:
        pool.extend(_numeric_neighbours(value))
    for text in texts:
        pool.append(text)
        if text.swapcase() != text:
            pool.append(text.swapcase())  # = is case-sensitive, LIKE is not
        if affinity != "text":
            number = sqlite_number(text)
            if number is not None:
                pool.extend(_numeric_neighbours(number))
    for pattern in patterns:
        pool.extend([_like_example(pattern, rng), _near_miss(pattern)])
    finite = [value for value in numbers if math.isfinite(value)]
    if numbers or affinity != "text":
        low = _clamp64(int(min(finite, default=0)) - 20)
        high = _clamp64(int(max(finite, default=100)) + 20)
        for _ in range(pool_size):
            if affinity == "real":
                pool.append(round(rng.uniform(low, high), 2))
            else:
                pool.append(rng.randint(low, high))
    else:
        for _ in range(pool_size):
            pool.append(f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}" if rng.random() < 0.3 else rng.choice(_WORDS))
    return pool


def pool_size_for(rows_per_table: int) -> int:
    """Random values per pool: few in small fills (GROUP BY and DISTINCT see repeats), more in large
    ones (DISTINCT over a join, ``<>`` against ``=``, see values that differ)."""
    return max(POOL_SIZE // 2, rows_per_table // 2)


def fill_database(
    sandbox: Sandbox,
    columns: list[Column],
    hints: QueryHints,
    rows_per_table: int,
    rng: random.Random,
    tables_to_fill: set[str] | None = None,
) -> None:
    """Insert generated rows into every table (or the ones named); the queries' literals appear."""
    names = sorted({column.name.lower() for column in columns})
    groups = _link_groups(names, hints.links)
    members: dict[str, list[str]] = {}
    for name in names:
        members.setdefault(groups[name], []).append(name)
    affinity = {column.name.lower(): column.affinity for column in reversed(columns)}
    pools: dict[str, list] = {}
    for group, group_names in sorted(members.items()):
        literals = [value for name in group_names for value in hints.literals.get(name, [])]
        patterns = [pattern for name in group_names for pattern in hints.like_patterns.get(name, [])]
        pools[group] = _value_pool(affinity[group_names[0]], literals, patterns, rng, pool_size_for(rows_per_table))
    tables: dict[str, list[Column]] = {}
    for column in columns:
        if tables_to_fill is None or column.table.lower() in tables_to_fill:
            tables.setdefault(column.table, []).append(column)
    sandbox.begin_phase(Phase.SCHEMA)
    for table, table_columns in tables.items():
        placeholders = ", ".join("?" for _ in table_columns)
        quoted = ", ".join(quote_identifier(column.name) for column in table_columns)
        rows = [
            tuple(
                _cell(column.name.lower(), row, hints, pools[groups[column.name.lower()]], rng)
                for column in table_columns
            )
            for row in range(rows_per_table)
        ]
        sandbox.insert_many(f"INSERT OR IGNORE INTO {quote_identifier(table)} ({quoted}) VALUES ({placeholders})", rows)


def _cell(name: str, row: int, hints: QueryHints, pool: list, rng: random.Random):
    """Row 0 holds every column's first literal and row 1 its last, so that conditions combined
    with AND (or IN lists) select at least one row; in the other rows each column holds one of its
    literals a third of the time, independently of the other columns (so rows meet one condition
    of an OR and not the other), and otherwise a value from the pool."""
    literals = hints.literals.get(name)
    if literals and row < 2:
        return literals[0] if row == 0 else literals[-1]
    if name in hints.null_tested and rng.random() < 0.25:
        return None
    if literals and rng.random() < 1 / 3:
        return rng.choice(literals)
    return rng.choice(pool)


# ---------------------------------------------------------------- running and comparing


def run_query(sandbox: Sandbox, sql: str) -> QueryOutcome:
    """Run one read-only SELECT in the sandbox; any failure becomes an error message."""
    text = _strip_semicolons(sql)
    if not text:
        return QueryOutcome(None, "empty query")
    leading = _LEADING_COMMENTS_RE.match(text)  # matches every text, if only with nothing
    body = text[leading.end() if leading else 0 :]
    first_word = (body.split(None, 1) or [""])[0].split("(")[0].lower()
    if first_word not in ("select", "with"):
        return QueryOutcome(None, f"only SELECT queries are run, got {first_word[:40].upper()!r}")
    sandbox.begin_phase(Phase.QUERY)
    try:
        return QueryOutcome(sandbox.run(text), None)
    except SandboxError as error:
        if error.kind == "budget":
            return QueryOutcome(None, f"too slow: {error}")
        return QueryOutcome(None, str(error))


def _normalize_value(value):
    if isinstance(value, float) and math.isfinite(value):
        rounded = round(value, 6)
        return int(rounded) if rounded.is_integer() and abs(rounded) < 2**53 else rounded
    return value


def results_match(predicted: list[tuple], gold: list[tuple], ordered: bool) -> bool:
    """Compare result sets as multisets, or as sequences when the gold query orders its rows."""
    predicted_rows = [tuple(_normalize_value(value) for value in row) for row in predicted]
    gold_rows = [tuple(_normalize_value(value) for value in row) for row in gold]
    if ordered:
        return predicted_rows == gold_rows
    return Counter(predicted_rows) == Counter(gold_rows)


def _fill_seed(seed: int, context: str, gold: str, predicted: str, fill: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{context}\x00{gold}\x00{predicted}\x00{fill}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def progress_budget(row_counts: tuple[int, ...] = FILL_ROW_COUNTS) -> int:
    """The most progress-handler calls one ``execution_match`` can use, whatever it is given."""
    return len(row_counts) * PHASES_PER_FILL * (MAX_PROGRESS_CALLS + 1)


def execution_match(
    predicted: str, gold: str, context: str, seed: int = 0, row_counts: tuple[int, ...] = FILL_ROW_COUNTS
) -> ExecutionResult:
    """Whether ``predicted`` returns what ``gold`` returns on every filled database for ``context``.

    Never raises: a failure anywhere is a verdict with ``match=False`` and ``error`` set."""
    try:
        return _execution_match(str(predicted), str(gold), str(context), seed, tuple(row_counts))
    except Exception as error:  # the last line of defence: one row must never end an evaluation
        message = f"scoring failed: {type(error).__name__}: {str(error)[:200]}"
        return ExecutionResult(False, error=message, gold_error=message, scorable=False)


def _unscorable(message: str, progress_calls: int) -> ExecutionResult:
    return ExecutionResult(False, error=message, gold_error=message, scorable=False, progress_calls=progress_calls)


def _execution_match(
    predicted: str, gold: str, context: str, seed: int, row_counts: tuple[int, ...]
) -> ExecutionResult:
    ordered = is_ordered(gold)
    gold_tree, predicted_tree = parse_query(gold), parse_query(predicted)
    tables_to_fill = None
    if gold_tree is not None and predicted_tree is not None:
        tables_to_fill = referenced_tables(gold_tree) | referenced_tables(predicted_tree)
    progress_calls = 0
    hints = None
    statements = statements_for_tables(_prepared_context(context), tables_to_fill)
    for fill, rows_per_table in enumerate(row_counts):
        with Sandbox(step_budget=MAX_PROGRESS_CALLS) as sandbox:
            try:
                columns = create_schema(sandbox, context, statements)
                if hints is None:
                    names = {column.name.lower() for column in columns}
                    hints = _merge_hints(
                        [query_hints(gold, names, gold_tree), query_hints(predicted, names, predicted_tree)]
                    )
                rng = random.Random(_fill_seed(seed, context, gold, predicted, fill))
                fill_database(sandbox, columns, hints, rows_per_table, rng, tables_to_fill)
            except SchemaError as error:
                result = ExecutionResult(
                    False,
                    error=f"schema: {error}",
                    gold_error=str(error),
                    scorable=False,
                    progress_calls=progress_calls + sandbox.progress_calls,
                )
                return result
            except SandboxError as error:
                return _unscorable(
                    f"schema: filling the tables failed ({error})", progress_calls + sandbox.progress_calls
                )
            gold_outcome = run_query(sandbox, gold)
            if gold_outcome.rows is None:  # an outcome has rows or an error, never both
                return ExecutionResult(
                    False,
                    error=f"gold query failed: {gold_outcome.error}",
                    gold_error=gold_outcome.error,
                    scorable=False,
                    progress_calls=progress_calls + sandbox.progress_calls,
                )
            predicted_outcome = run_query(sandbox, predicted)
            progress_calls += sandbox.progress_calls
        if predicted_outcome.rows is None:
            return ExecutionResult(False, error=predicted_outcome.error, progress_calls=progress_calls)
        if not results_match(predicted_outcome.rows, gold_outcome.rows, ordered):
            return ExecutionResult(False, progress_calls=progress_calls)
    return ExecutionResult(True, progress_calls=progress_calls)
