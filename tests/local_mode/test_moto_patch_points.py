"""Fails loudly when a moto upgrade moves an internal that local mode patches or reads."""

import inspect

import pytest
from moto.awslambda.models import LambdaFunction
from moto.core.responses import BaseResponse
from moto.sagemaker.models import (
    FakeEndpoint,
    FakeEndpointConfig,
    FakeProcessingJob,
    FakeTrainingJob,
    Model,
    SageMakerModelBackend,
)
from moto.sagemaker.responses import SageMakerResponse
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

from local_mode import moto_patches


@pytest.mark.parametrize(
    "owner,name,parameters",
    moto_patches.PATCH_POINTS,
    ids=[f"{o.__name__}.{n}" for o, n, _ in moto_patches.PATCH_POINTS],
)
def test_patch_point_exists_with_expected_signature(owner, name, parameters):
    if parameters is None:
        # An API local mode adds: if moto grows its own, the patch must be reconsidered.
        assert name not in owner.__dict__, f"moto now implements {owner.__name__}.{name}; revisit moto_patches"
        return
    assert name in owner.__dict__, f"moto no longer defines {owner.__name__}.{name}"
    attribute = owner.__dict__[name]
    signature = inspect.signature(attribute.__func__ if isinstance(attribute, staticmethod) else attribute)
    assert tuple(signature.parameters)[: len(parameters)] == parameters


def test_lambda_function_attributes_used_by_the_invoker():
    source = inspect.getsource(LambdaFunction.__init__)
    for attribute in (
        "self.handler",
        "self.environment_vars",
        "self.timeout",
        "self.memory_size",
        "self.function_name",
        "self.function_arn",
    ):
        assert attribute in source
    assert callable(LambdaFunction.save_logs)
    # moto's ASL interpreter turns the error payload's errorType into the Error name, as AWS does.
    assert "errorType" in inspect.getsource(
        __import__(
            "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda",
            fromlist=["x"],
        )
    )
    assert hasattr(lambda_eval_utils, "LambdaFunctionErrorException")


def test_sagemaker_internals_read_and_written():
    backend_source = inspect.getsource(SageMakerModelBackend.__init__)
    for attribute in moto_patches.BACKEND_ATTRIBUTES:
        assert f"self.{attribute}" in backend_source, attribute
    for attribute in moto_patches.RESPONSE_HELPERS:
        assert hasattr(SageMakerResponse, attribute), attribute
    setup_source = inspect.getsource(BaseResponse.setup_class)
    for attribute in moto_patches.RESPONSE_REQUEST_ATTRIBUTES:
        assert f"self.{attribute} =" in setup_source or f"self.{attribute}: " in setup_source, attribute
    for cls, attributes in {
        FakeTrainingJob: (
            "training_job_status",
            "secondary_status",
            "model_artifacts",
            "algorithm_specification",
            "final_metric_data_list",
            "training_start_time",
            "training_end_time",
            "secondary_status_transitions",
        ),
        FakeProcessingJob: ("processing_job_status", "processing_end_time"),
        FakeEndpoint: ("endpoint_status", "failure_reason", "endpoint_config_name", "production_variants"),
        FakeEndpointConfig: ("production_variants",),
        Model: ("primary_container", "containers"),
    }.items():
        source = inspect.getsource(cls.__init__)
        for attribute in attributes:
            assert f"self.{attribute}" in source, f"{cls.__name__}.{attribute}"
    assert callable(FakeEndpoint._process_production_variants)
    # Describe* answers are built from the object's attributes: new attributes become new fields.
    assert "self.__dict__" in inspect.getsource(FakeTrainingJob.gen_response_object)


def test_installed_restores_moto():
    before = {(o, n): o.__dict__.get(n) for o, n, _ in moto_patches.PATCH_POINTS}
    with moto_patches.installed(object(), object(), object()):
        assert LambdaFunction.__dict__["_invoke_lambda"] is not before[(LambdaFunction, "_invoke_lambda")]
        assert "stop_training_job" in SageMakerResponse.__dict__
    after = {(o, n): o.__dict__.get(n) for o, n, _ in moto_patches.PATCH_POINTS}
    assert after == before


def test_s3_store_reads_and_writes_what_boto3_sees():
    import boto3
    from moto import mock_aws
    from moto.s3.models import FakeKey, S3Backend

    assert tuple(inspect.signature(S3Backend.put_object).parameters)[:4] == ("self", "bucket_name", "key_name", "value")
    assert tuple(inspect.signature(S3Backend.get_object).parameters)[:3] == ("self", "bucket_name", "key_name")
    assert isinstance(FakeKey.value, property)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        store = moto_patches.S3Store.of_current_account("us-east-1")
        store.write("bkt", "a/b.bin", b"weights")
        assert s3.get_object(Bucket="bkt", Key="a/b.bin")["Body"].read() == b"weights"
        s3.put_object(Bucket="bkt", Key="c.txt", Body=b"text")
        assert store.read("bkt", "c.txt") == b"text"
