"""The fill-discrimination benchmark runs on the project's own examples and renders into the page."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import fill_discrimination, report

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sql-example.jsonl"


def test_the_benchmark_scores_mutants_and_equivalents_and_the_page_shows_them(tmp_path):
    assert fill_discrimination.main(["--data", str(EXAMPLE), "--rows", "6", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "fill_discrimination.json").read_text())
    assert result["settings"]["rows"] == 6 and result["rows_scored"] == 6
    one, three = result["one_fill"], result["three_fills"]
    assert three["ran"] == one["ran"] > 0
    assert three["told_apart"] >= one["told_apart"] * 0.8
    assert result["equivalents"]["total"] > 0 and result["equivalents"]["rejected"] == 0
    row = report.fill_row(result)
    assert row["ratio"] == report._percent(three["discrimination_rate"])
    assert "no equivalent rewrite rejected" in row["goal"]
    details = report.fill_details(result)
    assert details.startswith("## Fill discrimination of execution accuracy")
    assert "| **all** |" in details and "python -m benchmarks.fill_discrimination" in details


def test_mutants_differ_from_the_gold_and_equivalents_keep_its_meaning():
    from benchmarks.sql_mutations import equivalents, mutants

    gold = "SELECT name FROM head WHERE age > 56 AND born_state = 'Ohio' ORDER BY name"
    kinds = {kind for kind, _ in mutants(gold, ["name", "age", "born_state"])}
    assert kinds == {
        "change a literal",
        "flip a comparison",
        "drop a condition",
        "add DISTINCT",
        "swap ORDER direction",
        "select another column",
    }
    assert all(text != gold for _, text in mutants(gold))
    rewrites = dict(equivalents(gold))
    assert rewrites["reorder AND terms"] == "SELECT name FROM head WHERE born_state = 'Ohio' AND age > 56 ORDER BY name"
    assert rewrites["alias the table"].startswith("SELECT t_alias.name FROM head AS t_alias")
    assert mutants("not sql at all (") == [] and equivalents("") == []
