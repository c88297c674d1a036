"""The run summary local mode prints at the end, line for line, from sparse to complete runs."""

import json
from pathlib import Path

import pytest

from local_mode.progress import format_summary

CASES = json.loads(Path(__file__).with_name("format_summary_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_summary_lines(case):
    assert format_summary(case["summary"]) == case["lines"]
