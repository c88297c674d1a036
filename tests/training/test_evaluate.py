"""evaluate.py and report.py: batched generation, scoring, metrics.json, predictions, the report."""

import json
from importlib.metadata import version
from pathlib import Path

import evaluate
import pytest
from chat_format import render_prompt
from evaluate import (
    EvalConfig,
    EvalRow,
    EvaluationError,
    EvaluationFailed,
    clean_prediction,
    generate,
    judge,
    judge_safely,
    load_model,
    load_test_rows,
    main,
    summarize,
)
from report import render_report

SCHEMA = "CREATE TABLE head (name VARCHAR, age INTEGER)"
MODEL_KEYS = {
    "execution_accuracy",
    "exact_match",
    "count",
    "execution_errors",
    "unscored",
    "seconds",
    "prompts_per_second",
    "intervals",
}
VERDICT_KEYS = {"prediction", "output", "exact_match", "execution_match", "error", "unscored"}


def sql_row(question: str, answer: str, schema: str = SCHEMA) -> dict:
    return {
        "messages": [
            {"role": "system", "content": f"Answer with SQL.\n\n{schema}"},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


@pytest.fixture()
def test_file(tmp_path) -> Path:
    rows = [sql_row(f"Names of heads older than {n}?", f"SELECT name FROM head WHERE age > {n}") for n in range(7)]
    rows.append(sql_row("Who is <b>oldest</b>?", "SELECT name FROM head ORDER BY age DESC LIMIT 1"))
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("  SELECT 1  ", "SELECT 1"),
        ("SELECT a FROM t\n\nThis query selects a.", "SELECT a FROM t"),
        ("SELECT a\nFROM t\nWHERE b = 1", "SELECT a\nFROM t\nWHERE b = 1"),
        ("[SQL] SELECT a FROM t [/SQL] and more", "SELECT a FROM t"),
        ("Here you go:\n```sql\nSELECT a FROM t;\n```\nDone.", "SELECT a FROM t;"),
        ("```\nSELECT a FROM t", "SELECT a FROM t"),
        ("To list them, run:\n\nSELECT a FROM t;\n\nThis returns a.", "SELECT a FROM t;"),
        ("The answer is 42.", "The answer is 42."),
        ("", ""),
    ],
)
def test_clean_prediction(raw, cleaned):
    assert clean_prediction(raw) == cleaned


def test_judge_scores_by_execution_and_by_text():
    row = EvalRow("1", [], "SELECT name FROM head WHERE age > 3", SCHEMA)
    right = judge(row, "select name from head where 3 < age")
    assert right.execution_match and not right.exact_match and right.error is None
    wrong = judge(row, "SELECT name FROM head WHERE age > 4")
    assert wrong.execution_match is False and wrong.error is None
    broken = judge(row, "SELECT nme FROM head")
    assert broken.execution_match is False and "no such column" in broken.error
    prose = EvalRow("2", [], "Paris", "")
    assert judge(prose, " Paris\n\nIt is the capital.").exact_match
    assert judge(prose, "Paris").execution_match is None


def test_summarize_counts_and_rates():
    row = EvalRow("1", [], "SELECT name FROM head", SCHEMA)
    verdicts = [judge(row, "SELECT name FROM head"), judge(row, "SELECT age FROM head"), judge(row, "SELEC")]
    summary = summarize(verdicts, seconds=2.0)
    assert summary == {
        "execution_accuracy": 0.3333,
        "exact_match": 0.3333,
        "count": 3,
        "execution_errors": 1,
        "unscored": 0,
        "seconds": 2.0,
        "prompts_per_second": 1.5,
    }
    assert summarize([judge(EvalRow("p", [], "x", ""), "x")], 1.0)["execution_accuracy"] is None


def test_bad_test_rows_are_skipped_and_named_by_line(tmp_path):
    path = tmp_path / "test.jsonl"
    lines = [
        json.dumps(sql_row("q", "SELECT 1")),
        "{broken",
        json.dumps({"messages": [{"role": "user", "content": "q"}]}),
        json.dumps([1, 2]),
        "",
        json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "SELECT 1"}]}),
        json.dumps({"messages": [{"role": "assistant", "content": "SELECT 1"}]}),
        json.dumps(sql_row("r", "SELECT 2")),
    ]
    path.write_text("\n".join(lines) + "\n")
    test = load_test_rows(path)
    assert [row.gold for row in test.rows] == ["SELECT 1", "SELECT 2"] and test.lines == 7
    reasons = {problem.line: problem.reason for problem in test.problems}
    assert set(reasons) == {2, 3, 4, 6, 7}
    assert reasons[2].startswith("broken JSON")
    assert "ending with the assistant's answer, the last message's role is 'user'" in reasons[3]
    assert 'expected {"messages": [...]}' in reasons[4]
    assert "messages[0] is not a" in reasons[6]
    assert reasons[7] == "no message before the assistant's answer"


def test_a_test_file_without_usable_rows_is_an_error(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("{broken\n")
    with pytest.raises(EvaluationError, match=r"holds no usable rows \(line 1: broken JSON"):
        load_test_rows(path)
    with pytest.raises(EvaluationError, match="does not exist"):
        load_test_rows(tmp_path / "missing.jsonl")


def test_test_rows_keep_schema_id_and_max_samples(test_file):
    rows = load_test_rows(test_file, max_samples=3).rows
    assert [row.id for row in rows] == ["1", "2", "3"]
    assert rows[0].schema == SCHEMA and rows[0].gold == "SELECT name FROM head WHERE age > 0"
    assert [m["role"] for m in rows[0].messages] == ["system", "user"]


def test_batched_generation_equals_one_at_a_time(tiny_model_dir, test_file):
    model, tokenizer = load_model(tiny_model_dir)
    prompts = [render_prompt(tokenizer, row.messages) for row in load_test_rows(test_file).rows]
    prompts.append(prompts[0] + " and a much longer question so that the batch needs padding " * 3)
    batched = generate(model, tokenizer, prompts, batch_size=3, max_new_tokens=12)
    single = [generate(model, tokenizer, [prompt], batch_size=1, max_new_tokens=12)[0] for prompt in prompts]
    assert batched == single
    assert len(set(batched)) > 1  # different prompts, different answers: results are not shuffled


def test_run_on_the_tiny_model_writes_metrics_predictions_and_report(tiny_model_dir, test_file, tmp_path):
    training_metrics = tmp_path / "training_metrics.json"
    training_metrics.write_text(
        json.dumps(
            {
                "log_history": [
                    {"step": 1, "loss": 3.5},
                    {"step": 2, "loss": 2.75},
                    {"step": 3, "loss": 2.0, "eval_loss": 2.2},
                    {"step": 3, "train_loss": 2.7, "train_runtime": 4.0},
                ]
            }
        )
    )
    output = tmp_path / "eval"
    metrics = evaluate.run(
        EvalConfig(
            model_dir=tiny_model_dir,
            base_model=str(tiny_model_dir),
            test_file=test_file,
            output_dir=output,
            training_metrics=training_metrics,
            batch_size=3,
            max_new_tokens=8,
        )
    )
    assert json.loads((output / "metrics.json").read_text()) == metrics
    assert set(metrics) == {"fine_tuned", "base", "settings", "test_rows", "comparison", "statistics"}
    settings = metrics["settings"]
    assert {key: settings[key] for key in ("max_new_tokens", "batch_size", "greedy", "repetition_penalty")} == {
        "max_new_tokens": 8,
        "batch_size": 3,
        "greedy": True,
        "repetition_penalty": 1.0,
    }
    # what generated the answers, and its versions
    assert settings["generation_backend"] == "transformers"
    assert settings["software"]["transformers"] == version("transformers") and "vllm" not in settings["software"]
    assert metrics["test_rows"] == {"lines": 8, "used": 8, "skipped": 0, "problems": []}
    assert metrics["statistics"]["confidence"] == 0.95 and metrics["statistics"]["resamples"] == 2000
    for name in ("fine_tuned", "base"):
        assert set(metrics[name]) == MODEL_KEYS
        assert metrics[name]["count"] == 8 and metrics[name]["unscored"] == 0
        assert 0 <= metrics[name]["execution_accuracy"] <= 1 and metrics[name]["seconds"] > 0
        for key in ("execution_accuracy", "exact_match"):
            interval = metrics[name]["intervals"][key]
            assert interval["low"] <= metrics[name][key] <= interval["high"] and interval["rows"] == 8
    # The same weights as base and fine-tuned model answer the same: no difference, nothing discordant.
    assert metrics["fine_tuned"]["execution_accuracy"] == metrics["base"]["execution_accuracy"]
    paired = metrics["comparison"]["execution_accuracy"]
    assert (paired["difference"], paired["low"], paired["high"], paired["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    assert paired["fine_tuned_only"] == paired["base_only"] == 0 and paired["rows"] == 8

    predictions = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 8 and [row["id"] for row in predictions] == [str(n) for n in range(1, 9)]
    model, tokenizer = load_model(tiny_model_dir)
    first = predictions[0]
    assert first["prompt"] == render_prompt(tokenizer, first["messages"])
    assert first["gold"] == "SELECT name FROM head WHERE age > 0"
    for name in ("fine_tuned", "base"):
        assert set(first[name]) == VERDICT_KEYS and first[name]["unscored"] is None
        assert first[name]["prediction"] == clean_prediction(first[name]["output"])
    # Written in input order, whatever order the batches ran in.
    expected = generate(model, tokenizer, [row["prompt"] for row in predictions], batch_size=1, max_new_tokens=8)
    assert [row["fine_tuned"]["output"] for row in predictions] == expected

    html = (output / "report.html").read_text()
    assert html.count("<svg") == 2 and "<polyline" in html
    assert "95%: " in html and "McNemar exact p" in html
    assert "Who is &lt;b&gt;oldest&lt;/b&gt;?" in html and "<b>oldest</b>" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_cli_without_base_model(tiny_model_dir, test_file, tmp_path):
    output = tmp_path / "eval"
    assert (
        main(
            [
                "--model-dir",
                str(tiny_model_dir),
                "--skip-base",
                "--test-file",
                str(test_file),
                "--output-dir",
                str(output),
                "--max-samples",
                "2",
                "--max-new-tokens",
                "4",
            ]
        )
        == 0
    )
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["base"] is None and metrics["fine_tuned"]["count"] == 2
    rows = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
    assert all(row["base"] is None for row in rows)
    assert "No training metrics were given" in (output / "report.html").read_text()


def test_cli_requires_a_base_model_choice(test_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(evaluate, "PROCESSING_INPUT", tmp_path / "nowhere")
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--model-dir", "m", "--test-file", str(test_file), "--output-dir", "o"])
    assert "--base-model-dir, --base-model-id or --skip-base" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--model-dir", "m", "--skip-base", "--batch-size", "0"])
    assert "--batch-size: must be a whole number >= 1" in capsys.readouterr().err


def test_report_escapes_every_piece_of_data():
    metrics = {
        "fine_tuned": {
            "execution_accuracy": 0.5,
            "exact_match": 0.25,
            "count": 2,
            "execution_errors": 1,
            "seconds": 1.0,
            "prompts_per_second": 2.0,
        },
        "base": None,
        "settings": {"max_new_tokens": 8, "batch_size": 2, "greedy": True},
    }
    predictions = [
        {
            "id": "<i>1</i>",
            "messages": [{"role": "user", "content": "<script>alert(1)</script>"}],
            "gold": "SELECT '<x>'",
            "fine_tuned": {
                "prediction": "<u>pred</u>",
                "exact_match": False,
                "execution_match": False,
                "error": "<err>",
            },
            "base": None,
        }
    ]
    html = render_report(metrics, predictions, [])
    for raw in ("<script>", "<i>1</i>", "'<x>'", "<u>pred</u>", "<err>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "✗" in html and "<th>Base</th>" not in html


def _outputs(output_dir: Path) -> tuple[dict, list[dict], str]:
    metrics = json.loads((output_dir / "metrics.json").read_text())
    predictions = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    return metrics, predictions, (output_dir / "report.html").read_text()


def test_judge_safely_turns_a_raising_scorer_into_an_unscored_row(monkeypatch):
    def broken_scorer(*args, **kwargs):
        raise RuntimeError("sandbox crashed")

    monkeypatch.setattr(evaluate, "execution_match", broken_scorer)
    row = EvalRow("7", [], "SELECT name FROM head", SCHEMA)
    verdict = judge_safely(row, "SELECT name FROM head")
    assert verdict.unscored == "RuntimeError: sandbox crashed"
    assert (verdict.exact_match, verdict.execution_match, verdict.error) == (False, False, None)
    assert verdict.prediction == "SELECT name FROM head"
    not_text = judge_safely(EvalRow("8", [], "x", ""), None)
    assert not_text.unscored.startswith("AttributeError") and not_text.execution_match is None
    assert summarize([verdict, not_text], 1.0)["unscored"] == 2


def test_a_raising_scorer_still_writes_every_output(tiny_model_dir, test_file, tmp_path, monkeypatch):
    real = evaluate.execution_match

    def flaky_scorer(prediction, gold, schema, seed=0):
        if "age > 3" in gold:
            raise MemoryError("row too big")
        return real(prediction, gold, schema, seed=seed)

    monkeypatch.setattr(evaluate, "execution_match", flaky_scorer)
    output = tmp_path / "eval"
    metrics = evaluate.run(
        EvalConfig(
            model_dir=tiny_model_dir,
            base_model=str(tiny_model_dir),
            test_file=test_file,
            output_dir=output,
            batch_size=4,
            max_new_tokens=4,
        )
    )
    written, predictions, html = _outputs(output)
    assert written == metrics and "error" not in metrics
    assert metrics["fine_tuned"]["unscored"] == metrics["base"]["unscored"] == 1
    (unscored,) = [row for row in predictions if row["fine_tuned"]["unscored"]]
    assert unscored["id"] == "4" and unscored["fine_tuned"]["unscored"] == "MemoryError: row too big"
    assert unscored["fine_tuned"]["execution_match"] is False
    assert "1 rows of the fine-tuned model could not be scored" in html


def test_garbage_model_outputs_are_scored_or_unscored_never_fatal(tiny_model_dir, test_file, tmp_path, monkeypatch):
    garbage = [
        None,
        42,
        "\ud800 lone surrogate",
        "SELECT\x00name FROM head",
        "```" * 1000,
        "SELECT " * 5000,
        "<script>alert(1)</script>",
        "DROP TABLE head",
    ]
    monkeypatch.setattr(
        evaluate, "generate", lambda model, tokenizer, prompts, batch_size, max_new_tokens: garbage[: len(prompts)]
    )
    output = tmp_path / "eval"
    metrics = evaluate.run(
        EvalConfig(model_dir=tiny_model_dir, base_model=None, test_file=test_file, output_dir=output)
    )
    written, predictions, html = _outputs(output)
    assert written == metrics and metrics["fine_tuned"]["count"] == 8 and metrics["base"] is None
    assert metrics["fine_tuned"]["execution_accuracy"] == 0.0 and metrics["comparison"] is None
    assert len(predictions) == 8
    assert predictions[0]["fine_tuned"]["unscored"].startswith("AttributeError")
    assert predictions[2]["fine_tuned"]["output"] == "? lone surrogate"
    assert metrics["fine_tuned"]["unscored"] == sum(1 for row in predictions if row["fine_tuned"]["unscored"])
    assert "<script>alert" not in html


def test_bad_test_rows_are_counted_in_metrics_and_the_report(tiny_model_dir, test_file, tmp_path):
    test_file.write_text(test_file.read_text() + "{broken\n" + json.dumps({"messages": []}) + "\n")
    output = tmp_path / "eval"
    metrics = evaluate.run(
        EvalConfig(model_dir=tiny_model_dir, base_model=None, test_file=test_file, output_dir=output, max_new_tokens=2)
    )
    assert metrics["test_rows"] == {
        "lines": 10,
        "used": 8,
        "skipped": 2,
        "problems": [
            {"line": 9, "reason": "broken JSON (Expecting property name enclosed in double quotes)"},
            {"line": 10, "reason": 'expected {"messages": [...]} ending with the assistant\'s answer'},
        ],
    }
    assert "2 of 10 test lines were skipped" in _outputs(output)[2]


def test_a_generation_failure_names_its_rows_and_writes_what_was_done(
    tiny_model_dir, test_file, tmp_path, monkeypatch, capsys
):
    real_load = evaluate.load_model

    def load_a_model_that_fails_on_its_second_batch(reference):
        model, tokenizer = real_load(reference)
        calls = []
        real_generate = model.generate

        def generate_twice(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("CUDA out of memory")
            return real_generate(*args, **kwargs)

        model.generate = generate_twice
        return model, tokenizer

    monkeypatch.setattr(evaluate, "load_model", load_a_model_that_fails_on_its_second_batch)
    output = tmp_path / "eval"
    code = main(
        [
            "--model-dir",
            str(tiny_model_dir),
            "--skip-base",
            "--test-file",
            str(test_file),
            "--output-dir",
            str(output),
            "--batch-size",
            "3",
            "--max-new-tokens",
            "4",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "evaluate: error: fine_tuned model: generation failed on rows " in err and "CUDA out of memory" in err
    metrics, predictions, html = _outputs(output)
    assert metrics["fine_tuned"] is None and "generation failed on rows" in metrics["error"]
    assert "(index " in metrics["error"]
    answered = [row for row in predictions if row["fine_tuned"]]
    assert len(predictions) == 8 and len(answered) == 3  # the first batch, longest prompts first
    assert "The evaluation did not finish" in html


def test_a_base_model_that_cannot_load_keeps_the_fine_tuned_metrics(tiny_model_dir, test_file, tmp_path):
    output = tmp_path / "eval"
    with pytest.raises(EvaluationFailed, match=r"base model .*nowhere: loading failed"):
        evaluate.run(
            EvalConfig(
                model_dir=tiny_model_dir,
                base_model=str(tmp_path / "nowhere"),
                test_file=test_file,
                output_dir=output,
                max_new_tokens=2,
            )
        )
    metrics, predictions, _ = _outputs(output)
    assert metrics["fine_tuned"]["count"] == 8 and metrics["base"] is None
    assert metrics["fine_tuned"]["intervals"]["exact_match"] is not None and metrics["comparison"] is None
    assert "loading failed" in metrics["error"] and all(row["fine_tuned"] for row in predictions)


def test_a_missing_test_file_still_writes_the_outputs(tiny_model_dir, tmp_path):
    output = tmp_path / "eval"
    assert (
        main(
            [
                "--model-dir",
                str(tiny_model_dir),
                "--skip-base",
                "--test-file",
                str(tmp_path / "none.jsonl"),
                "--output-dir",
                str(output),
            ]
        )
        == 1
    )
    metrics, predictions, html = _outputs(output)
    assert "does not exist" in metrics["error"] and metrics["fine_tuned"] is None and predictions == []
    assert "does not exist" in html


def test_cli_prints_intervals_and_the_paired_comparison(tiny_model_dir, test_file, tmp_path, capsys):
    assert (
        main(
            [
                "--model-dir",
                str(tiny_model_dir),
                "--base-model-dir",
                str(tiny_model_dir),
                "--test-file",
                str(test_file),
                "--output-dir",
                str(tmp_path / "eval"),
                "--max-new-tokens",
                "2",
                "--seed",
                "4",
                "--resamples",
                "500",
                "--confidence",
                "0.9",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "evaluate: fine_tuned: execution_accuracy=" in out and "(90% " in out
    assert "evaluate: fine_tuned vs base, execution_accuracy: difference +0.0" in out and "McNemar exact p=1.0" in out
    statistics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["statistics"]
    assert (statistics["confidence"], statistics["resamples"], statistics["seed"]) == (0.9, 500, 4)


def test_report_shows_intervals_and_the_paired_comparison():
    entry = {
        "execution_accuracy": 0.6,
        "exact_match": 0.3,
        "count": 100,
        "execution_errors": 0,
        "unscored": 0,
        "intervals": {
            "execution_accuracy": {"low": 0.5, "high": 0.7, "rows": 100},
            "exact_match": {"low": 0.21, "high": 0.39, "rows": 100},
        },
    }
    metrics = {
        "fine_tuned": entry,
        "base": {**entry, "execution_accuracy": 0.2},
        "comparison": {
            "execution_accuracy": {
                "difference": 0.4,
                "low": 0.3,
                "high": 0.5,
                "rows": 100,
                "fine_tuned_only": 42,
                "base_only": 2,
                "both": 18,
                "neither": 38,
                "p_value": 1.2e-10,
                "test": "mcnemar_exact",
            },
            "exact_match": None,
        },
        "statistics": {"confidence": 0.95, "resamples": 2000, "seed": 0, "interval": "percentile bootstrap"},
    }
    html = render_report(metrics, [], [])
    assert "95%: 0.500–0.700" in html and "+0.400" in html and "+0.300 to +0.500" in html and "1.2e-10" in html  # noqa: RUF001 - the report writes ranges with an en dash
    assert "<td>42</td><td>2</td>" in html and "not available (no row to compare)" in html
    assert html.count("<path") == 4  # an error bar on each of the four bars
    assert "No paired comparison: the base model was not evaluated" in render_report({"fine_tuned": entry}, [], [])


def test_a_report_that_cannot_be_drawn_becomes_a_plain_page(tmp_path, monkeypatch):
    import report

    def broken_report(*args):
        raise KeyError("chart")

    monkeypatch.setattr(report, "render_report", broken_report)
    config = EvalConfig(model_dir=tmp_path, test_file=tmp_path / "t.jsonl", output_dir=tmp_path / "eval")
    evaluate.write_outputs(config, {"fine_tuned": {"count": 1, "note": "<b>"}}, [])
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "the report could not be drawn: KeyError: &#x27;chart&#x27;" in html and "&lt;b&gt;" in html
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["fine_tuned"]["count"] == 1
