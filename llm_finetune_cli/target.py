"""Where the commands point: the deployed stack in an AWS account, or the emulated account of local mode.

Region and profile are taken as the AWS CLI takes them: `--region`, else `AWS_REGION`, else
`AWS_DEFAULT_REGION`, else the profile's region; `--profile`, else `AWS_PROFILE`, else the default
credential chain. The state machine and the buckets come from the stack's CloudFormation outputs,
in local mode too (local mode registers the outputs of the stack it deployed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from llm_finetune_cli.errors import CliError, ExitCode
from llm_finetune_cli.local_connection import LocalConnection

DEFAULT_STACK = "LlmFineTuning"
STACK_ENV = "LLM_FINETUNE_STACK"
REQUIRED_OUTPUTS = ("StateMachineArn", "ArtifactsBucketName", "DataBucketName")
# Adaptive retries ride out throttling of the describe and history calls a long watch makes.
CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8}, user_agent_extra="llm-finetune-cli")


@dataclass(frozen=True)
class StackOutputs:
    stack_name: str
    values: dict[str, str]

    @property
    def state_machine_arn(self) -> str:
        return self.values["StateMachineArn"]

    @property
    def artifacts_bucket(self) -> str:
        return self.values["ArtifactsBucketName"]

    @property
    def data_bucket(self) -> str:
        return self.values["DataBucketName"]


@dataclass
class Target:
    """A boto3 session and, for local mode, the emulated account's endpoint; clients are made once."""

    session: boto3.Session
    region: str
    stack_name: str
    endpoint_url: str | None = None
    local: LocalConnection | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _outputs: StackOutputs | None = field(default=None, repr=False)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG
            )
        return self._clients[service]

    @property
    def outputs(self) -> StackOutputs:
        if self._outputs is None:
            self._outputs = read_stack_outputs(self.client("cloudformation"), self.stack_name, self.where)
        return self._outputs

    @property
    def where(self) -> str:
        """The account in words, for messages."""
        if self.local is not None:
            return f"the local account at {self.endpoint_url} (workdir {self.local.workdir})"
        return f"region {self.region}"


def aws_target(stack_name: str, region: str | None = None, profile: str | None = None) -> Target:
    try:
        session = boto3.Session(profile_name=profile) if profile else boto3.Session()
    except ProfileNotFound as error:
        raise CliError(
            f"--profile/AWS_PROFILE: {error}; profiles are read from ~/.aws/config and ~/.aws/credentials",
            ExitCode.USAGE,
        ) from None
    resolved = resolve_region(region, session)
    return Target(session=session, region=resolved, stack_name=stack_name)


def local_target(connection: LocalConnection, stack_name: str) -> Target:
    """The emulated account: the operator's requests are not IAM-checked, so any credentials do."""
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=connection.region)
    return Target(
        session=session,
        region=connection.region,
        stack_name=stack_name,
        endpoint_url=connection.endpoint_url,
        local=connection,
    )


def resolve_region(explicit: str | None, session: boto3.Session) -> str:
    for value in (explicit, os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION"), session.region_name):
        if value:
            return value
    raise CliError(
        "no AWS region: pass --region, set AWS_REGION, or set a region in the profile "
        "(aws configure set region eu-west-1)",
        ExitCode.USAGE,
    )


def default_stack_name() -> str:
    return os.environ.get(STACK_ENV) or DEFAULT_STACK


def read_stack_outputs(cloudformation: Any, stack_name: str, where: str) -> StackOutputs:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise CliError(
                f"stack {stack_name!r} not found in {where}: deploy it (npx cdk deploy {stack_name}) "
                "or name the right one with --stack and --region",
                ExitCode.NOT_FOUND,
            ) from None
        raise
    stack = stacks[0]
    values = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    missing = [name for name in REQUIRED_OUTPUTS if name not in values]
    if missing:
        raise CliError(
            f"stack {stack_name!r} ({stack.get('StackStatus')}) has no output {', '.join(missing)}; "
            f"outputs: {', '.join(sorted(values)) or 'none'}. Is it this project's stack, fully "
            "deployed?",
            ExitCode.NOT_FOUND,
        )
    return StackOutputs(stack_name, values)


def explain_aws_error(error: BotoCoreError | ClientError, target: Target | None) -> CliError:
    """An AWS or botocore error as one line that says what to do."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return CliError(
            f"no AWS credentials ({error}): run aws configure or aws sso login, or pass --profile", ExitCode.AWS_ERROR
        )
    if isinstance(error, NoRegionError):
        return CliError("no AWS region: pass --region or set AWS_REGION", ExitCode.USAGE)
    if isinstance(error, EndpointConnectionError) and target is not None and target.local is not None:
        return CliError(
            f"cannot reach the local account at {target.endpoint_url}: is `llm-finetune --local "
            f"--workdir {target.local.workdir} local up` still running?",
            ExitCode.NOT_FOUND,
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        operation = getattr(error, "operation_name", "a request")
        message = error.response.get("Error", {}).get("Message", str(error))
        hint = {
            "ExpiredToken": "refresh the credentials (aws sso login)",
            "ExpiredTokenException": "refresh the credentials (aws sso login)",
            "UnrecognizedClientException": "the credentials are not valid in this account or region",
            "AccessDenied": "the credentials lack this permission",
            "AccessDeniedException": "the credentials lack this permission",
        }.get(code)
        return CliError(f"{operation}: {code}: {message}" + (f" ({hint})" if hint else ""), ExitCode.AWS_ERROR)
    return CliError(str(error), ExitCode.AWS_ERROR)
