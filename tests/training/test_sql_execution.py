"""Execution accuracy on hand-written cases: equivalent SQL counts, lucky or broken SQL does not."""
import pytest

from sql_execution import (exact_match, execution_match, extract_schema, is_ordered, normalize_sql,
                           query_hints)

HEAD = ("CREATE TABLE head (head_id INTEGER, name VARCHAR, born_state VARCHAR, age INTEGER); "
        "CREATE TABLE management (head_id INTEGER, department_id INTEGER, temporary_acting VARCHAR)")


@pytest.mark.parametrize("predicted, gold", [
    ("select name from head where age > 56;", "SELECT name FROM head WHERE age > 56"),
    ("SELECT h.name FROM head AS h WHERE h.age > 50 AND h.born_state = 'Texas'",
     "SELECT T1.name FROM head AS T1 WHERE T1.born_state = 'Texas' AND T1.age > 50"),
    ("SELECT COUNT(name) FROM head WHERE born_state = 'California'",
     "SELECT COUNT(*) FROM head WHERE born_state = 'California'"),
    ('SELECT name FROM head WHERE born_state = "Ohio"', "SELECT name FROM head WHERE born_state = 'Ohio'"),
    ("SELECT name FROM head WHERE age BETWEEN 30 AND 40", "SELECT name FROM head WHERE age >= 30 AND age <= 40"),
    ("SELECT name FROM head WHERE NOT age <= 56", "SELECT name FROM head WHERE age > 56"),
    ("SELECT MAX(age) FROM head", "SELECT age FROM head ORDER BY age DESC LIMIT 1"),
    ("SELECT T1.name FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id WHERE T2.temporary_acting = 'Yes'",
     "SELECT head.name FROM management JOIN head ON management.head_id = head.head_id WHERE management.temporary_acting = 'Yes'"),
])
def test_equivalent_sql_counts_as_correct(predicted, gold):
    result = execution_match(predicted, gold, HEAD)
    assert result.match, result
    assert result.error is None


@pytest.mark.parametrize("predicted, gold", [
    # Both return no rows on empty tables; filled tables tell them apart.
    ("SELECT name FROM head WHERE born_state = 'Texas'", "SELECT name FROM head WHERE born_state = 'Ohio'"),
    ("SELECT name FROM head WHERE age >= 56", "SELECT name FROM head WHERE age > 56"),
    ("SELECT name FROM head WHERE age > 56", "SELECT name FROM head WHERE age < 56"),
    ("SELECT born_state FROM head WHERE age > 56", "SELECT name FROM head WHERE age > 56"),
    ("SELECT COUNT(*) FROM head", "SELECT COUNT(*) FROM head WHERE born_state = 'Texas'"),
    ("SELECT AVG(age) FROM head", "SELECT MAX(age) FROM head"),
    ("SELECT name FROM head WHERE born_state = 'Texas' OR age > 50",
     "SELECT name FROM head WHERE born_state = 'Texas' AND age > 50"),
    ("SELECT born_state FROM head", "SELECT DISTINCT born_state FROM head"),
])
def test_different_sql_counts_as_wrong_even_where_empty_tables_agree(predicted, gold):
    result = execution_match(predicted, gold, HEAD)
    assert not result.match
    assert result.error is None


def test_order_matters_only_when_the_gold_query_orders():
    assert not execution_match("SELECT name FROM head ORDER BY age", "SELECT name FROM head ORDER BY age DESC", HEAD).match
    assert execution_match("SELECT name FROM head ORDER BY age DESC", "SELECT name FROM head ORDER BY age DESC", HEAD).match
    # Unordered gold: any row order of the same multiset is right.
    assert execution_match("SELECT name FROM head ORDER BY name DESC", "SELECT name FROM head", HEAD).match
    assert is_ordered("SELECT a FROM t ORDER BY a") and not is_ordered("SELECT 'order by' FROM t")


@pytest.mark.parametrize("predicted, error_part", [
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
])
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
    assert {execution_match(*pairs, HEAD, seed=3).match for _ in range(3)} == {execution_match(*pairs, HEAD, seed=3).match}


def test_literals_of_both_queries_are_planted_in_their_columns():
    hints = query_hints("SELECT T1.name FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id "
                        "WHERE T2.temporary_acting = \"Yes\" AND age BETWEEN 3 AND 9 AND name IN ('a', 'b') "
                        "AND born_state IS NULL", {"name", "head_id", "temporary_acting", "age", "born_state"})
    assert hints.literals == {"temporary_acting": ["Yes"], "age": [3, 9], "name": ["a", "b"]}
    assert hints.links == [("head_id", "head_id")]
    assert hints.null_tested == {"born_state"}


def test_columns_tested_for_null_hold_nulls():
    gold = "SELECT COUNT(*) FROM head WHERE born_state IS NULL"
    assert not execution_match("SELECT 0", gold, HEAD).match


def test_exact_match_normalizes_case_whitespace_quotes_and_semicolon():
    assert exact_match('select  name\nFROM head where born_state = "Ohio" ;', "SELECT name FROM head WHERE born_state = 'Ohio'")
    assert not exact_match("SELECT name FROM head WHERE born_state = 'ohio'", "SELECT name FROM head WHERE born_state = 'Ohio'")
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
