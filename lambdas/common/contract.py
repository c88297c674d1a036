"""The shared constants of lambdas/common/contract.json, as the Lambdas use them.

The file is plain data so the stack, local mode and the CLI read the same declaration
(cdk_app/contract.py) without importing Lambda code.
"""

from __future__ import annotations

import json
from pathlib import Path

CONTRACT_PATH = Path(__file__).with_name("contract.json")
_CONTRACT = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))

RUN_ID_TAG: str = _CONTRACT["tags"]["run_id"]
STACK_TAG: str = _CONTRACT["tags"]["stack"]
SERVING_PACKAGE_TAG: str = _CONTRACT["tags"]["model_package"]
# Each job kind of a run, and the SageMaker API that runs it ("training" or "processing").
JOB_APIS: dict[str, str] = dict(_CONTRACT["jobs"])
JOB_KINDS: tuple[str, ...] = tuple(JOB_APIS)
NAME_SUFFIXES: dict[str, str] = dict(_CONTRACT["name_suffixes"])
RUNS_PREFIX: str = _CONTRACT["s3_layout"]["runs_prefix"]
RUN_LAYOUT: dict[str, str] = dict(_CONTRACT["s3_layout"]["run"])
MODEL_LAYOUT: dict[str, str] = dict(_CONTRACT["s3_layout"]["model"])
METRIC_PREFIX: str = _CONTRACT["metric_line"]["prefix"]
METRIC_FIELDS: tuple[str, ...] = tuple(_CONTRACT["metric_line"]["fields"])
IMAGE_SOFTWARE_FLAG: str = _CONTRACT["image_software_flag"]
