"""Local mode's SageMaker quotas: the defaults, and an account's own values from list-service-quotas output."""

import json

import pytest

from local_mode.service_quotas import DEFAULT_VALUE, QuotaFileError, SageMakerQuotas


def listed(quotas, name):
    return next(q for q in quotas.listed("123456789012", "eu-west-1") if q["QuotaName"] == name)


def test_every_instance_type_has_each_usage_quota_at_the_default():
    quotas = SageMakerQuotas()
    quota = listed(quotas, "ml.g5.2xlarge for spot training job usage")
    assert quota["Value"] == DEFAULT_VALUE and quota["ServiceCode"] == "sagemaker"
    assert quota["QuotaArn"] == f"arn:aws:servicequotas:eu-west-1:123456789012:sagemaker/{quota['QuotaCode']}"
    assert listed(quotas, "ml.g5.2xlarge for endpoint usage")["Value"] == DEFAULT_VALUE


def test_a_list_service_quotas_file_sets_values_and_codes(tmp_path):
    path = tmp_path / "quotas.json"
    path.write_text(
        json.dumps(
            {
                "Quotas": [
                    {
                        "ServiceCode": "sagemaker",
                        "QuotaName": "ml.p5.48xlarge for spot training job usage",
                        "QuotaCode": "L-12345678",
                        "Value": 0.0,
                        "Adjustable": True,
                    },
                    {
                        "ServiceCode": "sagemaker",
                        "QuotaName": "ml.g5.2xlarge for endpoint usage",
                        "QuotaCode": "L-ABCDEF01",
                        "Value": 2.0,
                    },
                ]
            }
        )
    )
    quotas = SageMakerQuotas()
    assert quotas.load_file(path) == 2
    assert listed(quotas, "ml.p5.48xlarge for spot training job usage")["Value"] == 0.0
    assert listed(quotas, "ml.g5.2xlarge for endpoint usage")["QuotaCode"] == "L-ABCDEF01"
    assert listed(quotas, "ml.g5.2xlarge for training job usage")["Value"] == DEFAULT_VALUE  # not in the file


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"Quotas": [', "line 1: not JSON"),
        ('{"quotas": []}', 'no "Quotas" list'),
        (
            '{"Quotas": [{"QuotaName": "ml.g5.2xlarge for endpoint usage", "Value": "two"}]}',
            r"Quotas\[0\]: .*a number Value",
        ),
    ],
)
def test_a_file_that_is_not_list_service_quotas_output_names_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "quotas.json"
    path.write_text(text)
    with pytest.raises(QuotaFileError, match=message):
        SageMakerQuotas().load_file(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(QuotaFileError, match="cannot be read"):
        SageMakerQuotas().load_file(tmp_path / "absent.json")
