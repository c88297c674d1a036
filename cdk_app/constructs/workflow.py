"""The fine-tuning workflow: training code in S3, model package group, Lambdas and state machine."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import ArnFormat, Aws, Duration, Fn, RemovalPolicy, Size, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk_app.assets import default_wheelhouse_root, lambda_code_dir, training_code_dir, wheelhouse_build_command
from cdk_app.config import RETENTION_DAYS, Settings
from cdk_app.constructs.images import ContainerImages
from cdk_app.constructs.notification import NotificationTopic
from cdk_app.constructs.sagemaker_role import SageMakerExecutionRole
from cdk_app.constructs.storage import CODE_PREFIX, FineTuningStorage
from cdk_app.constructs.workflow_definition import DefinitionProps, WorkflowDefinition
from cdk_app.constructs.workflow_functions import WorkflowFunctions, WorkflowFunctionsProps
from cdk_app.default_input import check_default_input

# Files that never belong in the uploaded code.
ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", "tests"]
# What jobs install at start travels with the code as wheels, in `<code prefix>/wheelhouse/`
# (training/wheelhouse.py builds it; its manifest.json is the contract read here).


def wheelhouse_problem(wheelhouse_root: Path, training_dir: Path, py_version: str) -> str | None:
    """Why the wheelhouse under `wheelhouse_root` cannot go with `training_dir`'s code, or None."""
    manifest_path = wheelhouse_root / "wheelhouse" / "manifest.json"
    fix = f"run `{wheelhouse_build_command()}` (it downloads the wheels jobs install at start) and synthesize again"
    if not manifest_path.is_file():
        return f"{manifest_path} not found: the training jobs' wheelhouse has not been built; {fix}"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    requirements = (training_dir / "requirements.txt").read_bytes()
    if manifest.get("requirements_sha256") != hashlib.sha256(requirements).hexdigest():
        return f"{manifest_path} was built for another {training_dir / 'requirements.txt'}; {fix}"
    python = f"py{str(manifest.get('python', '')).replace('.', '')}"
    if python != py_version:
        return (
            f"{manifest_path} holds wheels for {python}, the training image runs {py_version} "
            f"(context fine-tune:training_py_version); {fix}"
        )
    return None


@dataclass
class FineTuningWorkflowProps:
    """Settings plus the folders whose code the workflow ships.

    `lambdas_dir` holds the handlers (`<verb>.py`) and `common/`; `training_dir` is deployed to
    `s3://<artifacts>/code/<hash>/` and mounted into every job, with the wheels its
    requirements.txt needs from `wheelhouse_root/wheelhouse/` (built by `make wheelhouse`).
    The defaults are the code that comes with cdk_app (cdk_app/assets.py).
    `model_package_group_name` defaults to `<resource_prefix>-models`.
    """

    settings: Settings = field(default_factory=Settings)
    lambdas_dir: Path = field(default_factory=lambda_code_dir)
    training_dir: Path = field(default_factory=training_code_dir)
    wheelhouse_root: Path = field(default_factory=default_wheelhouse_root)
    model_package_group_name: str | None = None
    log_retention: logs.RetentionDays | None = None
    lambda_memory_size: int = 512


class FineTuningWorkflow(Construct):
    """A Step Functions state machine that prepares, fine-tunes, evaluates, gates and deploys.

    Resources are exposed as attributes (`state_machine`, `functions`, `log_group`,
    `model_package_group_name`, `code_s3_uri`); grant helpers give principals the right to start
    or watch executions.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: FineTuningStorage,
        sagemaker_role: SageMakerExecutionRole,
        notification: NotificationTopic,
        images: ContainerImages,
        props: FineTuningWorkflowProps | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        props = props or FineTuningWorkflowProps()
        settings = props.settings
        check_default_input(settings, props.lambdas_dir)
        retention = props.log_retention or getattr(logs.RetentionDays, RETENTION_DAYS[settings.log_retention_days])

        self.code_s3_uri = self._deploy_training_code(
            props.training_dir, props.wheelhouse_root, settings, storage, retention
        )
        self.model_package_group_name = props.model_package_group_name or f"{settings.resource_prefix}-models"
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.model_package_group_name,
            model_package_group_description="Fine-tuned LLMs registered by the fine-tuning workflow",
        )
        self.model_package_group.apply_removal_policy(RemovalPolicy.RETAIN)

        environment = {
            "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
            "DATA_BUCKET": storage.data_bucket.bucket_name,
            "KMS_KEY_ARN": storage.key.key_arn,
            "SAGEMAKER_ROLE_ARN": sagemaker_role.role_arn,
            "TRAINING_IMAGE_URI": images.training_image_uri,
            "INFERENCE_IMAGE_URI": images.inference_image_uri,
            "VLLM_IMAGE_URI": images.vllm_image_uri,
            "CODE_S3_URI": self.code_s3_uri,
            "MODEL_PACKAGE_GROUP_NAME": self.model_package_group_name,
            "TOPIC_ARN": notification.topic_arn,
            "DEFAULTS_JSON": settings.defaults_json(),
            "SUBNET_IDS": ",".join(settings.subnet_ids),
            "SECURITY_GROUP_IDS": ",".join(settings.security_group_ids),
            "HF_TOKEN_SECRET_ARN": settings.hf_token_secret_arn,
            "INPUT_BUCKETS": ",".join(settings.input_bucket_names),
            "STATE_MACHINE_TIMEOUT_SECONDS": str(settings.state_machine_timeout_hours * 3600),
            # The value of the fine-tune:stack tag on everything this stack's runs create.
            "STACK_TAG": Aws.STACK_ID,
            "POWERTOOLS_SERVICE_NAME": "fine-tuning-workflow",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        self.functions_construct = WorkflowFunctions(
            self,
            "Functions",
            storage=storage,
            sagemaker_role=sagemaker_role,
            notification=notification,
            props=WorkflowFunctionsProps(
                code=lambda_.Code.from_asset(str(props.lambdas_dir), exclude=ASSET_EXCLUDES),
                environment=environment,
                model_package_group_name=self.model_package_group_name,
                stack_tag=Aws.STACK_ID,
                input_bucket_names=settings.input_bucket_names,
                hf_token_secret_arn=settings.hf_token_secret_arn,
                powertools_layer_version=settings.powertools_layer_version,
                timeout=Duration.seconds(settings.task_timeout_seconds),
                memory_size=props.lambda_memory_size,
                log_retention=retention,
            ),
        )
        self.functions = self.functions_construct.functions

        self.definition = WorkflowDefinition(
            self,
            "Definition",
            self.functions,
            DefinitionProps(task_timeout=Duration.seconds(settings.task_timeout_seconds + 60)),
        )
        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=Fn.join("", ["/aws/vendedlogs/states/", settings.resource_prefix, "-", Aws.STACK_NAME]),
            encryption_key=storage.key,
            retention=retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(self.definition.start),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(settings.state_machine_timeout_hours),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="Fine-tunes an LLM on SageMaker, evaluates it, and deploys it only if the gate passes",
        )
        self.ending_rule = self._clean_up_every_ending(self.functions["cleanup"])

    def _clean_up_every_ending(self, cleanup: lambda_.Function) -> events.Rule:
        """An execution that times out, is aborted or fails outside a Catch still gets its Cleanup.

        The rule hands Cleanup the status-change event; Cleanup reads the execution's history to learn
        what it started (a policy of its own, so the function does not depend on the state machine).
        """
        rule = events.Rule(
            self,
            "ExecutionEnded",
            description="Runs Cleanup for every execution of the fine-tuning workflow that did not succeed",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                },
            ),
        )
        rule.add_target(targets.LambdaFunction(cleanup, retry_attempts=4, max_event_age=Duration.hours(6)))
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
            resource_name=f"{self.state_machine.state_machine_name}:*",
        )
        if cleanup.role is None:
            raise ValueError(f"{cleanup.node.path} has no execution role to grant the execution history to")
        iam.Policy(
            self,
            "CleanupReadsExecutions",
            roles=[cleanup.role],
            statements=[
                iam.PolicyStatement(
                    actions=["states:GetExecutionHistory", "states:DescribeExecution"], resources=[executions]
                )
            ],
        )
        return rule

    def _deploy_training_code(
        self,
        training_dir: Path,
        wheelhouse_root: Path,
        settings: Settings,
        storage: FineTuningStorage,
        retention: logs.RetentionDays,
    ) -> str:
        """Upload training/ and its wheelhouse as assets and copy both to `code/<hash>/`.

        Jobs install what the image lacks from `code/<hash>/wheelhouse/` (never from a package
        index, so jobs with network isolation or without egress start too); synthesis stops with
        what to run when the wheelhouse is missing or was built for other pins or another Python.
        """
        problem = wheelhouse_problem(wheelhouse_root, training_dir, settings.training_py_version)
        if problem:
            raise ValueError(problem)
        asset = s3_assets.Asset(self, "TrainingCodeAsset", path=str(training_dir), exclude=ASSET_EXCLUDES)
        wheels = s3_assets.Asset(self, "TrainingWheelsAsset", path=str(wheelhouse_root))
        log_group = logs.LogGroup(
            self,
            "TrainingCodeDeploymentLogs",
            encryption_key=storage.key,
            retention=retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # One prefix per code and wheels together: nothing is overwritten across deployments.
        prefix = f"{CODE_PREFIX}{hashlib.sha256((asset.asset_hash + wheels.asset_hash).encode()).hexdigest()}/"
        s3_deployment.BucketDeployment(
            self,
            "TrainingCode",
            sources=[
                s3_deployment.Source.bucket(asset.bucket, asset.s3_object_key),
                s3_deployment.Source.bucket(wheels.bucket, wheels.s3_object_key),
            ],
            destination_bucket=storage.artifacts_bucket,
            destination_key_prefix=prefix,
            prune=False,
            retain_on_delete=True,
            memory_limit=1024,
            ephemeral_storage_size=Size.gibibytes(2),  # the wheels are unpacked in /tmp before the copy
            log_group=log_group,
        )
        return Fn.join("", ["s3://", storage.artifacts_bucket.bucket_name, "/", prefix])

    @property
    def state_machine_arn(self) -> str:
        return self.state_machine.state_machine_arn

    def grant_start_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start executions (and read their results)."""
        self.state_machine.grant_read(grantee)
        return self.state_machine.grant_start_execution(grantee)

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """List and describe executions and their history."""
        return self.state_machine.grant_read(grantee)

    def grant_redrive(self, grantee: iam.IGrantable) -> iam.Grant:
        """Redrive failed executions from the state that failed (job names are reused and adopted)."""
        return self.state_machine.grant_execution(grantee, "states:RedriveExecution")
