"""Typed settings for the stack, read from CDK context (cdk.json or `-c key=value`).

Every setting has a default here, so a platform team can build `Settings()` in code without any
context; the app reads overrides from context, where values given on the command line arrive as
strings and are converted and checked here, with errors that name the key, the value and what is
allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

CONTEXT_PREFIX = "fine-tune:"

_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SettingsError(ValueError):
    """A context value that the stack cannot use."""


@dataclass(frozen=True)
class Settings:
    """What a deployment of the pipeline can change without touching code."""

    # Short prefix of the names the stack chooses itself (model package group, log groups).
    resource_prefix: str = "llm-ft"
    # Hugging Face PyTorch training image: transformers version, PyTorch version, Python version.
    training_image_version: str = "5.3.0"
    training_pytorch_version: str = "2.9.0"
    training_py_version: str = "py312"
    # Hugging Face LLM inference image (Text Generation Inference) version.
    inference_image_version: str = "3.3.6"
    # Hugging Face vLLM inference image version (deployment.engine "vllm").
    vllm_image_version: str = "0.29.0"
    prepare_instance_type: str = "ml.m5.xlarge"
    train_instance_type: str = "ml.g5.2xlarge"
    evaluate_instance_type: str = "ml.g5.2xlarge"
    endpoint_instance_type: str = "ml.g5.2xlarge"
    poll_interval_seconds: int = 60
    state_machine_timeout_hours: int = 72
    task_timeout_seconds: int = 300
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    # Buckets besides the stack's own that hold data sets or base models the jobs may read.
    input_bucket_names: tuple[str, ...] = ()
    hf_token_secret_arn: str = ""
    notification_email: str = ""
    base_model_id: str = "Qwen/Qwen2.5-Coder-7B-Instruct"
    dataset_id: str = "b-mc2/sql-create-context"
    dataset_format: str = "sql-create-context"
    min_execution_accuracy: float = 0.6
    min_improvement_over_base: float = 0.05
    # Also require the gains over the base (and production) model to be significant at this level.
    require_significance: bool = False
    significance_level: float = 0.05
    # Version of the public Powertools for AWS Lambda layer (AWSLambdaPowertoolsPythonV3-python313-x86_64).
    powertools_layer_version: int = 36
    log_retention_days: int = 365

    def __post_init__(self) -> None:
        _check(
            _PREFIX.match(self.resource_prefix),
            "resource_prefix",
            self.resource_prefix,
            "1-20 characters of [a-z0-9-], starting with a letter",
        )
        for name in (
            "prepare_instance_type",
            "train_instance_type",
            "evaluate_instance_type",
            "endpoint_instance_type",
        ):
            value = getattr(self, name)
            _check(_INSTANCE_TYPE.match(value), name, value, "a SageMaker instance type like ml.g5.2xlarge")
        _check(1 <= self.poll_interval_seconds <= 3600, "poll_interval_seconds", self.poll_interval_seconds, "1..3600")
        _check(
            1 <= self.state_machine_timeout_hours <= 24 * 365,
            "state_machine_timeout_hours",
            self.state_machine_timeout_hours,
            "1..8760",
        )
        _check(
            10 <= self.task_timeout_seconds <= 900,
            "task_timeout_seconds",
            self.task_timeout_seconds,
            "10..900 (the Lambda limit)",
        )
        for subnet in self.subnet_ids:
            _check(_SUBNET.match(subnet), "subnet_ids", subnet, "subnet ids like subnet-0123abcd")
        for bucket in self.input_bucket_names:
            _check(
                _BUCKET.match(bucket),
                "input_bucket_names",
                bucket,
                "S3 bucket names (3-63 characters of a-z, 0-9, '.' and '-')",
            )
        for group in self.security_group_ids:
            _check(_SECURITY_GROUP.match(group), "security_group_ids", group, "security group ids like sg-0123abcd")
        _check(
            bool(self.subnet_ids) == bool(self.security_group_ids),
            "security_group_ids",
            list(self.security_group_ids),
            "subnet ids and security group ids given together",
        )
        _check(
            not self.hf_token_secret_arn or _SECRET_ARN.match(self.hf_token_secret_arn),
            "hf_token_secret_arn",
            self.hf_token_secret_arn,
            "empty or a Secrets Manager secret ARN",
        )
        _check(
            not self.notification_email or _EMAIL.match(self.notification_email),
            "notification_email",
            self.notification_email,
            "empty or an e-mail address",
        )
        for name in ("min_execution_accuracy", "min_improvement_over_base"):
            value = getattr(self, name)
            _check(-1.0 <= value <= 1.0, name, value, "a fraction between -1 and 1")
        _check(
            0 < self.significance_level <= 0.5,
            "significance_level",
            self.significance_level,
            "a p-value threshold greater than 0 and at most 0.5",
        )
        _check(
            self.powertools_layer_version >= 1,
            "powertools_layer_version",
            self.powertools_layer_version,
            "a positive layer version number",
        )
        _check(
            self.log_retention_days in RETENTION_DAYS,
            "log_retention_days",
            self.log_retention_days,
            f"one of {sorted(RETENTION_DAYS)}",
        )

    @property
    def vpc_enabled(self) -> bool:
        return bool(self.subnet_ids)

    @classmethod
    def from_context(cls, get: Any) -> Settings:
        """Build settings from a context getter (e.g. `app.node.try_get_context`).

        Keys are `fine-tune:<field>`; a missing key keeps the default.
        """
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = get(CONTEXT_PREFIX + item.name)
            if raw is None:
                continue
            values[item.name] = _convert(item.name, raw, cls.__dataclass_fields__[item.name].default)
        return cls(**values)

    def default_execution_input(self) -> dict[str, Any]:
        """The stack's default execution input (DEFAULTS_JSON): what an empty input resolves to."""
        defaults: dict[str, Any] = {}
        for path, name in DEFAULT_INPUT_FIELDS.items():
            *parents, key = path.split(".")
            node = defaults
            for parent in parents:
                node = node.setdefault(parent, {})
            node[key] = getattr(self, name)
        return defaults

    def defaults_json(self) -> str:
        return json.dumps(self.default_execution_input(), sort_keys=True, separators=(",", ":"))


# Where each setting lands in the default execution input: input field -> Settings field.
DEFAULT_INPUT_FIELDS = {
    "base_model.hf_model_id": "base_model_id",
    "dataset.hf_dataset_id": "dataset_id",
    "dataset.format": "dataset_format",
    "preparation.instance_type": "prepare_instance_type",
    "training.instance_type": "train_instance_type",
    "evaluation.instance_type": "evaluate_instance_type",
    "evaluation.gate.min_execution_accuracy": "min_execution_accuracy",
    "evaluation.gate.min_improvement_over_base": "min_improvement_over_base",
    "evaluation.gate.require_significance": "require_significance",
    "evaluation.gate.significance_level": "significance_level",
    "deployment.instance_type": "endpoint_instance_type",
    "orchestration.poll_interval_seconds": "poll_interval_seconds",
}

# CloudWatch Logs retention periods, by number of days -> name of the CDK RetentionDays member.
RETENTION_DAYS = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def _check(ok: Any, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SettingsError(f"context {CONTEXT_PREFIX}{name}: {value!r} is not allowed; expected {allowed}")


def _to_tuple(raw: Any) -> tuple:
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, (list, tuple)) and all(isinstance(part, str) for part in raw):
        return tuple(raw)
    raise TypeError


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise TypeError


def _to_int(raw: Any) -> int:
    """A whole float is an integer; a boolean is not, though Python says it is."""
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise TypeError
    return int(raw)


def _to_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise TypeError
    return float(raw)


def _to_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError
    return raw.strip()


# Checked in this order: bool before int, since a bool default is an int too.
_CONVERTERS: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (tuple, _to_tuple),
    (bool, _to_bool),
    (int, _to_int),
    (float, _to_float),
    (str, _to_str),
)
_EXPECTED = {
    tuple: "a list of strings or a comma-separated string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _convert(name: str, raw: Any, default: Any) -> Any:
    """Convert a context value to the type of the field's default (CLI context values are strings)."""
    converter = next((convert for kind, convert in _CONVERTERS if isinstance(default, kind)), None)
    if converter is not None:
        try:
            return converter(raw)
        except (TypeError, ValueError):
            pass
    expected = _EXPECTED[type(default)]
    raise SettingsError(f"context {CONTEXT_PREFIX}{name}: {raw!r} is not allowed; expected {expected}")


@dataclass(frozen=True)
class RegionImages:
    """The container images of one region, and the ECR accounts that serve them."""

    training_image_uri: str
    inference_image_uri: str
    vllm_image_uri: str

    @property
    def training_account(self) -> str:
        return self.training_image_uri.split(".", 1)[0]

    @property
    def inference_account(self) -> str:
        return self.inference_image_uri.split(".", 1)[0]

    @property
    def vllm_account(self) -> str:
        return self.vllm_image_uri.split(".", 1)[0]


def image_catalogue(settings: Settings) -> dict[str, RegionImages]:
    """Image URIs for every region the sagemaker package's catalogue lists for all three images.

    Resolved at synth time from the catalogue shipped inside the `sagemaker` package (no network,
    no account), so one template deploys to any of these regions.
    """
    from sagemaker.core import image_uris  # heavy import: only when a stack is built

    training_versions = image_uris.config_for_framework("huggingface")["training"]["versions"]
    inference_versions = image_uris.config_for_framework("huggingface-llm")["inference"]["versions"]
    vllm_versions = image_uris.config_for_framework("huggingface-vllm")["inference"]["versions"]
    if settings.training_image_version not in training_versions:
        raise SettingsError(
            f"context {CONTEXT_PREFIX}training_image_version: {settings.training_image_version!r} is not "
            f"in the sagemaker image catalogue; expected one of {sorted(training_versions)}"
        )
    pytorch_key = f"pytorch{settings.training_pytorch_version}"
    training = training_versions[settings.training_image_version]
    if pytorch_key not in training:
        raise SettingsError(
            f"context {CONTEXT_PREFIX}training_pytorch_version: {settings.training_pytorch_version!r} is "
            f"not available with transformers {settings.training_image_version}; expected one of "
            f"{sorted(k.removeprefix('pytorch') for k in training if k.startswith('pytorch'))}"
        )
    if settings.inference_image_version not in inference_versions:
        raise SettingsError(
            f"context {CONTEXT_PREFIX}inference_image_version: {settings.inference_image_version!r} is not "
            f"in the sagemaker image catalogue; expected one of {sorted(inference_versions)}"
        )
    if settings.vllm_image_version not in vllm_versions:
        raise SettingsError(
            f"context {CONTEXT_PREFIX}vllm_image_version: {settings.vllm_image_version!r} is not in the "
            f"sagemaker image catalogue; expected one of {sorted(vllm_versions)}"
        )
    regions = sorted(
        set(training[pytorch_key]["registries"])
        & set(inference_versions[settings.inference_image_version]["registries"])
        & set(vllm_versions[settings.vllm_image_version]["registries"])
    )
    catalogue = {}
    for region in regions:
        catalogue[region] = RegionImages(
            training_image_uri=image_uris.retrieve(
                "huggingface",
                region,
                version=settings.training_image_version,
                base_framework_version=pytorch_key,
                py_version=settings.training_py_version,
                instance_type=settings.train_instance_type,
                image_scope="training",
            ),
            inference_image_uri=image_uris.retrieve(
                "huggingface-llm",
                region,
                version=settings.inference_image_version,
                instance_type=settings.endpoint_instance_type,
                image_scope="inference",
            ),
            vllm_image_uri=image_uris.retrieve(
                "huggingface-vllm",
                region,
                version=settings.vllm_image_version,
                instance_type=settings.endpoint_instance_type,
                image_scope="inference",
            ),
        )
    return catalogue


def repository_name(image_uri: str) -> str:
    """`<account>.dkr.ecr.<region>.<domain>/<repository>:<tag>` -> `<repository>`."""
    return image_uri.split("/", 1)[1].split(":", 1)[0]
