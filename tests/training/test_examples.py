"""The committed example data set is exactly what the generator writes, and every answer runs."""

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sql_execution import execution_match

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "data" / "sql-example.jsonl"
GENERATOR = REPO_ROOT / "examples" / "generate_sql_dataset.py"


def _load_generator():
    """examples/ holds scripts, not a package: the generator is loaded from its file."""
    spec = importlib.util.spec_from_file_location("generate_sql_dataset", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


generate_sql_dataset = _load_generator()


def test_committed_example_equals_the_generators_output(tmp_path):
    output = tmp_path / "sql.jsonl"
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "examples" / "generate_sql_dataset.py"),
            "--rows",
            "1000",
            "--seed",
            "7",
            "--output",
            str(output),
        ],
        check=True,
        capture_output=True,
    )
    assert output.read_bytes() == EXAMPLE.read_bytes()


def test_generation_is_deterministic_and_seed_dependent():
    assert generate_sql_dataset.generate(50, 1) == generate_sql_dataset.generate(50, 1)
    assert generate_sql_dataset.generate(50, 1) != generate_sql_dataset.generate(50, 2)


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in EXAMPLE.read_text().splitlines()]


def test_rows_are_distinct_and_in_the_sql_create_context_format(rows):
    assert len(rows) == 1000
    assert all(set(row) == {"question", "context", "answer"} for row in rows)
    assert len({(row["question"], row["context"]) for row in rows}) == len(rows)


def test_every_answer_runs_on_its_own_schema(rows):
    for row in rows[:300]:
        result = execution_match(row["answer"], row["answer"], row["context"])
        assert result.match, (row, result)


def test_the_data_set_is_varied_enough_to_need_the_schema(rows):
    tables = Counter(row["context"].split()[2] for row in rows)
    assert len(tables) >= 25
    answers = " ".join(row["answer"] for row in rows)
    for construct in (
        "COUNT(*)",
        "AVG(",
        "MIN(",
        "MAX(",
        "SUM(",
        "ORDER BY",
        "LIMIT",
        "GROUP BY",
        " AND ",
        " > ",
        " <= ",
        "'",
        "DISTINCT",
        "HAVING",
    ):
        assert construct in answers, construct
    types = " ".join(row["context"] for row in rows)
    for column_type in ("INTEGER", "TEXT", "REAL", "VARCHAR"):
        assert column_type in types
