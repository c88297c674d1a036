"""The IAM role that SageMaker jobs and endpoints run as, scoped to this pipeline's resources."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_app.constructs.storage import CODE_PREFIX, FineTuningStorage
from cdk_app.contract import RUNS_PREFIX


@dataclass
class SageMakerRoleProps:
    """What the role may reach.

    `image_repository_arns`: ECR repositories of the container images (pull only).
    `hf_token_secret_arn`: the Hugging Face token secret the containers read, when one is used.
    `vpc_enabled`: grants the network-interface permissions SageMaker needs to join your subnets.
    `input_bucket_names`: other buckets whose objects jobs may read (data sets, base models).
    `role`: bring your own role; the construct adds the same scoped policies to it.
    """

    image_repository_arns: Sequence[str] = field(default_factory=list)
    hf_token_secret_arn: str = ""
    input_bucket_names: Sequence[str] = field(default_factory=list)
    vpc_enabled: bool = False
    role: iam.IRole | None = None


class SageMakerExecutionRole(Construct):
    """Execution role for processing jobs, training jobs and endpoints; no managed policies."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        storage: FineTuningStorage,
        props: SageMakerRoleProps | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        props = props or SageMakerRoleProps()
        self.role: iam.IRole = props.role or iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="Runs the fine-tuning pipeline's SageMaker jobs and endpoints",
        )
        policy = iam.Policy(self, "Policy")
        storage.grant_read_data(self.role)
        storage.grant_read_artifacts(self.role, CODE_PREFIX + "*")
        storage.grant_read_write_artifacts(self.role, RUNS_PREFIX + "*")
        # Encrypted ML storage volumes: SageMaker creates grants on the key for its own resources only.
        policy.add_statements(
            iam.PolicyStatement(
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[storage.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        stack = Stack.of(self)
        policy.add_statements(
            iam.PolicyStatement(
                sid="JobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        )
        if props.image_repository_arns:
            policy.add_statements(
                iam.PolicyStatement(
                    sid="PullImages",
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    resources=list(props.image_repository_arns),
                )
            )
        for bucket in props.input_bucket_names:
            policy.add_statements(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}/*"]),
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}"]),
            )
        if props.hf_token_secret_arn:
            policy.add_statements(
                iam.PolicyStatement(
                    sid="ReadHuggingFaceToken",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[props.hf_token_secret_arn],
                )
            )
        if props.vpc_enabled:
            policy.add_statements(
                iam.PolicyStatement(
                    sid="JobNetworkInterfaces",
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                    ],
                    resources=["*"],
                )
            )
        policy.attach_to_role(self.role)
        self.policy = policy

    @property
    def role_arn(self) -> str:
        return self.role.role_arn

    def grant_pass_role(self, grantee: iam.IGrantable) -> iam.Grant:
        """iam:PassRole for this role, only to SageMaker."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["iam:PassRole"],
            resource_arns=[self.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
