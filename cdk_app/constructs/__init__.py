"""Reusable constructs of the fine-tuning pipeline (see docs/constructs.md)."""

from cdk_app.constructs.images import ContainerImages
from cdk_app.constructs.notification import NotificationTopic, NotificationTopicProps
from cdk_app.constructs.pipeline import FineTuningPipeline, FineTuningPipelineProps
from cdk_app.constructs.sagemaker_role import SageMakerExecutionRole, SageMakerRoleProps
from cdk_app.constructs.storage import FineTuningStorage, StorageProps
from cdk_app.constructs.workflow import FineTuningWorkflow, FineTuningWorkflowProps

__all__ = [
    "ContainerImages",
    "FineTuningPipeline",
    "FineTuningPipelineProps",
    "FineTuningStorage",
    "FineTuningWorkflow",
    "FineTuningWorkflowProps",
    "NotificationTopic",
    "NotificationTopicProps",
    "SageMakerExecutionRole",
    "SageMakerRoleProps",
    "StorageProps",
]
