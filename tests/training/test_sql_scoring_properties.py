"""Property checks of execution accuracy on seeded random SQL: a verdict always, within its budget.

The queries are the project's own example rows (examples/data/sql-example.jsonl), rewritten by
sqlglot into mutants and equivalents, corrupted at random, and random WHERE clauses built from each
row's columns and awkward literals; work is counted in SQLite progress-handler calls, not seconds.
"""

import json
import random
from pathlib import Path

import pytest
from sql_execution import ExecutionResult, execution_match, progress_budget
from sqlglot import exp

from benchmarks.sql_mutations import equivalents, mutants

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sql-example.jsonl"
ROW_COUNTS = (6, 15)
AWKWARD = [
    "99999999999999999999999",
    "-9223372036854775808",
    "1e999",
    "0x7FFFFFFFFFFFFFFF",
    "NULL",
    "'it''s'",
    '"a""b"',
    "zeroblob(2000000000)",
    "printf('%.*c', 2000000000, 'x')",
    "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c)",
    "randomblob(99999)",
    "'%'",
    "''",
    "X'00'",
    "-0.0",
]


@pytest.fixture(scope="module")
def rows():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    sample = random.Random(11).sample(lines, 25)
    return [json.loads(line) for line in sample]


def _check(result: ExecutionResult) -> None:
    assert isinstance(result, ExecutionResult)
    assert isinstance(result.match, bool) and isinstance(result.scorable, bool)
    assert not (result.match and result.error), result
    assert not (result.match and not result.scorable), result
    assert result.scorable or result.error, result
    assert 0 <= result.progress_calls <= progress_budget(ROW_COUNTS), result


def _corrupt(sql: str, rng: random.Random) -> str:
    words = sql.split()
    choice = rng.randrange(5)
    if choice == 0 and len(words) > 1:
        del words[rng.randrange(len(words))]
    elif choice == 1:
        words.insert(rng.randrange(len(words) + 1), rng.choice(AWKWARD))
    elif choice == 2:
        index = rng.randrange(len(words))
        words[index] = words[index] * rng.randint(2, 3)
    elif choice == 3:
        return sql[: rng.randrange(len(sql) + 1)]
    else:
        words.append(rng.choice(["; DROP TABLE x", "UNION SELECT 1", "ORDER BY 1", "LIMIT 99999999999999999999"]))
    return " ".join(words)


def test_the_examples_own_answers_match_themselves_and_their_equivalents(rows):
    for row in rows:
        gold, context = row["answer"], row["context"]
        result = execution_match(gold, gold, context, row_counts=ROW_COUNTS)
        _check(result)
        assert result.match, (gold, result)
        for kind, text in equivalents(gold):
            result = execution_match(text, gold, context, row_counts=ROW_COUNTS)
            _check(result)
            assert result.match, (kind, text, gold, result)


def test_mutants_and_corrupted_queries_always_get_a_verdict_within_the_budget(rows):
    rng = random.Random(5)
    told_apart = ran = 0
    for row in rows:
        gold, context = row["answer"], row["context"]
        candidates = [text for _kind, text in mutants(gold)] + [_corrupt(gold, rng) for _ in range(6)]
        for text in candidates:
            result = execution_match(text, gold, context, row_counts=ROW_COUNTS)
            _check(result)
            assert result.scorable, (text, result)  # the gold query is fine: any failure is the prediction's
        for _kind, text in mutants(gold):
            result = execution_match(text, gold, context, row_counts=ROW_COUNTS)
            if result.error is None:
                ran += 1
                told_apart += not result.match
    assert ran and told_apart / ran >= 0.8, (told_apart, ran)


def _random_condition(columns: list[str], rng: random.Random, depth: int = 0) -> exp.Expression:
    if depth < 2 and rng.random() < 0.4:
        connector = rng.choice([exp.And, exp.Or])
        return connector(
            this=_random_condition(columns, rng, depth + 1), expression=_random_condition(columns, rng, depth + 1)
        )
    column = exp.column(rng.choice(columns), quoted=rng.random() < 0.5)
    literal = exp.maybe_parse(rng.choice([*AWKWARD, str(rng.randint(-50, 150)), "'alpha'"]), dialect="sqlite")
    kind = rng.randrange(5)
    if kind == 0:
        return exp.Is(this=column, expression=exp.Null())
    if kind == 1:
        return exp.Between(this=column, low=literal, high=exp.Literal.number(rng.randint(0, 99)))
    if kind == 2:
        return exp.In(this=column, expressions=[literal, exp.Literal.string("x'y")])
    if kind == 3:
        return exp.Like(this=column, expression=exp.Literal.string(rng.choice(["%a%", "_", "x%", "%"])))
    return rng.choice([exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE])(this=column, expression=literal)


def test_random_conditions_built_by_sqlglot_match_themselves_or_say_why_not(rows):
    rng = random.Random(3)
    matched = built = 0
    for row in rows:
        gold = exp.maybe_parse(row["answer"], dialect="sqlite")
        table = gold.find(exp.Table)
        columns = [column.name for column in gold.find_all(exp.Column)] or ["rowid"]
        for _ in range(4):
            query = (
                exp.select(*[exp.column(name) for name in columns[:2]])
                .from_(table.copy())
                .where(_random_condition(columns, rng))
            )
            text = query.sql(dialect="sqlite")
            result = execution_match(text, text, row["context"], row_counts=ROW_COUNTS)
            _check(result)
            assert result.match or not result.scorable, (text, result)
            built += 1
            matched += result.match
            _check(execution_match(text, row["answer"], row["context"], row_counts=ROW_COUNTS))
    assert matched >= built // 2, (matched, built)  # most random queries run; the rest say why they cannot
