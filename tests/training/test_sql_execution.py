"""Execution accuracy on hand-written cases: equivalent SQL counts, lucky or broken SQL does not."""

import itertools

import pytest
from sql_execution import (
    context_statements,
    exact_match,
    execution_match,
    extract_schema,
    is_ordered,
    normalize_sql,
    progress_budget,
    query_hints,
    scan_schema,
    schema_statements,
)

HEAD = (
    "CREATE TABLE head (head_id INTEGER, name VARCHAR, born_state VARCHAR, age INTEGER); "
    "CREATE TABLE management (head_id INTEGER, department_id INTEGER, temporary_acting VARCHAR)"
)


@pytest.mark.parametrize(
    "predicted, gold",
    [
        ("select name from head where age > 56;", "SELECT name FROM head WHERE age > 56"),
        (
            "SELECT h.name FROM head AS h WHERE h.age > 50 AND h.born_state = 'Texas'",
            "SELECT T1.name FROM head AS T1 WHERE T1.born_state = 'Texas' AND T1.age > 50",
        ),
        (
            "SELECT COUNT(name) FROM head WHERE born_state = 'California'",
            "SELECT COUNT(*) FROM head WHERE born_state = 'California'",
        ),
        ('SELECT name FROM head WHERE born_state = "Ohio"', "SELECT name FROM head WHERE born_state = 'Ohio'"),
        ("SELECT name FROM head WHERE age BETWEEN 30 AND 40", "SELECT name FROM head WHERE age >= 30 AND age <= 40"),
        ("SELECT name FROM head WHERE NOT age <= 56", "SELECT name FROM head WHERE age > 56"),
        ("SELECT MAX(age) FROM head", "SELECT age FROM head ORDER BY age DESC LIMIT 1"),
        (
            "SELECT T1.name FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id "
            "WHERE T2.temporary_acting = 'Yes'",
            "SELECT head.name FROM management JOIN head ON management.head_id = head.head_id "
            "WHERE management.temporary_acting = 'Yes'",
        ),
    ],
)
def test_equivalent_sql_counts_as_correct(predicted, gold):
    result = execution_match(predicted, gold, HEAD)
    assert result.match, result
    assert result.error is None


@pytest.mark.parametrize(
    "predicted, gold",
    [
        # Both return no rows on empty tables; filled tables tell them apart.
        ("SELECT name FROM head WHERE born_state = 'Texas'", "SELECT name FROM head WHERE born_state = 'Ohio'"),
        ("SELECT name FROM head WHERE age >= 56", "SELECT name FROM head WHERE age > 56"),
        ("SELECT name FROM head WHERE age > 56", "SELECT name FROM head WHERE age < 56"),
        ("SELECT born_state FROM head WHERE age > 56", "SELECT name FROM head WHERE age > 56"),
        ("SELECT COUNT(*) FROM head", "SELECT COUNT(*) FROM head WHERE born_state = 'Texas'"),
        ("SELECT AVG(age) FROM head", "SELECT MAX(age) FROM head"),
        (
            "SELECT name FROM head WHERE born_state = 'Texas' OR age > 50",
            "SELECT name FROM head WHERE born_state = 'Texas' AND age > 50",
        ),
        ("SELECT born_state FROM head", "SELECT DISTINCT born_state FROM head"),
    ],
)
def test_different_sql_counts_as_wrong_even_where_empty_tables_agree(predicted, gold):
    result = execution_match(predicted, gold, HEAD)
    assert not result.match
    assert result.error is None


def test_order_matters_only_when_the_gold_query_orders():
    assert not execution_match(
        "SELECT name FROM head ORDER BY age", "SELECT name FROM head ORDER BY age DESC", HEAD
    ).match
    assert execution_match(
        "SELECT name FROM head ORDER BY age DESC", "SELECT name FROM head ORDER BY age DESC", HEAD
    ).match
    # Unordered gold: any row order of the same multiset is right.
    assert execution_match("SELECT name FROM head ORDER BY name DESC", "SELECT name FROM head", HEAD).match
    assert is_ordered("SELECT a FROM t ORDER BY a") and not is_ordered("SELECT 'order by' FROM t")


@pytest.mark.parametrize(
    "predicted, error_part",
    [
        ("SELECT nam FROM head", "no such column: nam"),
        ("SELEC name FROM head", "only SELECT queries"),
        ("SELECT name FROM head WHERE", "incomplete input"),
        ("SELECT name FROM head WHERE age >", "incomplete input"),
        ("SELECT name FROM head WHERE age = '", "unrecognized token"),
        ("SELECT name FROM head WHERE age > > 3", "syntax error"),
        ("SELECT name FROM head; DELETE FROM head", "one statement"),
        ("DROP TABLE head", "only SELECT queries"),
        ("WITH x AS (SELECT 1) DELETE FROM head", "not authorized"),
        ("SELECT * FROM pragma_table_info('head')", "not authorized"),
        ("", "empty query"),
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c", "too slow"),
    ],
)
def test_broken_or_unsafe_sql_counts_as_wrong_with_its_error(predicted, error_part):
    result = execution_match(predicted, "SELECT name FROM head", HEAD)
    assert not result.match
    assert error_part in result.error


def test_a_failing_gold_query_is_reported_as_such():
    result = execution_match("SELECT name FROM head", "SELECT nothing FROM head", HEAD)
    assert not result.match
    assert result.error.startswith("gold query failed") and "nothing" in result.gold_error


def test_a_context_without_create_table_is_an_error_not_a_crash():
    result = execution_match("SELECT 1", "SELECT 1", "a table of heads")
    assert not result.match and "CREATE TABLE" in result.error


def test_the_verdict_is_deterministic():
    pairs = ("SELECT name FROM head WHERE age > 40", "SELECT name FROM head WHERE age > 41")
    assert {execution_match(*pairs, HEAD, seed=3).match for _ in range(3)} == {
        execution_match(*pairs, HEAD, seed=3).match
    }


def test_literals_of_both_queries_are_planted_in_their_columns():
    hints = query_hints(
        "SELECT T1.name FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id "
        "WHERE T2.temporary_acting = \"Yes\" AND age BETWEEN 3 AND 9 AND name IN ('a', 'b') "
        "AND born_state IS NULL",
        {"name", "head_id", "temporary_acting", "age", "born_state"},
    )
    assert hints.literals == {"temporary_acting": ["Yes"], "age": [3, 9], "name": ["a", "b"]}
    assert hints.links == [("head_id", "head_id")]
    assert hints.null_tested == {"born_state"}


def test_columns_tested_for_null_hold_nulls():
    gold = "SELECT COUNT(*) FROM head WHERE born_state IS NULL"
    assert not execution_match("SELECT 0", gold, HEAD).match


def test_exact_match_normalizes_case_whitespace_quotes_and_semicolon():
    assert exact_match(
        'select  name\nFROM head where born_state = "Ohio" ;', "SELECT name FROM head WHERE born_state = 'Ohio'"
    )
    assert not exact_match(
        "SELECT name FROM head WHERE born_state = 'ohio'", "SELECT name FROM head WHERE born_state = 'Ohio'"
    )
    assert normalize_sql("SELECT COUNT( * ) FROM t") == normalize_sql("select count(*) from t")


def test_schema_is_found_in_a_system_message():
    text = "Answer with SQL.\n\nCREATE TABLE a (x INTEGER, y TEXT); CREATE TABLE b (z REAL)\nThanks"
    assert extract_schema(text) == "CREATE TABLE a (x INTEGER, y TEXT); CREATE TABLE b (z REAL)"
    assert extract_schema("no tables here") == ""


def test_arbitrary_text_never_raises():
    import random

    rng = random.Random(0)
    alphabet = list("SELECT FROM WHERE name age head = > < ' \" ( ) , ; . * 12 AND OR IS NULL IN BETWEEN")
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        result = execution_match(text, "SELECT name FROM head WHERE age > 3", HEAD)
        assert isinstance(result.match, bool)


# ---------------------------------------------------------------- numbers of any size


@pytest.mark.parametrize(
    "predicted, gold, match",
    [
        ("SELECT 99999999999999999999999", "SELECT 99999999999999999999999", True),
        ("SELECT 1e23", "SELECT 99999999999999999999999", True),  # SQLite reads the integer as a REAL
        ("SELECT 9" + "9" * 5000, "SELECT 1e999", True),  # beyond Python's int-from-text limit: inf
        ("SELECT -9223372036854775808", "SELECT -9223372036854775808", True),
        ("SELECT 9223372036854775808", "SELECT 9223372036854775807", False),
        (
            "SELECT name FROM head WHERE age > 99999999999999999999999",
            "SELECT name FROM head WHERE age > 99999999999999999999999",
            True,
        ),
        (
            "SELECT name FROM head WHERE age >= 9223372036854775807",
            "SELECT name FROM head WHERE age > 9223372036854775807",
            False,
        ),
        ("SELECT name FROM head WHERE age < -1e400", "SELECT name FROM head WHERE age < -1e400", True),
    ],
)
def test_numbers_of_any_size_are_read_as_sqlite_reads_them(predicted, gold, match):
    result = execution_match(predicted, gold, HEAD)
    assert result.match is match, result
    assert result.error is None and result.scorable


def test_a_hex_literal_sqlite_refuses_is_an_error_of_the_prediction():
    result = execution_match("SELECT name FROM head WHERE age = 0x1ffffffffffffffffffff", "SELECT name FROM head", HEAD)
    assert not result.match and "hex literal too big" in result.error and result.scorable


def test_literal_values_follow_sqlite():
    from sql_execution import sqlite_number

    assert sqlite_number("12") == 12 and isinstance(sqlite_number("12"), int)
    assert sqlite_number("9223372036854775808") == 9223372036854775808.0
    assert isinstance(sqlite_number("9223372036854775808"), float)
    assert sqlite_number("9" * 10000) == float("inf")
    assert sqlite_number("0xFFFFFFFFFFFFFFFF") == -1 and sqlite_number("0x1" + "0" * 16) is None
    assert sqlite_number("1.5e3") == 1500.0 and sqlite_number("abc") is None


# ---------------------------------------------------------------- contexts run in the sandbox


@pytest.mark.parametrize(
    "extra, reason",
    [
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) INSERT INTO head (age) SELECT x FROM c",
            "step budget",
        ),
        (
            "CREATE TRIGGER grow AFTER INSERT ON head BEGIN INSERT INTO head (age) VALUES (NEW.age + 1); END",
            "not authorized",
        ),
        ("ATTACH DATABASE '/tmp/elsewhere.db' AS other", "not authorized"),
        ("PRAGMA writable_schema = ON", "not authorized"),
        ("CREATE VIEW v AS SELECT * FROM head", "not authorized"),
        ("DELETE FROM head", "not authorized"),
        ("DROP TABLE head", "not authorized"),
        ("INSERT INTO head (name) VALUES (zeroblob(2000000000))", "too big"),
    ],
)
def test_a_context_may_only_create_tables_and_insert_rows(extra, reason):
    context = "CREATE TABLE head (name VARCHAR, age INTEGER); " + extra
    result = execution_match("SELECT name FROM head", "SELECT name FROM head", context)
    assert not result.match and not result.scorable
    assert result.error.startswith("schema:") and reason in result.error
    assert result.progress_calls <= progress_budget()


def test_rows_a_context_inserts_are_kept_and_scored_with_the_fill():
    context = "CREATE TABLE head (name VARCHAR, age INTEGER); INSERT INTO head VALUES ('Zed', 1000)"
    assert execution_match("SELECT MAX(age) FROM head", "SELECT 1000", context).match


def test_a_table_declared_twice_is_one_table_with_all_its_columns():
    # sql-create-context declares a table once per use, each time with the columns that use needs.
    context = (
        "CREATE TABLE stadium (name VARCHAR, id VARCHAR); CREATE TABLE game (stadium_id VARCHAR); "
        "CREATE TABLE stadium (name VARCHAR, capacity INTEGER); CREATE TABLE t2 (Major VARCHAR, major VARCHAR)"
    )
    gold = "SELECT name FROM stadium WHERE capacity > 100 AND id IN (SELECT stadium_id FROM game)"
    assert execution_match(gold, gold, context).match
    assert not execution_match(gold.replace("> 100", ">= 100"), gold, context).match
    assert execution_match("SELECT COUNT(major) FROM t2", "SELECT COUNT(Major) FROM t2", context).match


# ---------------------------------------------------------------- identifiers in every spelling

QUOTED = 'CREATE TABLE "my ""t""" ("a""b" INT, [c d] TEXT, `e` REAL, "key" INT)'


@pytest.mark.parametrize(
    "predicted",
    [
        'SELECT "a""b" FROM "my ""t""" WHERE "a""b" > 5',
        'SELECT [a"b] FROM [my "t"] WHERE [a"b] > 5',
        'select `a"b` from `my "t"` where `a"b` > 5;',
        'SELECT T."a""b" FROM "my ""t""" AS T WHERE 5 < T."A""B"',
    ],
)
def test_doubled_quotes_brackets_and_backticks_name_the_same_column(predicted):
    assert execution_match(predicted, 'SELECT "a""b" FROM "my ""t""" WHERE "a""b" > 5', QUOTED).match


@pytest.mark.parametrize(
    "predicted, gold",
    [
        ('SELECT "a""b" FROM "my ""t""" WHERE "a""b" >= 5', 'SELECT "a""b" FROM "my ""t""" WHERE "a""b" > 5'),
        ("SELECT 0", 'SELECT COUNT(*) FROM "my ""t"""'),  # the table with the quoted name is filled
        ("SELECT [c d] FROM [my \"t\"] WHERE [c d] = 'Ohio'", "SELECT [c d] FROM [my \"t\"] WHERE [c d] = 'ohio'"),
        ('SELECT key FROM "my ""t""" WHERE key < 3', 'SELECT key FROM "my ""t""" WHERE key <= 3'),
        ('SELECT SUM(e) FROM "my ""t"""', 'SELECT SUM(`e`) FROM "my ""t""" WHERE e > 1.5'),
    ],
)
def test_quoted_identifiers_fill_their_tables_and_tell_answers_apart(predicted, gold):
    result = execution_match(predicted, gold, QUOTED)
    assert not result.match and result.error is None, result


def test_exact_match_reads_quoted_identifiers_whole():
    assert normalize_sql('SELECT [a"b] FROM t') == normalize_sql('SELECT `a"b` from T')
    assert exact_match("SELECT name FROM t -- the names\n;", "SELECT name FROM t")
    assert normalize_sql("SELECT 'it''s'") == "select 'it''s'"
    assert normalize_sql("SELECT 'open") == "select 'open"  # does not tokenize: case and spaces only


# ---------------------------------------------------------------- never raises, tells why


def test_a_verdict_comes_back_whatever_the_input():
    for predicted, gold, context in [
        (None, "SELECT 1", HEAD),
        ("SELECT 1", "SELECT 1", None),
        ("(" * 5000 + "1" + ")" * 5000, "SELECT 1", HEAD),
        ("SELECT " + "+".join(["1"] * 3000), "SELECT 1", HEAD),
        ("\x00", "\udcff", HEAD),
        ("SELECT 1", "SELECT 1", "CREATE TABLE " + "(" * 3000),
    ]:
        result = execution_match(predicted, gold, context)
        assert isinstance(result.match, bool) and (result.match is False or result.error is None)


def test_rows_that_cannot_be_scored_are_told_apart_from_wrong_predictions():
    wrong = execution_match("SELECT age FROM head", "SELECT name FROM head", HEAD)
    assert not wrong.match and wrong.scorable and wrong.error is None
    broken_prediction = execution_match("SELECT nothing FROM head", "SELECT name FROM head", HEAD)
    assert not broken_prediction.match and broken_prediction.scorable and "nothing" in broken_prediction.error
    for gold in (
        "SELECT nothing FROM head",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c",
        "SELECT zeroblob(2000000000)",
    ):
        result = execution_match("SELECT name FROM head", gold, HEAD)
        assert not result.match and not result.scorable and result.error.startswith("gold query failed")
        assert result.gold_error


@pytest.mark.parametrize(
    "predicted",
    [
        "SELECT zeroblob(2000000000)",
        "SELECT replace(hex(zeroblob(100000000)),'0','00')",
        "SELECT printf('%.*c', 2000000000, 'x')",
        "SELECT group_concat(printf('%.*c', 49999, name)) FROM head",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT name FROM head, c",
    ],
)
def test_a_prediction_that_would_take_memory_or_time_is_wrong_within_the_budget(predicted):
    result = execution_match(predicted, "SELECT name FROM head", HEAD)
    assert not result.match and result.scorable and result.error
    assert result.progress_calls <= progress_budget()


# ---------------------------------------------------------------- linear reading of the schema


@pytest.mark.parametrize(
    "text",
    [
        "CREATE TABLE t (" * 20000,
        "CREATE TABLE t (a INT, b TEXT DEFAULT 'x)' " * 5000,
        "CREATE TABLE t (" + "((" * 20000,
        "CREATE TABLE t ('" + "''" * 20000,
        "Answer with SQL. " + "CREATE TABLE a (x INT) words (with) 'quotes' " * 4000,
    ],
)
def test_the_schema_scanner_reads_every_character_once(text):
    statements, searched_from = scan_schema(text)
    # Every search starts past where the one before started: one forward pass, linear in the text.
    assert all(later > earlier for earlier, later in itertools.pairwise(searched_from))
    assert len(searched_from) <= len(text) + 1
    assert statements == schema_statements(text)


def test_the_schema_scanner_keeps_quotes_and_table_options_whole():
    text = (
        "Tables:\nCREATE TABLE \"a)b\" (x TEXT DEFAULT ')', [y)] INT) WITHOUT ROWID, STRICT; and "
        "CREATE TABLE unfinished (x INT, CREATE TABLE b (z REAL) thanks"
    )
    assert schema_statements(text) == [
        "CREATE TABLE \"a)b\" (x TEXT DEFAULT ')', [y)] INT) WITHOUT ROWID, STRICT",
        "CREATE TABLE b (z REAL)",
    ]


def test_a_200_kb_context_is_scored_within_the_budget():
    tables = [f'CREATE TABLE "t{index} ""x""" (id INTEGER, "na""me" VARCHAR, score REAL)' for index in range(2600)]
    context = "; ".join(tables)
    assert len(context) > 180_000 and len(context_statements(context)) == 2600
    gold = 'SELECT "na""me" FROM "t7 ""x""" WHERE score > 3'
    right = execution_match('SELECT [na"me] FROM [t7 "x"] WHERE 3 < score', gold, context)
    wrong = execution_match('SELECT "na""me" FROM "t7 ""x""" WHERE score >= 3', gold, context)
    assert right.match and not wrong.match and wrong.error is None
    assert right.progress_calls <= progress_budget()
