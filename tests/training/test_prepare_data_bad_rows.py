"""prepare_data.py never stops on a row: undecodable, too deep, oversized or odd rows are bad rows with
their line and reason; refusals still write report.json; everything dropped or changed is counted."""

import csv
import io
import json
import random

import csv_records
import pytest
from data_readers import read_rows
from prepare_data import DataSetRefused, PrepareConfig, main, run
from prepare_report import exit_message

GOOD = {"prompt": "What is 2 + 2?", "completion": "4"}


def good_lines(count: int) -> list[bytes]:
    return [json.dumps({"prompt": f"What is {n} + {n}?", "completion": str(2 * n)}).encode() for n in range(count)]


def write_bytes_lines(path, lines: list[bytes]):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def prepare(tmp_path, input_path, data_format="prompt-completion", **settings):
    settings.setdefault("test_size", 1)
    config = PrepareConfig(data_format=data_format, output_dir=tmp_path / "out", input_path=input_path, **settings)
    prepared = run(config)
    return prepared, json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))


def bad_lines(report) -> dict[int, str]:
    return {row["line"]: row["reason"] for row in report["rejected"]}


def write_csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- JSONL: decoding per line ---------------------------------------------------------------------


def test_invalid_utf8_on_one_line_is_one_bad_row(tmp_path):
    lines = good_lines(20)
    lines[6] = b'{"prompt": "caf\xe9 au lait?", "completion": "\xff\xfe"}'  # Latin-1, not UTF-8
    _prepared, report = prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines))
    assert list(bad_lines(report)) == [7]
    assert "invalid UTF-8: byte(s) 0xe9 at byte column 16" in bad_lines(report)[7]
    assert report["rejected"][0]["kind"] == "invalid_utf8"
    assert report["counts"]["valid"] == 19 and report["status"] == "ok"


def test_lone_surrogate_escapes_are_bad_rows_naming_the_field(tmp_path):
    lines = good_lines(20)
    lines[2] = b'{"prompt": "ab\\udc80cd", "completion": "x"}'
    lines[9] = b'{"prompt": "fine", "completion": "\\ud800"}'
    lines[11] = b'{"prompt": "an emoji \\ud83d\\ude00 is a pair", "completion": "ok"}'  # a valid pair
    prepared, report = prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines), max_bad_fraction=0.2)
    reasons = bad_lines(report)
    assert list(reasons) == [3, 10]
    assert "field 'prompt' holds a lone surrogate U+DC80 at character 3" in reasons[3]
    assert "field 'completion' holds a lone surrogate U+D800 at character 1" in reasons[10]
    assert report["rejected_by_kind"] == {"lone_surrogate": 2}
    kept = [example.messages[0]["content"] for example in prepared.train + prepared.test]
    assert "an emoji \U0001f600 is a pair" in kept
    # The outputs are valid UTF-8 throughout.
    (tmp_path / "out" / "train.jsonl").read_bytes().decode("utf-8")


def test_lone_surrogate_in_a_message_and_in_a_field_name(tmp_path):
    conversation = [{"role": "user", "content": "hi \udcff"}, {"role": "assistant", "content": "hello"}]
    rows = [json.dumps({"messages": conversation}).encode()]
    rows += [
        json.dumps(
            {"messages": [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": "a"}], "na\udc80me": 1}
        ).encode()
        for n in range(9)
    ]
    _prepared, report = prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", rows), "messages")
    assert "messages[0].content holds a lone surrogate U+DCFF" in bad_lines(report)[1]
    assert report["changes"]["unknown_field_dropped"]["details"] == {"na\\udc80me": 9}


def test_100000_deep_nesting_is_a_bad_row(tmp_path):
    lines = good_lines(20)
    lines[4] = b"[" * 100_000 + b"]" * 100_000
    lines[5] = b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b', "completion": "x"}'
    _prepared, report = prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines), max_bad_fraction=0.2)
    assert list(bad_lines(report)) == [5, 6]
    assert all(row["kind"] == "too_deep" and "nested too deeply" in row["reason"] for row in report["rejected"])
    assert report["counts"]["valid"] == 18


def test_nesting_that_parses_but_is_deep_is_named_without_recursing(tmp_path):
    lines = good_lines(20)
    lines[0] = b"[" * 500 + b"]" * 500
    _prepared, report = prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines))
    assert "row must be an object, got list" in bad_lines(report)[1]


def test_a_line_over_the_byte_limit_is_a_bad_row_and_not_kept(tmp_path):
    lines = good_lines(3)
    lines.insert(1, json.dumps({"prompt": "x" * 5000, "completion": "y"}).encode())
    rows = list(read_rows(write_bytes_lines(tmp_path / "d.jsonl", lines), max_record_bytes=1000))
    assert [(row.line, row.kind) for row in rows] == [(1, None), (2, "too_large"), (3, None), (4, None)]
    assert rows[1].value is None and "the line is 5,034 bytes, over the limit of 1,000 bytes" in rows[1].error


def test_an_integer_too_long_to_convert_is_a_bad_row(tmp_path):
    lines = good_lines(20)
    lines[2] = b'{"prompt": "p", "completion": "c", "n": ' + b"9" * 5000 + b"}"
    _prepared, report = prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines))
    assert list(bad_lines(report)) == [3] and "unreadable JSON (Exceeds the limit" in bad_lines(report)[3]


def test_a_byte_order_mark_and_blank_lines_are_not_rows(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(good_lines(3)) + b"\n\n   \n")
    assert [row.line for row in read_rows(path)] == [1, 2, 3]


# --- length limit ---------------------------------------------------------------------------------


def test_a_conversation_over_max_chars_is_refused_by_line(tmp_path):
    lines = good_lines(20)
    lines[3] = json.dumps({"prompt": "p" * 300, "completion": "c" * 300}).encode()
    lines[8] = json.dumps({"prompt": "p" * 700, "completion": "c"}).encode()
    _prepared, report = prepare(
        tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines), max_chars=500, max_bad_fraction=0.2
    )
    reasons = bad_lines(report)
    assert "the conversation is 600 characters, over the limit of 500 (--max-chars)" in reasons[4]
    assert "field 'prompt' is 700 characters, over the limit of 500" in reasons[9]
    assert report["rejected_by_kind"] == {"too_long": 2} and report["settings"]["max_chars"] == 500


def test_the_character_limit_follows_max_length_by_default():
    assert PrepareConfig("messages", output_dir=None).char_limit == 8 * 2048
    assert PrepareConfig("messages", output_dir=None, max_length=4096).char_limit == 8 * 4096
    assert PrepareConfig("messages", output_dir=None, max_length=4096, max_chars=100).char_limit == 100


# --- CSV: records, decoding and size per record ----------------------------------------------------


def test_a_200_kb_csv_field_is_a_bad_row_on_its_line(tmp_path):
    rows = [[f"What is {n}?", str(n)] for n in range(20)]
    rows[5][0] = "x" * 200_000  # over the csv module's own default field limit (131072)
    path = write_csv(tmp_path / "d.csv", ["prompt", "completion"], rows)
    _prepared, report = prepare(tmp_path, path)
    assert list(bad_lines(report)) == [7]
    assert "field 'prompt' is 200,000 characters, over the limit of 16,384" in bad_lines(report)[7]
    # A limit that allows it lets the same row through.
    _prepared, report = prepare(tmp_path, path, max_chars=300_000)
    assert report["counts"]["rejected"] == 0 and report["counts"]["valid"] == 20


def test_a_record_spanning_lines_is_numbered_by_its_first_line(tmp_path):
    rows = [["first", "one"], ["a\nthree\nline prompt", "two"], ["bad", "x", "extra"], ["fine", "ok"]]
    path = write_csv(tmp_path / "d.csv", ["prompt", "completion"], rows)
    raw = list(read_rows(path))
    assert [row.line for row in raw] == [2, 3, 6, 7]
    assert raw[1].value == {"prompt": "a\nthree\nline prompt", "completion": "two"}
    assert raw[2].error == "more values (3) than the 2 header columns"


def test_invalid_utf8_in_a_csv_record_is_one_bad_row(tmp_path):
    content = b'prompt,completion\none,1\n"two\nlines \xff here",2\nthree,3\n'
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    raw = list(read_rows(path))
    assert [(row.line, row.kind) for row in raw] == [(2, None), (3, "invalid_utf8"), (5, None)]
    assert raw[1].error.startswith("line 4: invalid UTF-8: byte(s) 0xff at byte column 7")


def test_an_unclosed_quote_is_a_bad_row_from_its_first_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'prompt,completion\none,1\n"two,2\nthree,3\n')
    raw = list(read_rows(path))
    assert [(row.line, row.kind) for row in raw] == [(2, None), (3, "broken_csv")]
    assert "never closed" in raw[1].error


def test_a_csv_record_over_the_byte_limit_is_a_bad_row(tmp_path):
    path = write_csv(
        tmp_path / "d.csv",
        ["prompt", "completion"],
        [["one", "1"], ["x" * 3000 + "\n" + "y" * 3000, "2"], ["three", "3"]],
    )
    raw = list(read_rows(path, max_record_bytes=1000))
    assert [(row.line, row.kind) for row in raw] == [(2, None), (3, "too_large"), (5, None)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_csv_records_match_the_csv_module_whatever_the_chunk_size(monkeypatch, chunk):
    monkeypatch.setattr(csv_records, "CHUNK_BYTES", chunk)
    rng = random.Random(chunk)
    pieces = ["a", "b c", ",", '"', '""', "\n", "\r\n", "x,y", "é", ""]
    rows = [["".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))) for _ in range(3)] for _ in range(200)]
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    # Irregular but readable: a quote inside an unquoted field is an ordinary character; text after a
    # closing quote stays in the field; an empty field before a quoted one.
    text = buffer.getvalue() + 'p,q"r,s\n' + 'a"b,"c""d"e,f\n' + '"x"y,z\n' + ',"q\n",\n' + '""\n'
    rows = None
    records = list(csv_records.read_records(io.BytesIO(text.encode()), 1 << 30))
    parsed = [values for record in records for values in csv.reader(io.StringIO(record.data.decode(), newline=""))]
    expected = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed == expected
    starts, reader = [], csv.reader(io.StringIO(text, newline=""))
    line = 1
    for _ in reader:
        starts.append(line)
        line = reader.line_num + 1
    assert [record.line for record in records] == starts


def test_a_csv_file_with_bare_carriage_returns_is_refused_not_read_as_one_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"prompt,completion\rone,1\rtwo,2\r")
    with pytest.raises(DataSetRefused, match="bare carriage return"):
        prepare(tmp_path, path)


# --- JSON and Parquet -----------------------------------------------------------------------------


def test_a_json_file_with_bytes_that_are_not_utf8_loses_only_those_rows(tmp_path):
    rows = [json.dumps({"prompt": f"q{n}", "completion": "a"}).encode() for n in range(20)]
    rows[4] = b'{"prompt": "bad \xff byte", "completion": "a"}'
    path = tmp_path / "d.json"
    path.write_bytes(b"[" + b",\n".join(rows) + b"]")
    _prepared, report = prepare(tmp_path, path)
    assert list(bad_lines(report)) == [5] and report["rejected"][0]["kind"] == "invalid_utf8"


def test_a_json_file_nested_too_deeply_is_refused_with_a_report(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[" + json.dumps(GOOD) + ", " + "[" * 100_000 + "]" * 100_000 + "]")
    with pytest.raises(DataSetRefused, match="nested too deeply"):
        prepare(tmp_path, path)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "refused" and "nested too deeply" in report["refusal"]


def test_parquet_strings_that_are_not_utf8_are_bad_rows_by_row_number(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompts = [f"q{n}".encode() for n in range(20)]
    prompts[12] = b"\xffbad"
    table = pa.table({"prompt": pa.array(prompts, pa.binary()).view(pa.string()), "completion": pa.array(["a"] * 20)})
    pq.write_table(table, tmp_path / "d.parquet")
    _prepared, report = prepare(tmp_path, tmp_path / "d.parquet")
    assert list(bad_lines(report)) == [13] and "column 'prompt' holds bytes that are not UTF-8" in bad_lines(report)[13]
    assert report["counts"]["valid"] == 19


# --- refusal, caps, exit message ------------------------------------------------------------------


def test_a_refused_file_still_writes_report_json_with_every_bad_row(tmp_path):
    lines = good_lines(10) + [b"{broken"] * 30 + [b"\xff"] * 5
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.jsonl").write_text("stale\n")
    with pytest.raises(DataSetRefused) as caught:
        prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines))
    message = str(caught.value)
    assert message.startswith("35 of 45 rows (77.8%) are unusable")
    assert "line 11: broken JSON" in message and "... and 30 more" in message
    assert f"Every bad row is listed in {tmp_path / 'out' / 'report.json'}" in message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "refused" and report["refusal"].startswith("35 of 45 rows")
    assert [row["line"] for row in report["rejected"]] == list(range(11, 46))
    assert report["rejected_by_kind"] == {"broken_json": 30, "invalid_utf8": 5}
    assert report["counts"]["rejected"] == 35 and report["counts"]["train"] == 0


def test_the_report_lists_up_to_the_cap_and_gives_the_total(tmp_path):
    lines = good_lines(10) + [b"{broken"] * 12 + good_lines(1) * 4
    with pytest.raises(DataSetRefused) as caught:
        prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", lines), report_list_cap=5)
    report = caught.value.report
    assert report["counts"]["rejected"] == 12 and len(report["rejected"]) == 5
    assert report["not_listed"] == {"rejected": 7, "duplicates": 0}
    assert [row["line"] for row in report["rejected"]] == [11, 12, 13, 14, 15]
    assert "(5 at most)" in str(caught.value)
    assert len(caught.value.rejected) == 12  # all of them still reach the log
    assert report["counts"]["duplicates"] == 4


def test_a_file_that_cannot_be_read_still_gets_a_report(tmp_path):
    with pytest.raises(DataSetRefused, match="does not exist"):
        prepare(tmp_path, tmp_path / "missing.jsonl")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "refused" and "does not exist" in report["refusal"]


def test_cli_refusal_logs_every_bad_row_and_writes_a_short_exit_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPT_ML", str(tmp_path / "opt_ml"))
    (tmp_path / "opt_ml").mkdir()
    lines = good_lines(5) + [b'{"prompt": "' + b"z" * 300 + b'"}'] * 40
    path = write_bytes_lines(tmp_path / "d.jsonl", lines)
    assert (
        main(
            [
                "--input",
                str(path),
                "--format",
                "prompt-completion",
                "--output-dir",
                str(tmp_path / "out"),
                "--test-size",
                "1",
                "--report-list-cap",
                "10",
            ]
        )
        == 1
    )
    out = capsys.readouterr()
    assert out.out.count("prepare_data: bad line ") == 40 and "bad line 45: missing field 'completion'" in out.out
    message = (tmp_path / "opt_ml" / "output" / "message").read_text(encoding="utf-8")
    assert len(message.encode("utf-8")) <= 1024
    assert message.startswith("prepare_data refused the data set: 40 of 45 rows (88.9%)")
    assert "line 6: missing field 'completion'" in message
    assert message.rstrip().endswith(
        f"more; every bad row is printed in the job's log and listed in {tmp_path / 'out' / 'report.json'}"
    )
    assert len(json.loads((tmp_path / "out" / "report.json").read_text())["rejected"]) == 10


def test_outside_a_job_no_exit_message_file_is_written_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("OPT_ML", str(tmp_path / "opt_ml"))  # does not exist: not inside a job
    path = write_bytes_lines(tmp_path / "d.jsonl", [b"{broken"] * 3)
    assert main(["--input", str(path), "--format", "prompt-completion", "--output-dir", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "opt_ml").exists()
    chosen = tmp_path / "elsewhere" / "message.txt"
    assert (
        main(
            [
                "--input",
                str(path),
                "--format",
                "prompt-completion",
                "--output-dir",
                str(tmp_path / "out"),
                "--exit-message-file",
                str(chosen),
            ]
        )
        == 1
    )
    assert chosen.read_text().startswith("prepare_data refused the data set: 3 of 3 rows")


def test_exit_message_fits_the_byte_limit_with_multibyte_text():
    rejected = [{"line": n, "reason": "é" * 300} for n in range(1, 100)]
    message = exit_message("summary", rejected, None, limit=1024)
    assert len(message.encode("utf-8")) <= 1024 and message.startswith("summary\nline 1: ")
    assert message.endswith("more; every bad row is printed in the job's log")
    assert exit_message("summary", rejected[:1], None, limit=1024).count("line 1:") == 1


def test_an_unforeseen_error_in_one_row_is_a_bad_row(tmp_path, monkeypatch):
    import prepare_data

    real = prepare_data.convert

    def flaky(row, data_format, max_chars=None):
        if row.get("prompt") == "What is 3 + 3?":
            raise TypeError("something odd")
        return real(row, data_format, max_chars)

    monkeypatch.setattr(prepare_data, "convert", flaky)
    _prepared, report = prepare(tmp_path, write_bytes_lines(tmp_path / "d.jsonl", good_lines(20)))
    assert report["rejected"] == [
        {"line": 4, "reason": "cannot be converted (TypeError: something odd)", "kind": "unexpected"}
    ]


# --- what is dropped or changed in kept rows ------------------------------------------------------


def test_weight_0_turns_unknown_fields_and_nulls_are_counted(tmp_path):
    def turn(role, content, **extra):
        return {"role": role, "content": content, **extra}

    rows = [
        # the last answer has weight 0: the conversation ends at the weighted answer before it
        {
            "id": 1,
            "messages": [
                turn("user", "a"),
                turn("assistant", "b"),
                turn("user", "c"),
                turn("assistant", "d", weight=0),
            ],
        },
        # a weight-0 answer before a weighted one is kept (training learns every answer it sees)
        {
            "id": 2,
            "messages": [
                turn("user", "e"),
                turn("assistant", "f", weight=0),
                turn("user", "g"),
                turn("assistant", "h", weight=1, name="bot"),
            ],
        },
        {"messages": [turn("user", "i"), turn("assistant", "j", weight=None)], "source": None},
        {"messages": [turn("user", "k"), turn("assistant", "l", weight=0)]},  # nothing to learn
        {"messages": [turn("user", "m"), turn("assistant", "n", weight=0.5)]},  # not 0 or 1
    ] + [{"messages": [turn("user", f"q{n}"), turn("assistant", "r")]} for n in range(15)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    prepared, report = prepare(tmp_path, path, "messages", max_bad_fraction=0.2)
    kept = {example.line: example.messages for example in prepared.train + prepared.test}
    assert [m["content"] for m in kept[1]] == ["a", "b"]
    assert [m["content"] for m in kept[2]] == ["e", "f", "g", "h"]
    assert "every assistant turn has weight 0" in bad_lines(report)[4]
    assert "messages[1].weight is 0.5; allowed: 0 or 1" in bad_lines(report)[5]
    changes = report["changes"]
    assert changes["weight_0_turn_removed"] == {"rows": 1, "occurrences": 1, "lines": [1]}
    assert changes["weight_0_turn_learned"] == {"rows": 1, "occurrences": 1, "lines": [2]}
    assert changes["unknown_field_dropped"] == {
        "rows": 3,
        "occurrences": 3,
        "details": {"id": 2, "source": 1},
        "lines": [1, 2, 3],
    }
    assert changes["message_field_dropped"] == {"rows": 1, "occurrences": 1, "details": {"name": 1}, "lines": [2]}
    assert changes["null_read_as_empty"] == {
        "rows": 1,
        "occurrences": 1,
        "details": {"weight (read as 1)": 1},
        "lines": [3],
    }


def test_alpaca_null_input_and_sql_wrapper_are_counted(tmp_path):
    rows = [{"instruction": f"Say {n}", "input": None, "output": str(n)} for n in range(3)]
    rows += [{"instruction": f"Do {n}", "input": "", "output": str(n)} for n in range(3)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _prepared, report = prepare(tmp_path, path, "alpaca")
    assert report["changes"] == {
        "null_read_as_empty": {"rows": 3, "occurrences": 3, "details": {"input": 3}, "lines": [1, 2, 3]}
    }
    sql = [
        {"question": f"q{n}", "context": "CREATE TABLE t (a INTEGER)", "answer": f"[SQL] SELECT {n} [/SQL]"}
        for n in range(4)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in sql))
    _prepared, report = prepare(tmp_path, path, "sql-create-context")
    assert report["changes"]["sql_wrapper_removed"]["rows"] == 4


def test_change_lines_are_capped_but_counted(tmp_path):
    rows = [{"prompt": f"q{n}", "completion": "a", "extra": n} for n in range(30)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _prepared, report = prepare(tmp_path, path, report_list_cap=4)
    assert report["changes"]["unknown_field_dropped"] == {
        "rows": 30,
        "occurrences": 30,
        "details": {"extra": 30},
        "lines": [1, 2, 3, 4],
    }
    rows = [{"prompt": f"q{n}", "completion": "a", f"field{n}": n} for n in range(30)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _prepared, report = prepare(tmp_path, path, report_list_cap=4)
    assert len(report["changes"]["unknown_field_dropped"]["details"]) == 4
