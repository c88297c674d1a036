"""Rewrites of a gold query with sqlglot: mutants that mean something else, and equivalents.

Execution accuracy is only as good as its databases: a mutant (the gold query with one literal
changed, one comparison flipped, one condition dropped, another aggregate, DISTINCT added, the
order reversed, another column selected) returns something else on some database, and the fills
should show it; an equivalent rewrite (AND terms reordered, a comparison written the other way
round, columns qualified through an alias, every identifier quoted) returns the same on every
database, and must be accepted. Each function returns (kind, SQL) pairs and never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import sqlglot
from sqlglot import exp

DIALECT = "sqlite"
_FLIPS = {exp.EQ: exp.NEQ, exp.NEQ: exp.EQ, exp.GT: exp.GTE, exp.GTE: exp.GT, exp.LT: exp.LTE, exp.LTE: exp.LT}
_MIRRORS = {exp.EQ: exp.EQ, exp.NEQ: exp.NEQ, exp.GT: exp.LT, exp.LT: exp.GT, exp.GTE: exp.LTE, exp.LTE: exp.GTE}
_AGGREGATES = {exp.Max: exp.Min, exp.Min: exp.Max, exp.Avg: exp.Sum, exp.Sum: exp.Avg}


def parse(sql: str) -> exp.Expression | None:
    try:
        tree = sqlglot.parse_one(sql, read=DIALECT)
    except Exception:
        return None
    return tree if isinstance(tree, (exp.Select, exp.SetOperation)) else None


def _sql(tree: exp.Expression) -> str | None:
    try:
        return tree.sql(dialect=DIALECT)
    except Exception:
        return None


def _each_copy(
    tree: exp.Expression,
    wanted: Callable[[exp.Expression], bool],
    change: Callable[[exp.Expression], exp.Expression | None],
) -> Iterator[str]:
    """One rewritten query for each node ``wanted`` picks: that node (alone) replaced by ``change``."""
    count = sum(1 for node in tree.walk() if wanted(node))
    for index in range(count):
        copy = tree.copy()
        node = [node for node in copy.walk() if wanted(node)][index]
        replacement = change(node)
        if replacement is None:
            continue
        if replacement is not node:
            node.replace(replacement)
        text = _sql(copy)
        if text:
            yield text


def _is_number(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and node.this.lstrip("-").replace(".", "", 1).isdigit()


def _is_compared_value(node: exp.Expression) -> bool:
    """A literal, or a double-quoted word SQLite reads as a string, compared with a column."""
    parent = node.parent
    return (
        isinstance(parent, (exp.Binary, exp.Between, exp.In))
        and not isinstance(parent, exp.Connector)
        and (
            isinstance(node, exp.Literal)
            or (isinstance(node, exp.Column) and node.this.quoted and not node.table and parent.this is not node)
        )
    )


def _changed_literal(node: exp.Expression) -> exp.Expression:
    if _is_number(node):
        number = float(node.this) + 1
        return exp.Literal.number(int(number) if number.is_integer() and "." not in node.this else number)
    text = node.this if isinstance(node, exp.Literal) else node.name
    return exp.Literal.string(f"{text}x")


def _other_aggregate(node: exp.Expression) -> exp.Expression:
    """MAX <-> MIN, AVG <-> SUM, COUNT(x) <-> COUNT(DISTINCT x)."""
    if isinstance(node, exp.Count):
        if isinstance(node.this, exp.Distinct):
            return exp.Count(this=node.this.expressions[0].copy())
        return exp.Count(this=exp.Distinct(expressions=[node.this.copy()]))
    return _AGGREGATES[type(node)](this=node.this.copy())


def _is_conjunction(node: exp.Expression) -> bool:
    """An AND/OR inside WHERE: either side can be dropped on its own."""
    return isinstance(node, (exp.And, exp.Or)) and isinstance(node.parent, (exp.Where, exp.Connector))


def _is_aggregate_to_change(node: exp.Expression) -> bool:
    """An aggregate with a counterpart; COUNT(*) has none."""
    return type(node) in _AGGREGATES or (isinstance(node, exp.Count) and not isinstance(node.this, exp.Star))


def _flipped(node: exp.Expression) -> exp.Expression:
    return _FLIPS[type(node)](this=node.this.copy(), expression=node.expression.copy())


def _reversed_order(node: exp.Expression) -> exp.Expression:
    """ASC <-> DESC."""
    return exp.Ordered(this=node.this.copy(), desc=not node.args.get("desc"), nulls_first=bool(node.args.get("desc")))


def _changed_literals(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    return _each_copy(tree, _is_compared_value, _changed_literal)


def _flipped_comparisons(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    return _each_copy(tree, lambda n: type(n) in _FLIPS, _flipped)


def _dropped_right_conditions(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    """Each AND/OR with its right side gone (its left side kept)."""
    return _each_copy(tree, _is_conjunction, lambda n: n.this.copy())


def _dropped_left_conditions(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    """Each AND/OR with its left side gone (its right side kept)."""
    return _each_copy(tree, _is_conjunction, lambda n: n.expression.copy())


def _dropped_single_where(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    """A WHERE of one condition (no AND/OR to split) dropped whole."""
    if not isinstance(tree, exp.Select):
        return []
    where = tree.args.get("where")
    if not where or isinstance(where.this, exp.Connector):
        return []
    copy = tree.copy()
    copy.set("where", None)
    return filter(None, [_sql(copy)])


def _changed_aggregates(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    return _each_copy(tree, _is_aggregate_to_change, _other_aggregate)


def _added_distinct(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    """SELECT DISTINCT, where there is no DISTINCT already and no aggregate that would hide it."""
    if not isinstance(tree, exp.Select) or tree.args.get("distinct") or tree.find(exp.AggFunc):
        return []
    copy = tree.copy()
    copy.set("distinct", exp.Distinct())
    return filter(None, [_sql(copy)])


def _swapped_orders(tree: exp.Expression, _columns: list[str] | None) -> Iterable[str]:
    return _each_copy(tree, lambda n: isinstance(n, exp.Ordered) and isinstance(n.parent, exp.Order), _reversed_order)


def _another_column_selected(tree: exp.Expression, columns: list[str] | None) -> Iterable[str]:
    """The first selected column replaced by the first other column of the table's ``columns``."""
    if not isinstance(tree, exp.Select) or not columns:
        return []
    selected = [node for node in tree.expressions if isinstance(node, exp.Column)]
    if not selected:
        return []
    others = [name for name in columns if name.lower() != selected[0].name.lower()]
    if not others:
        return []
    copy = tree.copy()
    first = next(node for node in copy.expressions if isinstance(node, exp.Column))
    first.set("this", exp.to_identifier(others[0], quoted=True))
    return filter(None, [_sql(copy)])


Mutation = Callable[[exp.Expression, list[str] | None], Iterable[str]]

# Each kind of mutant and what makes them, in the order mutants() lists them.
MUTATIONS: tuple[tuple[str, Mutation], ...] = (
    ("change a literal", _changed_literals),
    ("flip a comparison", _flipped_comparisons),
    ("drop a condition", _dropped_right_conditions),
    ("drop a condition", _dropped_left_conditions),
    ("drop a condition", _dropped_single_where),
    ("change an aggregate", _changed_aggregates),
    ("add DISTINCT", _added_distinct),
    ("swap ORDER direction", _swapped_orders),
    ("select another column", _another_column_selected),
)


def mutants(gold: str, columns: list[str] | None = None) -> list[tuple[str, str]]:
    """Queries that differ from ``gold`` in meaning, each with its kind; none that reads as ``gold`` itself."""
    tree = parse(gold)
    if tree is None:
        return []
    same = gold.strip().lower()
    return [
        (kind, text) for kind, mutate in MUTATIONS for text in mutate(tree, columns) if text.strip().lower() != same
    ]


def equivalents(gold: str) -> list[tuple[str, str]]:
    """Queries that mean exactly what ``gold`` means, written differently, each with its kind."""
    tree = parse(gold)
    if tree is None:
        return []
    found: list[tuple[str, str]] = []
    round_trip = _sql(tree)
    if round_trip:
        found.append(("sqlglot's rewrite", round_trip))
    found += [
        ("reorder AND terms", text)
        for text in _each_copy(
            tree,
            lambda n: isinstance(n, exp.And),
            lambda n: exp.And(this=n.expression.copy(), expression=n.this.copy()),
        )
    ]
    found += [
        ("mirror a comparison", text)
        for text in _each_copy(
            tree,
            lambda n: type(n) in _MIRRORS and not isinstance(n.this, exp.Subquery),
            lambda n: _MIRRORS[type(n)](this=n.expression.copy(), expression=n.this.copy()),
        )
    ]
    quoted = _quote_every_identifier(tree)
    if quoted:
        found.append(("quote every identifier", quoted))
    aliased = _alias_single_table(tree)
    if aliased:
        found.append(("alias the table", aliased))
    return found


def _quote_every_identifier(tree: exp.Expression) -> str | None:
    """Bare identifiers become "quoted" ones; double-quoted strings stay as they were."""
    copy = tree.copy()
    for identifier in copy.find_all(exp.Identifier):
        if not identifier.quoted:
            identifier.set("quoted", True)
    return _sql(copy)


def _alias_single_table(tree: exp.Expression) -> str | None:
    """A one-table query with the table aliased and its bare columns qualified with the alias."""
    if not isinstance(tree, exp.Select) or tree.args.get("joins") or tree.args.get("with_"):
        return None
    tables = list(tree.find_all(exp.Table))
    if len(tables) != 1 or tables[0].alias or tree.find(exp.Subquery):
        return None
    copy = tree.copy()
    table = next(copy.find_all(exp.Table))
    table.set("alias", exp.TableAlias(this=exp.to_identifier("t_alias")))
    for column in copy.find_all(exp.Column):
        if (not column.table and not column.this.quoted) or column.table:
            column.set("table", exp.to_identifier("t_alias"))
    return _sql(copy)
