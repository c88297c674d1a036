"""prepare_data.py: formats, file types, bad rows by line, refusal, duplicates, split, report."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from data_formats import SQL_SYSTEM_PROMPT, RowError, to_messages
from prepare_data import DataSetRefused, PrepareConfig, main, parse_args, run
from sql_execution import extract_schema

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "training" / "prepare_data.py"


def sql_rows(count: int) -> list[dict]:
    return [
        {
            "question": f"How many heads are older than {n}?",
            "context": "CREATE TABLE head (age INTEGER)",
            "answer": f"SELECT COUNT(*) FROM head WHERE age > {n}",
        }
        for n in range(count)
    ]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def prepare(tmp_path, input_path, data_format="sql-create-context", **settings):
    config = PrepareConfig(data_format=data_format, output_dir=tmp_path / "out", input_path=input_path, **settings)
    run(config)
    out = tmp_path / "out"
    return (
        read_jsonl(out / "train.jsonl"),
        read_jsonl(out / "test.jsonl"),
        json.loads((out / "report.json").read_text()),
    )


# --- formats -----------------------------------------------------------------------------------


def test_sql_create_context_puts_the_schema_in_the_system_message():
    messages = to_messages(
        {
            "question": "How many heads?",
            "context": "CREATE TABLE head (age INTEGER)",
            "answer": "[SQL] SELECT COUNT(*) FROM head [/SQL]",
        },
        "sql-create-context",
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[0]["content"].startswith(SQL_SYSTEM_PROMPT)
    assert extract_schema(messages[0]["content"]) == "CREATE TABLE head (age INTEGER)"
    assert messages[1]["content"] == "How many heads?"
    assert messages[2]["content"] == "SELECT COUNT(*) FROM head"


def test_alpaca_joins_instruction_and_input():
    assert to_messages({"instruction": "Translate", "input": "chat", "output": "cat"}, "alpaca") == [
        {"role": "user", "content": "Translate\n\nchat"},
        {"role": "assistant", "content": "cat"},
    ]
    assert to_messages({"instruction": "Say hi", "input": "", "output": "hi"}, "alpaca")[0]["content"] == "Say hi"


def test_prompt_completion_and_messages():
    assert to_messages({"prompt": "2+2?", "completion": "4"}, "prompt-completion")[1] == {
        "role": "assistant",
        "content": "4",
    }
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye", "name": "bot"},
    ]
    assert to_messages({"messages": conversation}, "messages")[-1] == {"role": "assistant", "content": "Bye"}


@pytest.mark.parametrize(
    "row, data_format, reason",
    [
        ({"question": "q", "context": "CREATE TABLE t (a INTEGER)"}, "sql-create-context", "missing field 'answer'"),
        (
            {"question": "q", "context": "a table", "answer": "SELECT 1"},
            "sql-create-context",
            "no complete CREATE TABLE",
        ),
        (
            {"question": "  ", "context": "CREATE TABLE t (a INTEGER)", "answer": "SELECT 1"},
            "sql-create-context",
            "'question' is empty",
        ),
        ({"prompt": "p", "completion": 4}, "prompt-completion", "'completion' must be a string, got int"),
        ({"instruction": "i"}, "alpaca", "missing field 'output'"),
        ({"messages": []}, "messages", "empty list"),
        ({"messages": "not json"}, "messages", "not JSON"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages", "last message must be the assistant"),
        (
            {"messages": [{"role": "assistant", "content": "hi"}]},
            "messages",
            "messages[0].role is 'assistant' where 'user'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    {"role": "assistant", "content": "c"},
                ]
            },
            "messages",
            "messages[1].role is 'user' where 'assistant'",
        ),
        (
            {"messages": [{"role": "bot", "content": "a"}]},
            "messages",
            "messages[0].role is 'bot'; allowed: system, user, assistant",
        ),
        (
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "c"}]},
            "messages",
            "messages[0].content is empty",
        ),
        (
            {"messages": [{"role": "user", "content": ["a"]}, {"role": "assistant", "content": "c"}]},
            "messages",
            "content must be a string, got list",
        ),
        (["not", "an", "object"], "messages", "row must be an object, got list"),
    ],
)
def test_rows_that_do_not_fit_name_the_problem(row, data_format, reason):
    with pytest.raises(RowError, match=None) as caught:
        to_messages(row, data_format)
    assert reason in str(caught.value)


# --- file types --------------------------------------------------------------------------------


def test_each_file_type_reads_the_same_rows(tmp_path):
    rows = sql_rows(20)
    (tmp_path / "jsonl").mkdir()
    write_jsonl(tmp_path / "jsonl" / "data.jsonl", rows)
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "data.json").write_text(json.dumps(rows))
    (tmp_path / "jsonobj").mkdir()
    (tmp_path / "jsonobj" / "data.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "csv").mkdir()
    with (tmp_path / "csv" / "data.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "context", "answer"])
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "parquet").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "parquet" / "data.parquet")
    results = []
    for folder in ("jsonl", "json", "jsonobj", "csv", "parquet"):
        # A folder holding one data file is read like the file itself (SageMaker mounts inputs so).
        train, test, report = prepare(tmp_path / folder, tmp_path / folder, test_size=5, seed=3)
        assert report["counts"]["read"] == 20 and report["counts"]["rejected"] == 0, folder
        results.append((train, test))
    assert all(result == results[0] for result in results)


def test_messages_in_csv_and_parquet(tmp_path):
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with (tmp_path / "chat.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["messages"])
        writer.writerow([json.dumps(conversation)])
        writer.writerow([json.dumps(conversation[:1] * 2 + conversation[1:])])
    train, _test, report = prepare(tmp_path, tmp_path / "chat.csv", "messages", test_size=0, max_bad_fraction=0.5)
    assert train == [{"messages": conversation}]
    assert report["rejected"][0]["line"] == 3 and "messages[1].role" in report["rejected"][0]["reason"]


def test_a_folder_must_hold_exactly_one_data_file(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", sql_rows(3))
    write_jsonl(tmp_path / "b.jsonl", sql_rows(3))
    with pytest.raises(ValueError, match=r"exactly one data file.*a\.jsonl, b\.jsonl"):
        prepare(tmp_path, tmp_path)


def test_unknown_file_type_and_broken_json_file(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(ValueError, match=re.escape("unknown file type '.txt'")):
        prepare(tmp_path, tmp_path / "data.txt")
    (tmp_path / "data.json").write_text('[{"a": 1},')
    with pytest.raises(ValueError, match="not valid JSON"):
        prepare(tmp_path, tmp_path / "data.json")


# --- bad rows, refusal --------------------------------------------------------------------------


def test_bad_rows_are_skipped_and_listed_by_line(tmp_path):
    rows = sql_rows(30)
    lines = [json.dumps(row) for row in rows]
    lines[4] = '{"question": "broken'
    lines[9] = json.dumps({"question": "q", "context": "CREATE TABLE t (a INTEGER)"})
    lines.insert(12, "")  # blank lines are not rows
    _train, _test, report = prepare(tmp_path, write_jsonl(tmp_path / "d.jsonl", lines), test_size=5)
    assert report["counts"] == {
        "read": 30,
        "valid": 28,
        "rejected": 2,
        "duplicates": 0,
        "left_out_by_max_samples": 0,
        "train": 23,
        "test": 5,
    }
    assert [row["line"] for row in report["rejected"]] == [5, 10]
    assert "broken JSON" in report["rejected"][0]["reason"]
    assert "missing field 'answer'" in report["rejected"][1]["reason"]


def test_too_many_bad_rows_refuse_the_set_and_write_only_the_report(tmp_path):
    lines = [json.dumps(row) for row in sql_rows(10)] + ["{oops"] * 2 + [json.dumps({"question": "q"})]
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    with pytest.raises(DataSetRefused) as caught:
        prepare(tmp_path, path, test_size=2)
    message = str(caught.value)
    assert "3 of 13 rows (23.1%)" in message and "--max-bad-fraction 0.1" in message
    assert "line 11: broken JSON" in message and "line 13: missing field 'context'" in message
    assert str(tmp_path / "out" / "report.json") in message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "refused" and [row["line"] for row in report["rejected"]] == [11, 12, 13]
    # A higher limit lets the same file through, with the bad rows listed.
    train, test, report = prepare(tmp_path, path, test_size=2, max_bad_fraction=0.3)
    assert report["counts"]["rejected"] == 3 and len(train) + len(test) == 10


def test_cli_refusal_exits_non_zero_with_the_reason(tmp_path):
    (tmp_path / "opt_ml").mkdir()
    path = write_jsonl(tmp_path / "d.jsonl", ["{oops"] + [json.dumps(row) for row in sql_rows(3)])
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--input",
            str(path),
            "--format",
            "sql-create-context",
            "--output-dir",
            str(tmp_path / "out"),
            "--test-size",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OPT_ML": str((tmp_path / "opt_ml").resolve())},
    )
    assert result.returncode != 0
    assert "1 of 4 rows (25.0%) are unusable" in result.stderr and "line 1: broken JSON" in result.stderr
    assert "prepare_data: bad line 1: broken JSON" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json"]
    message = (tmp_path / "opt_ml" / "output" / "message").read_text()
    assert message.startswith("prepare_data refused the data set: 1 of 4 rows") and "line 1: broken JSON" in message
    assert (tmp_path / "opt_ml" / "output" / "failure").read_text() == message


def test_cli_writes_the_three_files(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", sql_rows(12))
    assert (
        main(
            [
                "--input",
                str(path),
                "--format",
                "sql-create-context",
                "--output-dir",
                str(tmp_path / "out"),
                "--test-size",
                "0.25",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "test.jsonl", "train.jsonl"]
    assert len(read_jsonl(tmp_path / "out" / "test.jsonl")) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--test-size", "abc"], "--test-size: must be a row count"),
        (["--max-bad-fraction", "2"], "--max-bad-fraction: must be a number from 0 to 1"),
        (["--format", "yaml"], "invalid choice: 'yaml'"),
        (["--max-samples", "0"], "--max-samples must be at least 1"),
    ],
)
def test_bad_options_are_refused(args, message, capsys):
    base = {"--input": "x.jsonl", "--format": "messages", "--output-dir": "out"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    with pytest.raises(SystemExit):
        parse_args([item for pair in base.items() for item in pair])
    assert message in capsys.readouterr().err


# --- duplicates, split, max-samples ------------------------------------------------------------


def test_duplicates_are_removed_and_listed(tmp_path):
    rows = sql_rows(10)
    copy = dict(rows[2], question="  How many heads are older   than 2? ")  # same after whitespace normalization
    train, test, report = prepare(tmp_path, write_jsonl(tmp_path / "d.jsonl", [*rows, rows[0], copy]), test_size=2)
    assert report["counts"]["duplicates"] == 2
    assert report["duplicates"] == [{"line": 11, "duplicate_of": 1}, {"line": 12, "duplicate_of": 3}]
    assert len(train) + len(test) == 10


def test_split_is_deterministic_from_the_seed_and_disjoint(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", sql_rows(50))
    first = prepare(tmp_path, path, test_size=10, seed=5)
    again = prepare(tmp_path, path, test_size=10, seed=5)
    other = prepare(tmp_path, path, test_size=10, seed=6)
    assert first[:2] == again[:2]
    assert first[1] != other[1]
    train, test = first[0], first[1]
    assert len(train) == 40 and len(test) == 10
    questions = lambda rows: {row["messages"][1]["content"] for row in rows}  # noqa: E731
    assert not questions(train) & questions(test)
    assert len(questions(train) | questions(test)) == 50


def test_test_size_as_fraction_and_too_large(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", sql_rows(40))
    assert len(prepare(tmp_path, path, test_size=0.25)[1]) == 10
    with pytest.raises(DataSetRefused, match="leaves none for training"):
        prepare(tmp_path, path, test_size=40)


def test_max_samples_applies_before_the_split(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", sql_rows(50))
    train, test, report = prepare(tmp_path, path, test_size=0.2, max_samples=20)
    assert (len(train), len(test)) == (16, 4)
    assert report["counts"]["left_out_by_max_samples"] == 30


# --- report -------------------------------------------------------------------------------------


def test_report_has_token_length_percentiles_and_long_rows(tmp_path, tiny_model_dir):
    rows = sql_rows(20)
    rows[7]["question"] = "Why? " * 200
    _train, _test, report = prepare(
        tmp_path,
        write_jsonl(tmp_path / "d.jsonl", rows),
        test_size=4,
        tokenizer_dir=tiny_model_dir,
        max_length=100,
        max_chars=10_000,
    )
    lengths = report["token_lengths"]
    assert lengths["rows"] == 20
    assert 0 < lengths["p50"] <= lengths["p90"] <= lengths["p99"] <= lengths["max"]
    assert lengths["max"] > 200 and lengths["p50"] < 100
    assert [row["line"] for row in lengths["over_max_length"]] == [8]
    assert report["format"] == "sql-create-context" and report["settings"]["max_length"] == 100


def test_hub_data_set_id_reads_through_the_hub_reader(tmp_path, monkeypatch):
    import prepare_data
    from data_readers import RawRow

    asked = []

    def fake_hub(dataset_id, split, revision=None, token=None):  # the real reader needs the network
        asked.append((dataset_id, split, revision, token))
        return [RawRow(number, row) for number, row in enumerate(sql_rows(10), start=1)]

    monkeypatch.setattr(prepare_data, "read_hub_dataset", fake_hub)
    assert (
        main(
            [
                "--hf-dataset-id",
                "b-mc2/sql-create-context",
                "--hf-split",
                "train",
                "--format",
                "sql-create-context",
                "--output-dir",
                str(tmp_path / "out"),
                "--test-size",
                "2",
                "--hf-revision",
                "0123abc",
            ]
        )
        == 0
    )
    assert asked == [("b-mc2/sql-create-context", "train", "0123abc", None)]  # no secret: no token
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["input"] == "b-mc2/sql-create-context" and report["counts"]["train"] == 8
    import hashlib

    for name in ("train.jsonl", "test.jsonl"):  # the digests the model package records
        written = (tmp_path / "out" / name).read_bytes()
        assert report["files"][name] == {
            "rows": len(written.splitlines()),
            "sha256": hashlib.sha256(written).hexdigest(),
        }
