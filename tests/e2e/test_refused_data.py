"""A data set prepare_data.py refuses: the run fails with DataSetRefused, and report.json lists every bad row in S3.

A SageMaker processing job that fails uploads none of its outputs, so the prepare job completes with
the report as its one output and DescribePrepare fails the run from the report's status.
"""

import copy

from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import TINY_INPUT, local_aws


def test_a_refused_data_set_fails_the_run_and_its_report_reaches_s3(stack_template, tiny_model, tmp_path):
    rows = tmp_path / "mostly-broken.jsonl"
    good = (
        '{"question": "How many heads?", "context": "CREATE TABLE head (age INTEGER)", '
        '"answer": "SELECT COUNT(*) FROM head"}\n'
    )
    rows.write_bytes(good.encode() * 4 + b'{"question": "\xff\xfe broken"}\n' * 3 + b"not json\n" * 3)
    run_input = copy.deepcopy(TINY_INPUT)
    run_input["dataset"] = {**run_input["dataset"], "test_size": 1}
    with local_aws(tmp_path / "account", stack_template) as aws:
        summary = run_execution(
            aws, RunRequest(run_input, "refused-data", model_dir=tiny_model, dataset=rows, timeout_seconds=600)
        )
        report = aws.read_json(f"s3://{aws.artifacts_bucket}/runs/{summary['run_id']}/data/report.json")
    assert summary["status"] == "FAILED" and summary["error"] == "DataSetRefused", summary
    assert "6 bad of 10 rows" in summary["cause"] and "/data/report.json" in summary["cause"]
    assert [job["kind"] for job in summary["jobs"]] == ["processing"]  # no training was paid for
    assert report["status"] == "refused" and report["counts"]["rejected"] == 6
    assert sorted(row["line"] for row in report["rejected"]) == [5, 6, 7, 8, 9, 10]
    assert summary["cleanup"] is not None
