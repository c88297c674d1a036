"""The request validator rejects what SageMaker would reject, and passes what it accepts."""

import re

import boto3
import pytest
from botocore.exceptions import ParamValidationError
from moto import mock_aws
from moto.sagemaker.models import FakeEndpointConfig

from local_mode import aws_model_validation
from local_mode.aws_model_validation import ServiceModelValidationError, compiled_pattern, java_pattern_to_python


@pytest.fixture
def sagemaker(monkeypatch):
    # moto's own endpoint instance-type list predates ml.g5; botocore's model is the reference.
    monkeypatch.setattr(FakeEndpointConfig, "validate_instance_type", lambda self, instance_type: None)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        aws_model_validation.install(session)
        yield session.client("sagemaker")


ROLE = "arn:aws:iam::123456789012:role/sm"
CONFIG = {
    "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.g5.2xlarge", "InitialInstanceCount": 1}
    ]
}


def test_accepts_a_valid_request(sagemaker):
    sagemaker.create_model(
        ModelName="m",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "img",
            "ModelDataSource": {
                "S3DataSource": {"S3Uri": "s3://b/k/", "S3DataType": "S3Prefix", "CompressionType": "None"}
            },
        },
    )
    sagemaker.create_endpoint_config(EndpointConfigName="run-1-cfg", **CONFIG)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a" * 64, "(64) is above the maximum 63"),
        ("bad_name", "does not match the pattern"),
        ("-leading", "does not match the pattern"),
    ],
)
def test_rejects_bad_names(sagemaker, name, expected):
    with pytest.raises(ServiceModelValidationError) as raised:
        sagemaker.create_endpoint_config(EndpointConfigName=name, **CONFIG)
    assert "CreateEndpointConfig.EndpointConfigName" in str(raised.value)
    assert expected in str(raised.value)


def test_rejects_a_bad_enum_value(sagemaker):
    config = {"ProductionVariants": [{**CONFIG["ProductionVariants"][0], "InstanceType": "ml.g5.huge"}]}
    with pytest.raises(
        ServiceModelValidationError, match=r"ProductionVariants\[0\].InstanceType: 'ml.g5.huge' is not one of"
    ):
        sagemaker.create_endpoint_config(EndpointConfigName="ok", **config)


def test_rejects_a_missing_nested_required_member(sagemaker):
    with pytest.raises(
        ServiceModelValidationError, match=re.escape("ModelDataSource.S3DataSource.CompressionType: is required")
    ):
        sagemaker.create_model(
            ModelName="m",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": "img",
                "ModelDataSource": {"S3DataSource": {"S3Uri": "s3://b/k/", "S3DataType": "S3Prefix"}},
            },
        )


def test_rejects_out_of_range_numbers_and_long_lists(sagemaker):
    variant = {**CONFIG["ProductionVariants"][0], "ContainerStartupHealthCheckTimeoutInSeconds": 7200}
    with pytest.raises(ServiceModelValidationError) as raised:
        sagemaker.create_endpoint_config(EndpointConfigName="ok", ProductionVariants=[variant] * 11)
    text = str(raised.value)
    assert "value (7200) is above the maximum 3600" in text
    assert "number of items (11) is above the maximum 10" in text


def test_errors_are_botocore_param_validation_errors(sagemaker):
    with pytest.raises(ParamValidationError):
        sagemaker.describe_endpoint(EndpointName="x" * 64)


def test_tag_values_follow_javas_unicode_classes():
    tag_value = compiled_pattern(r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)")
    assert tag_value.fullmatch("run 1: Zürich=ok+@/")
    assert not tag_value.fullmatch("a,b")
    assert compiled_pattern(r"([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,256}").fullmatch("gate passed")


def test_java_surrogate_pairs_become_supplementary_ranges():
    translated = java_pattern_to_python(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*")
    assert r"\U00010000-\U0010ffff" in translated
    assert compiled_pattern(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*").fullmatch("ok 😀")


def test_every_pattern_of_the_services_used_translates():
    import botocore.session

    session = botocore.session.get_session()
    for service in aws_model_validation.DEFAULT_SERVICES:
        model = session.get_service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern:
                compiled_pattern(pattern)


def test_unicode_categories_are_javas_exactly_and_posix_classes_stay_ascii():
    letters = compiled_pattern(r"[\p{L}\p{M}]+")
    assert (
        letters.fullmatch("ǅurđević") and letters.fullmatch("中文") and letters.fullmatch("é")
    )  # e + combining accent
    assert compiled_pattern(r"\p{S}+").fullmatch("€∑") and compiled_pattern(r"\p{P}+").fullmatch("«»")
    assert compiled_pattern(r"\p{Lu}+").fullmatch("ÀB") and not compiled_pattern(r"\p{Lu}+").fullmatch("ab")
    assert compiled_pattern(r"\p{Alpha}+").fullmatch("abc") and not compiled_pattern(r"\p{Alpha}+").fullmatch("ü")
