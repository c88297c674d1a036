"""The deployable stack: storage, roles, notification topic and the fine-tuning workflow."""
from __future__ import annotations

from typing import Any, Optional

from aws_cdk import Aspects, CfnOutput, Stack
from constructs import Construct

from cdk_app.config import Settings, image_catalogue
from cdk_app.constructs.images import ContainerImages
from cdk_app.constructs.nag import PipelineFindings
from cdk_app.constructs.notification import NotificationTopic, NotificationTopicProps
from cdk_app.constructs.sagemaker_role import SageMakerExecutionRole, SageMakerRoleProps
from cdk_app.constructs.storage import FineTuningStorage
from cdk_app.constructs.workflow import FineTuningWorkflow, FineTuningWorkflowProps


class FineTuningStack(Stack):
    """Everything `cdk deploy` needs to fine-tune, evaluate and serve an LLM; no account lookups."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Optional[Settings] = None,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = settings or Settings()
        self.settings = settings
        self.storage = FineTuningStorage(self, "Storage")
        self.images = ContainerImages(self, "Images", image_catalogue(settings))
        self.sagemaker_role = SageMakerExecutionRole(
            self, "SageMaker", self.storage,
            SageMakerRoleProps(image_repository_arns=self.images.repository_arns,
                               hf_token_secret_arn=settings.hf_token_secret_arn,
                               vpc_enabled=settings.vpc_enabled))
        self.notification = NotificationTopic(
            self, "Notification", self.storage.key, NotificationTopicProps(email=settings.notification_email))
        self.workflow = FineTuningWorkflow(
            self, "Workflow", storage=self.storage, sagemaker_role=self.sagemaker_role,
            notification=self.notification, images=self.images,
            props=FineTuningWorkflowProps(settings=settings))

        outputs = {
            "StateMachineArn": self.workflow.state_machine_arn,
            "ArtifactsBucketName": self.storage.artifacts_bucket.bucket_name,
            "DataBucketName": self.storage.data_bucket.bucket_name,
            "TopicArn": self.notification.topic_arn,
            "KmsKeyArn": self.storage.key.key_arn,
            "SageMakerRoleArn": self.sagemaker_role.role_arn,
            "ModelPackageGroupName": self.workflow.model_package_group_name,
            "CodeS3Uri": self.workflow.code_s3_uri,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
        Aspects.of(self).add(PipelineFindings())
