"""evaluate.py and report.py: batched generation, scoring, metrics.json, predictions, the report."""
import json
from pathlib import Path

import pytest

import evaluate
from chat_format import render_prompt
from evaluate import (EvalConfig, EvaluationError, EvalRow, clean_prediction, generate, judge, load_model,
                      load_test_rows, main, summarize)
from report import render_report

SCHEMA = "CREATE TABLE head (name VARCHAR, age INTEGER)"
MODEL_KEYS = {"execution_accuracy", "exact_match", "count", "execution_errors", "seconds", "prompts_per_second"}


def sql_row(question: str, answer: str, schema: str = SCHEMA) -> dict:
    return {"messages": [{"role": "system", "content": f"Answer with SQL.\n\n{schema}"},
                         {"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture()
def test_file(tmp_path) -> Path:
    rows = [sql_row(f"Names of heads older than {n}?", f"SELECT name FROM head WHERE age > {n}") for n in range(7)]
    rows.append(sql_row("Who is <b>oldest</b>?", "SELECT name FROM head ORDER BY age DESC LIMIT 1"))
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("raw, cleaned", [
    ("  SELECT 1  ", "SELECT 1"),
    ("SELECT a FROM t\n\nThis query selects a.", "SELECT a FROM t"),
    ("SELECT a\nFROM t\nWHERE b = 1", "SELECT a\nFROM t\nWHERE b = 1"),
    ("[SQL] SELECT a FROM t [/SQL] and more", "SELECT a FROM t"),
    ("Here you go:\n```sql\nSELECT a FROM t;\n```\nDone.", "SELECT a FROM t;"),
    ("```\nSELECT a FROM t", "SELECT a FROM t"),
    ("To list them, run:\n\nSELECT a FROM t;\n\nThis returns a.", "SELECT a FROM t;"),
    ("The answer is 42.", "The answer is 42."),
    ("", ""),
])
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
    assert summary == {"execution_accuracy": 0.3333, "exact_match": 0.3333, "count": 3, "execution_errors": 1,
                       "seconds": 2.0, "prompts_per_second": 1.5}
    assert summarize([judge(EvalRow("p", [], "x", ""), "x")], 1.0)["execution_accuracy"] is None


def test_bad_test_rows_name_their_line(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(sql_row("q", "SELECT 1")) + "\n{broken\n")
    with pytest.raises(EvaluationError, match="line 2: broken JSON"):
        load_test_rows(path)
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(EvaluationError, match="line 1: expected .* ending with the assistant's answer"):
        load_test_rows(path)


def test_test_rows_keep_schema_id_and_max_samples(test_file):
    rows = load_test_rows(test_file, max_samples=3)
    assert [row.id for row in rows] == ["1", "2", "3"]
    assert rows[0].schema == SCHEMA and rows[0].gold == "SELECT name FROM head WHERE age > 0"
    assert [m["role"] for m in rows[0].messages] == ["system", "user"]


def test_batched_generation_equals_one_at_a_time(tiny_model_dir, test_file):
    model, tokenizer = load_model(tiny_model_dir)
    prompts = [render_prompt(tokenizer, row.messages) for row in load_test_rows(test_file)]
    prompts.append(prompts[0] + " and a much longer question so that the batch needs padding " * 3)
    batched = generate(model, tokenizer, prompts, batch_size=3, max_new_tokens=12)
    single = [generate(model, tokenizer, [prompt], batch_size=1, max_new_tokens=12)[0] for prompt in prompts]
    assert batched == single
    assert len(set(batched)) > 1  # different prompts, different answers: results are not shuffled


def test_run_on_the_tiny_model_writes_metrics_predictions_and_report(tiny_model_dir, test_file, tmp_path):
    training_metrics = tmp_path / "training_metrics.json"
    training_metrics.write_text(json.dumps({"log_history": [
        {"step": 1, "loss": 3.5}, {"step": 2, "loss": 2.75}, {"step": 3, "loss": 2.0, "eval_loss": 2.2},
        {"step": 3, "train_loss": 2.7, "train_runtime": 4.0}]}))
    output = tmp_path / "eval"
    metrics = evaluate.run(EvalConfig(model_dir=tiny_model_dir, base_model=str(tiny_model_dir), test_file=test_file,
                                      output_dir=output, training_metrics=training_metrics, batch_size=3,
                                      max_new_tokens=8))
    assert json.loads((output / "metrics.json").read_text()) == metrics
    assert set(metrics) == {"fine_tuned", "base", "settings"}
    assert metrics["settings"] == {"max_new_tokens": 8, "batch_size": 3, "greedy": True}
    for name in ("fine_tuned", "base"):
        assert set(metrics[name]) == MODEL_KEYS
        assert metrics[name]["count"] == 8
        assert 0 <= metrics[name]["execution_accuracy"] <= 1 and metrics[name]["seconds"] > 0
    # The same weights as base and fine-tuned model answer the same.
    assert metrics["fine_tuned"]["execution_accuracy"] == metrics["base"]["execution_accuracy"]

    predictions = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 8 and [row["id"] for row in predictions] == [str(n) for n in range(1, 9)]
    model, tokenizer = load_model(tiny_model_dir)
    first = predictions[0]
    assert first["prompt"] == render_prompt(tokenizer, first["messages"])
    assert first["gold"] == "SELECT name FROM head WHERE age > 0"
    for name in ("fine_tuned", "base"):
        assert set(first[name]) == {"prediction", "output", "exact_match", "execution_match", "error"}
        assert first[name]["prediction"] == clean_prediction(first[name]["output"])
    # Written in input order, whatever order the batches ran in.
    expected = generate(model, tokenizer, [row["prompt"] for row in predictions], batch_size=1, max_new_tokens=8)
    assert [row["fine_tuned"]["output"] for row in predictions] == expected

    html = (output / "report.html").read_text()
    assert html.count("<svg") == 2 and "<polyline" in html
    assert "Who is &lt;b&gt;oldest&lt;/b&gt;?" in html and "<b>oldest</b>" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_cli_without_base_model(tiny_model_dir, test_file, tmp_path):
    output = tmp_path / "eval"
    assert main(["--model-dir", str(tiny_model_dir), "--skip-base", "--test-file", str(test_file),
                 "--output-dir", str(output), "--max-samples", "2", "--max-new-tokens", "4"]) == 0
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
    metrics = {"fine_tuned": {"execution_accuracy": 0.5, "exact_match": 0.25, "count": 2, "execution_errors": 1,
                              "seconds": 1.0, "prompts_per_second": 2.0},
               "base": None, "settings": {"max_new_tokens": 8, "batch_size": 2, "greedy": True}}
    predictions = [{"id": "<i>1</i>", "messages": [{"role": "user", "content": "<script>alert(1)</script>"}],
                    "gold": "SELECT '<x>'", "fine_tuned": {"prediction": "<u>pred</u>", "exact_match": False,
                                                           "execution_match": False, "error": "<err>"}, "base": None}]
    html = render_report(metrics, predictions, [])
    for raw in ("<script>", "<i>1</i>", "'<x>'", "<u>pred</u>", "<err>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "✗" in html and "<th>Base</th>" not in html
