"""The run summary the CLI prints, styles included, from a running execution to a complete failed run."""

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from llm_finetune_cli.summary import render_summary

CASES = json.loads(Path(__file__).with_name("render_summary_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_rendered_summary(case):
    stream = io.StringIO()
    render_summary(Console(file=stream, force_terminal=True, color_system="standard", width=160), case["summary"])
    assert stream.getvalue() == case["output"]
