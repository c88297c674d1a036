"""SNS topic that receives a message when a run succeeds, is rejected by the gate, or fails."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


@dataclass
class NotificationTopicProps:
    """`email`: subscribe this address (it must confirm). `topic`: bring your own topic instead."""

    email: str = ""
    topic: sns.ITopic | None = None


class NotificationTopic(Construct):
    """A KMS-encrypted topic that only accepts TLS requests."""

    def __init__(
        self, scope: Construct, construct_id: str, key: kms.IKey, props: NotificationTopicProps | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        props = props or NotificationTopicProps()
        self.key = key
        self.topic: sns.ITopic = props.topic or sns.Topic(
            self,
            "Topic",
            display_name="LLM fine-tuning runs",
            master_key=key,
            enforce_ssl=True,
        )
        if props.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(props.email))

    @property
    def topic_arn(self) -> str:
        return self.topic.topic_arn

    def grant_publish(self, grantee: iam.IGrantable) -> iam.Grant:
        """Publish to the topic, including the key permissions an encrypted topic needs."""
        self.key.grant(grantee, "kms:GenerateDataKey", "kms:Decrypt")
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sns:Publish"], resource_arns=[self.topic.topic_arn]
        )
