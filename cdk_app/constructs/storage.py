"""KMS key and S3 buckets for data sets, run artifacts and server access logs."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_app.constructs.scanner_exemptions import exempt
from cdk_app.contract import RUNS_PREFIX

CODE_PREFIX = "code/"


@dataclass
class StorageProps:
    """Bring your own key or buckets, or let the construct create secure ones.

    A bucket you bring keeps its own settings (encryption, logging, policies); the construct only
    grants access to it. `encryption_key` must be the key the buckets you bring are encrypted with.
    """

    encryption_key: kms.IKey | None = None
    data_bucket: s3.IBucket | None = None
    artifacts_bucket: s3.IBucket | None = None
    access_log_bucket: s3.IBucket | None = None
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    # Older object versions expire after this many days (None keeps them forever).
    noncurrent_version_expiration_days: int | None = 365


class FineTuningStorage(Construct):
    """A rotating KMS key, and data, artifacts and access-log buckets with secure defaults.

    Created buckets block public access, enforce TLS, are versioned, log to the access-log bucket
    and are encrypted with the key (the access-log bucket uses S3-managed keys, which server access
    logging requires). Everything is retained when the stack is deleted.
    """

    def __init__(self, scope: Construct, construct_id: str, props: StorageProps | None = None) -> None:
        super().__init__(scope, construct_id)
        props = props or StorageProps()
        self.key: kms.IKey = props.encryption_key or kms.Key(
            self,
            "Key",
            description="Encrypts fine-tuning data, artifacts, SageMaker volumes, logs and notifications",
            enable_key_rotation=True,
            removal_policy=props.removal_policy,
        )
        self._allow_cloudwatch_logs(self.key)
        self.access_log_bucket: s3.IBucket = props.access_log_bucket or s3.Bucket(
            self,
            "AccessLogBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            # Object ownership left to the CDK: it depends on whether log delivery uses a bucket
            # policy (the recommended feature flag) or an ACL.
            removal_policy=props.removal_policy,
            lifecycle_rules=self._lifecycle(props),
        )
        if props.access_log_bucket is None:
            exempt(self.access_log_bucket, "CKV_AWS_18")
        self.data_bucket: s3.IBucket = props.data_bucket or self._bucket("DataBucket", "data/", props)
        self.artifacts_bucket: s3.IBucket = props.artifacts_bucket or self._bucket(
            "ArtifactsBucket", "artifacts/", props
        )

    def _allow_cloudwatch_logs(self, key: kms.IKey) -> None:
        """Let CloudWatch Logs encrypt this account's log groups in this region with the key.

        A no-op for an imported key: its own key policy must allow this.
        """
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": Stack.of(self).format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            ),
            allow_no_op=True,
        )

    def _bucket(self, construct_id: str, log_prefix: str, props: StorageProps) -> s3.Bucket:
        return s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix=log_prefix,
            removal_policy=props.removal_policy,
            lifecycle_rules=self._lifecycle(props),
        )

    @staticmethod
    def _lifecycle(props: StorageProps) -> list[s3.LifecycleRule]:
        rule = s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))
        if props.noncurrent_version_expiration_days is None:
            return [rule]
        return [
            rule,
            s3.LifecycleRule(noncurrent_version_expiration=Duration.days(props.noncurrent_version_expiration_days)),
        ]

    def grant_read_data(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the data sets (and decrypt them)."""
        return self._grant(grantee, self.data_bucket, "*", write=False)

    def grant_read_artifacts(self, grantee: iam.IGrantable, prefix: str = "*") -> iam.Grant:
        """Read run artifacts and training code, optionally only under `prefix` (e.g. `runs/*`)."""
        return self._grant(grantee, self.artifacts_bucket, prefix, write=False)

    def grant_read_write_artifacts(self, grantee: iam.IGrantable, prefix: str = RUNS_PREFIX + "*") -> iam.Grant:
        """Read and write run artifacts under `prefix` (by default only `runs/*`, never the code).

        No delete: runs never overwrite or remove each other's artifacts.
        """
        return self._grant(grantee, self.artifacts_bucket, prefix, write=True)

    def grant_list_artifacts(self, grantee: iam.IGrantable, prefix: str = RUNS_PREFIX + "*") -> iam.Grant:
        """List object keys and sizes under `prefix`, without reading them."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket"],
            resource_arns=[self.artifacts_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [prefix]}},
        )

    def _grant(self, grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str, write: bool) -> iam.Grant:
        """Exact S3 and KMS actions (no `s3:Get*`-style wildcards) on the bucket and object prefix."""
        object_actions = ["s3:GetObject"] + (["s3:PutObject", "s3:AbortMultipartUpload"] if write else [])
        key_actions = ["kms:Decrypt"] + (["kms:GenerateDataKey", "kms:Encrypt"] if write else [])
        list_conditions = None if prefix == "*" else {"StringLike": {"s3:prefix": [prefix]}}
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=object_actions, resource_arns=[bucket.arn_for_objects(prefix)]
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:ListBucket"], resource_arns=[bucket.bucket_arn], conditions=list_conditions
        )
        iam.Grant.add_to_principal(grantee=grantee, actions=key_actions, resource_arns=[self.key.key_arn])
        return grant
