"""Resolve a synthesized CloudFormation template against an emulated account.

CloudFormation would turn `Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, `Fn::FindInMap`, conditions and
the pseudo parameters into the names and ARNs of the resources it created. Local mode does the same
with the names it gives the emulated resources, so the state machine definition and the Lambda
environment it runs are the template's own, value for value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the property disappears
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template uses something local mode cannot resolve; names the resource and the construct."""


@dataclass
class Physical:
    """What CloudFormation would know about one created resource: its Ref value and attributes."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)
    name: str = ""


# Ref value and attributes per type, from the CloudFormation reference ("Return values").
def physical_for(resource_type: str, name: str, region: str, account: str, partition: str = "aws") -> Physical:
    physical = _physical_for(resource_type, name, region, account, partition)
    physical.name = name
    return physical


def _physical_for(resource_type: str, name: str, region: str, account: str, partition: str) -> Physical:
    arn = lambda service, resource: f"arn:{partition}:{service}:{region}:{account}:{resource}"  # noqa: E731
    if resource_type == "AWS::S3::Bucket":
        return Physical(
            name,
            {
                "Arn": f"arn:{partition}:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
                "WebsiteURL": f"http://{name}.s3-website-{region}.amazonaws.com",
            },
        )
    if resource_type == "AWS::IAM::Role":
        return Physical(
            name, {"Arn": f"arn:{partition}:iam::{account}:role/{name}", "RoleId": f"AROA{name[:16].upper()}"}
        )
    if resource_type == "AWS::IAM::ManagedPolicy":
        policy_arn = f"arn:{partition}:iam::{account}:policy/{name}"
        return Physical(policy_arn, {"PolicyArn": policy_arn})
    if resource_type == "AWS::Lambda::Function":
        return Physical(name, {"Arn": arn("lambda", f"function:{name}")})
    if resource_type == "AWS::SNS::Topic":
        topic_arn = arn("sns", name)
        return Physical(topic_arn, {"TopicArn": topic_arn, "TopicName": name})
    if resource_type == "AWS::SQS::Queue":
        return Physical(
            f"https://sqs.{region}.amazonaws.com/{account}/{name}",
            {
                "Arn": arn("sqs", name),
                "QueueName": name,
                "QueueUrl": f"https://sqs.{region}.amazonaws.com/{account}/{name}",
            },
        )
    if resource_type == "AWS::StepFunctions::StateMachine":
        machine_arn = arn("states", f"stateMachine:{name}")
        return Physical(machine_arn, {"Arn": machine_arn, "Name": name})
    if resource_type == "AWS::Logs::LogGroup":
        return Physical(name, {"Arn": arn("logs", f"log-group:{name}:*")})
    if resource_type == "AWS::SageMaker::ModelPackageGroup":
        group_arn = arn("sagemaker", f"model-package-group/{name.lower()}")
        return Physical(group_arn, {"ModelPackageGroupArn": group_arn, "ModelPackageGroupName": name})
    if resource_type == "AWS::Events::Rule":
        return Physical(name, {"Arn": arn("events", f"rule/{name}")})
    if resource_type == "AWS::SecretsManager::Secret":
        return Physical(arn("secretsmanager", f"secret:{name}"), {})
    if resource_type == "AWS::KMS::Alias":
        return Physical(name, {})
    return Physical(name, {})


# The property that names a resource, where the template may set it.
NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::Events::Rule": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::KMS::Alias": "AliasName",
}
NAME_LIMITS = {
    "AWS::S3::Bucket": 63,
    "AWS::IAM::Role": 64,
    "AWS::Lambda::Function": 64,
    "AWS::SNS::Topic": 256,
    "AWS::StepFunctions::StateMachine": 80,
    "AWS::SageMaker::ModelPackageGroup": 63,
}


def generated_name(stack_name: str, logical_id: str, resource_type: str) -> str:
    """A name in CloudFormation's style (`<stack>-<logical id>`), shortened to the type's limit."""
    limit = NAME_LIMITS.get(resource_type, 64)
    name = f"{stack_name}-{logical_id}"
    if resource_type == "AWS::S3::Bucket":
        name = re.sub(r"[^a-z0-9.-]", "-", name.lower())
    if resource_type == "AWS::SageMaker::ModelPackageGroup":
        name = re.sub(r"[^a-zA-Z0-9-]", "-", name)
    return name[:limit].rstrip("-.")


class Resolver:
    """Evaluates the template's intrinsic functions with the emulated resources' names."""

    def __init__(
        self,
        template: dict,
        physical: dict[str, Physical],
        region: str,
        account: str,
        stack_name: str,
        partition: str = "aws",
        parameters: dict[str, str] | None = None,
    ):
        self.template = template
        self.physical = physical
        self.region = region
        self.account = account
        self.partition = partition
        self.stack_name = stack_name
        self.parameters = dict(parameters or {})
        for name, spec in (template.get("Parameters") or {}).items():
            if name not in self.parameters and "Default" in spec:
                self.parameters[name] = spec["Default"]
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account}:stack/{stack_name}/local",
            "AWS::NotificationARNs": [],
        }
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any, where: str = "") -> Any:
        if isinstance(value, list):
            items = [self.resolve(item, where) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument, where)
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument, where)
        resolved = {k: self.resolve(v, f"{where}.{k}" if where else k) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"condition {name!r} is not defined in the template")
            self._conditions[name] = bool(self.resolve(conditions[name], f"Conditions.{name}"))
        return self._conditions[name]

    def _ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name].ref
        raise TemplateError(f"{where}: Ref {name!r} names no parameter, pseudo parameter or resource")

    def _get_att(self, argument: Any, where: str) -> str:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        else:
            logical_id, attribute = argument[0], self.resolve(argument[1], where)
        physical = self.physical.get(logical_id)
        if physical is None:
            raise TemplateError(f"{where}: Fn::GetAtt names unknown resource {logical_id!r}")
        if attribute not in physical.attributes:
            resource_type = (self.template["Resources"].get(logical_id) or {}).get("Type")
            raise TemplateError(
                f"{where}: Fn::GetAtt {logical_id}.{attribute}: local mode knows the attributes "
                f"{sorted(physical.attributes)} of {resource_type}"
            )
        return physical.attributes[attribute]

    def _function(self, key: str, argument: Any, where: str) -> Any:
        if key == "Fn::GetAtt":
            return self._get_att(argument, where)
        if key == "Fn::Join":
            separator, items = argument
            return separator.join(_text(item) for item in self.resolve(items, where))
        if key == "Fn::Sub":
            return self._sub(argument, where)
        if key == "Fn::FindInMap":
            mapping, top, second = (self.resolve(item, where) for item in argument[:3])
            try:
                return self.template["Mappings"][mapping][top][second]
            except KeyError:
                if len(argument) > 3 and isinstance(argument[3], dict) and "DefaultValue" in argument[3]:
                    return self.resolve(argument[3]["DefaultValue"], where)
                raise TemplateError(
                    f"{where}: Fn::FindInMap {mapping}/{top}/{second} is not in the template's mappings"
                ) from None
        if key == "Fn::Select":
            index, items = argument
            return self.resolve(items, where)[int(self.resolve(index, where))]
        if key == "Fn::Split":
            separator, text = argument
            return self.resolve(text, where).split(separator)
        if key == "Fn::If":
            name, if_true, if_false = argument
            return self.resolve(if_true if self.condition(name) else if_false, where)
        if key == "Fn::Equals":
            left, right = (self.resolve(item, where) for item in argument)
            return left == right
        if key == "Fn::Not":
            return not self.resolve(argument[0], where)
        if key == "Fn::And":
            return all(self.resolve(item, where) for item in argument)
        if key == "Fn::Or":
            return any(self.resolve(item, where) for item in argument)
        if key == "Fn::Base64":
            import base64

            return base64.b64encode(self.resolve(argument, where).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{self.region}{zone}" for zone in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(argument, where), separators=(",", ":"))
        raise TemplateError(f"{where}: {key} is not supported by local mode")

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v, where) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match) -> str:
            name = match.group(1).strip()
            if name in variables:
                return _text(variables[name])
            if "." in name and name.split(".", 1)[0] in self.physical:
                return self._get_att(name, where)
            return _text(self._ref(name, where))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise TemplateError(f"cannot join a non-string value {value!r:.80}")
    return str(value)
