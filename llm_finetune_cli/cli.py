"""`llm-finetune`: the command line of the fine-tuning stack, for AWS and for local mode (--local)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llm_finetune_cli import executions
from llm_finetune_cli.display import WatchDisplay
from llm_finetune_cli.errors import CliError, ExitCode, exit_code_for
from llm_finetune_cli.execution_input import (
    execution_name,
    load_input,
    substitute_buckets,
    with_dry_run,
    with_local_sources,
)
from llm_finetune_cli.history import ExecutionHistory, RunState
from llm_finetune_cli.job_logs import JobLogReader
from llm_finetune_cli.jobs import KINDS, TERMINAL_JOB_STATUSES, describe_job
from llm_finetune_cli.local_connection import DEFAULT_WORKDIR, read_connection, require_connection
from llm_finetune_cli.summary import build_summary, render_row, render_summary
from llm_finetune_cli.target import Target, aws_target, default_stack_name, explain_aws_error, local_target
from llm_finetune_cli.training_progress import TrainingLog, estimate, format_seconds
from llm_finetune_cli.watch import follow

AWS_INTERVAL, LOCAL_INTERVAL = 5.0, 1.0
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-finetune",
        description="Start, follow and stop fine-tuning runs of the LlmFineTuning stack.",
        epilog="Exit codes: 0 succeeded, 1 execution failed, 2 usage or input error, 3 aborted, 4 timed out, "
        "5 not found, 6 AWS error, 130 interrupted (the execution keeps running).",
    )
    parser.add_argument(
        "--stack", default=None, help="the stack's name (default: $LLM_FINETUNE_STACK or LlmFineTuning)"
    )
    parser.add_argument("--region", help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's)")
    parser.add_argument("--profile", help="AWS profile (default: $AWS_PROFILE)")
    parser.add_argument("--local", action="store_true", help="use local mode's emulated account instead of AWS")
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="local mode's folder (default: %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        help=f"seconds between polls while following (default: {AWS_INTERVAL:g}, local {LOCAL_INTERVAL:g})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = commands.add_parser("start", help="start an execution")
    start.add_argument(
        "--input",
        type=Path,
        required=True,
        help="execution input (a JSON object); "
        "${DATA_BUCKET} and ${ARTIFACTS_BUCKET} in its strings become the stack's buckets",
    )
    start.add_argument("--name", help="execution name, which becomes the run id (default: run-<UTC time>)")
    start.add_argument("--watch", action="store_true", help="follow it to its end, as `watch` does")
    start.add_argument(
        "--dry-run", action="store_true", help="validate the input and run the preflight checks only; no job starts"
    )
    start.add_argument(
        "--model", help="--local without a running `local up`: base model smollm2 (default), tiny or a model folder"
    )

    watch = commands.add_parser("watch", help="follow an execution to its end, then print its summary")
    watch.add_argument("execution", help="execution name or ARN")

    logs = commands.add_parser("logs", help="print the output of the execution's jobs (CloudWatch Logs)")
    logs.add_argument("execution", help="execution name or ARN")
    logs.add_argument("--job", choices=KINDS, help="one job only (default: every job the run started)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the jobs end")

    status = commands.add_parser("status", help="an execution's summary so far, or the stack and its latest runs")
    status.add_argument("execution", nargs="?", help="execution name or ARN")
    status.add_argument("--json", action="store_true", help="print JSON")

    listing = commands.add_parser("list", help="the state machine's executions, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only executions with this status")
    listing.add_argument("--max", type=int, default=20, help="at most this many (default: %(default)s)")
    listing.add_argument("--json", action="store_true", help="print JSON")

    stop = commands.add_parser("stop", help="stop a running execution")
    stop.add_argument("execution", help="execution name or ARN")
    stop.add_argument("--cause", default="stopped with llm-finetune stop", help="the cause recorded on the execution")

    local = commands.add_parser("local", help="local mode's emulated account")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    up = local_commands.add_parser(
        "up", help="deploy the stack into an emulated account and serve it until Ctrl-C; other --local commands use it"
    )
    up.add_argument("--model", default="smollm2", help="base model: smollm2 (default), tiny or a model folder")
    up.add_argument("--dataset", type=Path, help="a local data set file (default: the example text-to-SQL data)")
    up.add_argument("--format", dest="dataset_format", help="the data set's format")
    up.add_argument("--template", type=Path, help="a synthesized template instead of synthesizing the app")
    up.add_argument("--verbose", action="store_true", help="print every job log line")
    up.add_argument(
        "--quotas",
        type=Path,
        help="your account's SageMaker quotas for the preflight: the output of "
        "`aws service-quotas list-service-quotas --service-code sagemaker`",
    )
    return parser


class Cli:
    """One invocation: the parsed arguments, the consoles, and the target once it is needed."""

    def __init__(self, args: argparse.Namespace, out: Console, err: Console):
        self.args = args
        self.out = out
        self.err = err
        self.target: Target | None = None

    @property
    def interval(self) -> float:
        if self.args.interval is not None:
            return max(0.2, self.args.interval)
        return LOCAL_INTERVAL if self.args.local else AWS_INTERVAL

    def say(self, text: str) -> None:
        self.err.print(f"[dim]{escape(text)}[/]", highlight=False, soft_wrap=True)

    def connect(self) -> Target:
        stack = self.args.stack or None
        if self.args.local:
            connection = require_connection(self.args.workdir)
            self.target = local_target(connection, stack or connection.stack_name)
        else:
            self.target = aws_target(stack or default_stack_name(), self.args.region, self.args.profile)
        return self.target

    def command_line(self) -> str:
        """The options that point another command at the same stack, for the hints printed."""
        words = ["llm-finetune"]
        if self.args.local:
            words.append("--local")
            if Path(self.args.workdir) != DEFAULT_WORKDIR:
                words += ["--workdir", str(self.args.workdir)]
        for option in ("stack", "region", "profile"):
            if getattr(self.args, option):
                words += [f"--{option}", getattr(self.args, option)]
        return shlex.join(words)

    def arn(self, target: Target, execution: str) -> str:
        return executions.execution_arn(target.outputs.state_machine_arn, execution)

    # ---- commands --------------------------------------------------------------------------------
    def run(self) -> int:
        command = self.args.command
        if command == "local":
            from llm_finetune_cli.local import serve

            return serve(
                self.args.workdir,
                self.args.model,
                self.args.dataset,
                self.args.dataset_format,
                self.args.template,
                self.args.verbose,
                self.say,
                quotas=self.args.quotas,
            )
        if command == "start" and self.args.model and not self.args.local:
            raise CliError(
                f"--model {self.args.model}: applies with --local only (the base model of an AWS run is "
                "base_model in the input)",
                ExitCode.USAGE,
            )
        if command == "start" and self.args.local and read_connection(self.args.workdir) is None:
            return self.start_in_process()
        if command == "start" and self.args.local and self.args.model:
            raise CliError(
                f"--model {self.args.model}: the local account in {self.args.workdir} is running with "
                "its own model; --model applies when start runs the account itself",
                ExitCode.USAGE,
            )
        target = self.connect()
        return {
            "start": self.start,
            "watch": self.watch,
            "logs": self.logs,
            "status": self.status,
            "list": self.list,
            "stop": self.stop,
        }[command](target)

    def start_in_process(self) -> int:
        if not (self.args.watch or self.args.dry_run):
            require_connection(self.args.workdir)  # explains how to start one
        load_input(self.args.input)  # a bad file or name fails before the account starts
        execution_name(self.args.name, self.args.dry_run)
        from llm_finetune_cli.local import run_in_process

        def command(target: Target) -> int:
            self.target = target
            return self.start(target)

        return run_in_process(self.args.workdir, self.args.model or "smollm2", command, self.args.stack, self.say)

    def start(self, target: Target) -> int:
        execution_input = load_input(self.args.input)
        outputs = target.outputs
        execution_input = substitute_buckets(
            execution_input, {"DATA_BUCKET": outputs.data_bucket, "ARTIFACTS_BUCKET": outputs.artifacts_bucket}
        )
        if target.local is not None:
            execution_input = with_local_sources(execution_input, target.local.sources)
        if self.args.dry_run:
            execution_input = with_dry_run(execution_input)
        name = execution_name(self.args.name, self.args.dry_run)
        arn = executions.start(target.client("stepfunctions"), outputs.state_machine_arn, name, execution_input)
        if not (self.args.watch or self.args.dry_run):
            self.out.print(f"started [bold]{escape(name)}[/]  {escape(arn)}", highlight=False, soft_wrap=True)
            self.say(f"follow it with: {self.command_line()} watch {name}")
            return ExitCode.SUCCEEDED
        return self.follow(target, arn, dry_run=self.args.dry_run)

    def watch(self, target: Target) -> int:
        return self.follow(target, self.arn(target, self.args.execution))

    def follow(self, target: Target, arn: str, dry_run: bool = False) -> int:
        display = WatchDisplay(self.out)
        try:
            followed = follow(target, arn, display, self.interval)
        except KeyboardInterrupt:
            display.close()
            name = arn.rsplit(":", 1)[-1]
            self.err.print(
                f"stopped watching; the execution keeps running. Resume with `{self.command_line()} watch "
                f"{name}`, stop it with `{self.command_line()} stop {name}`.",
                highlight=False,
            )
            return ExitCode.INTERRUPTED
        summary = build_summary(target, followed.description, followed.run, followed.events, followed.training)
        render_summary(self.out, summary)
        code = exit_code_for(summary["status"])
        if code == ExitCode.SUCCEEDED and (dry_run or summary["dry_run"]):
            preflight = summary.get("preflight")
            if not isinstance(preflight, dict) or not preflight.get("passed"):
                return ExitCode.FAILED
        return code

    def logs(self, target: Target) -> int:
        sfn = target.client("stepfunctions")
        arn = self.arn(target, self.args.execution)
        description = executions.describe(sfn, arn)
        history = ExecutionHistory(sfn, arn)
        run = RunState().add_all(history.read_all())
        kinds = [self.args.job] if self.args.job else list(KINDS)
        readers: dict[str, JobLogReader] = {}
        logs_client = target.client("logs")
        printed = 0
        while True:
            for kind in kinds:
                if run.jobs.get(kind) and kind not in readers:
                    readers[kind] = JobLogReader(logs_client, kind, run.jobs[kind])
            for kind, reader in readers.items():
                for line in reader.read_new():
                    printed += 1
                    # One job's first host prints its lines as they are; otherwise each says whose it is.
                    prefix = f"[{kind} {line.host}] " if len(kinds) > 1 or line.host != "algo-1" else ""
                    self.out.out(prefix + line.message, highlight=False)
            if not self.args.follow or self._logs_finished(target, description, readers):
                break
            time.sleep(self.interval)
            description = executions.describe(sfn, arn)
            for event in history.poll():
                run.add(event)
        if not readers:
            state = description["status"]
            raise CliError(
                f"execution {description['name']} ({state}) has started no "
                f"{self.args.job + ' ' if self.args.job else ''}job" + (" yet" if state == "RUNNING" else ""),
                ExitCode.NOT_FOUND,
            )
        if printed == 0:
            self.say("no log lines yet" if description["status"] == "RUNNING" else "the jobs wrote no log lines")
        return ExitCode.SUCCEEDED

    @staticmethod
    def _logs_finished(target: Target, description: dict, readers: dict[str, JobLogReader]) -> bool:
        """Following ends once the execution has ended and every job it started has ended too."""
        if description["status"] == "RUNNING":
            return False
        for kind, reader in readers.items():
            job = describe_job(target.client("sagemaker"), kind, reader.job_name)
            if job is not None and job.status not in TERMINAL_JOB_STATUSES:
                return False
        return True

    def status(self, target: Target) -> int:
        if not self.args.execution:
            return self.stack_status(target)
        sfn = target.client("stepfunctions")
        arn = self.arn(target, self.args.execution)
        description = executions.describe(sfn, arn)
        history = ExecutionHistory(sfn, arn)
        run = RunState().add_all(history.read_all())
        training = None
        train = run.jobs.get("train")
        job = describe_job(target.client("sagemaker"), "train", train) if train else None
        if job is not None:
            training = estimate(TrainingLog(target.client("logs"), train).latest(), job.hyperparameters)
        summary = build_summary(target, description, run, history.events, training)
        if self.args.json:
            self.out.out(json.dumps(summary, indent=2, default=str), highlight=False)
        else:
            render_summary(self.out, summary)
        return ExitCode.SUCCEEDED

    def stack_status(self, target: Target) -> int:
        outputs = target.outputs
        running = executions.list_executions(target.client("stepfunctions"), outputs.state_machine_arn, "RUNNING", 100)
        if self.args.json:
            self.out.out(
                json.dumps(
                    {
                        "stack": outputs.stack_name,
                        "region": target.region,
                        "endpoint_url": target.endpoint_url,
                        "outputs": outputs.values,
                        "running": [e["name"] for e in running],
                    },
                    indent=2,
                ),
                highlight=False,
            )
            return ExitCode.SUCCEEDED
        width = max(map(len, outputs.values)) + 2
        render_row(self.out, "Stack", f"{escape(outputs.stack_name)} in {escape(target.where)}", width)
        for key, value in sorted(outputs.values.items()):
            render_row(self.out, key, escape(value), width)
        render_row(self.out, "Running", escape(", ".join(e["name"] for e in running)) or "none", width)
        return ExitCode.SUCCEEDED

    def list(self, target: Target) -> int:
        found = executions.list_executions(
            target.client("stepfunctions"), target.outputs.state_machine_arn, self.args.status, max(1, self.args.max)
        )
        if self.args.json:
            self.out.out(
                json.dumps(
                    [{k: e.get(k) for k in ("name", "status", "startDate", "stopDate", "executionArn")} for e in found],
                    indent=2,
                    default=str,
                ),
                highlight=False,
            )
            return ExitCode.SUCCEEDED
        if not found:
            self.say(f"no executions{' with status ' + self.args.status if self.args.status else ''}")
            return ExitCode.SUCCEEDED
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("name", "status", "started", "took"):
            table.add_column(column, no_wrap=True)
        for execution in found:
            started, stopped = execution.get("startDate"), execution.get("stopDate")
            took = _took(started, stopped)
            table.add_row(
                escape(execution["name"]),
                execution["status"],
                started.astimezone().strftime("%Y-%m-%d %H:%M:%S") if started else "",
                took,
            )
        self.out.print(table)
        return ExitCode.SUCCEEDED

    def stop(self, target: Target) -> int:
        description, stopped = executions.stop(
            target.client("stepfunctions"), self.arn(target, self.args.execution), self.args.cause
        )
        name = description["name"]
        if stopped:
            self.out.print(f"stopped [bold]{escape(name)}[/]: {description['status']}", highlight=False)
        else:
            self.out.print(
                f"{escape(name)} had already ended: {description['status']}; nothing to stop", highlight=False
            )
        return ExitCode.SUCCEEDED


def _took(started: datetime | None, stopped: datetime | None) -> str:
    if not started:
        return ""
    end = stopped or datetime.now(UTC)
    return format_seconds((end - started).total_seconds()) + ("" if stopped else " so far")


def main(argv: list[str] | None = None, out: Console | None = None, err: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = out or Console(highlight=False)
    err = err or Console(stderr=True, highlight=False)
    cli = Cli(args, out, err)
    try:
        return int(cli.run())
    except CliError as error:
        err.print(f"[red]llm-finetune: error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        return int(error.code)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        return int(ExitCode.INTERRUPTED)
    except (BotoCoreError, ClientError) as error:  # AWS's own errors, said in one line
        explained = explain_aws_error(error, cli.target)
        err.print(f"[red]llm-finetune: error:[/] {escape(str(explained))}", highlight=False, soft_wrap=True)
        return int(explained.code)


if __name__ == "__main__":
    sys.exit(main())
