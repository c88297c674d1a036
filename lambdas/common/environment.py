"""The Lambda environment the stack sets (see docs/workflow-contract.md), as one typed value."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from common.errors import ConfigurationError

_REQUIRED = (
    "ARTIFACTS_BUCKET",
    "KMS_KEY_ARN",
    "SAGEMAKER_ROLE_ARN",
    "TRAINING_IMAGE_URI",
    "INFERENCE_IMAGE_URI",
    "CODE_S3_URI",
    "MODEL_PACKAGE_GROUP_NAME",
)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class LambdaEnvironment:
    artifacts_bucket: str
    data_bucket: str
    kms_key_arn: str
    sagemaker_role_arn: str
    training_image_uri: str
    inference_image_uri: str  # the TGI image
    code_s3_uri: str
    model_package_group_name: str
    topic_arn: str
    defaults: dict
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    hf_token_secret_arn: str
    create_model_package_group: bool
    vllm_image_uri: str = ""  # the vLLM image (deployment.engine "vllm")
    stack_tag: str = ""  # value of the fine-tune:stack tag: the stack that owns what runs create
    input_buckets: tuple[str, ...] = ()  # other buckets the SageMaker role may read inputs from
    state_machine_timeout_seconds: int = 0  # the state machine's own timeout (0: unknown)

    @property
    def vpc_config(self) -> dict | None:
        """SageMaker's VpcConfig, or None when jobs and endpoints run outside a VPC."""
        if not self.subnet_ids:
            return None
        return {"Subnets": list(self.subnet_ids), "SecurityGroupIds": list(self.security_group_ids)}

    @classmethod
    def from_os(cls, required: tuple[str, ...] = _REQUIRED) -> LambdaEnvironment:
        env = os.environ
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigurationError(f"the Lambda environment lacks {', '.join(missing)}")
        try:
            defaults = json.loads(env.get("DEFAULTS_JSON") or "{}")
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"DEFAULTS_JSON is not JSON: {error}") from error
        if not isinstance(defaults, dict):
            raise ConfigurationError(f"DEFAULTS_JSON must be a JSON object, got {type(defaults).__name__}")
        subnets, groups = _split(env.get("SUBNET_IDS", "")), _split(env.get("SECURITY_GROUP_IDS", ""))
        if bool(subnets) != bool(groups):
            raise ConfigurationError(
                "SUBNET_IDS and SECURITY_GROUP_IDS must be set together "
                f"(got {len(subnets)} subnet(s), {len(groups)} group(s))"
            )
        return cls(
            artifacts_bucket=env.get("ARTIFACTS_BUCKET", ""),
            data_bucket=env.get("DATA_BUCKET", ""),
            kms_key_arn=env.get("KMS_KEY_ARN", ""),
            sagemaker_role_arn=env.get("SAGEMAKER_ROLE_ARN", ""),
            training_image_uri=env.get("TRAINING_IMAGE_URI", ""),
            inference_image_uri=env.get("INFERENCE_IMAGE_URI", ""),
            code_s3_uri=env.get("CODE_S3_URI", ""),
            model_package_group_name=env.get("MODEL_PACKAGE_GROUP_NAME", ""),
            topic_arn=env.get("TOPIC_ARN", ""),
            defaults=defaults,
            subnet_ids=subnets,
            security_group_ids=groups,
            hf_token_secret_arn=env.get("HF_TOKEN_SECRET_ARN", ""),
            create_model_package_group=env.get("CREATE_MODEL_PACKAGE_GROUP", "").lower() == "true",
            vllm_image_uri=env.get("VLLM_IMAGE_URI", ""),
            stack_tag=env.get("STACK_TAG", ""),
            input_buckets=_split(env.get("INPUT_BUCKETS", "")),
            state_machine_timeout_seconds=int(env.get("STATE_MACHINE_TIMEOUT_SECONDS") or 0),
        )

    def serving_image(self, deployment: dict) -> str:
        from common.serving import image_for

        return image_for(deployment, self.inference_image_uri, self.vllm_image_uri)
