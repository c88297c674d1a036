"""The constants the stack shares with the Lambdas, the jobs, local mode and the CLI.

They are declared once, as plain data, in the Lambda code's `common/contract.json` (the Lambdas
read it with `common/contract.py`); the app reads the same file, so it never imports Lambda code.
"""

from __future__ import annotations

import json

from cdk_app.assets import lambda_code_dir

CONTRACT_PATH = lambda_code_dir() / "common" / "contract.json"
_CONTRACT = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))

RUN_ID_TAG: str = _CONTRACT["tags"]["run_id"]
STACK_TAG: str = _CONTRACT["tags"]["stack"]
# Each job kind of a run, and the SageMaker API that runs it ("training" or "processing").
JOB_APIS: dict[str, str] = dict(_CONTRACT["jobs"])
JOB_KINDS: tuple[str, ...] = tuple(JOB_APIS)
NAME_SUFFIXES: dict[str, str] = dict(_CONTRACT["name_suffixes"])
RUNS_PREFIX: str = _CONTRACT["s3_layout"]["runs_prefix"]
RUN_LAYOUT: dict[str, str] = dict(_CONTRACT["s3_layout"]["run"])
METRIC_PREFIX: str = _CONTRACT["metric_line"]["prefix"]
IMAGE_SOFTWARE_FLAG: str = _CONTRACT["image_software_flag"]


def run_prefix(run_id: str) -> str:
    """The key prefix of one run's artifacts in the artifacts bucket."""
    return f"{RUNS_PREFIX}{run_id}/"
