"""Describe…: the job's status for the poll loop; raises JobFailed with SageMaker's reason.

A prepare job that refused its data set completes (so its report.json is uploaded) and says so in
report.json; DescribePrepare then fails the run with DataSetRefused, naming the report.
"""

from __future__ import annotations

from common import jobs
from common.errors import DataSetRefused, translate_throttling
from common.observability import logger, tracer
from common.run import next_wait_seconds, run_of
from common.s3_paths import read_json


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    kind = event.get("kind")
    run = run_of(event)
    if kind not in jobs.KINDS:
        raise ValueError(f"payload kind {kind!r} is not a job kind; allowed: {', '.join(jobs.KINDS)}")
    known = (event["state"].get("jobs") or {}).get(kind) or {}
    name = known.get("name") or run["names"][kind]
    state = jobs.follow(kind, name)
    logger.info("job status", extra={"run_id": run["run_id"], "job": state.as_dict()})
    if kind == "prepare" and state.status == "Completed":
        check_data_report(run["paths"]["data_report"])
    return {
        **state.as_dict(),
        "adopted": bool(known.get("adopted")),
        "poll_seconds": next_wait_seconds(run, kind, state.started_at),
    }


def check_data_report(uri: str) -> None:
    """Raise DataSetRefused when prepare_data.py's report says it refused the set."""
    report = read_json(uri)
    if report.get("status") != "refused":
        return
    counts = report.get("counts") or {}
    first = ", ".join(f"line {row.get('line')}: {row.get('reason')}" for row in (report.get("rejected") or [])[:3])
    raise DataSetRefused(
        f"the data set was refused: {report.get('refusal') or 'see the report'} "
        f"({counts.get('rejected', '?')} bad of {counts.get('read', '?')} rows"
        + (f"; first: {first}" if first else "")
        + f"). Every bad row is listed in {uri}"
    )
