"""Every command against moto: the stack found by its outputs, executions started, followed, listed, stopped."""

import json

import pytest

from llm_finetune_cli import watch as watch_module
from llm_finetune_cli.errors import ExitCode
from tests.cli.conftest import DATA, METRICS, NAMES, PACKAGE_ARN, RUN_ID


def scripted_training(stack, monkeypatch):
    """The training job moves on as the watcher describes it: two steps logged each time, then it completes."""
    import botocore.client

    original = botocore.client.BaseClient._make_api_call
    described = {"count": 0}

    def make_api_call(self, operation, params):
        if operation == "DescribeTrainingJob":
            described["count"] += 1
            count = described["count"]
            if count == 2:
                stack.set_training("InProgress", "Training", "Training image download completed. Training in progress.")
                stack.log(
                    "train",
                    [
                        "launch: train.py",
                        "train_metrics: step=1 loss=2.5000 learning_rate=0.0002 epoch=0.25 tokens_per_second=800.0",
                        "train_metrics: step=2 loss=2.1000 learning_rate=0.0002 epoch=0.50 tokens_per_second=820.0",
                    ],
                )
            elif count == 3:
                stack.log(
                    "train",
                    [
                        "train_metrics: step=3 loss=1.9000 learning_rate=0.0001 epoch=0.75 tokens_per_second=810.0",
                        "train_metrics: step=4 loss=1.7000 learning_rate=0.0001 epoch=1.00 tokens_per_second=805.0",
                    ],
                )
            elif count == 4:
                stack.set_training("Completed", "Completed", "Training job completed")
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
    return described


def test_start_watch_shows_states_jobs_training_and_the_summary(stack, input_file, monkeypatch):
    stack.create_jobs()
    stack.set_training("InProgress", "Starting", "Preparing the instances for training")
    scripted_training(stack, monkeypatch)
    run = stack.cli(
        "start",
        "--input",
        str(input_file({"orchestration": {"poll_interval_seconds": 1}})),
        "--name",
        "first",
        "--watch",
    )
    assert run.code == ExitCode.SUCCEEDED, run.out + run.err
    out = run.out
    states = [line.split("▶ ")[1] for line in out.splitlines() if "▶ " in line]
    assert states == [
        "ValidateInput",
        "IsDryRun",
        "StartPrepare",
        "WaitForPrepare",
        "StartTrain",
        "CountPolls",
        "WaitForTrain",
        "DescribeTrain",
        "TrainComplete",
        "StartEvaluate",
        "WaitForEvaluate",
        "Outcome",
        "Gate",
        "Register",
        "Deploy",
        "CheckEndpoint",
        "Succeeded",
    ]
    # Job status and secondary status as they change, each change once.
    assert f"train job {NAMES['train']}: InProgress / Starting - Preparing the instances for training" in out
    assert f"train job {NAMES['train']}: InProgress / Training - Training image download completed" in out
    assert f"train job {NAMES['train']}: Completed - Training job completed" in out
    assert out.count(f"train job {NAMES['train']}: InProgress / Training") == 1
    assert f"prepare job {NAMES['prepare']}: Completed" in out
    # Training progress: step of total (max_steps), loss, tokens/s and, from the second point on, time left;
    # into a file a line at most every 30 s, and one when training has ended.
    assert "train step 2/4  loss 2.1000  820 tokens/s  2s left" in out
    assert "train step 4/4  loss 1.7000  805 tokens/s\n" in out
    assert out.count("train step") == 2
    assert "execution SUCCEEDED" in out
    # The summary: metrics, gate, model package, endpoint, report.
    summary = out[out.index(f"Run {RUN_ID}") :]
    assert "Status         SUCCEEDED" in summary
    assert "Gate           passed - pass: execution accuracy 0.62 vs minimum 0.60" in summary
    assert f"Model package  Approved  {PACKAGE_ARN}" in summary
    assert "Endpoint       sql-assistant" in summary and "answers checked: 3 of 3 as evaluated" in summary
    assert "aws sagemaker-runtime invoke-endpoint --endpoint-name sql-assistant --region us-east-1" in summary
    assert f"Report         s3://llm-ft-artifacts-test/runs/{RUN_ID}/eval/report.html" in summary
    assert "Training       step 4/4  loss 1.7000  805 tokens/s" in summary
    metrics_row = next(line for line in summary.splitlines() if line.startswith("execution_accuracy"))
    assert metrics_row.split() == ["execution_accuracy", "0.310", "0.620"]


def test_gate_failure_exits_1_with_error_and_cause(stack, input_file):
    run = stack.cli("start", "--input", str(input_file({"fake_outcome": "gate_fails"})), "--watch")
    assert run.code == ExitCode.FAILED
    assert "execution FAILED: EvaluationGateFailed" in run.out
    assert "Error          EvaluationGateFailed" in run.out
    assert "Cause          fail: execution accuracy 0.31 vs minimum 0.60" in run.out
    assert "Model package  Rejected" in run.out
    assert "Endpoint" not in run.out, "a rejected model has no endpoint"


def test_watch_of_a_finished_execution_prints_its_summary(stack, input_file):
    arn = stack.start("done", {"fake_outcome": "gate_fails"})
    assert stack.wait(arn)["status"] == "FAILED"
    run = stack.cli("watch", "done")
    assert run.code == ExitCode.FAILED
    assert "execution FAILED: EvaluationGateFailed" in run.out and f"Run {RUN_ID}  (done)" in run.out
    by_arn = stack.cli("watch", arn)
    assert by_arn.code == ExitCode.FAILED and f"Run {RUN_ID}  (done)" in by_arn.out


def test_watch_polls_the_history_one_page_at_a_time(stack, input_file, monkeypatch):
    """Each poll makes one DescribeExecution and one GetExecutionHistory call, never more."""
    calls = {"DescribeExecution": 0, "GetExecutionHistory": 0}
    import botocore.client

    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        if operation in calls:
            calls[operation] += 1
            if operation == "GetExecutionHistory":
                assert params["reverseOrder"] is True and params["maxResults"] == 1000
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    run = stack.cli("start", "--input", str(input_file({})), "--watch")
    assert run.code == ExitCode.SUCCEEDED
    assert calls["GetExecutionHistory"] == calls["DescribeExecution"] > 3


def test_dry_run_sets_the_flag_and_reports_the_preflight(stack, input_file):
    run = stack.cli("start", "--input", str(input_file({"training": {"instance_type": "ml.g5.2xlarge"}})), "--dry-run")
    assert run.code == ExitCode.SUCCEEDED, run.out + run.err
    [execution] = stack.client("stepfunctions").list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    assert execution["name"].startswith("dry-run-")
    sent = json.loads(stack.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])["input"])
    assert sent == {"training": {"instance_type": "ml.g5.2xlarge"}, "orchestration": {"dry_run": True}}
    assert "Dry run        SUCCEEDED" in run.out and "Preflight: passed" in run.out
    assert "ok      quota 'ml.g5.2xlarge for spot training job usage' is 2, the run needs 1" in run.out
    assert "StartPrepare" not in run.out


def test_failed_preflight_exits_1_naming_field_value_and_what_is_allowed(stack, input_file):
    run = stack.cli("start", "--input", str(input_file({"fake_outcome": "preflight_fails"})), "--dry-run")
    assert run.code == ExitCode.FAILED
    assert "Error          PreflightFailed" in run.out and "Preflight: failed" in run.out
    assert "problem training.instance_type: 'ml.p5.48xlarge' has no SageMaker quota" in run.out


def test_a_stack_that_ignores_dry_run_is_not_taken_for_a_passed_preflight(stack, input_file):
    run = stack.cli("start", "--input", str(input_file({"fake_outcome": "ignores_dry_run"})), "--dry-run")
    assert run.code == ExitCode.FAILED
    assert "No preflight report in the execution's output" in run.out


def test_placeholders_become_the_stack_buckets(stack, input_file):
    run = stack.cli(
        "start",
        "--input",
        str(input_file({"dataset": {"s3_uri": "s3://${DATA_BUCKET}/d.jsonl"}})),
        "--name",
        "placeholders",
    )
    assert run.code == ExitCode.SUCCEEDED and "started placeholders" in run.out
    arn = run.out.split()[-1]
    sent = json.loads(stack.client("stepfunctions").describe_execution(executionArn=arn)["input"])
    assert sent["dataset"]["s3_uri"] == f"s3://{DATA}/d.jsonl"
    unknown = stack.cli("start", "--input", str(input_file({"dataset": {"s3_uri": "s3://${DATA_BUKET}/d"}})))
    assert unknown.code == ExitCode.USAGE
    assert (
        "dataset.s3_uri: 's3://${DATA_BUKET}/d' names ${DATA_BUKET}; allowed placeholders: "
        "${ARTIFACTS_BUCKET}, ${DATA_BUCKET}" in unknown.err
    )


def test_a_name_in_use_with_another_input_is_refused(stack, input_file):
    assert stack.cli("start", "--input", str(input_file({"fake_outcome": "stalls"})), "--name", "twice").code == 0
    again = stack.cli("start", "--input", str(input_file({"other": 1})), "--name", "twice")
    assert again.code == ExitCode.USAGE and "--name twice: an execution of that name already exists" in again.err
    bad = stack.cli("start", "--input", str(input_file({})), "--name", "has space")
    assert bad.code == ExitCode.USAGE and "--name 'has space'" in bad.err
    model = stack.cli("start", "--input", str(input_file({})), "--model", "tiny")
    assert model.code == ExitCode.USAGE and "--model tiny: applies with --local only" in model.err


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"dataset": {"format": "messages",}}', "not JSON: line 1 column 35: Expecting property name"),
        ('{\n  "training": {\n    "use_spot": tru\n  }\n}', "not JSON: line 3 column 17: Expecting value"),
        ("[1, 2]", "expected a JSON object (the execution input), got list"),
    ],
)
def test_bad_input_file_names_line_and_column(stack, input_file, text, message):
    run = stack.cli("start", "--input", str(input_file(text)))
    assert run.code == ExitCode.USAGE
    assert message in run.err
    assert not stack.client("stepfunctions").list_executions(stateMachineArn=stack.state_machine_arn)["executions"]


def test_missing_input_file(stack, tmp_path):
    run = stack.cli("start", "--input", str(tmp_path / "nope.json"))
    assert run.code == ExitCode.USAGE and "nope.json: no such file" in run.err


def test_missing_stack_and_missing_execution_are_named(stack):
    missing = stack.cli("--stack", "NoSuchStack", "list")
    assert missing.code == ExitCode.NOT_FOUND
    assert "stack 'NoSuchStack' not found in region us-east-1" in missing.err
    elsewhere = stack.cli("--region", "eu-west-1", "list")
    assert elsewhere.code == ExitCode.NOT_FOUND and "not found in region eu-west-1" in elsewhere.err
    for command in ("watch", "status", "logs", "stop"):
        run = stack.cli(command, "never-started")
        assert run.code == ExitCode.NOT_FOUND, command
        assert "no execution 'never-started'" in run.err and "llm-finetune list" in run.err


def test_a_stack_without_the_outputs_is_named(stack):
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"Other": {"Value": "x"}}}
    stack.client("cloudformation").create_stack(StackName="Unrelated", TemplateBody=json.dumps(template))
    run = stack.cli("--stack", "Unrelated", "list")
    assert run.code == ExitCode.NOT_FOUND
    assert "has no output StateMachineArn, ArtifactsBucketName, DataBucketName; outputs: Other" in run.err


def test_list_status_and_stop(stack, input_file):
    finished = stack.start("finished", {"fake_outcome": "gate_fails"})
    stack.wait(finished)
    stack.start("running", {"fake_outcome": "stalls"})
    listing = stack.cli("list")
    assert listing.code == 0
    rows = {line.split()[0]: line.split()[1] for line in listing.out.splitlines()[2:] if line.strip()}
    assert rows == {"finished": "FAILED", "running": "RUNNING"}
    only = json.loads(stack.cli("list", "--status", "RUNNING", "--json").out)
    assert [e["name"] for e in only] == ["running"]
    status = stack.cli("status", "running")
    assert status.code == 0 and "Status         RUNNING for" in status.out
    as_json = json.loads(stack.cli("status", "finished", "--json").out)
    assert as_json["status"] == "FAILED" and as_json["error"] == "EvaluationGateFailed"
    assert as_json["metrics"]["fine_tuned"] == {k: METRICS["fine_tuned"][k] for k in METRICS["fine_tuned"]}
    overview = stack.cli("status")
    assert "Running" in overview.out and "running" in overview.out.split("Running")[-1]
    assert stack.outputs["StateMachineArn"] in overview.out
    stopped = stack.cli("stop", "running")
    assert stopped.code == 0 and "stopped running: ABORTED" in stopped.out
    again = stack.cli("stop", "running")
    assert again.code == 0 and "running had already ended: ABORTED; nothing to stop" in again.out
    watched = stack.cli("watch", "running")
    assert watched.code == ExitCode.ABORTED and "Status         ABORTED" in watched.out


def test_logs_of_one_job_and_of_every_job(stack, input_file):
    stack.create_jobs()
    arn = stack.start("logged", {})
    stack.wait(arn)
    stack.log("prepare", ["prepare_data: 100 rows in, 98 kept"])
    stack.log("train", ["train_metrics: step=1 loss=2.5 learning_rate=0.0002 epoch=0.25 tokens_per_second=800"])
    stack.log("train", ["[rank 1] waiting for algo-1"], host="algo-2")
    stack.log("evaluate", ["evaluate: 100 prompts"])
    train = stack.cli("logs", "logged", "--job", "train")
    assert train.code == 0
    assert train.out.splitlines() == [
        "train_metrics: step=1 loss=2.5 learning_rate=0.0002 epoch=0.25 tokens_per_second=800",
        "[train algo-2] [rank 1] waiting for algo-1",
    ]
    every = stack.cli("logs", "logged")
    assert "[prepare algo-1] prepare_data: 100 rows in, 98 kept" in every.out
    assert "[evaluate algo-1] evaluate: 100 prompts" in every.out
    assert every.out.index("[prepare") < every.out.index("[train") < every.out.index("[evaluate")
    followed = stack.cli("logs", "logged", "--job", "evaluate", "--follow")
    assert followed.code == 0 and followed.out == "evaluate: 100 prompts\n"


def test_logs_of_an_execution_that_started_no_job(stack, input_file):
    arn = stack.start("dry", {"orchestration": {"dry_run": True}})
    stack.wait(arn)
    run = stack.cli("logs", "dry")
    assert run.code == ExitCode.NOT_FOUND and "execution dry (SUCCEEDED) has started no job" in run.err


def test_profile_and_region_as_the_aws_cli_takes_them(stack, monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text("[profile team]\nregion = eu-west-1\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[team]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    import io

    from rich.console import Console

    from llm_finetune_cli.cli import main

    def run(*args):
        err = io.StringIO()
        code = main(list(args), out=Console(file=io.StringIO()), err=Console(file=err, width=200))
        return code, err.getvalue()

    # The profile's region: the stack lives in us-east-1, so it is not found in eu-west-1.
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    code, err = run("--profile", "team", "list")
    assert code == ExitCode.NOT_FOUND and "region eu-west-1" in err
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert "region eu-west-1" in run("list")[1]
    # AWS_REGION wins over AWS_DEFAULT_REGION and the profile; --region wins over all.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert "region ap-south-1" in run("list")[1]
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert "region us-west-2" in run("list")[1]
    assert run("--region", "us-east-1", "list")[0] == 0
    code, err = run("--profile", "nobody", "list")
    assert code == ExitCode.USAGE and "nobody" in err and "--profile" in err


def test_ctrl_c_stops_watching_not_the_execution(stack, input_file, monkeypatch):
    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(watch_module, "pause", interrupted)
    run = stack.cli(
        "--stack",
        "LlmFineTuning",
        "start",
        "--input",
        str(input_file({"fake_outcome": "stalls"})),
        "--name",
        "long-one",
        "--watch",
    )
    assert run.code == ExitCode.INTERRUPTED
    assert "stopped watching; the execution keeps running" in run.err
    assert "llm-finetune --stack LlmFineTuning --region us-east-1 watch long-one" in run.err
    [execution] = stack.client("stepfunctions").list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    assert execution["status"] == "RUNNING"


@pytest.mark.parametrize("status, code", [("SUCCEEDED", 0), ("FAILED", 1), ("ABORTED", 3), ("TIMED_OUT", 4)])
def test_exit_codes_of_a_followed_execution(status, code):
    from llm_finetune_cli.errors import exit_code_for

    assert exit_code_for(status) == code


def test_on_a_terminal_watch_draws_the_bar_among_the_state_lines(stack, input_file, monkeypatch):
    import io

    from rich.console import Console

    from llm_finetune_cli.cli import main

    stack.create_jobs()
    stack.set_training("InProgress", "Starting", "Preparing the instances for training")
    scripted_training(stack, monkeypatch)
    out = io.StringIO()
    code = main(
        ["--region", "us-east-1", "--interval", "0.2", "start", "--input", str(input_file({})), "--watch"],
        out=Console(file=out, force_terminal=True, width=160),
        err=Console(file=io.StringIO()),
    )
    assert code == ExitCode.SUCCEEDED
    text = out.getvalue()
    assert "━" in text and "step 4/4" in text and "▶ Succeeded" in text and "SUCCEEDED" in text
    assert "train step" not in text, "on a terminal the bar replaces the progress lines"
