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


@dataclass
class _Filing:
    """What filing one resource's policies needs: the store being built and the names resolved so far."""

    store: PolicyStore
    physical: dict
    role_by_name: dict[str, str]
    managed_documents: dict[str, list[Statement]]

    def add_resource_policy(self, owner: str, document: dict, source: str) -> None:
        self.store.resources.setdefault(owner, []).extend(parse_document(document, source, resource_policy=True))


def _file_role(filing: _Filing, logical_id: str, properties: dict) -> None:
    """Inline policies and customer managed ones join the role; AWS managed ones are only recorded."""
    store = filing.store
    arn = store.role_arns[logical_id]
    for policy in properties.get("Policies") or []:
        store.identity[arn] += parse_document(policy["PolicyDocument"], f"{logical_id}/{policy['PolicyName']}")
    for managed in properties.get("ManagedPolicyArns") or []:
        if managed in filing.managed_documents:
            store.identity[arn] += filing.managed_documents[managed]
        else:
            store.managed_policy_arns.setdefault(arn, []).append(managed)


def _file_attached_policy(filing: _Filing, logical_id: str, properties: dict) -> None:
    statements = parse_document(properties["PolicyDocument"], logical_id)
    for role_name in properties.get("Roles") or []:
        filing.store.identity.setdefault(filing.role_by_name.get(role_name, role_name), []).extend(statements)


def _file_bucket_policy(filing: _Filing, logical_id: str, properties: dict) -> None:
    owner = f"arn:aws:s3:::{properties['Bucket']}"
    filing.add_resource_policy(owner, properties["PolicyDocument"], f"bucket policy {logical_id}")


def _file_key_policy(filing: _Filing, logical_id: str, properties: dict) -> None:
    owner = filing.physical[logical_id].attributes["Arn"]
    filing.add_resource_policy(owner, properties.get("KeyPolicy") or {}, f"key policy {logical_id}")


def _file_topic_policy(filing: _Filing, logical_id: str, properties: dict) -> None:
    for topic in properties.get("Topics") or []:
        filing.add_resource_policy(topic, properties["PolicyDocument"], f"topic policy {logical_id}")


def _file_queue_policy(filing: _Filing, logical_id: str, properties: dict) -> None:
    for queue_url in properties.get("Queues") or []:
        filing.add_resource_policy(queue_arn(queue_url), properties["PolicyDocument"], f"queue policy {logical_id}")


def _file_lambda_permission(filing: _Filing, logical_id: str, properties: dict) -> None:
    """A permission is a one-statement resource policy of the function, written out as AWS evaluates it."""
    function = properties["FunctionName"]
    statement = {
        "Effect": "Allow",
        "Action": properties["Action"],
        "Resource": function,
        "Principal": _permission_principal(properties["Principal"]),
    }
    conditions = _permission_conditions(properties)
    if conditions:
        statement["Condition"] = conditions
    filing.add_resource_policy(
        policy_owner(function) or function, {"Statement": [statement]}, f"permission {logical_id}"
    )


def _permission_conditions(properties: dict) -> dict:
    conditions = {}
    if properties.get("SourceArn"):
        conditions["ArnLike"] = {"aws:SourceArn": properties["SourceArn"]}
    if properties.get("SourceAccount"):
        conditions["StringEquals"] = {"aws:SourceAccount": properties["SourceAccount"]}
    return conditions


# Resource type -> how its policies are filed; other types carry no policy.
_FILERS = {
    "AWS::IAM::Role": _file_role,
    "AWS::IAM::Policy": _file_attached_policy,
    "AWS::IAM::ManagedPolicy": _file_attached_policy,
    "AWS::S3::BucketPolicy": _file_bucket_policy,
    "AWS::KMS::Key": _file_key_policy,
    "AWS::SNS::TopicPolicy": _file_topic_policy,
    "AWS::SQS::QueuePolicy": _file_queue_policy,
    "AWS::Lambda::Permission": _file_lambda_permission,
}


def _register_roles(resources: dict[str, Any], physical: dict, store: PolicyStore) -> dict[str, str]:
    """Every role gets its (possibly empty) entry first; returns role name -> ARN for `Roles` lists."""
    role_by_name: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            arn = physical[logical_id].attributes["Arn"]
            store.role_arns[logical_id] = arn
            role_by_name[physical[logical_id].name] = arn
            store.identity.setdefault(arn, [])
    return role_by_name


def _managed_documents(resources: dict[str, Any], resolver: Resolver, physical: dict) -> dict[str, list[Statement]]:
    """Customer managed policies by ARN, read before the roles that name them in ManagedPolicyArns."""
    documents: dict[str, list[Statement]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            properties = resolver.resolve(resource.get("Properties") or {}, f"Resources.{logical_id}.Properties")
            documents[physical[logical_id].ref] = parse_document(properties["PolicyDocument"], logical_id)
    return documents


def build_store(template: dict[str, Any], resolver: Resolver, physical: dict) -> PolicyStore:
    """Every policy of the template, resolved."""
    resources = template.get("Resources") or {}
    store = PolicyStore()
    role_by_name = _register_roles(resources, physical, store)
    filing = _Filing(store, physical, role_by_name, _managed_documents(resources, resolver, physical))
    for logical_id, resource in resources.items():
        filer = _FILERS.get(resource["Type"])
        if filer is None:
            continue
        properties = resolver.resolve(resource.get("Properties") or {}, f"Resources.{logical_id}.Properties")
        filer(filing, logical_id, properties)
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
