"""The fine-tuning workflow: training code in S3, model package group, Lambdas and state machine."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from aws_cdk import Aws, Duration, Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk_app.config import RETENTION_DAYS, Settings
from cdk_app.constructs.images import ContainerImages
from cdk_app.constructs.notification import NotificationTopic
from cdk_app.constructs.sagemaker_role import SageMakerExecutionRole
from cdk_app.constructs.storage import CODE_PREFIX, FineTuningStorage
from cdk_app.constructs.workflow_definition import DefinitionProps, WorkflowDefinition
from cdk_app.constructs.workflow_functions import WorkflowFunctions, WorkflowFunctionsProps

REPO_ROOT = Path(__file__).resolve().parents[2]
# Files that never belong in the uploaded code.
ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", "tests"]


@dataclass
class FineTuningWorkflowProps:
    """Settings plus the folders whose code the workflow ships.

    `lambdas_dir` holds the handlers (`<verb>.py`) and `common/`; `training_dir` is deployed to
    `s3://<artifacts>/code/<asset hash>/` and mounted into every job.
    `model_package_group_name` defaults to `<resource_prefix>-models`.
    """

    settings: Settings = field(default_factory=Settings)
    lambdas_dir: Path = REPO_ROOT / "lambdas"
    training_dir: Path = REPO_ROOT / "training"
    model_package_group_name: Optional[str] = None
    log_retention: Optional[logs.RetentionDays] = None
    lambda_memory_size: int = 512


class FineTuningWorkflow(Construct):
    """A Step Functions state machine that prepares, fine-tunes, evaluates, gates and deploys.

    Resources are exposed as attributes (`state_machine`, `functions`, `log_group`,
    `model_package_group_name`, `code_s3_uri`); grant helpers give principals the right to start
    or watch executions.
    """

    def __init__(self, scope: Construct, construct_id: str, *, storage: FineTuningStorage,
                 sagemaker_role: SageMakerExecutionRole, notification: NotificationTopic,
                 images: ContainerImages, props: Optional[FineTuningWorkflowProps] = None) -> None:
        super().__init__(scope, construct_id)
        props = props or FineTuningWorkflowProps()
        settings = props.settings
        retention = props.log_retention or getattr(logs.RetentionDays, RETENTION_DAYS[settings.log_retention_days])

        self.code_s3_uri = self._deploy_training_code(props.training_dir, storage, retention)
        self.model_package_group_name = props.model_package_group_name or f"{settings.resource_prefix}-models"
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self, "ModelPackageGroup",
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
            "POWERTOOLS_SERVICE_NAME": "fine-tuning-workflow",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        self.functions_construct = WorkflowFunctions(
            self, "Functions", storage=storage, sagemaker_role=sagemaker_role, notification=notification,
            props=WorkflowFunctionsProps(
                code=lambda_.Code.from_asset(str(props.lambdas_dir), exclude=ASSET_EXCLUDES),
                environment=environment,
                model_package_group_name=self.model_package_group_name,
                powertools_layer_version=settings.powertools_layer_version,
                timeout=Duration.seconds(settings.task_timeout_seconds),
                memory_size=props.lambda_memory_size,
                log_retention=retention,
            ),
        )
        self.functions = self.functions_construct.functions

        self.definition = WorkflowDefinition(
            self, "Definition", self.functions,
            DefinitionProps(task_timeout=Duration.seconds(settings.task_timeout_seconds + 60)),
        )
        self.log_group = logs.LogGroup(
            self, "StateMachineLogs",
            log_group_name=Fn.join("", ["/aws/vendedlogs/states/", settings.resource_prefix, "-",
                                        Aws.STACK_NAME]),
            encryption_key=storage.key,
            retention=retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(self.definition.start),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(settings.state_machine_timeout_hours),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL,
                                include_execution_data=True),
            comment="Fine-tunes an LLM on SageMaker, evaluates it, and deploys it only if the gate passes",
        )

    def _deploy_training_code(self, training_dir: Path, storage: FineTuningStorage,
                              retention: logs.RetentionDays) -> str:
        """Upload training/ as an asset and copy it to `code/<asset hash>/` in the artifacts bucket."""
        asset = s3_assets.Asset(self, "TrainingCodeAsset", path=str(training_dir), exclude=ASSET_EXCLUDES)
        log_group = logs.LogGroup(self, "TrainingCodeDeploymentLogs", encryption_key=storage.key,
                                  retention=retention, removal_policy=RemovalPolicy.RETAIN)
        prefix = f"{CODE_PREFIX}{asset.asset_hash}/"
        s3_deployment.BucketDeployment(
            self, "TrainingCode",
            sources=[s3_deployment.Source.bucket(asset.bucket, asset.s3_object_key)],
            destination_bucket=storage.artifacts_bucket,
            destination_key_prefix=prefix,
            prune=False,
            retain_on_delete=True,
            memory_limit=512,
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
