"""The dead-letter queue of the functions invoked asynchronously, and what their roles need to use it.

An event whose asynchronous invocation still fails after Lambda's retries is dropped unless the
function has a dead-letter queue; Lambda then sends it there as the function's role. The queue is
encrypted with the stack's key, so that role also needs the key, through SQS only.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# SQS's longest retention: two weeks to look at a failed event and replay it.
RETENTION = Duration.days(14)


def dead_letter_queue(scope: Construct, construct_id: str, key: kms.IKey) -> sqs.Queue:
    """An SQS queue encrypted with `key`, refusing requests without TLS, keeping messages 14 days."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=RETENTION,
        removal_policy=RemovalPolicy.RETAIN,
    )


def grant_dead_letter_key(role: iam.IGrantable, key: kms.IKey) -> None:
    """The key actions SendMessage to a KMS-encrypted queue needs, only when SQS makes them.

    (`sqs:SendMessage` itself is granted by the CDK when the function names the queue.)
    """
    iam.Grant.add_to_principal(
        grantee=role,
        actions=["kms:GenerateDataKey", "kms:Decrypt"],
        resource_arns=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"sqs.{Aws.REGION}.amazonaws.com"}},
    )
