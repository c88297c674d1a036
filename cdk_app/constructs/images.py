"""Container image URIs for every region, as a CloudFormation mapping looked up by AWS::Region."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, CfnMapping, Fn
from constructs import Construct

from cdk_app.config import RegionImages, repository_name

TRAINING_IMAGE_KEY = "TrainingImageUri"
INFERENCE_IMAGE_KEY = "InferenceImageUri"
VLLM_IMAGE_KEY = "VllmImageUri"
TRAINING_ACCOUNT_KEY = "TrainingImageAccount"
INFERENCE_ACCOUNT_KEY = "InferenceImageAccount"
VLLM_ACCOUNT_KEY = "VllmImageAccount"


class ContainerImages(Construct):
    """The Hugging Face training, TGI and vLLM images, resolved per region at deploy time.

    The template stays environment-agnostic: it carries the URIs of every region the catalogue
    lists, and `Fn::FindInMap` with `AWS::Region` picks the deployment region's row.
    """

    def __init__(self, scope: Construct, construct_id: str, catalogue: Mapping[str, RegionImages]) -> None:
        super().__init__(scope, construct_id)
        if not catalogue:
            raise ValueError("catalogue: no region has both container images; check the image versions")
        self.regions = sorted(catalogue)
        self.mapping = CfnMapping(
            self,
            "Mapping",
            mapping={
                region: {
                    TRAINING_IMAGE_KEY: images.training_image_uri,
                    INFERENCE_IMAGE_KEY: images.inference_image_uri,
                    VLLM_IMAGE_KEY: images.vllm_image_uri,
                    TRAINING_ACCOUNT_KEY: images.training_account,
                    INFERENCE_ACCOUNT_KEY: images.inference_account,
                    VLLM_ACCOUNT_KEY: images.vllm_account,
                }
                for region, images in sorted(catalogue.items())
            },
        )
        first = catalogue[self.regions[0]]
        self.training_repository = repository_name(first.training_image_uri)
        self.inference_repository = repository_name(first.inference_image_uri)
        self.vllm_repository = repository_name(first.vllm_image_uri)
        self.training_image_uri = self.mapping.find_in_map(Aws.REGION, TRAINING_IMAGE_KEY)
        self.inference_image_uri = self.mapping.find_in_map(Aws.REGION, INFERENCE_IMAGE_KEY)
        self.vllm_image_uri = self.mapping.find_in_map(Aws.REGION, VLLM_IMAGE_KEY)

    @property
    def repository_arns(self) -> list[str]:
        """ECR repository ARNs of the images in the deployment region (for pull permissions)."""
        return [
            self._repository_arn(TRAINING_ACCOUNT_KEY, self.training_repository),
            self._repository_arn(INFERENCE_ACCOUNT_KEY, self.inference_repository),
            self._repository_arn(VLLM_ACCOUNT_KEY, self.vllm_repository),
        ]

    def _repository_arn(self, account_key: str, repository: str) -> str:
        return Fn.join(
            "",
            [
                "arn:",
                Aws.PARTITION,
                ":ecr:",
                Aws.REGION,
                ":",
                self.mapping.find_in_map(Aws.REGION, account_key),
                ":repository/",
                repository,
            ],
        )
