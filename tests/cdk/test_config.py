"""Settings from context: conversions, defaults and errors that name the key, value and what is allowed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from app import project_context
from cdk_app.config import Settings, SettingsError, image_catalogue

SCHEMA = Path(__file__).resolve().parents[2] / "lambdas" / "common" / "execution_input.schema.json"


def from_context(**values):
    return Settings.from_context({f"fine-tune:{k}": v for k, v in values.items()}.get)


def test_cdk_json_context_matches_the_code_defaults():
    context = {k.removeprefix("fine-tune:"): v for k, v in project_context().items() if k.startswith("fine-tune:")}
    assert Settings.from_context(project_context().get) == Settings()
    assert set(context) == set(Settings.model_fields)


def test_command_line_strings_are_converted():
    settings = from_context(
        poll_interval_seconds="5",
        min_execution_accuracy="0.7",
        require_significance="true",
        significance_level="0.01",
        subnet_ids="subnet-0123abcd, subnet-0456abcd",
        security_group_ids="sg-0123abcd",
    )
    assert settings.poll_interval_seconds == 5
    assert settings.min_execution_accuracy == 0.7
    assert settings.require_significance is True and settings.significance_level == 0.01
    assert from_context(require_significance=False).require_significance is False
    assert json.loads(settings.defaults_json())["evaluation"]["gate"]["require_significance"] is True
    assert settings.subnet_ids == ("subnet-0123abcd", "subnet-0456abcd")
    assert settings.vpc_enabled


@pytest.mark.parametrize(
    "key,value,message",
    [
        (
            "poll_interval_seconds",
            "soon",
            "fine-tune:poll_interval_seconds: 'soon' is not allowed; expected an integer",
        ),
        ("poll_interval_seconds", 0, "expected 1..3600"),
        ("train_instance_type", "g5.2xlarge", "expected a SageMaker instance type like ml.g5.2xlarge"),
        ("subnet_ids", "vpc-123", "fine-tune:subnet_ids: 'vpc-123'"),
        ("hf_token_secret_arn", "my-token", "empty or a Secrets Manager secret ARN"),
        ("log_retention_days", 42, "fine-tune:log_retention_days: 42 is not allowed"),
        ("resource_prefix", "Prod_Models", "1-20 characters of [a-z0-9-]"),
        ("require_significance", "yes", "fine-tune:require_significance: 'yes' is not allowed; expected true or false"),
        ("significance_level", 0.7, "fine-tune:significance_level: 0.7 is not allowed; expected a p-value threshold"),
    ],
)
def test_bad_values_are_rejected_with_key_value_and_allowed(key, value, message):
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        from_context(**{key: value})


def test_subnets_need_security_groups():
    with pytest.raises(SettingsError, match="subnet ids and security group ids given together"):
        from_context(subnet_ids="subnet-0123abcd")


def test_image_versions_must_be_in_the_catalogue():
    with pytest.raises(
        SettingsError, match=re.escape("training_image_version: '9.9.9' is not in the sagemaker image catalogue")
    ):
        image_catalogue(Settings(training_image_version="9.9.9"))
    with pytest.raises(SettingsError, match=re.escape("inference_image_version: '0.0.1'")):
        image_catalogue(Settings(inference_image_version="0.0.1"))


def test_default_execution_input_is_valid_against_the_lambdas_schema():
    schema = json.loads(SCHEMA.read_text())
    defaults = json.loads(Settings().defaults_json())
    jsonschema.validate(defaults, schema)
    assert defaults["preparation"]["instance_type"] == "ml.m5.xlarge"


@pytest.mark.parametrize(
    "overrides, problem",
    [
        (
            {"train_instance_type": "ml.g5.3xlarge"},
            'training.instance_type (context fine-tune:train_instance_type): "ml.g5.3xlarge" is not allowed',
        ),
        (
            {"min_execution_accuracy": -0.5},
            "evaluation.gate.min_execution_accuracy (context fine-tune:min_execution_accuracy): -0.5",
        ),
        (
            {"min_improvement_over_base": -0.2},
            "evaluation.gate.min_improvement_over_base (context fine-tune:min_improvement_over_base): -0.2",
        ),
    ],
)
def test_settings_that_validateinput_would_refuse_for_every_run_are_not_synthesized(tmp_path, overrides, problem):
    from tests.cdk.conftest import synthesize

    with pytest.raises(SettingsError, match="refused by ValidateInput for every run") as raised:
        synthesize(tmp_path, **overrides)
    assert problem in str(raised.value), str(raised.value)


def test_the_default_settings_pass_validateinputs_own_check():
    from cdk_app.default_input import check_default_input

    check_default_input(Settings(), SCHEMA.parents[1])
