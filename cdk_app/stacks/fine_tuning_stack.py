"""The deployable stack: the fine-tuning pipeline and the outputs operators and local mode read."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk_app.config import Settings
from cdk_app.constructs.pipeline import FineTuningPipeline, FineTuningPipelineProps


class FineTuningStack(Stack):
    """Everything `cdk deploy` needs to fine-tune, evaluate and serve an LLM; no account lookups."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings or Settings()
        self.pipeline = FineTuningPipeline(self, "Pipeline", FineTuningPipelineProps(settings=self.settings))
        pipeline = self.pipeline
        outputs = {
            "StateMachineArn": pipeline.workflow.state_machine_arn,
            "ArtifactsBucketName": pipeline.storage.artifacts_bucket.bucket_name,
            "DataBucketName": pipeline.storage.data_bucket.bucket_name,
            "TopicArn": pipeline.notification.topic_arn,
            "KmsKeyArn": pipeline.storage.key.key_arn,
            "SageMakerRoleArn": pipeline.sagemaker_role.role_arn,
            "ModelPackageGroupName": pipeline.workflow.model_package_group_name,
            "CodeS3Uri": pipeline.workflow.code_s3_uri,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
