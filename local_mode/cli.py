"""`python -m local_mode run`: the whole workflow offline, on this machine, in minutes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO_ROOT / "examples" / "local-input.json"
DEFAULT_DATASET = REPO_ROOT / "examples" / "data" / "sql-example.jsonl"
DEFAULT_DATASET_FORMAT = "sql-create-context"
DEFAULT_WORKDIR = Path(".cache") / "local-mode"
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_mode", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="synthesize the stack, emulate it and run one execution")
    run.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="execution input JSON (default: %(default)s)")
    run.add_argument(
        "--dataset",
        type=Path,
        help="a local data set file (JSONL, JSON, CSV, Parquet) to upload and use "
        "(default: the example text-to-SQL data)",
    )
    run.add_argument(
        "--format",
        dest="dataset_format",
        help="the data set's format (messages, prompt-completion, alpaca, sql-create-context)",
    )
    run.add_argument(
        "--model",
        default="smollm2",
        help="base model: smollm2 (default), tiny (seconds, for trying the plumbing) or a local "
        "Hugging Face model folder",
    )
    run.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where runs are kept (default: %(default)s)")
    run.add_argument("--name", help="execution name (default: local-<timestamp>)")
    run.add_argument("--summary-json", type=Path, help="also write the run's summary to this file")
    run.add_argument(
        "--template",
        type=Path,
        help="a synthesized template (cdk.out/<stack>.template.json) instead of synthesizing the app in process",
    )
    run.add_argument("--serve", action="store_true", help="keep the endpoint serving after the run, until Ctrl-C")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.add_argument("--brief-logs", action="store_true", help="show training progress, not every job log line")
    run.add_argument(
        "--simulate-spot-interruption",
        action="store_true",
        help="kill the training process once its first checkpoint is in S3 and let the job restart, "
        "as a managed spot interruption does",
    )
    run.add_argument(
        "--iam-report",
        action="store_true",
        help="print every IAM check of the run (principal, action, resource, decision, statement)",
    )
    run.add_argument(
        "--quotas",
        type=Path,
        help="your account's SageMaker quotas for the preflight: the output of "
        "`aws service-quotas list-service-quotas --service-code sagemaker`",
    )
    run.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds (default: 3600)")
    return parser


def resolve_model(name: str) -> Path:
    from local_mode.models import prepare_model

    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SystemExit(f"--model {name}: the folder has no config.json; expected a Hugging Face model folder")
        return path
    if name not in ("tiny", "smollm2"):
        raise SystemExit(f"--model {name!r}: expected smollm2, tiny or a model folder")
    return prepare_model(name)


def load_input(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"--input {path}: no such file") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"--input {path}: not JSON: line {error.lineno} column {error.colno}: {error.msg}") from error
    if not isinstance(value, dict):
        raise SystemExit(f"--input {path}: expected a JSON object, got {type(value).__name__}")
    return value


def load_stack(template: Path | None, workdir: Path) -> tuple[str, dict]:
    from local_mode.stack import load_template, synthesize

    if template is not None:
        return load_template(template)
    return synthesize(cache_dir=workdir / "templates")


def _stop_on_sigterm() -> None:
    """SIGTERM stops the runner as Ctrl-C does: every job process and endpoint server with it."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _stop_on_sigterm()
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nlocal mode stopped: its jobs and endpoint servers are stopped too", file=sys.stderr, flush=True)
        return 130


def _run(args: argparse.Namespace) -> int:
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)
    from local_mode.environment import EmulationSettings, LocalAws
    from local_mode.progress import Progress
    from local_mode.run import RunRequest, run_execution
    from local_mode.service_quotas import QuotaFileError, SageMakerQuotas

    progress = Progress(verbose=not args.brief_logs, quiet=args.quiet)
    execution_input = load_input(args.input)
    dataset = args.dataset or DEFAULT_DATASET
    dataset_format = args.dataset_format or (None if args.dataset else DEFAULT_DATASET_FORMAT)
    if args.dataset is not None and not args.dataset.is_file():
        raise SystemExit(f"--dataset {args.dataset}: no such file")
    if args.quotas is not None:  # read before anything starts: a bad file is a usage error
        try:
            SageMakerQuotas().load_file(args.quotas)
        except QuotaFileError as error:
            raise SystemExit(str(error)) from None
    progress.info(f"preparing the base model ({args.model})")
    model_dir = resolve_model(args.model)
    progress.info("synthesizing the CDK app" if args.template is None else f"reading {args.template}")
    stack_name, template = load_stack(args.template, args.workdir)
    name = args.name or "local-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    settings = EmulationSettings(
        simulate_spot_interruption=args.simulate_spot_interruption,
        verbose_logs=not args.brief_logs,
        quiet=args.quiet,
        quotas_file=args.quotas,
    )
    with LocalAws(args.workdir, template, stack_name, settings, progress) as aws:
        progress.info(f"emulated account ready: stack {stack_name}, state machine {aws.stack.state_machine_arn}")
        request = RunRequest(
            execution_input=execution_input,
            name=name,
            model_dir=model_dir,
            dataset=dataset,
            dataset_format=dataset_format,
            timeout_seconds=args.timeout,
        )
        first_check = aws.iam.checks_so_far
        summary = run_execution(aws, request)
        if args.iam_report:
            print(aws.iam.table(first_check), flush=True)
        Progress(quiet=False).summary(summary)
        if args.summary_json:
            args.summary_json.parent.mkdir(parents=True, exist_ok=True)
            args.summary_json.write_text(json.dumps(summary, indent=2, default=str))
        endpoint = summary.get("endpoint") or {}
        if endpoint.get("url"):
            if args.serve:
                print(f"Serving {endpoint['name']} at {endpoint['url']} until Ctrl-C.", flush=True)
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    print("stopping the endpoint server")
            else:
                print("The endpoint server stops now; run with --serve to keep it answering.", flush=True)
    return 0 if summary["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
