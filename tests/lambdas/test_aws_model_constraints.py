"""Every constraint check_value reports for one request, in order, across structures, lists, maps and scalars."""

import botocore.session
import pytest

from local_mode.aws_model_validation import check_value


def _problems(service: str, operation: str, params: dict) -> list[str]:
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    return [str(problem) for problem in check_value(operation, model.input_shape, params)]


@pytest.mark.parametrize(
    "service, operation, params, expected",
    [
        (
            "kms",
            "Encrypt",
            {"KeyId": "k", "Plaintext": b""},
            ["Encrypt.Plaintext: size in bytes (0) is below the minimum 1"],
        ),
        (
            "kms",
            "Encrypt",
            {"KeyId": "", "Plaintext": "x" * 4097, "Bogus": 1, "GrantTokens": None},
            [
                "Encrypt.KeyId: length of '' (0) is below the minimum 1",
                "Encrypt.Plaintext: size in bytes (4097) is above the maximum 4096",
                "Encrypt.Bogus: is not a parameter; known: KeyId, Plaintext, EncryptionContext, GrantTokens, "
                "EncryptionAlgorithm, DryRun",
            ],
        ),
        (
            "kms",
            "Encrypt",
            {"KeyId": "k", "Plaintext": b"x", "EncryptionContext": {"": "v"}, "GrantTokens": ["t"] * 11},
            ["Encrypt.GrantTokens: number of items (11) is above the maximum 10"],
        ),
        (
            "sagemaker",
            "CreateTrainingJob",
            {
                "TrainingJobName": "bad name",
                "StoppingCondition": {"MaxRuntimeInSeconds": 0},
                "ResourceConfig": {"InstanceCount": True, "VolumeSizeInGB": 1.5, "InstanceType": "ml.m5.large"},
                "Environment": {"1 bad": "v"},
                "HyperParameters": {"k": "v" * 3000},
            },
            [
                "CreateTrainingJob.RoleArn: is required",
                "CreateTrainingJob.OutputDataConfig: is required",
                "CreateTrainingJob.TrainingJobName: 'bad name' does not match the pattern "
                "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
                "CreateTrainingJob.StoppingCondition.MaxRuntimeInSeconds: value (0) is below the minimum 1",
                "CreateTrainingJob.Environment key: '1 bad' does not match the pattern [a-zA-Z_][a-zA-Z0-9_]*",
                "CreateTrainingJob.HyperParameters['k']: length of '"
                + "v" * 76
                + "... (3000) is above the maximum 2500",
            ],
        ),
        (
            "sagemaker",
            "CreateTrainingJob",
            {"TrainingJobName": 5, "RoleArn": ["x"], "ResourceConfig": "str"},
            ["CreateTrainingJob.OutputDataConfig: is required"],
        ),
    ],
)
def test_reports_every_broken_constraint(service, operation, params, expected):
    assert _problems(service, operation, params) == expected
