"""Rewrites of a gold query with sqlglot: mutants that mean something else, and equivalents.

Execution accuracy is only as good as its databases: a mutant (the gold query with one literal
changed, one comparison flipped, one condition dropped, another aggregate, DISTINCT added, the
order reversed, another column selected) returns something else on some database, and the fills
should show it; an equivalent rewrite (AND terms reordered, a comparison written the other way
round, columns qualified through an alias, every identifier quoted) returns the same on every
database, and must be accepted. Each function returns (kind, SQL) pairs and never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


def mutants(gold: str, columns: list[str] | None = None) -> list[tuple[str, str]]:
    """Queries that differ from ``gold`` in meaning, each with its kind."""
    tree = parse(gold)
    if tree is None:
        return []
    found: list[tuple[str, str]] = []

    def add(kind: str, texts) -> None:
        found.extend((kind, text) for text in texts)

    add("change a literal", _each_copy(tree, _is_compared_value, _changed_literal))
    add(
        "flip a comparison",
        _each_copy(
            tree,
            lambda n: type(n) in _FLIPS,
            lambda n: _FLIPS[type(n)](this=n.this.copy(), expression=n.expression.copy()),
        ),
    )
    conjunction = lambda n: isinstance(n, (exp.And, exp.Or)) and isinstance(n.parent, (exp.Where, exp.Connector))  # noqa: E731
    add("drop a condition", _each_copy(tree, conjunction, lambda n: n.this.copy()))
    add("drop a condition", _each_copy(tree, conjunction, lambda n: n.expression.copy()))
    if (
        isinstance(tree, exp.Select)
        and tree.args.get("where")
        and not isinstance(tree.args["where"].this, exp.Connector)
    ):
        copy = tree.copy()
        copy.set("where", None)
        add("drop a condition", filter(None, [_sql(copy)]))
    add(
        "change an aggregate",
        _each_copy(
            tree,
            lambda n: type(n) in _AGGREGATES or (isinstance(n, exp.Count) and not isinstance(n.this, exp.Star)),
            _other_aggregate,
        ),
    )
    if isinstance(tree, exp.Select) and not tree.args.get("distinct") and not tree.find(exp.AggFunc):
        copy = tree.copy()
        copy.set("distinct", exp.Distinct())
        add("add DISTINCT", filter(None, [_sql(copy)]))
    add(
        "swap ORDER direction",
        _each_copy(
            tree,
            lambda n: isinstance(n, exp.Ordered) and isinstance(n.parent, exp.Order),
            lambda n: exp.Ordered(
                this=n.this.copy(), desc=not n.args.get("desc"), nulls_first=bool(n.args.get("desc"))
            ),
        ),
    )
    if isinstance(tree, exp.Select) and columns:
        selected = [node for node in tree.expressions if isinstance(node, exp.Column)]
        if selected:
            others = [name for name in columns if name.lower() != selected[0].name.lower()]
            if others:
                copy = tree.copy()
                first = next(node for node in copy.expressions if isinstance(node, exp.Column))
                first.set("this", exp.to_identifier(others[0], quoted=True))
                add("select another column", filter(None, [_sql(copy)]))
    return [(kind, text) for kind, text in found if text.strip().lower() != gold.strip().lower()]


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
