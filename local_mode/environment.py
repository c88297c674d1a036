"""An emulated AWS account with the stack deployed: moto, the patches, local jobs and endpoints.

`LocalAws` is the one object a local run, a test or a notebook needs: enter it, start executions of
the synthesized state machine, follow them, read their results. Leaving it stops every local
process (jobs and endpoint servers) and the emulation.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from cdk_app.contract import run_prefix
from local_mode import moto_patches
from local_mode.aws_server import LocalAwsServer
from local_mode.endpoints import EndpointEmulator, EndpointSettings
from local_mode.eventbridge import ExecutionEndings
from local_mode.hub import LocalHub
from local_mode.iam import AccountIam
from local_mode.jobs import JobRunner, JobSettings
from local_mode.lambda_invoker import LambdaInvoker
from local_mode.moto_patches import S3Store
from local_mode.progress import Progress
from local_mode.s3_transfer import list_keys, split_s3_uri, upload_folder
from local_mode.service_quotas import SageMakerQuotas
from local_mode.stack import DeployedStack, deploy

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class EmulationSettings:
    """Local knobs (all off by default); docs/local-mode.md explains each."""

    region: str = "us-east-1"
    simulate_spot_interruption: bool = False
    unhealthy_endpoints: bool = False
    health_check_timeout_cap: float | None = None
    verbose_logs: bool = True
    quiet: bool = False
    quotas_file: Path | None = None  # the account's own SageMaker quotas (list-service-quotas output)


class _AccountServices:
    """What the account answers itself (moto_patches.AccountHooks): its quotas, and IAM's simulation."""

    def __init__(self, aws: LocalAws):
        self.aws = aws

    def quotas(self, service_code: str, account_id: str, region: str) -> list[dict]:
        return self.aws.quotas.listed(account_id, region) if service_code == "sagemaker" else []

    def simulate(self, policy_source_arn: str, actions: list[str], resources: list[str], context: dict) -> list[dict]:
        return self.aws.iam.simulate(policy_source_arn, actions, resources, context)


class LocalAws:
    """Context manager: an emulated account holding the deployed stack."""

    def __init__(
        self,
        workdir: Path,
        template: dict,
        stack_name: str,
        settings: EmulationSettings | None = None,
        progress: Progress | None = None,
    ):
        self.workdir = Path(workdir).resolve()
        self.template = template
        self.stack_name = stack_name
        self.settings = settings or EmulationSettings()
        self.progress = progress or Progress(verbose=self.settings.verbose_logs, quiet=self.settings.quiet)
        self.stack: DeployedStack | None = None
        self._mock: Any = None
        self._patches: Any = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> LocalAws:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        try:
            self._start()
        except BaseException:
            self._mock.stop()
            raise
        return self

    def _start(self) -> None:
        region = self.settings.region
        # moto's interpreter logs every caught task error; the run shows them from the history instead.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        boto3.setup_default_session(region_name=region)
        from local_mode import aws_model_validation

        aws_model_validation.install(boto3.DEFAULT_SESSION)
        self.jobs = JobRunner(
            self.workdir,
            on_log=self.progress.job_line,
            settings=JobSettings(
                region=region, interrupt_training_after_checkpoint=self.settings.simulate_spot_interruption
            ),
            on_start=lambda spec: self.progress.total_steps.__setitem__(spec.name, spec.max_steps),
        )
        self.endpoints = EndpointEmulator(
            self.workdir,
            settings=EndpointSettings(
                region=region,
                never_healthy=self.settings.unhealthy_endpoints,
                health_check_timeout_cap=self.settings.health_check_timeout_cap,
            ),
            on_event=self.progress.endpoint_event,
        )
        # A local model hub (empty until repositories are added): the Hub of jobs and Lambdas here.
        self.hub = LocalHub().start()
        self.lambdas = LambdaInvoker(
            region,
            logs_dir=self.workdir / "lambda",
            identity=lambda function: self.iam.lambda_identity(function),
            environment_denial=lambda function: self.iam.environment_denial(function),
            extra_environment={"HF_ENDPOINT": self.hub.url},
        )
        self.quotas = SageMakerQuotas()
        if self.settings.quotas_file is not None:
            self.quotas.load_file(self.settings.quotas_file)
        self._patches = moto_patches.installed(self.lambdas, self.jobs, self.endpoints, account=_AccountServices(self))
        self._patches.__enter__()
        self.lambdas.__enter__()
        self.stack = deploy(self.template, self.stack_name, region)
        # From here on every request a Lambda or the state machine makes is evaluated against the
        # template's policies; the runner's own requests (the operator's) are not.
        self.iam = AccountIam(self.template, self.stack)
        self.iam.install(boto3.DEFAULT_SESSION)
        self.endpoints.iam = self.iam
        self.jobs.iam = self.iam
        # The account over HTTP, for the jobs that may call AWS (and for the CLI in other processes).
        self.server = LocalAwsServer(authorize=self.iam.enforcer.authorize_request).start()
        self.jobs.gateway["aws"] = self.server.port
        self.jobs.gateway["hub"] = self.hub.port
        self.jobs.credentials_for = self.server.credentials_for
        # EventBridge: every ending of an execution goes to the stack's rules (Cleanup on every ending).
        self.endings = ExecutionEndings(
            region, self.stack.account, self.stack.state_machine_arn, self.stack.rules, self.iam
        ).start()
        self.sfn = boto3.client("stepfunctions", region_name=region)
        self.s3 = boto3.client("s3", region_name=region)
        self.sagemaker = boto3.client("sagemaker", region_name=region)

    def __exit__(self, *exc: Any) -> None:
        try:
            if getattr(self, "endings", None) is not None:
                self.endings.stop()
            self._stop_running_executions()
            self.endpoints.shutdown()
            self.jobs.shutdown()
            if getattr(self, "server", None) is not None:
                self.server.stop()
            if getattr(self, "hub", None) is not None:
                self.hub.stop()
        finally:
            self.lambdas.__exit__(*exc)
            self._patches.__exit__(*exc)
            self._mock.stop()
            boto3.DEFAULT_SESSION = None

    @property
    def endpoint_url(self) -> str:
        """Where other processes reach this account (requests with the operator's credentials)."""
        return self.server.url

    def _stop_running_executions(self) -> None:
        """An execution still running when the account goes (Ctrl-C, an error) is aborted first."""
        if self.stack is None or getattr(self, "sfn", None) is None:
            return
        try:
            running = self.sfn.list_executions(stateMachineArn=self.stack.state_machine_arn, statusFilter="RUNNING")[
                "executions"
            ]
            for execution in running:
                self.sfn.stop_execution(
                    executionArn=execution["executionArn"], error="LocalModeStopped", cause="the local runner stopped"
                )
        except Exception:
            pass

    # ---- names the stack exposes -----------------------------------------------------------------
    @property
    def artifacts_bucket(self) -> str:
        return self.stack.output("ArtifactsBucketName")

    @property
    def data_bucket(self) -> str:
        return self.stack.output("DataBucketName")

    def substitute(self, value: Any) -> Any:
        """Replace ${DATA_BUCKET} and ${ARTIFACTS_BUCKET} in every string of an execution input."""
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        if isinstance(value, str):
            return value.replace("${DATA_BUCKET}", self.data_bucket).replace(
                "${ARTIFACTS_BUCKET}", self.artifacts_bucket
            )
        return value

    # ---- data in and out -------------------------------------------------------------------------
    def add_secret(self, arn: str, value: str) -> str:
        """A secret the account already holds under exactly `arn` (as the stack's context names it).

        Secrets Manager appends six random characters to a secret's name in its ARN; a stack names
        the whole ARN, so the emulated secret takes the ARN the stack was given.
        """
        from moto.backends import get_backend

        name = arn.split(":secret:", 1)[1]
        if len(name) > 7 and name[-7] == "-":
            name = name[:-7]
        region, account = arn.split(":")[3], arn.split(":")[4]
        boto3.client("secretsmanager", region_name=region).create_secret(Name=name, SecretString=value)
        get_backend("secretsmanager")[account][region].secrets[name].arn = arn
        return arn

    def upload_file(self, path: Path, uri: str) -> str:
        bucket, key = split_s3_uri(uri)
        self.s3.upload_file(str(path), bucket, key)
        return uri

    def upload_folder(self, folder: Path, uri: str) -> str:
        upload_folder(self.s3, Path(folder), uri, store=S3Store.of_current_account(self.settings.region))
        return uri if uri.endswith("/") else uri + "/"

    def read_json(self, uri: str) -> Any | None:
        bucket, key = split_s3_uri(uri)
        try:
            return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None

    def copy_run_objects(self, run_id: str, destination: Path) -> int:
        """Copy every object a run wrote (runs/<run_id>/ in each bucket) to a local folder."""
        count = 0
        for bucket in (b["Name"] for b in self.s3.list_buckets()["Buckets"]):
            for key in list_keys(self.s3, bucket, run_prefix(run_id)):
                target = destination / bucket / key
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, key, str(target))
                count += 1
        return count

    # ---- executions ------------------------------------------------------------------------------
    def start_execution(self, execution_input: dict, name: str) -> str:
        self.iam.execution_started()
        return self.sfn.start_execution(
            stateMachineArn=self.stack.state_machine_arn, name=name, input=json.dumps(execution_input)
        )["executionArn"]

    def history(self, execution_arn: str) -> list[dict]:
        events: list[dict] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def wait(
        self,
        execution_arn: str,
        timeout: float = 3600,
        poll: float = 0.5,
        on_event: Callable[[dict], None] | None = None,
    ) -> dict:
        """Follow the execution until it ends; every new history event goes to `on_event`."""
        on_event = on_event or self.progress.state_event
        deadline = time.monotonic() + timeout
        shown = 0
        while True:
            description = self.sfn.describe_execution(executionArn=execution_arn)
            events = self.history(execution_arn)
            for event in events[shown:]:
                on_event(event)
            shown = len(events)
            if description["status"] in TERMINAL:
                return description
            if time.monotonic() > deadline:
                self.sfn.stop_execution(
                    executionArn=execution_arn,
                    error="LocalModeTimeout",
                    cause=f"the local run exceeded {timeout:.0f} seconds",
                )
                raise TimeoutError(f"execution {execution_arn} still {description['status']} after {timeout:.0f}s")
            time.sleep(poll)

    def final_state(self, execution_arn: str) -> dict:
        """The workflow's state as the last exited states left it (the execution output when it succeeded)."""
        state: dict = {}
        for event in self.history(execution_arn):
            details = event.get("stateExitedEventDetails")
            if details and details.get("output"):
                try:
                    output = json.loads(details["output"])
                except json.JSONDecodeError:
                    continue
                if isinstance(output, dict):
                    state.update(output)
        return state

    def remove_run_folder(self, run_id: str) -> None:
        shutil.rmtree(self.workdir / "runs" / run_id, ignore_errors=True)
