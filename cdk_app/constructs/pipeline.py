"""The whole pipeline as one construct, for platform teams that build it into their own stacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Aspects, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_app.assets import default_wheelhouse_root
from cdk_app.config import Settings, image_catalogue
from cdk_app.constructs.images import ContainerImages
from cdk_app.constructs.nag import PipelineFindings
from cdk_app.constructs.notification import NotificationTopic, NotificationTopicProps
from cdk_app.constructs.sagemaker_role import SageMakerExecutionRole, SageMakerRoleProps
from cdk_app.constructs.scanner_exemptions import ProviderExemptions
from cdk_app.constructs.storage import FineTuningStorage, StorageProps
from cdk_app.constructs.workflow import FineTuningWorkflow, FineTuningWorkflowProps
from cdk_app.contract import RUNS_PREFIX


@dataclass
class FineTuningPipelineProps:
    """Everything optional: secure defaults for what you leave out.

    `settings`: instance types, image versions, VPC, thresholds (see cdk_app/config.py).
    `storage`: bring your own KMS key and buckets. `sagemaker_role`, `topic`: bring your own.
    `acknowledge_findings`: add the cdk-nag acknowledgments and checkov skips of docs/security.md to the stack.
    `wheelhouse_root`: where the jobs' wheelhouse was built (default: cdk_app.assets.default_wheelhouse_root()).
    """

    settings: Settings = field(default_factory=Settings)
    storage: StorageProps = field(default_factory=StorageProps)
    sagemaker_role: iam.IRole | None = None
    topic: sns.ITopic | None = None
    model_package_group_name: str | None = None
    acknowledge_findings: bool = True
    wheelhouse_root: Path | None = None


class FineTuningPipeline(Construct):
    """Storage, container images, SageMaker role, notification topic and the workflow, wired together."""

    def __init__(self, scope: Construct, construct_id: str, props: FineTuningPipelineProps | None = None) -> None:
        super().__init__(scope, construct_id)
        props = props or FineTuningPipelineProps()
        settings = props.settings
        self.storage = FineTuningStorage(self, "Storage", props.storage)
        self.images = ContainerImages(self, "Images", image_catalogue(settings))
        self.sagemaker_role = SageMakerExecutionRole(
            self,
            "SageMaker",
            self.storage,
            SageMakerRoleProps(
                image_repository_arns=self.images.repository_arns,
                hf_token_secret_arn=settings.hf_token_secret_arn,
                input_bucket_names=settings.input_bucket_names,
                vpc_enabled=settings.vpc_enabled,
                role=props.sagemaker_role,
            ),
        )
        self.notification = NotificationTopic(
            self,
            "Notification",
            self.storage.key,
            NotificationTopicProps(email=settings.notification_email, topic=props.topic),
        )
        self.workflow = FineTuningWorkflow(
            self,
            "Workflow",
            storage=self.storage,
            sagemaker_role=self.sagemaker_role,
            notification=self.notification,
            images=self.images,
            props=FineTuningWorkflowProps(
                settings=settings,
                model_package_group_name=props.model_package_group_name,
                wheelhouse_root=props.wheelhouse_root or default_wheelhouse_root(),
            ),
        )
        if props.acknowledge_findings:
            # On the stack: the CDK places the BucketDeployment provider at the stack's root.
            Aspects.of(Stack.of(self)).add(PipelineFindings(self.node.path))
            Aspects.of(Stack.of(self)).add(ProviderExemptions())

    @property
    def state_machine_arn(self) -> str:
        return self.workflow.state_machine_arn

    def grant_start_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start executions and read their results."""
        return self.workflow.grant_start_execution(grantee)

    def grant_read_data(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.storage.grant_read_data(grantee)

    def grant_read_artifacts(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read models, metrics and reports of every run."""
        return self.storage.grant_read_artifacts(grantee, RUNS_PREFIX + "*")
