"""The model package group: this run's package, the production model's metrics."""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

from common import aws
from common.contract import SERVING_PACKAGE_TAG
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
    kwargs = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": RECENT_PACKAGES,
    }
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


def serving_package(endpoint_name: str, stack_tag: str) -> dict | None:
    """The model package the endpoint serves now: the one its last checked deployment recorded on it.

    None when the endpoint does not exist, is not this stack's, or never passed its check.
    """
    from common.endpoints import describe_endpoint, tags_of
    from common.job_requests import owned_by

    endpoint = describe_endpoint(endpoint_name)
    if endpoint is None:
        return None
    tags = tags_of(endpoint["EndpointArn"])
    if not owned_by(tags, None, stack_tag) or not tags.get(SERVING_PACKAGE_TAG):
        return None
    try:
        return aws.client("sagemaker").describe_model_package(ModelPackageName=tags[SERVING_PACKAGE_TAG])
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def production_accuracy(endpoint_name: str, stack_tag: str, exclude_run_id: str) -> float | None:
    """Execution accuracy of the package serving the endpoint now, if it records one."""
    package = serving_package(endpoint_name, stack_tag)
    metadata = (package or {}).get("CustomerMetadataProperties") or {}
    if not package or metadata.get(RUN_ID_KEY) == exclude_run_id or ACCURACY_KEY not in metadata:
        return None
    try:
        return float(metadata[ACCURACY_KEY])
    except ValueError:
        return None


def record_serving(endpoint_arn: str, package_arn: str) -> None:
    """Mark the endpoint as serving `package_arn` (the gate's "production" from now on)."""
    aws.client("sagemaker").add_tags(
        ResourceArn=endpoint_arn, Tags=[{"Key": SERVING_PACKAGE_TAG, "Value": package_arn}]
    )


def reject(package_arn: str, reason: str) -> None:
    """A package whose deployment failed or rolled back is not left Approved."""
    aws.client("sagemaker").update_model_package(
        ModelPackageArn=package_arn, ModelApprovalStatus="Rejected", ApprovalDescription=reason[:1024]
    )


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
            ModelPackageGroupName=group, ModelPackageGroupDescription="Fine-tuned models, one package per workflow run"
        )
