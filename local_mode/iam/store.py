"""The synthesized template's policies, resolved to the emulated account's names and ARNs.

Identity policies (inline role policies, `AWS::IAM::Policy`, customer managed policies) are kept by
role ARN; resource policies (bucket policies, the KMS key policy, topic policies, Lambda
permissions, queue policies) by the ARN of the resource they protect. AWS managed policies have no document in the
template: a role that has one is recorded, and evaluating a request of that role fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from local_mode.iam import catalog
from local_mode.iam.policy import Statement, parse_document
from local_mode.template import Resolver


class UnmodeledPolicy(RuntimeError):
    """A role's permissions include a policy whose document local mode does not have."""


@dataclass
class PolicyStore:
    identity: dict[str, list[Statement]] = field(default_factory=dict)  # role ARN -> statements
    resources: dict[str, list[Statement]] = field(default_factory=dict)  # resource ARN -> statements
    managed_policy_arns: dict[str, list[str]] = field(default_factory=dict)  # role ARN -> AWS managed policies
    role_arns: dict[str, str] = field(default_factory=dict)  # logical id -> role ARN

    def check_modeled(self, role_arn: str) -> None:
        unmodeled = self.managed_policy_arns.get(role_arn)
        if unmodeled:
            raise UnmodeledPolicy(
                f"{role_arn} has AWS managed policies {unmodeled}, whose documents are not in "
                "the template; local mode cannot evaluate its requests"
            )

    def unknown_actions(self) -> list[str]:
        """Action patterns in the stack's policies that name no action of the Service Authorization Reference."""
        unknown = set()
        for statements in list(self.identity.values()) + list(self.resources.values()):
            for statement in statements:
                for pattern in statement.actions + statement.not_actions:
                    if pattern == "*":
                        continue
                    if not catalog.actions_matching(pattern):
                        unknown.add(f"{pattern} ({statement.label})")
        return sorted(unknown)


def policy_owner(resource: str) -> str | None:
    """The ARN whose resource policy governs `resource` (a bucket for its objects, a function for its versions)."""
    if resource.startswith("arn:") and ":s3:::" in resource:
        return resource.split("/", 1)[0]
    parts = resource.split(":")
    if len(parts) >= 6 and parts[2] == "lambda" and parts[5] == "function":
        return ":".join(parts[:7])
    if len(parts) >= 6 and parts[2] in ("kms", "sns", "secretsmanager", "sqs"):
        return resource
    return None


def build_store(template: dict[str, Any], resolver: Resolver, physical: dict) -> PolicyStore:
    """Every policy of the template, resolved."""
    resources = template.get("Resources") or {}
    store = PolicyStore()
    role_by_name: dict[str, str] = {}
    managed_documents: dict[str, list[Statement]] = {}

    def resolved(logical_id: str, value: Any, where: str) -> Any:
        return resolver.resolve(value, f"Resources.{logical_id}.{where}")

    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            arn = physical[logical_id].attributes["Arn"]
            store.role_arns[logical_id] = arn
            role_by_name[physical[logical_id].name] = arn
            store.identity.setdefault(arn, [])
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            properties = resolved(logical_id, resource.get("Properties") or {}, "Properties")
            managed_documents[physical[logical_id].ref] = parse_document(properties["PolicyDocument"], logical_id)
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        if kind not in (
            "AWS::IAM::Role",
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
            "AWS::S3::BucketPolicy",
            "AWS::KMS::Key",
            "AWS::SNS::TopicPolicy",
            "AWS::SQS::QueuePolicy",
            "AWS::Lambda::Permission",
        ):
            continue
        properties = resolved(logical_id, resource.get("Properties") or {}, "Properties")
        if kind == "AWS::IAM::Role":
            arn = store.role_arns[logical_id]
            for policy in properties.get("Policies") or []:
                store.identity[arn] += parse_document(policy["PolicyDocument"], f"{logical_id}/{policy['PolicyName']}")
            for managed in properties.get("ManagedPolicyArns") or []:
                if managed in managed_documents:
                    store.identity[arn] += managed_documents[managed]
                else:
                    store.managed_policy_arns.setdefault(arn, []).append(managed)
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            statements = parse_document(properties["PolicyDocument"], logical_id)
            for role_name in properties.get("Roles") or []:
                store.identity.setdefault(role_by_name.get(role_name, role_name), []).extend(statements)
        elif kind == "AWS::S3::BucketPolicy":
            owner = f"arn:aws:s3:::{properties['Bucket']}"
            store.resources.setdefault(owner, []).extend(
                parse_document(properties["PolicyDocument"], f"bucket policy {logical_id}", resource_policy=True)
            )
        elif kind == "AWS::KMS::Key":
            owner = physical[logical_id].attributes["Arn"]
            store.resources.setdefault(owner, []).extend(
                parse_document(properties.get("KeyPolicy") or {}, f"key policy {logical_id}", resource_policy=True)
            )
        elif kind == "AWS::SNS::TopicPolicy":
            for topic in properties.get("Topics") or []:
                store.resources.setdefault(topic, []).extend(
                    parse_document(properties["PolicyDocument"], f"topic policy {logical_id}", resource_policy=True)
                )
        elif kind == "AWS::SQS::QueuePolicy":
            for queue_url in properties.get("Queues") or []:
                store.resources.setdefault(queue_arn(queue_url), []).extend(
                    parse_document(properties["PolicyDocument"], f"queue policy {logical_id}", resource_policy=True)
                )
        elif kind == "AWS::Lambda::Permission":
            function = properties["FunctionName"]
            statement = {
                "Effect": "Allow",
                "Action": properties["Action"],
                "Resource": function,
                "Principal": _permission_principal(properties["Principal"]),
            }
            conditions = {}
            if properties.get("SourceArn"):
                conditions["ArnLike"] = {"aws:SourceArn": properties["SourceArn"]}
            if properties.get("SourceAccount"):
                conditions["StringEquals"] = {"aws:SourceAccount": properties["SourceAccount"]}
            if conditions:
                statement["Condition"] = conditions
            store.resources.setdefault(policy_owner(function) or function, []).extend(
                parse_document({"Statement": [statement]}, f"permission {logical_id}", resource_policy=True)
            )
    return store


def queue_arn(queue_url: str) -> str:
    """`https://sqs.<region>.amazonaws.com/<account>/<name>` (a queue's Ref) as the queue's ARN."""
    host, account, name = queue_url.removeprefix("https://").split("/")[:3]
    region = host.split(".")[1]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _permission_principal(principal: str) -> dict:
    if principal.endswith(".amazonaws.com"):
        return {"Service": principal}
    return {"AWS": principal}
