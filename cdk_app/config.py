"""Typed settings for the stack, read from CDK context (cdk.json or `-c key=value`).

Every setting has a default here, so a platform team can build `Settings()` in code without any
context; the app reads overrides from context, where values given on the command line arrive as
strings and are converted and checked here, with errors that name the key, the value and what is
allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

CONTEXT_PREFIX = "fine-tune:"

_INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
_PREFIX = r"^[a-z][a-z0-9-]{0,19}$"
_SECRET_ARN = r"^(?:arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+)?$"
_SUBNET = r"^subnet-[0-9a-f]{8,17}$"
_SECURITY_GROUP = r"^sg-[0-9a-f]{8,17}$"
_EMAIL = r"^(?:[^@\s]+@[^@\s]+\.[^@\s]+)?$"
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class SettingsError(ValueError):
    """A context value that the stack cannot use."""


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


def _to_tuple(raw: Any) -> tuple:
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, (list, tuple)) and all(isinstance(part, str) for part in raw):
        return tuple(raw)
    raise TypeError


def _to_bool(raw: Any) -> bool:
    """Only true or false: pydantic's own booleans would also take "yes", "on" or 1."""
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


def _converted(convert: Callable[[Any], Any], expected: str) -> BeforeValidator:
    """Convert a value from code or context (where the command line gives strings) before it is checked."""

    def validate(raw: Any) -> Any:
        try:
            return convert(raw)
        except (TypeError, ValueError):
            raise PydanticCustomError("settings_type", "{expected}", {"expected": expected}) from None

    return BeforeValidator(validate)


def _one_of(choices: dict[int, str]) -> AfterValidator:
    def validate(value: int) -> int:
        if value not in choices:
            raise ValueError(value)
        return value

    return AfterValidator(validate)


_NAMES = _converted(_to_tuple, "a list of strings or a comma-separated string")
Text = Annotated[str, _converted(_to_str, "a string")]
Integer = Annotated[int, _converted(_to_int, "an integer")]
Number = Annotated[float, _converted(_to_float, "a number")]
Flag = Annotated[bool, _converted(_to_bool, "true or false")]
SubnetIds = Annotated[tuple[Annotated[str, StringConstraints(pattern=_SUBNET)], ...], _NAMES]
SecurityGroupIds = Annotated[tuple[Annotated[str, StringConstraints(pattern=_SECURITY_GROUP)], ...], _NAMES]
BucketNames = Annotated[tuple[Annotated[str, StringConstraints(pattern=_BUCKET)], ...], _NAMES]
# The last validator runs first: convert, then check the converted number.
RetentionDays = Annotated[int, _one_of(RETENTION_DAYS), _converted(_to_int, "an integer")]


def _setting(default: Any, description: str, allowed: str | None = None, **constraints: Any) -> Any:
    """A field's default, meaning, and the checks whose failure names `allowed` as what is expected."""
    extra: dict[str, Any] | None = {"allowed": allowed} if allowed else None
    return Field(default, description=description, json_schema_extra=extra, **constraints)


_INSTANCE_ALLOWED = "a SageMaker instance type like ml.g5.2xlarge"
_FRACTION_ALLOWED = "a fraction between -1 and 1"


class Settings(BaseModel):
    """What a deployment of the pipeline can change without touching code.

    Build with `Settings(...)` or `Settings.from_context(...)`, which raise SettingsError; pydantic's
    `model_validate` would raise its own ValidationError instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    resource_prefix: Text = _setting(
        "llm-ft",
        "short prefix of the names the stack chooses itself (model package group, log groups)",
        "1-20 characters of [a-z0-9-], starting with a letter",
        pattern=_PREFIX,
    )
    training_image_version: Text = _setting("5.3.0", "transformers version of the Hugging Face PyTorch training image")
    training_pytorch_version: Text = _setting("2.9.0", "PyTorch version of the training image")
    training_py_version: Text = _setting("py312", "Python version of the training image")
    inference_image_version: Text = _setting("3.3.6", "Hugging Face LLM inference image (TGI) version")
    vllm_image_version: Text = _setting(
        "0.29.0", 'Hugging Face vLLM inference image version (deployment.engine "vllm")'
    )
    prepare_instance_type: Text = _setting(
        "ml.m5.xlarge", "default preparation instance", _INSTANCE_ALLOWED, pattern=_INSTANCE_TYPE
    )
    train_instance_type: Text = _setting(
        "ml.g5.2xlarge", "default training instance", _INSTANCE_ALLOWED, pattern=_INSTANCE_TYPE
    )
    evaluate_instance_type: Text = _setting(
        "ml.g5.2xlarge", "default evaluation instance", _INSTANCE_ALLOWED, pattern=_INSTANCE_TYPE
    )
    endpoint_instance_type: Text = _setting(
        "ml.g5.2xlarge", "default endpoint instance", _INSTANCE_ALLOWED, pattern=_INSTANCE_TYPE
    )
    poll_interval_seconds: Integer = _setting(
        60, "how often the workflow checks jobs and the endpoint", "1..3600", ge=1, le=3600
    )
    state_machine_timeout_hours: Integer = _setting(72, "execution timeout", "1..8760", ge=1, le=24 * 365)
    task_timeout_seconds: Integer = _setting(300, "Lambda timeout", "10..900 (the Lambda limit)", ge=10, le=900)
    subnet_ids: SubnetIds = _setting((), "subnets of the jobs and endpoints", "subnet ids like subnet-0123abcd")
    security_group_ids: SecurityGroupIds = _setting(
        (), "security groups of the jobs and endpoints", "security group ids like sg-0123abcd"
    )
    input_bucket_names: BucketNames = _setting(
        (),
        "buckets besides the stack's own that hold data sets or base models the jobs may read",
        "S3 bucket names (3-63 characters of a-z, 0-9, '.' and '-')",
    )
    hf_token_secret_arn: Text = _setting(
        "",
        "Secrets Manager secret with a Hugging Face token, for gated models",
        "empty or a Secrets Manager secret ARN",
        pattern=_SECRET_ARN,
    )
    notification_email: Text = _setting(
        "", "address subscribed to the notification topic", "empty or an e-mail address", pattern=_EMAIL
    )
    base_model_id: Text = _setting("Qwen/Qwen2.5-Coder-7B-Instruct", "default base model")
    dataset_id: Text = _setting("b-mc2/sql-create-context", "default data set")
    dataset_format: Text = _setting("sql-create-context", "format of the default data set")
    min_execution_accuracy: Number = _setting(0.6, "default gate threshold", _FRACTION_ALLOWED, ge=-1.0, le=1.0)
    min_improvement_over_base: Number = _setting(
        0.05, "default gate improvement over the base model", _FRACTION_ALLOWED, ge=-1.0, le=1.0
    )
    require_significance: Flag = _setting(
        False, "also require the gains over the base (and production) model to be significant"
    )
    significance_level: Number = _setting(
        0.05,
        "level of that significance",
        "a p-value threshold greater than 0 and at most 0.5",
        gt=0.0,
        le=0.5,
    )
    powertools_layer_version: Integer = _setting(
        36,
        "version of the public AWSLambdaPowertoolsPythonV3-python313-x86_64 layer",
        "a positive layer version number",
        ge=1,
    )
    log_retention_days: RetentionDays = _setting(
        365, "retention of every log group", f"one of {sorted(RETENTION_DAYS)}"
    )

    def __init__(self, **values: Any) -> None:
        """Raise SettingsError, naming each bad key, its value and what is allowed, not pydantic's error."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError("\n".join(_problem(detail) for detail in error.errors(include_url=False))) from None

    def __setattr__(self, name: str, value: Any) -> None:
        """Frozen, as a dataclass is (an AttributeError), rather than pydantic's ValidationError."""
        raise AttributeError(f"Settings are frozen: build new ones to change {name!r}")

    @model_validator(mode="after")
    def _subnets_come_with_security_groups(self) -> Settings:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise PydanticCustomError(
                "settings_rule",
                "subnet ids and security group ids given together",
                {"field": "security_group_ids", "value": list(self.security_group_ids)},
            )
        return self

    @property
    def vpc_enabled(self) -> bool:
        return bool(self.subnet_ids)

    @classmethod
    def from_context(cls, get: Any) -> Settings:
        """Build settings from a context getter (e.g. `app.node.try_get_context`).

        Keys are `fine-tune:<field>`; a missing key keeps the default.
        """
        values = {name: raw for name in cls.model_fields if (raw := get(CONTEXT_PREFIX + name)) is not None}
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


def _allowed(name: str) -> str | None:
    """What a setting's checks allow, in words (None where any value of its type will do)."""
    extra = Settings.model_fields[name].json_schema_extra
    text = extra.get("allowed") if isinstance(extra, dict) else None
    return text if isinstance(text, str) else None


def _problem(detail: Any) -> str:
    """One line per refused value: `context fine-tune:<field>: <value!r> is not allowed; expected <allowed>`."""
    kind, loc, context = detail["type"], detail["loc"], detail.get("ctx") or {}
    if kind == "settings_rule":
        name, value, expected = context["field"], context["value"], detail["msg"]
    else:
        name, value = str(loc[0]), detail["input"]
        if kind == "settings_type":
            expected = context["expected"]
        elif kind == "extra_forbidden":
            expected = "a known setting (one of the fields of cdk_app.config.Settings)"
        else:
            expected = _allowed(name) or detail["msg"]
    return f"context {CONTEXT_PREFIX}{name}: {value!r} is not allowed; expected {expected}"


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
