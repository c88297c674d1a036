"""The SQLite sandbox: each phase may do only its own kind of work, nothing runs for ever or grows huge."""

import sqlite3

import pytest
from sql_sandbox import DEFAULT_STEP_BUDGET, LIMITS, MAX_RESULT_ROWS, Phase, Sandbox, SandboxError, quote_identifier


@pytest.fixture
def sandbox():
    with Sandbox() as box:
        box.run("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        box.run("INSERT INTO t VALUES (1, 'x')")
        yield box


def _failure(box, sql, phase):
    box.begin_phase(phase)
    with pytest.raises(SandboxError) as caught:
        box.run(sql)
    return caught.value


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO t VALUES (NULL, 'y'); END",
        "CREATE VIEW v AS SELECT * FROM t",
        "CREATE TEMP TABLE u (a)",
        "CREATE VIRTUAL TABLE f USING fts5(a)",
        "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA writable_schema = 1",
        "DELETE FROM t",
        "UPDATE t SET b = 'z'",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN c INT",
        "INSERT INTO t VALUES (1, 'x') ON CONFLICT (a) DO UPDATE SET b = 'z'",
        "SELECT load_extension('libevil')",
    ],
)
def test_the_schema_phase_allows_only_tables_indexes_and_inserts(sandbox, sql):
    error = _failure(sandbox, sql, Phase.SCHEMA)
    assert error.kind == "denied" and "not authorized" in str(error)


def test_the_schema_phase_creates_tables_and_indexes_and_inserts_rows(sandbox):
    sandbox.begin_phase(Phase.SCHEMA)
    sandbox.run('CREATE TABLE "my ""t""" ("a""b" INT CHECK ("a""b" < 100), c TEXT DEFAULT (upper(\'x\')))')
    sandbox.run('CREATE INDEX i ON "my ""t""" ("a""b")')
    sandbox.run('INSERT INTO "my ""t""" ("a""b") VALUES (5)')
    sandbox.begin_phase(Phase.QUERY)
    assert sandbox.run('SELECT "a""b", c FROM "my ""t"""') == [(5, "X")]
    assert sandbox.tables() == [("t", [("a", "INTEGER"), ("b", "TEXT")]), ('my "t"', [('a"b', "INT"), ("c", "TEXT")])]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (2, 'y')",
        "WITH x AS (SELECT 1) DELETE FROM t",
        "CREATE TABLE u (a)",
        "SELECT * FROM pragma_table_info('t')",
        "PRAGMA table_info(t)",
    ],
)
def test_the_query_phase_only_reads(sandbox, sql):
    assert _failure(sandbox, sql, Phase.QUERY).kind == "denied"


def test_a_recursive_insert_in_the_schema_phase_stops_at_the_step_budget(sandbox):
    error = _failure(
        sandbox,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) INSERT INTO t (b) SELECT x FROM c",
        Phase.SCHEMA,
    )
    assert error.kind == "budget" and "step budget of the schema phase" in str(error)
    assert sandbox.phase_budget_used == DEFAULT_STEP_BUDGET + 1


def test_every_phase_gets_a_fresh_budget_and_a_spent_one_stays_spent(sandbox):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
    assert _failure(sandbox, endless, Phase.QUERY).kind == "budget"
    with pytest.raises(SandboxError) as caught:  # same phase: nothing left for a statement of some work
        sandbox.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000) SELECT SUM(x) FROM c")
    assert caught.value.kind == "budget"
    sandbox.begin_phase(Phase.QUERY)
    assert sandbox.run("SELECT b FROM t") == [("x",)]
    assert sandbox.progress_calls >= DEFAULT_STEP_BUDGET


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT zeroblob(2000000000)",
        "SELECT randomblob(2000000000)",
        "SELECT replace(hex(zeroblob(100000000)), '0', '00')",
        "SELECT printf('%.*c', 2000000000, 'x')",
        "SELECT format('%2000000000.2000000000c', 'x')",
        "SELECT printf('%!.*f', 2000000000, 1.5)",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
        "SELECT group_concat(hex(zeroblob(1000))) FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) "
        "SELECT length(group_concat(t.b, printf('%.*c', 49999, 'y'))) FROM t, c",
    ],
)
def test_no_single_value_can_grow_large(sandbox, sql):
    error = _failure(sandbox, sql, Phase.QUERY)
    assert error.kind == "too_large", error
    assert sandbox.phase_budget_used < DEFAULT_STEP_BUDGET  # the length limit stopped it, not the budget


def test_printf_still_works_within_the_limits(sandbox):
    sandbox.begin_phase(Phase.QUERY)
    assert sandbox.run("SELECT printf('%5.2f|%-3d|%s|%.*c', 3.14159, 7, b, 3, 'z'), format('%%') FROM t") == [
        (" 3.14|7  |x|zzz", "%")
    ]
    assert sandbox.run("SELECT printf('%d', 99999999999999999999999)") == [
        (sqlite3.connect(":memory:").execute("SELECT printf('%d', 99999999999999999999999)").fetchone()[0],)
    ]


def test_results_are_capped_in_rows(sandbox):
    error = _failure(
        sandbox,
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {MAX_RESULT_ROWS + 10}) SELECT x FROM c",
        Phase.QUERY,
    )
    assert error.kind in ("too_large", "budget")


def test_sqlite_limits_are_set_on_the_connection(sandbox):
    for limit, value in LIMITS.items():
        assert sandbox.connection.getlimit(limit) == value


def test_the_heap_limit_is_set_for_sqlite_before_anything_runs():
    with Sandbox():
        pass
    probe = sqlite3.connect(":memory:")
    try:
        assert 0 < probe.execute("PRAGMA hard_heap_limit").fetchone()[0] <= 512 * 1024 * 1024
    finally:
        probe.close()


@pytest.mark.parametrize("name", ["plain", 'a"b', '"', "x y", "[z]", "`w`", "select", "it's", ""])
def test_quote_identifier_round_trips_every_name(name):
    with Sandbox() as box:
        box.run(f"CREATE TABLE {quote_identifier(name or 'e')} ({quote_identifier(name or 'e')} INT)")
        assert box.tables() == [(name or "e", [(name or "e", "INT")])]


def test_a_time_limit_per_phase_backs_up_the_step_budget():
    with Sandbox(phase_seconds=0.0) as box:
        box.begin_phase(Phase.QUERY)
        with pytest.raises(SandboxError) as caught:
            box.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000) SELECT SUM(x) FROM c")
        assert caught.value.kind == "budget" and "time limit of the query phase" in str(caught.value)
        assert box.run("SELECT 1") == [(1,)]  # too short to reach the progress handler
