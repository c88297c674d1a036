"""The mutants of a gold query, exactly and in order: fill_discrimination's figures depend on them."""

from __future__ import annotations

from benchmarks.sql_mutations import MUTATIONS, mutants


def test_a_filtered_ordered_query_gets_each_kind_in_a_fixed_order():
    gold = "SELECT name FROM head WHERE age > 56 AND born_state = 'Ohio' ORDER BY name"
    assert mutants(gold, ["name", "age", "born_state"]) == [
        ("change a literal", "SELECT name FROM head WHERE age > 57 AND born_state = 'Ohio' ORDER BY name"),
        ("change a literal", "SELECT name FROM head WHERE age > 56 AND born_state = 'Ohiox' ORDER BY name"),
        ("flip a comparison", "SELECT name FROM head WHERE age >= 56 AND born_state = 'Ohio' ORDER BY name"),
        ("flip a comparison", "SELECT name FROM head WHERE age > 56 AND born_state <> 'Ohio' ORDER BY name"),
        ("drop a condition", "SELECT name FROM head WHERE age > 56 ORDER BY name"),
        ("drop a condition", "SELECT name FROM head WHERE born_state = 'Ohio' ORDER BY name"),
        ("add DISTINCT", "SELECT DISTINCT name FROM head WHERE age > 56 AND born_state = 'Ohio' ORDER BY name"),
        ("swap ORDER direction", "SELECT name FROM head WHERE age > 56 AND born_state = 'Ohio' ORDER BY name DESC"),
        ("select another column", "SELECT \"age\" FROM head WHERE age > 56 AND born_state = 'Ohio' ORDER BY name"),
    ]


def test_aggregates_change_and_a_double_quoted_word_is_a_literal():
    gold = 'SELECT COUNT(DISTINCT a), MAX(b) FROM t WHERE x = "foo" OR y < 3.5'
    assert mutants(gold) == [
        ("change a literal", "SELECT COUNT(DISTINCT a), MAX(b) FROM t WHERE x = 'foox' OR y < 3.5"),
        ("change a literal", 'SELECT COUNT(DISTINCT a), MAX(b) FROM t WHERE x = "foo" OR y < 4.5'),
        ("flip a comparison", 'SELECT COUNT(DISTINCT a), MAX(b) FROM t WHERE x <> "foo" OR y < 3.5'),
        ("flip a comparison", 'SELECT COUNT(DISTINCT a), MAX(b) FROM t WHERE x = "foo" OR y <= 3.5'),
        ("drop a condition", 'SELECT COUNT(DISTINCT a), MAX(b) FROM t WHERE x = "foo"'),
        ("drop a condition", "SELECT COUNT(DISTINCT a), MAX(b) FROM t WHERE y < 3.5"),
        ("change an aggregate", 'SELECT COUNT(a), MAX(b) FROM t WHERE x = "foo" OR y < 3.5'),
        ("change an aggregate", 'SELECT COUNT(DISTINCT a), MIN(b) FROM t WHERE x = "foo" OR y < 3.5'),
    ]


def test_a_single_condition_is_dropped_whole_and_another_column_selected():
    assert mutants("SELECT a FROM t WHERE c >= -2", ["a", "c"]) == [
        ("flip a comparison", "SELECT a FROM t WHERE c > -2"),
        ("drop a condition", "SELECT a FROM t"),
        ("add DISTINCT", "SELECT DISTINCT a FROM t WHERE c >= -2"),
        ("select another column", 'SELECT "c" FROM t WHERE c >= -2'),
    ]


def test_no_mutant_reads_as_the_gold_and_every_kind_has_a_maker():
    assert mutants("SELECT a FROM t", ["a"]) == [("add DISTINCT", "SELECT DISTINCT a FROM t")]
    assert [kind for kind, _ in MUTATIONS] == [
        "change a literal",
        "flip a comparison",
        "drop a condition",
        "drop a condition",
        "drop a condition",
        "change an aggregate",
        "add DISTINCT",
        "swap ORDER direction",
        "select another column",
    ]
