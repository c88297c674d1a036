"""Every place where local mode reaches into moto's internals, in one module.

moto 5.2.5 emulates the AWS APIs the workflow calls, but some of its answers are too simple for an
end-to-end run: Lambda needs Docker to run a handler, SageMaker marks every job Completed at once and
accepts duplicate names, endpoints are InService at once and serve canned data. Each patch below
replaces exactly one moto method (or adds an API moto lacks) and hands the work to local mode's own
emulation (`LambdaInvoker`, `JobRunner`, `EndpointEmulator`). `tests/local_mode/test_moto_patch_points.py`
checks that every attribute used here still exists with the expected signature, so an upgrade of moto
fails loudly instead of silently running moto's canned behaviour.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
from collections.abc import Iterator
from typing import Any, Protocol

from moto.awslambda.models import LambdaFunction
from moto.cloudwatch.models import CloudWatchBackend
from moto.core.responses import ActionResult, EmptyResult
from moto.iam.responses import IamResponse
from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, ModelPackage, SageMakerModelBackend, arn_formatter
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
from moto.servicequotas.responses import ServiceQuotasResponse


class LambdaHooks(Protocol):
    def invoke(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]: ...


class JobHooks(Protocol):
    def start(self, kind: str, backend: SageMakerModelBackend, job: Any, request: dict) -> None: ...

    def stop(self, kind: str, name: str) -> None: ...


class EndpointHooks(Protocol):
    def create(self, backend: SageMakerModelBackend, endpoint: FakeEndpoint, request: dict) -> None: ...

    def update(
        self, backend: SageMakerModelBackend, endpoint: FakeEndpoint, config_name: str, rollback_alarms: list[str]
    ) -> None: ...

    def delete(self, endpoint_name: str) -> None: ...

    def invoke(
        self,
        account_id: str,
        region: str,
        endpoint_name: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
    ) -> tuple[int, dict, bytes]: ...


class AccountHooks(Protocol):
    """What the account itself answers: its SageMaker quotas, and IAM's policy simulation."""

    def quotas(self, service_code: str, account_id: str, region: str) -> list[dict]: ...

    def simulate(
        self, policy_source_arn: str, actions: list[str], resources: list[str], context: dict
    ) -> list[dict]: ...


# (owner, attribute, parameter names the patch relies on; None for an API this module adds)
PATCH_POINTS: list[tuple[type, str, tuple[str, ...] | None]] = [
    # Lambda: run the handler in process instead of in a Docker container.
    (LambdaFunction, "_invoke_lambda", ("self", "event")),
    # SageMaker training jobs: lifecycle, uniqueness, a local process per job.
    (SageMakerResponse, "create_training_job", ("self",)),
    (SageMakerResponse, "stop_training_job", None),
    # SageMaker processing jobs: same.
    (SageMakerResponse, "create_processing_job", ("self",)),
    (SageMakerResponse, "stop_processing_job", ("self",)),
    # Models and endpoint configs: AWS rejects a second resource under an existing name.
    (SageMakerResponse, "create_model", ("self",)),
    (SageMakerResponse, "create_endpoint_config", ("self",)),
    # Endpoints: Creating -> InService/Failed, blue/green update with rollback, a local server.
    (SageMakerResponse, "create_endpoint", ("self",)),
    (SageMakerResponse, "update_endpoint", None),
    (SageMakerResponse, "delete_endpoint", ("self",)),
    # sagemaker-runtime InvokeEndpoint: forward to the endpoint's local server.
    (SageMakerRuntimeResponse, "invoke_endpoint", ("self",)),
    # CloudWatch: updating an alarm keeps its state (moto resets it), so an alarm that went off still
    # rolls back the blue/green update that names it.
    (CloudWatchBackend, "put_metric_alarm", ("self", "name")),
    # Service Quotas: ListServiceQuotas with SageMaker's per-instance-type quotas (moto knows only VPC's).
    (ServiceQuotasResponse, "list_service_quotas", None),
    # IAM: SimulatePrincipalPolicy answered by local mode's own evaluator (moto has none).
    (IamResponse, "simulate_principal_policy", None),
    # moto's instance type lists predate current instances (ml.g5 is refused): use botocore's enums.
    (FakeEndpointConfig, "validate_instance_type", ("self", "instance_type")),
    (ModelPackage, "validate_supported_realtime_inference_instance_types", ("instance_types",)),
    (ModelPackage, "validate_supported_transform_instance_types", ("instance_types",)),
]

# Internals of moto's objects that the patches read or write (checked by the patch-point test).
BACKEND_ATTRIBUTES = ("training_jobs", "processing_jobs", "endpoints", "endpoint_configs", "_models")
RESPONSE_HELPERS = ("_get_param", "_get_params", "sagemaker_backend")
RESPONSE_REQUEST_ATTRIBUTES = ("current_account", "region", "body", "headers", "path")


class S3Store:
    """Bulk copies straight to and from moto's S3 store (reads and writes, no patch).

    Moving model weights between S3 and an instance is SageMaker's work, not an API call the workflow
    makes; through moto's HTTP emulation a 500 MB object takes minutes on a small machine, here a
    memory copy. Listing and every request the workflow makes still go through boto3.
    """

    def __init__(self, account_id: str):
        from moto.s3.models import s3_backends

        self.account_id = account_id
        self.backend = s3_backends[account_id]["aws"]

    @classmethod
    def of_current_account(cls, region: str) -> S3Store:
        import boto3

        sts = boto3.session.Session(region_name=region).client("sts")  # not the Lambdas' shared session
        return cls(sts.get_caller_identity()["Account"])

    def read(self, bucket: str, key: str) -> bytes:
        stored = self.backend.get_object(bucket, key)
        if stored is None:
            raise FileNotFoundError(f"s3://{bucket}/{key}")
        return stored.value

    def write(self, bucket: str, key: str, data: bytes) -> None:
        self.backend.put_object(bucket, key, data)


def _request(response: Any) -> dict:
    """The request's JSON body, exactly as the client sent it (SageMaker speaks JSON 1.1)."""
    body = response.body
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return json.loads(body or "{}")


@functools.cache
def _instance_types(shape: str) -> frozenset[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(shape).enum)


def _check_instance_types(instance_types: list[str], shape: str, field: str) -> None:
    allowed = _instance_types(shape)
    for instance_type in instance_types:
        if instance_type not in allowed:
            raise ValidationError(
                message=f"Value '{instance_type}' at '{field}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: {sorted(allowed)}"
            )


def _check_scalable_variants(backend: SageMakerModelBackend, endpoint: FakeEndpoint, config: Any) -> None:
    """SageMaker refuses an update that removes a variant registered for auto scaling, or changes its
    instance type, until the variant is deregistered."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    targets = applicationautoscaling_backends[backend.account_id][backend.region_name].targets.get(
        "sagemaker:variant:DesiredInstanceCount", {}
    )
    current = backend.endpoint_configs.get(endpoint.endpoint_config_name)
    new_types = {v["VariantName"]: v.get("InstanceType") for v in config.production_variants}
    blocked = []
    for variant in current.production_variants if current else []:
        if f"endpoint/{endpoint.endpoint_name}/variant/{variant['VariantName']}" not in targets:
            continue
        if new_types.get(variant["VariantName"]) != variant.get("InstanceType"):
            blocked.append(variant["VariantName"])
    if blocked:
        raise ValidationError(
            message=f'The variant(s) "{blocked}" must be deregistered as scalable targets with '
            "AWS Application Auto Scaling before they can be removed or have their "
            "instance type updated."
        )


def _arn(kind: str, name: str, backend: SageMakerModelBackend) -> str:
    return arn_formatter(kind, name, backend.account_id, backend.region_name)


@contextlib.contextmanager
def installed(
    lambdas: LambdaHooks, jobs: JobHooks, endpoints: EndpointHooks, account: AccountHooks | None = None
) -> Iterator[None]:
    """Install every patch for the duration of the block; the originals come back afterwards."""
    originals = {(owner, name): owner.__dict__.get(name) for owner, name, _ in PATCH_POINTS}

    orig_create_training = SageMakerResponse.create_training_job
    orig_create_processing = SageMakerResponse.create_processing_job
    orig_create_model = SageMakerResponse.create_model
    orig_create_config = SageMakerResponse.create_endpoint_config
    orig_create_endpoint = SageMakerResponse.create_endpoint
    orig_delete_endpoint = SageMakerResponse.delete_endpoint
    orig_put_metric_alarm = CloudWatchBackend.put_metric_alarm

    def invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        return lambdas.invoke(self, event)

    def create_training_job(self: SageMakerResponse) -> ActionResult:
        request = _request(self)
        name = request["TrainingJobName"]
        backend = self.sagemaker_backend
        if name in backend.training_jobs:
            raise ResourceInUseException(
                "Training job names must be unique within an AWS account and region, and a training "
                f"job with this name already exists ({_arn('training-job', name, backend)})"
            )
        result = orig_create_training(self)
        job = backend.training_jobs[name]
        # moto replaces MetricDefinitions with its own; keep what the caller asked for.
        job.algorithm_specification = copy.deepcopy(request["AlgorithmSpecification"])
        jobs.start("training", backend, job, request)
        return result

    def stop_training_job(self: SageMakerResponse) -> EmptyResult:
        name = self._get_param("TrainingJobName")
        backend = self.sagemaker_backend
        if name not in backend.training_jobs:
            raise ValidationError(message=f"Could not find training job '{_arn('training-job', name, backend)}'.")
        jobs.stop("training", name)
        return EmptyResult()

    def create_processing_job(self: SageMakerResponse) -> ActionResult:
        request = _request(self)
        name = request["ProcessingJobName"]
        backend = self.sagemaker_backend
        if name in backend.processing_jobs:
            raise ResourceInUseException(
                "Processing job names must be unique within an AWS account and region, and a processing "
                f"job with this name already exists ({_arn('processing-job', name, backend)})"
            )
        result = orig_create_processing(self)
        jobs.start("processing", backend, backend.processing_jobs[name], request)
        return result

    def stop_processing_job(self: SageMakerResponse) -> EmptyResult:
        name = self._get_param("ProcessingJobName")
        backend = self.sagemaker_backend
        if name not in backend.processing_jobs:
            raise ValidationError(message=f"Could not find processing job '{_arn('processing-job', name, backend)}'.")
        jobs.stop("processing", name)
        return EmptyResult()

    def create_model(self: SageMakerResponse) -> ActionResult:
        name = self._get_param("ModelName")
        backend = self.sagemaker_backend
        if name in backend._models:
            raise ValidationError(message=f'Cannot create already existing model "{_arn("model", name, backend)}".')
        return orig_create_model(self)

    def create_endpoint_config(self: SageMakerResponse) -> ActionResult:
        name = self._get_param("EndpointConfigName")
        backend = self.sagemaker_backend
        if name in backend.endpoint_configs:
            arn = FakeEndpointConfig.arn_formatter(name, backend.account_id, backend.region_name)
            raise ValidationError(message=f'Cannot create already existing endpoint configuration "{arn}".')
        return orig_create_config(self)

    def create_endpoint(self: SageMakerResponse) -> ActionResult:
        request = _request(self)
        name = request["EndpointName"]
        backend = self.sagemaker_backend
        if name in backend.endpoints:
            raise ValidationError(
                message=f'Cannot create already existing endpoint "{_arn("endpoint", name, backend)}".'
            )
        result = orig_create_endpoint(self)
        endpoints.create(backend, backend.endpoints[name], request)
        return result

    def update_endpoint(self: SageMakerResponse) -> ActionResult:
        name = self._get_param("EndpointName")
        config_name = self._get_param("EndpointConfigName")
        backend = self.sagemaker_backend
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint '{_arn('endpoint', name, backend)}'.")
        if config_name not in backend.endpoint_configs:
            arn = FakeEndpointConfig.arn_formatter(config_name, backend.account_id, backend.region_name)
            raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(
                message=f'Cannot update in-progress endpoint "{endpoint.arn}".'
                if endpoint.endpoint_status in ("Creating", "Updating")
                else f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.endpoint_status}.'
            )
        _check_scalable_variants(backend, endpoint, backend.endpoint_configs[config_name])
        deployment = self._get_param("DeploymentConfig") or {}
        alarms = [a["AlarmName"] for a in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
        endpoints.update(backend, endpoint, config_name, alarms)
        return ActionResult({"EndpointArn": endpoint.arn})

    def delete_endpoint(self: SageMakerResponse) -> EmptyResult:
        name = self._get_param("EndpointName")
        result = orig_delete_endpoint(self)  # raises moto's ValidationError when it does not exist
        endpoints.delete(name)
        return result

    def invoke_endpoint(self: SageMakerRuntimeResponse) -> tuple[int, dict, bytes]:
        endpoint_name = self._get_params().get("EndpointName") or self.path.split("/")[2]
        body = self.body if isinstance(self.body, bytes) else (self.body or "").encode("utf-8")
        return endpoints.invoke(
            self.current_account,
            self.region,
            endpoint_name,
            body,
            self.headers.get("Content-Type"),
            self.headers.get("Accept"),
        )

    def put_metric_alarm(self: CloudWatchBackend, name: str, *args: Any, **kwargs: Any) -> Any:
        existing = self.alarms.get(name)
        if existing is not None:
            kwargs.pop("tags", None)  # tags are set when an alarm is created, not when it is updated
        alarm = orig_put_metric_alarm(self, name, *args, **kwargs)
        if existing is not None:
            for attribute in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp"):
                setattr(alarm, attribute, getattr(existing, attribute))
        return alarm

    def list_service_quotas(self: ServiceQuotasResponse) -> str:
        params = json.loads(self.body or "{}")
        quotas = account.quotas(params.get("ServiceCode", ""), self.current_account, self.region) if account else []
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or 100)
        page = {"Quotas": quotas[start : start + size]}
        if start + size < len(quotas):
            page["NextToken"] = str(start + size)
        return json.dumps(page)

    def simulate_principal_policy(self: IamResponse) -> ActionResult:
        actions = list(self._get_param("ActionNames") or [])
        resources = list(self._get_param("ResourceArns") or ["*"])
        context = {
            entry.get("ContextKeyName"): entry.get("ContextKeyValues")
            for entry in self._get_param("ContextEntries") or []
        }
        results = account.simulate(self._get_param("PolicySourceArn"), actions, resources, context) if account else []
        return ActionResult({"EvaluationResults": results, "IsTruncated": False})

    def validate_instance_type(self: FakeEndpointConfig, instance_type: str) -> None:
        _check_instance_types([instance_type], "ProductionVariantInstanceType", "instanceType")

    def validate_realtime_types(instance_types: list[str]) -> None:
        _check_instance_types(
            instance_types, "ProductionVariantInstanceType", "supportedRealtimeInferenceInstanceTypes"
        )

    def validate_transform_types(instance_types: list[str]) -> None:
        _check_instance_types(instance_types, "TransformInstanceType", "supportedTransformInstanceTypes")

    replacements = {
        (LambdaFunction, "_invoke_lambda"): invoke_lambda,
        (SageMakerResponse, "create_training_job"): create_training_job,
        (SageMakerResponse, "stop_training_job"): stop_training_job,
        (SageMakerResponse, "create_processing_job"): create_processing_job,
        (SageMakerResponse, "stop_processing_job"): stop_processing_job,
        (SageMakerResponse, "create_model"): create_model,
        (SageMakerResponse, "create_endpoint_config"): create_endpoint_config,
        (SageMakerResponse, "create_endpoint"): create_endpoint,
        (SageMakerResponse, "update_endpoint"): update_endpoint,
        (SageMakerResponse, "delete_endpoint"): delete_endpoint,
        (SageMakerRuntimeResponse, "invoke_endpoint"): invoke_endpoint,
        (CloudWatchBackend, "put_metric_alarm"): put_metric_alarm,
        (ServiceQuotasResponse, "list_service_quotas"): list_service_quotas,
        (IamResponse, "simulate_principal_policy"): simulate_principal_policy,
        (FakeEndpointConfig, "validate_instance_type"): validate_instance_type,
        (ModelPackage, "validate_supported_realtime_inference_instance_types"): staticmethod(validate_realtime_types),
        (ModelPackage, "validate_supported_transform_instance_types"): staticmethod(validate_transform_types),
    }
    for (owner, name), replacement in replacements.items():
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for (owner, name), original in originals.items():
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
