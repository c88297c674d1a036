"""The emulated account as the IAM request mapping sees it: tags, encryption keys, ARNs.

Read straight from moto's backends (never through boto3, which would be checked again).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MotoAccountView:
    account: str
    region: str
    partition: str = "aws"

    # ---- SageMaker --------------------------------------------------------------------------
    def _sagemaker(self):
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[self.account][self.region]

    def sagemaker_tags(self, resource_type: str, name: str) -> dict[str, str] | None:
        backend = self._sagemaker()
        collections = {
            "model": backend._models,
            "endpoint": backend.endpoints,
            "endpoint-config": backend.endpoint_configs,
            "training-job": backend.training_jobs,
            "processing-job": backend.processing_jobs,
            "model-package-group": backend.model_package_groups,
        }
        if resource_type == "model-package":
            package = next(
                (
                    p
                    for p in backend.model_packages.values()
                    if p.arn.endswith("/" + name) or p.arn.endswith(":model-package/" + name)
                ),
                None,
            )
            return {tag["Key"]: tag["Value"] for tag in (getattr(package, "tags", None) or [])} if package else None
        resource = (collections.get(resource_type) or {}).get(name)
        if isinstance(resource, list):
            resource = resource[0] if resource else None
        if resource is None:
            return None
        return {tag["Key"]: tag["Value"] for tag in (getattr(resource, "tags", None) or [])}

    def next_model_package_version(self, group: str) -> int:
        return 1 + sum(
            1 for package in self._sagemaker().model_packages.values() if package.model_package_group_name == group
        )

    # ---- S3 ---------------------------------------------------------------------------------
    def _s3(self):
        from moto.s3.models import s3_backends

        return s3_backends[self.account][self.partition]

    def bucket_kms_key(self, bucket: str) -> str | None:
        try:
            encryption = self._s3().get_bucket(bucket).encryption
        except Exception:
            return None
        for rule in _as_list((encryption or {}).get("Rule")):
            default = rule.get("ApplyServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
                return self.key_arn(default.get("KMSMasterKeyID") or "alias/aws/s3")
        return None

    def object_kms_key(self, bucket: str, key: str) -> str | None:
        try:
            stored = self._s3().get_object(bucket, key)
        except Exception:
            stored = None
        if stored is not None and stored.encryption is not None:
            return (
                self.key_arn(stored.kms_key_id)
                if stored.encryption.startswith("aws:kms") and stored.kms_key_id
                else None
            )
        # Written without encryption headers: S3 applied the bucket's default encryption.
        return self.bucket_kms_key(bucket)

    # ---- SNS, KMS, Secrets Manager, Lambda -------------------------------------------------
    def topic_kms_key(self, topic_arn: str) -> str | None:
        from moto.sns.models import sns_backends

        topic = sns_backends[self.account][self.region].topics.get(topic_arn)
        key = getattr(topic, "kms_master_key_id", "") if topic else ""
        return self.key_arn(key) if key else None

    def queue_kms_key(self, queue_arn: str) -> str | None:
        from moto.sqs.models import sqs_backends

        name = queue_arn.rsplit(":", 1)[-1]
        queue = sqs_backends[self.account][self.region].queues.get(name)
        key = getattr(queue, "kms_master_key_id", None) if queue is not None else None
        if not key or key == "alias/aws/sqs":
            return None  # SQS-managed encryption or the AWS managed key: no customer key policy to pass
        return self.key_arn(key)

    def key_arn(self, key_id: str) -> str:
        if key_id.startswith("arn:") and ":key/" in key_id:
            return key_id
        from moto.kms.models import kms_backends

        backend = kms_backends[self.account][self.region]
        name = key_id.split(":", 5)[-1] if key_id.startswith("arn:") else key_id
        if name.startswith("alias/"):
            target = backend.get_key_id_from_alias(name)
            if target:
                return f"arn:{self.partition}:kms:{self.region}:{self.account}:key/{target}"
            return f"arn:{self.partition}:kms:{self.region}:{self.account}:{name}"
        return f"arn:{self.partition}:kms:{self.region}:{self.account}:key/{name}"

    def _secret(self, secret_id: str):
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[self.account][self.region]
        try:
            return backend.secrets[secret_id]
        except KeyError:
            return None

    def secret_arn(self, secret_id: str) -> str:
        secret = self._secret(secret_id)
        if secret is not None:
            return secret.arn
        if secret_id.startswith("arn:"):
            return secret_id
        return f"arn:{self.partition}:secretsmanager:{self.region}:{self.account}:secret:{secret_id}"

    def secret_kms_key(self, secret_id: str) -> str | None:
        secret = self._secret(secret_id)
        key = getattr(secret, "kms_key_id", None) if secret is not None else None
        if not key or key == "alias/aws/secretsmanager":
            return None  # the AWS managed key: its policy allows every principal of the account
        return self.key_arn(key)

    def function_arn(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{name_or_arn}"


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
