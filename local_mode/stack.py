"""Deploy the synthesized stack into the emulated account: what `cdk deploy` does, offline.

The resources the workflow touches are created in moto under CloudFormation-style names (buckets,
KMS keys, IAM roles, SNS topics, log groups, the model package group, the Lambda functions with the
template's handler, role and resolved environment, the state machine with the resolved definition),
and the training code is copied to the prefix the stack's BucketDeployment names. Everything else
in the template (policies, permissions, alarms, custom-resource plumbing) is listed as not emulated.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from cdk_app.assets import lambda_code_dir, training_code_dir
from local_mode.s3_transfer import upload_folder
from local_mode.template import NAME_PROPERTIES, Physical, Resolver, TemplateError, generated_name, physical_for

REPO_ROOT = Path(__file__).resolve().parent.parent
EMULATED_TYPES = {
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::IAM::Role",
    "AWS::SNS::Topic",
    "AWS::Logs::LogGroup",
    "AWS::SageMaker::ModelPackageGroup",
    "AWS::Lambda::Function",
    "AWS::StepFunctions::StateMachine",
    "AWS::SQS::Queue",
    "Custom::CDKBucketDeployment",
    "AWS::Events::Rule",
    # Enforced by local mode's IAM (local_mode/iam/store.py) rather than created in moto.
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::Lambda::Permission",
}
_IGNORED_FILES = ("__pycache__", ".pyc", ".pytest_cache")


@dataclass
class FunctionInfo:
    logical_id: str
    name: str
    handler: str
    environment: dict[str, str]
    role_arn: str = ""
    log_group: str | None = None  # LoggingConfig.LogGroup; Lambda's default is /aws/lambda/<name>
    tracing: bool = False  # TracingConfig.Mode Active
    kms_key_arn: str | None = None  # KmsKeyArn: the customer key of its environment (else Lambda's own)
    dead_letter_arn: str | None = None  # DeadLetterConfig.TargetArn: where failed asynchronous events go


@dataclass
class RuleInfo:
    """An EventBridge rule: its pattern and the functions it invokes (local mode delivers the events)."""

    name: str
    arn: str
    pattern: dict
    function_arns: list[str]


@dataclass
class DeployedStack:
    stack_name: str
    region: str
    account: str
    physical: dict[str, Physical]
    outputs: dict[str, str]
    functions: dict[str, FunctionInfo]
    state_machine_arn: str
    state_machine_role_arn: str = ""
    state_machine_tracing: bool = False
    state_machine_logging: bool = False
    code_uris: list[str] = field(default_factory=list)
    not_emulated: list[str] = field(default_factory=list)
    resolver: Resolver | None = None
    rules: list[RuleInfo] = field(default_factory=list)

    @property
    def function_arns(self) -> dict[str, str]:
        return {info.name: self.physical[info.logical_id].attributes["Arn"] for info in self.functions.values()}

    def output(self, name: str) -> str:
        if name not in self.outputs:
            raise TemplateError(f"the stack has no output {name!r}; outputs: {sorted(self.outputs)}")
        return self.outputs[name]


@dataclass
class _Deployment:
    """What creating one resource needs, and what the created resources add up to."""

    clients: _Clients
    physical: dict[str, Physical]
    region: str
    training_dir: Path
    lambdas_dir: Path
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    code_uris: list[str] = field(default_factory=list)
    state_machines: list[tuple[str, dict]] = field(default_factory=list)  # (ARN, resolved properties)
    rules: list[RuleInfo] = field(default_factory=list)


def _create_role(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    deployment.clients.iam.create_role(
        RoleName=name,
        Path=properties.get("Path", "/"),
        AssumeRolePolicyDocument=json.dumps(properties.get("AssumeRolePolicyDocument", {})),
    )


def _create_bucket_resource(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    _create_bucket(deployment.clients.s3, name, deployment.region, properties)


def _create_topic(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    attributes = {"KmsMasterKeyId": properties["KmsMasterKeyId"]} if properties.get("KmsMasterKeyId") else {}
    deployment.clients.sns.create_topic(
        Name=deployment.physical[logical_id].attributes["TopicName"], Attributes=attributes
    )


def _create_queue(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    deployment.clients.sqs.create_queue(
        QueueName=deployment.physical[logical_id].attributes["QueueName"], Attributes=_queue_attributes(properties)
    )


def _create_log_group(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    deployment.clients.logs.create_log_group(logGroupName=name)


def _create_model_package_group(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    deployment.clients.sagemaker.create_model_package_group(
        ModelPackageGroupName=deployment.physical[logical_id].attributes["ModelPackageGroupName"],
        ModelPackageGroupDescription=properties.get("ModelPackageGroupDescription", "")[:1024],
    )


def _create_function_resource(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    deployment.functions[logical_id] = _create_function(
        deployment.clients.lambda_, logical_id, name, properties, deployment.lambdas_dir
    )


def _deploy_code(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    """The CDK bucket deployment of the training code: the local training folder is uploaded instead."""
    prefix = properties.get("DestinationBucketKeyPrefix", "")
    uri = f"s3://{properties['DestinationBucketName']}/{prefix}"
    _upload_code(deployment.clients.s3, deployment.training_dir, uri)
    deployment.code_uris.append(uri)


def _create_state_machine_resource(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    deployment.state_machines.append((_create_state_machine(deployment.clients.sfn, name, properties), properties))


def _create_rule_resource(deployment: _Deployment, logical_id: str, name: str, properties: dict) -> None:
    arn = deployment.physical[logical_id].attributes["Arn"]
    deployment.rules.append(_create_rule(deployment.clients.events, name, arn, properties))


# Resource type -> how it is created, in the order of creation: a resource only refers to ones before it.
_CREATORS = {
    "AWS::IAM::Role": _create_role,
    "AWS::S3::Bucket": _create_bucket_resource,
    "AWS::SNS::Topic": _create_topic,
    "AWS::SQS::Queue": _create_queue,
    "AWS::Logs::LogGroup": _create_log_group,
    "AWS::SageMaker::ModelPackageGroup": _create_model_package_group,
    "AWS::Lambda::Function": _create_function_resource,
    "Custom::CDKBucketDeployment": _deploy_code,
    "AWS::StepFunctions::StateMachine": _create_state_machine_resource,
    "AWS::Events::Rule": _create_rule_resource,
}


def _create_resources(deployment: _Deployment, resources: dict, resolver: Resolver) -> None:
    """Type by type in creation order; a resource whose Condition is false is skipped."""
    for resource_type, create in _CREATORS.items():
        for logical_id, resource in resources.items():
            if resource["Type"] != resource_type or not _condition_holds(resolver, resource):
                continue
            properties = resolver.resolve(resource.get("Properties") or {}, f"Resources.{logical_id}.Properties")
            create(deployment, logical_id, deployment.physical[logical_id].name, properties)


def _resolved_outputs(template: dict, resolver: Resolver) -> dict:
    outputs = {}
    for output_name, output in (template.get("Outputs") or {}).items():
        if _condition_holds(resolver, output):
            outputs[output_name] = resolver.resolve(output["Value"], f"Outputs.{output_name}")
    return outputs


def deploy(
    template: dict,
    stack_name: str,
    region: str,
    training_dir: Path | None = None,
    lambdas_dir: Path | None = None,
) -> DeployedStack:
    """Create the template's resources in the (already started) emulated account."""
    training_dir = training_dir or training_code_dir()
    lambdas_dir = lambdas_dir or lambda_code_dir()
    account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    resources = template.get("Resources") or {}
    physical = _name_resources(template, stack_name, region, account)
    resolver = Resolver(template, physical, region, account, stack_name)
    not_emulated = sorted({r["Type"] for r in resources.values() if r["Type"] not in EMULATED_TYPES})
    deployment = _Deployment(_Clients(region), physical, region, training_dir, lambdas_dir)
    _create_resources(deployment, resources, resolver)
    if len(deployment.state_machines) != 1:
        raise TemplateError(f"expected one state machine in the template, found {len(deployment.state_machines)}")
    outputs = _resolved_outputs(template, resolver)
    machine_arn, machine = deployment.state_machines[0]
    return DeployedStack(
        stack_name=stack_name,
        region=region,
        account=account,
        physical=physical,
        outputs=outputs,
        functions=deployment.functions,
        state_machine_arn=machine_arn,
        code_uris=deployment.code_uris,
        not_emulated=not_emulated,
        state_machine_role_arn=machine.get("RoleArn", ""),
        state_machine_tracing=bool((machine.get("TracingConfiguration") or {}).get("Enabled")),
        state_machine_logging=bool(machine.get("LoggingConfiguration")),
        resolver=resolver,
        rules=deployment.rules,
    )


class _Clients:
    def __init__(self, region: str):
        self.iam = boto3.client("iam", region_name=region)
        self.s3 = boto3.client("s3", region_name=region)
        self.sns = boto3.client("sns", region_name=region)
        self.sqs = boto3.client("sqs", region_name=region)
        self.logs = boto3.client("logs", region_name=region)
        self.sagemaker = boto3.client("sagemaker", region_name=region)
        self.lambda_ = boto3.client("lambda", region_name=region)
        self.sfn = boto3.client("stepfunctions", region_name=region)
        self.kms = boto3.client("kms", region_name=region)
        self.events = boto3.client("events", region_name=region)


def _condition_holds(resolver: Resolver, item: dict) -> bool:
    return "Condition" not in item or resolver.condition(item["Condition"])


def _name_resources(template: dict, stack_name: str, region: str, account: str) -> dict[str, Physical]:
    """Physical names: the template's own name property where it sets one, else `<stack>-<logical id>`."""
    resources = template.get("Resources") or {}
    physical: dict[str, Physical] = {}
    kms = boto3.client("kms", region_name=region)
    for logical_id, resource in resources.items():
        resource_type = resource["Type"]
        if resource_type == "AWS::KMS::Key":
            key = kms.create_key(Description=f"{stack_name}/{logical_id}")["KeyMetadata"]
            physical[logical_id] = Physical(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]}, key["KeyId"])
        else:
            physical[logical_id] = physical_for(
                resource_type, generated_name(stack_name, logical_id, resource_type), region, account
            )
    resolver = Resolver(template, physical, region, account, stack_name)
    for logical_id, resource in resources.items():
        name_property = NAME_PROPERTIES.get(resource["Type"])
        given = (resource.get("Properties") or {}).get(name_property) if name_property else None
        if given is None:
            continue
        try:
            name = resolver.resolve(given, f"Resources.{logical_id}.Properties.{name_property}")
        except TemplateError:
            continue
        if isinstance(name, str) and name:
            physical[logical_id] = physical_for(resource["Type"], name, region, account)
    return physical


def _create_bucket(s3: Any, name: str, region: str, properties: dict) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    if (properties.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    rules = (properties.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
    if rules:
        # Default encryption decides which key S3 uses for every object written, and so what KMS checks.
        s3.put_bucket_encryption(
            Bucket=name, ServerSideEncryptionConfiguration={"Rules": [_encryption_rule(r) for r in rules]}
        )


def _queue_attributes(properties: dict) -> dict[str, str]:
    """The queue's key and retention, as CreateQueue takes them (the key decides what SendMessage checks)."""
    names = ("KmsMasterKeyId", "MessageRetentionPeriod", "VisibilityTimeout", "KmsDataKeyReusePeriodSeconds")
    return {name: str(properties[name]) for name in names if name in properties}


def _encryption_rule(rule: dict) -> dict:
    """A template's ServerSideEncryptionRule in the shape PutBucketEncryption takes."""
    default = rule["ServerSideEncryptionByDefault"]
    converted: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": default["SSEAlgorithm"]}}
    if default.get("KMSMasterKeyID"):
        converted["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default["KMSMasterKeyID"]
    if "BucketKeyEnabled" in rule:
        converted["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
    return converted


def _code_zip(lambdas_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(lambdas_dir.rglob("*.py")) + sorted(lambdas_dir.rglob("*.json")):
            if not any(part in str(path) for part in _IGNORED_FILES):
                archive.write(path, path.relative_to(lambdas_dir).as_posix())
    return buffer.getvalue()


def _create_function(client: Any, logical_id: str, name: str, properties: dict, lambdas_dir: Path) -> FunctionInfo:
    environment = {str(k): str(v) for k, v in ((properties.get("Environment") or {}).get("Variables") or {}).items()}
    handler = properties.get("Handler") or "index.handler"
    options: dict[str, Any] = {}
    if properties.get("KmsKeyArn"):
        options["KMSKeyArn"] = properties["KmsKeyArn"]
    dead_letter_arn = (properties.get("DeadLetterConfig") or {}).get("TargetArn")
    if dead_letter_arn:
        options["DeadLetterConfig"] = {"TargetArn": dead_letter_arn}
    client.create_function(
        FunctionName=name,
        Runtime=properties.get("Runtime") or "python3.12",
        Role=properties["Role"],
        Handler=handler,
        Code={"ZipFile": _code_zip(lambdas_dir)},
        Timeout=int(properties.get("Timeout", 3)),
        MemorySize=int(properties.get("MemorySize", 128)),
        Environment={"Variables": environment},
        Description=str(properties.get("Description", ""))[:256],
        **options,
    )
    return FunctionInfo(
        logical_id=logical_id,
        name=name,
        handler=handler,
        environment=environment,
        role_arn=properties["Role"],
        log_group=(properties.get("LoggingConfig") or {}).get("LogGroup"),
        tracing=(properties.get("TracingConfig") or {}).get("Mode") == "Active",
        kms_key_arn=properties.get("KmsKeyArn") or None,
        dead_letter_arn=dead_letter_arn,
    )


def _upload_code(s3: Any, training_dir: Path, uri: str) -> None:
    files = [
        p
        for p in sorted(training_dir.rglob("*"))
        if p.is_file() and not any(part in p.parts or p.name.endswith(part) for part in _IGNORED_FILES)
    ]
    upload_folder(s3, training_dir, uri, only=files)


def _create_rule(client: Any, name: str, arn: str, properties: dict) -> RuleInfo:
    pattern = properties.get("EventPattern") or {}
    client.put_rule(
        Name=name,
        EventPattern=json.dumps(pattern),
        State=properties.get("State", "ENABLED"),
        Description=str(properties.get("Description", ""))[:512],
    )
    targets = [{"Id": target["Id"], "Arn": target["Arn"]} for target in properties.get("Targets") or []]
    if targets:
        client.put_targets(Rule=name, Targets=targets)
    functions = [target["Arn"] for target in targets if ":lambda:" in target["Arn"]]
    return RuleInfo(name=name, arn=arn, pattern=pattern, function_arns=functions)


def _create_state_machine(client: Any, name: str, properties: dict) -> str:
    definition = properties.get("DefinitionString")
    if definition is None:
        definition = json.dumps(properties.get("Definition") or {})
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    json.loads(definition)  # a definition that is not JSON fails here, with the template named
    options: dict[str, Any] = {}
    if properties.get("StateMachineType"):
        options["type"] = properties["StateMachineType"]
    return client.create_state_machine(name=name, definition=definition, roleArn=properties["RoleArn"], **options)[
        "stateMachineArn"
    ]


SYNTH_INPUTS = ("app.py", "cdk.json", "cdk_app", "lambdas", "training")


def synthesize(context: dict | None = None, cache_dir: Path | None = None) -> tuple[str, dict]:
    """Synthesize the project's CDK app in process; returns (stack name, template).

    With `cache_dir`, the template is kept under a hash of everything synthesis reads (the app, its
    context, and the Lambda and training code that become assets), so an unchanged app is not
    synthesized twice.
    """
    import hashlib
    import tempfile

    digest = hashlib.sha256(json.dumps(context, sort_keys=True).encode())
    for name in SYNTH_INPUTS:
        root = REPO_ROOT / name
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file() and not any(part in str(path) for part in _IGNORED_FILES):
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    cached = Path(cache_dir) / f"template-{digest.hexdigest()[:16]}.json" if cache_dir else None
    if cached is not None and cached.is_file():
        stored = json.loads(cached.read_text())
        return stored["stack_name"], stored["template"]
    _silence_node_version_warnings()
    app = _project_app()
    with tempfile.TemporaryDirectory(prefix="local-mode-synth-") as outdir:
        assembly = app.build_app(context=context, outdir=outdir).synth()
        template = assembly.get_stack_by_name(app.STACK_NAME).template
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"stack_name": app.STACK_NAME, "template": template}))
    return app.STACK_NAME, template


def _project_app() -> ModuleType:
    """The project's app.py, a script beside the packages rather than one of them: loaded from its file."""
    spec = importlib.util.spec_from_file_location("app", REPO_ROOT / "app.py")
    if spec is None or spec.loader is None:
        raise TemplateError(f"{REPO_ROOT / 'app.py'} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses and jsii look classes' modules up there
    spec.loader.exec_module(module)
    return module


def _silence_node_version_warnings() -> None:
    """The machine's Node.js version is its own business; jsii silences a warning for a named major version."""
    try:
        major = (
            subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30, check=True)
            .stdout.strip()
            .lstrip("v")
            .split(".")[0]
        )
    except (OSError, subprocess.SubprocessError):
        return
    for warning in ("DEPRECATED", "END_OF_LIFE", "UNTESTED"):
        os.environ.setdefault(f"JSII_SILENCE_WARNING_{warning}_NODE_VERSION", major)


def load_template(path: Path) -> tuple[str, dict]:
    """A template from `cdk synth` (cdk.out/<stack>.template.json): the stack name is the file's stem."""
    name = Path(path).name.removesuffix(".template.json").removesuffix(".json")
    return name, json.loads(Path(path).read_text())
