"""Local mode behind the CLI: the emulated account with the stack deployed, served to other processes.

`llm-finetune --local local up` enters local mode's `LocalAws`, uploads the base model and the data
set, registers the stack's outputs with the emulated CloudFormation (so the commands find the state
machine and buckets as they do in AWS), writes the connection file and serves until Ctrl-C or
SIGTERM; leaving stops every job process and endpoint server. Each execution that ends gets its run
folder (summary.json, the S3 objects, IAM checks), as with `python -m local_mode run`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from llm_finetune_cli.errors import TERMINAL_STATUSES, CliError, ExitCode
from llm_finetune_cli.local_connection import LocalConnection, connection_path, read_connection
from llm_finetune_cli.target import Target, local_target

SAVE_POLL_SECONDS = 2.0


def _local_mode() -> Any:
    try:
        import local_mode  # noqa: F401
    except ImportError:
        raise CliError(
            "--local needs the project's local_mode package: run the CLI from a checkout of the project (make setup)",
            ExitCode.USAGE,
        ) from None
    from local_mode import cli

    return cli


@contextlib.contextmanager
def local_account(
    workdir: Path,
    model: str = "smollm2",
    dataset: Path | None = None,
    dataset_format: str | None = None,
    template: Path | None = None,
    verbose: bool = False,
    quiet: bool = False,
    say: Callable[[str], None] = lambda text: None,
    quotas: Path | None = None,
) -> Iterator[tuple[Any, LocalConnection]]:
    """The emulated account with the stack deployed and the model and data set uploaded."""
    local_cli = _local_mode()
    for key, value in local_cli.OFFLINE.items():
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    from local_mode.environment import EmulationSettings, LocalAws
    from local_mode.progress import Progress
    from local_mode.run import RunRequest, prepare_input

    if dataset is not None and not Path(dataset).is_file():
        raise CliError(f"--dataset {dataset}: no such file", ExitCode.USAGE)
    say(f"preparing the base model ({model})")
    try:
        model_dir = local_cli.resolve_model(str(model))
    except SystemExit as error:
        raise CliError(str(error), ExitCode.USAGE) from None
    say("synthesizing the CDK app" if template is None else f"reading {template}")
    stack_name, stack_template = local_cli.load_stack(template, Path(workdir))
    data = Path(dataset) if dataset else local_cli.DEFAULT_DATASET
    data_format = dataset_format or (None if dataset else local_cli.DEFAULT_DATASET_FORMAT)
    if quotas is not None:  # read before anything starts: a bad file is a usage error
        from local_mode.service_quotas import QuotaFileError, SageMakerQuotas

        try:
            SageMakerQuotas().load_file(quotas)
        except QuotaFileError as error:
            raise CliError(str(error), ExitCode.USAGE) from None
    settings = EmulationSettings(verbose_logs=verbose, quiet=quiet, quotas_file=quotas)
    with LocalAws(Path(workdir), stack_template, stack_name, settings, Progress(verbose=verbose, quiet=quiet)) as aws:
        sources = prepare_input(aws, RunRequest({}, "", model_dir=model_dir, dataset=data, dataset_format=data_format))
        _register_outputs(aws)
        connection = LocalConnection(
            endpoint_url=aws.endpoint_url,
            region=aws.settings.region,
            stack_name=stack_name,
            pid=os.getpid(),
            workdir=str(aws.workdir),
            sources=sources,
            model=str(model),
        )
        yield aws, connection


def _register_outputs(aws: Any) -> None:
    """The deployed stack's outputs as a CloudFormation stack of the emulated account (DescribeStacks)."""
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=aws.settings.region)
    cloudformation = session.client("cloudformation", endpoint_url=aws.endpoint_url)
    template = {
        "Description": "The outputs of the stack local mode deployed",
        "Resources": {"Outputs": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in aws.stack.outputs.items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto creates no WaitConditionHandle, and says so
        cloudformation.create_stack(StackName=aws.stack_name, TemplateBody=json.dumps(template))


def save_run(aws: Any, execution_arn: str, since: datetime | None, first_check: int) -> None:
    """The run folder of an ended execution, as `python -m local_mode run` leaves it."""
    from local_mode.run import save, summarize

    aws.endpoints.wait_idle(30)
    save(aws, summarize(aws, execution_arn, since, first_check), first_check)


class RunSaver(threading.Thread):
    """Writes the run folder of every execution that ends while the account serves."""

    def __init__(self, aws: Any, interval: float = SAVE_POLL_SECONDS):
        super().__init__(name="llm-finetune-run-saver", daemon=True)
        self.aws = aws
        self.interval = interval
        self.stopping = threading.Event()
        self.seen: dict[str, int] = {}
        self.saved: set[str] = set()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.save_ended()
            except Exception as error:  # a summary that cannot be written must not stop the server
                self.errors.append(f"{type(error).__name__}: {error}")

    def save_ended(self) -> None:
        machine = self.aws.stack.state_machine_arn
        for execution in self.aws.sfn.list_executions(stateMachineArn=machine, maxResults=100)["executions"]:
            arn = execution["executionArn"]
            if arn not in self.seen:
                self.seen[arn] = self.aws.iam.checks_so_far
                self.aws.iam.execution_started()
            if execution["status"] in TERMINAL_STATUSES and arn not in self.saved:
                self.saved.add(arn)
                save_run(self.aws, arn, execution.get("startDate"), self.seen[arn])

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


def serve(
    workdir: Path,
    model: str,
    dataset: Path | None,
    dataset_format: str | None,
    template: Path | None,
    verbose: bool,
    say: Callable[[str], None],
    quotas: Path | None = None,
) -> int:
    running = read_connection(workdir)
    if running is not None:
        raise CliError(
            f"a local account already runs in {workdir} (process {running.pid}, {running.endpoint_url}); "
            "stop it first (Ctrl-C in its terminal) or choose another --workdir",
            ExitCode.USAGE,
        )
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with local_account(
            workdir, model, dataset, dataset_format, template, verbose=verbose, say=say, quotas=quotas
        ) as (aws, connection):
            if stopping.is_set():
                return ExitCode.INTERRUPTED
            path = connection.write()
            saver = RunSaver(aws)
            saver.start()
            say(
                f"local account ready at {connection.endpoint_url} (region {connection.region}, stack "
                f"{connection.stack_name}, state machine {aws.stack.state_machine_arn})"
            )
            say(
                f"base model {connection.sources.get('base_model', {}).get('s3_uri')}, data set "
                f"{connection.sources.get('dataset', {}).get('s3_uri')}"
            )
            say(
                f"connection file {path}; in another terminal: "
                f"llm-finetune --local --workdir {workdir} start --input examples/local-input.json --watch"
            )
            say("serving until Ctrl-C or SIGTERM")
            try:
                while not stopping.wait(0.5):
                    pass
            finally:
                saver.stop()
                connection_path(Path(connection.workdir)).unlink(missing_ok=True)
                say("stopping: every job process and endpoint server of the local account ends now")
        say("stopped")
        return ExitCode.SUCCEEDED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_in_process(
    workdir: Path, model: str, command: Callable[[Target], int], stack_name: str | None, say: Callable[[str], None]
) -> int:
    """Run `command` against a local account that lives only as long as this process's command."""
    since = datetime.now(UTC)
    with local_account(workdir, model, quiet=True, say=say) as (aws, connection):
        first_check = aws.iam.checks_so_far
        aws.iam.execution_started()
        try:
            return command(local_target(connection, stack_name or connection.stack_name))
        finally:
            machine = aws.stack.state_machine_arn
            for execution in aws.sfn.list_executions(stateMachineArn=machine)["executions"]:
                if execution["status"] in TERMINAL_STATUSES:
                    save_run(aws, execution["executionArn"], since, first_check)
            say(
                "the local account stops with this command (and its endpoint server with it); "
                "`llm-finetune --local local up` keeps one serving"
            )
