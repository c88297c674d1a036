"""The model package group: this run's package, the production model's metrics."""
from __future__ import annotations

import re

from botocore.exceptions import ClientError

from common import aws
from common.errors import is_not_found

RUN_ID_KEY = "run_id"
ACCURACY_KEY = "execution_accuracy"
# CustomerMetadataProperties values: at most 256 of letters, digits, spaces and _.:/=+-@
_METADATA_FORBIDDEN = re.compile(r"[^\w .:/=+@-]", re.UNICODE)
RECENT_PACKAGES = 50


def metadata_value(text: str, limit: int = 256) -> str:
    """A string SageMaker accepts as a CustomerMetadataProperties value."""
    cleaned = re.sub(r"\s+", " ", _METADATA_FORBIDDEN.sub(" ", text)).strip() or "-"
    return cleaned[:limit].rstrip() or "-"


def _recent_packages(group: str, approval: str | None = None):
    kwargs = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending",
              "MaxResults": RECENT_PACKAGES}
    if approval:
        kwargs["ModelApprovalStatus"] = approval
    sagemaker = aws.client("sagemaker")
    try:
        summaries = sagemaker.list_model_packages(**kwargs)["ModelPackageSummaryList"]
    except ClientError as error:
        if is_not_found(error):
            return
        raise
    for summary in summaries:
        yield sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])


def find_run_package(group: str, run_id: str) -> dict | None:
    """This run's package among the group's recent ones (so a re-run never registers twice)."""
    for package in _recent_packages(group):
        if (package.get("CustomerMetadataProperties") or {}).get(RUN_ID_KEY) == run_id:
            return package
    return None


def production_accuracy(group: str, exclude_run_id: str) -> float | None:
    """Execution accuracy of the latest Approved package that carries one, if any."""
    for package in _recent_packages(group, approval="Approved"):
        metadata = package.get("CustomerMetadataProperties") or {}
        if metadata.get(RUN_ID_KEY) == exclude_run_id or ACCURACY_KEY not in metadata:
            continue
        try:
            return float(metadata[ACCURACY_KEY])
        except ValueError:
            continue
    return None


def ensure_group(group: str, create: bool) -> None:
    sagemaker = aws.client("sagemaker")
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as error:
        if not is_not_found(error):
            raise
        if not create:
            raise ValueError(f"model package group {group} does not exist; the stack creates it") from error
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription="Fine-tuned models, one package per workflow run")
