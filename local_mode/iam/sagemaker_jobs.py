"""What SageMaker does as a job's execution role, and when: the checks local jobs make on its behalf.

At start: pull the image, encrypt the volume with the job's key (a grant for the instance), attach
to the VPC, open the job's log stream and metrics, and download every input channel. During a
training job: sync checkpoints both ways. At the end: upload the outputs, encrypted with the job's
output key. A denial fails the job with the step it was on, as SageMaker reports a ClientError.
"""

from __future__ import annotations

from typing import Any

from local_mode.iam import service_checks
from local_mode.iam.enforcer import AccessDenied
from local_mode.iam.policy import Principal
from local_mode.iam.requests import Authorization
from local_mode.s3_transfer import split_s3_uri


class JobAccessDenied(RuntimeError):
    """SageMaker could not do a step of the job as its execution role; the message is the FailureReason."""


class JobPermissions:
    def __init__(self, iam: Any, request: dict, kind: str):
        self.iam = iam
        self.request = request
        self.kind = kind  # "training" or "processing"
        self.name = request.get("TrainingJobName") or request.get("ProcessingJobName") or "job"
        self.principal: Principal = iam.sagemaker(request["RoleArn"], "SageMaker")

    # ---- the request's settings ---------------------------------------------------------------
    @property
    def image(self) -> str:
        if self.kind == "training":
            return (self.request.get("AlgorithmSpecification") or {}).get("TrainingImage", "")
        return (self.request.get("AppSpecification") or {}).get("ImageUri", "")

    @property
    def volume_key(self) -> str | None:
        if self.kind == "training":
            return (self.request.get("ResourceConfig") or {}).get("VolumeKmsKeyId")
        return ((self.request.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("VolumeKmsKeyId")

    @property
    def output_key(self) -> str | None:
        if self.kind == "training":
            return (self.request.get("OutputDataConfig") or {}).get("KmsKeyId")
        return (self.request.get("ProcessingOutputConfig") or {}).get("KmsKeyId")

    @property
    def in_vpc(self) -> bool:
        if self.kind == "training":
            return bool(self.request.get("VpcConfig"))
        return bool((self.request.get("NetworkConfig") or {}).get("VpcConfig"))

    # ---- the moments SageMaker acts -------------------------------------------------------------
    def at_start(self, inputs: dict[str, list[str]]) -> None:
        """Everything before the container starts; `inputs` maps each input URI to the keys under it."""
        view = self.iam.view
        steps = [("pull the image", service_checks.image_pull(view, self.image))]
        if self.volume_key:
            steps.append(
                (
                    "encrypt the ML storage volume",
                    [
                        Authorization(
                            "kms:CreateGrant",
                            view.key_arn(self.volume_key),
                            {
                                "kms:GrantIsForAWSResource": True,
                                "kms:ViaService": f"sagemaker.{view.region}.amazonaws.com",
                                "kms:CallerAccount": view.account,
                            },
                            "volume encryption",
                        )
                    ],
                )
            )
        if self.in_vpc:
            steps.append(("attach to the VPC", service_checks.vpc_interfaces()))
        logs_kind = "TrainingJobs" if self.kind == "training" else "ProcessingJobs"
        steps.append(
            ("write the job's logs and metrics", service_checks.job_logs_and_metrics(view, logs_kind, self.name))
        )
        for uri, keys in inputs.items():
            steps.append((f"download input data from {uri}", service_checks.read_prefix(view, uri, keys)))
        self._authorize(steps)

    def restore_checkpoints(self, uri: str, keys: list[str]) -> None:
        self._authorize([(f"download checkpoints from {uri}", service_checks.read_prefix(self.iam.view, uri, keys))])

    def upload(self, uri: str, keys: list[str], what: str) -> None:
        """Writing `keys` under `uri` (checkpoints with the bucket's key; outputs with the job's output key)."""
        bucket, _ = split_s3_uri(uri)
        key = self.output_key if what == "outputs" else None
        checks = service_checks.write_objects(self.iam.view, bucket, keys, key)
        if key:
            checks.append(Authorization("kms:Encrypt", self.iam.view.key_arn(key), {}, "the job's output key"))
        self._authorize([(f"upload {what} to {uri}", checks)])

    def _authorize(self, steps: list[tuple[str, list[Authorization]]]) -> None:
        for step, checks in steps:
            try:
                self.iam.authorize(self.principal, checks, f"sagemaker {self.kind} job {self.name}: {step}")
            except AccessDenied as denied:
                raise JobAccessDenied(f"ClientError: Failed to {step}: {denied.code}: {denied}") from None
