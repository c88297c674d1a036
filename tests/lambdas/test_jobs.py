"""start_job / describe_job: the container contract, adoption, failures."""

import json
import re

import describe_job
import pytest
import start_job
from botocore.exceptions import ClientError
from common.errors import JobFailed, ThrottlingException
from common.job_requests import METRIC_DEFINITIONS

from .conftest import ARTIFACTS


def _start(run, kind, **state):
    return start_job.handler(
        {"step": f"Start{kind}", "kind": kind, "state": {"run": run, **state}, "execution_name": run["execution_name"]},
        None,
    )


def test_training_job_follows_the_container_contract(aws, run):
    job = _start(run, "train")
    assert job == {
        "name": f"{run['run_id']}-train",
        "kind": "train",
        "adopted": False,
        "status": "Completed",
        "arn": job["arn"],
        "started_at": job["started_at"],
        "poll_seconds": 60,
    }
    (request,) = aws.calls_to("CreateTrainingJob")
    spec = request["AlgorithmSpecification"]
    assert spec["ContainerEntrypoint"] == ["python3", "/opt/ml/input/data/code/launch.py", "train.py"]
    assert "ContainerArguments" not in spec
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    assert request["HyperParameters"]["model_id"] == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert request["HyperParameters"]["learning_rate"] == "0.0002"
    assert request["EnableManagedSpotTraining"] is True
    stop = request["StoppingCondition"]
    assert stop["MaxRuntimeInSeconds"] == 12 * 3600 and stop["MaxWaitTimeInSeconds"] >= stop["MaxRuntimeInSeconds"]
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://{ARTIFACTS}/runs/{run['run_id']}/checkpoints/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    out = request["OutputDataConfig"]
    assert out["CompressionType"] == "NONE" and out["KmsKeyId"] == aws.kms_key_arn
    assert out["S3OutputPath"] == f"s3://{ARTIFACTS}/runs/{run['run_id']}/training/"
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]  # ml.g5 has hardware-encrypted NVMe storage
    assert request["EnableNetworkIsolation"] is False and request["EnableInterContainerTrafficEncryption"] is False
    assert {c["ChannelName"] for c in request["InputDataConfig"]} == {"code", "train"}
    assert request["Tags"] == [{"Key": "fine-tune:run-id", "Value": run["run_id"]}]
    assert "VpcConfig" not in request


def test_metric_definitions_parse_the_training_log_line():
    line = "train_metrics: step=12 loss=1.2345 learning_rate=0.0002 epoch=0.50 tokens_per_second=812.3"
    found = {d["Name"]: re.search(d["Regex"], line).group(1) for d in METRIC_DEFINITIONS}
    assert found == {
        "train:step": "12",
        "train:loss": "1.2345",
        "train:learning_rate": "0.0002",
        "train:epoch": "0.50",
        "train:tokens_per_second": "812.3",
    }
    assert re.search(METRIC_DEFINITIONS[2]["Regex"], line.replace("0.0002", "2e-04")).group(1) == "2e-04"


def test_metric_definitions_read_every_field_of_the_line_training_prints():
    from metrics_logging import format_metric_line

    line = format_metric_line(step=7, loss=0.5, learning_rate=1.5e-05, epoch=1.25, tokens_per_second=99.5)
    found = {d["Name"]: float(re.search(d["Regex"], line).group(1)) for d in METRIC_DEFINITIONS}
    assert found == {
        "train:step": 7,
        "train:loss": 0.5,
        "train:learning_rate": 1.5e-05,
        "train:epoch": 1.25,
        "train:tokens_per_second": 99.5,
    }


def test_model_from_s3_isolates_the_job_and_vpc_and_token_settings(aws, monkeypatch):
    import validate

    monkeypatch.setenv("SUBNET_IDS", "subnet-0123456789abcdef0,subnet-0fedcba9876543210")
    monkeypatch.setenv("SECURITY_GROUP_IDS", "sg-0123456789abcdef0")
    monkeypatch.setenv("HF_TOKEN_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-AbCdEf")
    run = validate.handler(
        {
            "execution_name": "s3-model",
            "state": {
                "base_model": {"s3_uri": "s3://models-bucket/qwen/"},
                "training": {"instance_type": "ml.m5.xlarge", "instance_count": 2, "use_spot": False},
            },
        },
        None,
    )
    _start(run, "train")
    (request,) = aws.calls_to("CreateTrainingJob")
    assert request["EnableNetworkIsolation"] is True and request["EnableInterContainerTrafficEncryption"] is True
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == aws.kms_key_arn
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    assert {c["ChannelName"] for c in request["InputDataConfig"]} == {"code", "train", "model"}
    assert request["VpcConfig"]["Subnets"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    assert "model_id" not in request["HyperParameters"] and "hf_token_secret_arn" not in request["HyperParameters"]


def test_several_spot_instances_in_a_vpc_get_a_request_sagemaker_accepts(aws, monkeypatch):
    """N hosts share one job-level VpcConfig; inputs are copied to each; traffic between them is encrypted."""
    import validate

    monkeypatch.setenv("SUBNET_IDS", "subnet-0123456789abcdef0")
    monkeypatch.setenv("SECURITY_GROUP_IDS", "sg-0123456789abcdef0,sg-0fedcba9876543210")
    run = validate.handler(
        {
            "execution_name": "four-hosts",
            "state": {
                "training": {
                    "instance_type": "ml.g5.12xlarge",
                    "instance_count": 4,
                    "use_spot": True,
                    "hyperparameters": {"fsdp": "full_shard auto_wrap"},
                }
            },
        },
        None,
    )
    _start(run, "train")
    (request,) = aws.calls_to("CreateTrainingJob")  # validated against SageMaker's service model
    assert request["ResourceConfig"]["InstanceCount"] == 4
    assert request["EnableInterContainerTrafficEncryption"] is True
    assert request["VpcConfig"] == {
        "Subnets": ["subnet-0123456789abcdef0"],
        "SecurityGroupIds": ["sg-0123456789abcdef0", "sg-0fedcba9876543210"],
    }
    assert {c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in request["InputDataConfig"]} == {
        "FullyReplicated"
    }
    assert (
        request["EnableManagedSpotTraining"] is True
        and request["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    )
    stop = request["StoppingCondition"]
    assert stop["MaxWaitTimeInSeconds"] >= stop["MaxRuntimeInSeconds"]
    assert request["HyperParameters"]["fsdp"] == "full_shard auto_wrap"


def test_hf_token_is_passed_as_a_secret_arn_never_a_token(aws, run, monkeypatch):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-AbCdEf"
    monkeypatch.setenv("HF_TOKEN_SECRET_ARN", arn)
    _start(run, "train")
    (request,) = aws.calls_to("CreateTrainingJob")
    assert request["HyperParameters"]["hf_token_secret_arn"] == arn
    assert arn not in json.dumps(request["Environment"])


def test_prepare_and_evaluate_jobs(aws, run):
    _start(run, "prepare")
    _start(run, "evaluate")
    prepare, evaluate = aws.calls_to("CreateProcessingJob")
    entry = prepare["AppSpecification"]["ContainerEntrypoint"]
    assert entry[:3] == ["python3", "/opt/ml/processing/input/code/launch.py", "prepare_data.py"]
    assert entry[entry.index("--hf-dataset-id") + 1] == "b-mc2/sql-create-context"
    assert entry[entry.index("--format") + 1] == "sql-create-context"
    assert prepare["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == run["paths"]["data"]
    assert prepare["ProcessingOutputConfig"]["KmsKeyId"] == aws.kms_key_arn
    assert prepare["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == aws.kms_key_arn  # ml.m5
    assert prepare["NetworkConfig"]["EnableNetworkIsolation"] is False  # reads the Hub
    args = evaluate["AppSpecification"]["ContainerEntrypoint"]
    assert args[2] == "evaluate.py"
    assert args[args.index("--base-model-id") + 1] == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert args[args.index("--test-file") + 1] == "/opt/ml/processing/input/data/test.jsonl"
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["ProcessingInputs"]}
    assert inputs["model"] == run["paths"]["merged"] and inputs["data"] == run["paths"]["test_file"]


VLLM_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-vllm:"
    "0.29.0-transformers5.15.0-gpu-py312-cu130-ubuntu24.04-v1.0"
)


def _validated(execution_name, execution_input):
    import validate

    return validate.handler({"step": "ValidateInput", "state": execution_input, "execution_name": execution_name}, None)


def test_a_vllm_deployment_is_evaluated_in_the_vllm_image_by_vllm(aws, monkeypatch):
    monkeypatch.setenv("VLLM_IMAGE_URI", VLLM_IMAGE)
    run = _validated("vllm-eval", {"deployment": {"engine": "vllm"}})
    _start(run, "evaluate")
    (evaluate,) = aws.calls_to("CreateProcessingJob")
    app = evaluate["AppSpecification"]
    assert app["ImageUri"] == VLLM_IMAGE
    entry = app["ContainerEntrypoint"]
    # launch.py keeps the image's own vLLM, torch and transformers and adds only evaluate.py's extras
    assert entry[:4] == ["python3", "/opt/ml/processing/input/code/launch.py", "--image-software", "evaluate.py"]
    assert entry[entry.index("--generation-backend") + 1] == "vllm"
    assert evaluate["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.g5.2xlarge"


@pytest.mark.parametrize(
    "execution_input",
    [
        {"deployment": {"engine": "tgi"}},
        {
            "deployment": {"engine": "vllm"},
            "evaluation": {"generation": "transformers", "instance_type": "ml.m5.xlarge"},
        },
    ],
)
def test_other_evaluations_run_in_the_training_image_with_transformers(aws, monkeypatch, execution_input):
    monkeypatch.setenv("VLLM_IMAGE_URI", VLLM_IMAGE)
    run = _validated("tf-eval", execution_input)
    _start(run, "evaluate")
    (evaluate,) = aws.calls_to("CreateProcessingJob")
    entry = evaluate["AppSpecification"]["ContainerEntrypoint"]
    assert evaluate["AppSpecification"]["ImageUri"] != VLLM_IMAGE
    assert entry[:3] == ["python3", "/opt/ml/processing/input/code/launch.py", "evaluate.py"]
    assert "--generation-backend" not in entry


def test_the_same_run_started_twice_makes_one_job(aws, run):
    first = _start(run, "train")
    second = _start(run, "train")
    assert len(aws.calls_to("CreateTrainingJob")) == 1
    assert second["adopted"] is True and second["arn"] == first["arn"]


def test_a_create_race_is_adopted(aws, run):
    """AWS answers ResourceInUse when another invocation created the job in between."""
    sagemaker = aws.session.client("sagemaker")
    lost_race = {"n": 0}

    def create_elsewhere_then_conflict(params, model, **_):
        if model.name == "CreateProcessingJob" and lost_race["n"] == 0:
            lost_race["n"] += 1
            sagemaker.create_processing_job(**params)  # the other invocation wins
            raise ClientError(
                {"Error": {"Code": "ResourceInUse", "Message": f"Job {params['ProcessingJobName']} already exists"}},
                "CreateProcessingJob",
            )

    import common.aws

    common.aws.client("sagemaker").meta.events.register(
        "before-parameter-build.sagemaker", create_elsewhere_then_conflict
    )
    job = _start(run, "prepare")
    assert job["adopted"] is True and job["name"] == f"{run['run_id']}-prep"


def test_describe_reports_progress_and_failure(aws, run):
    _start(run, "train")
    job = aws.backend.training_jobs[f"{run['run_id']}-train"]
    job.training_job_status = "Stopping"
    event = {"kind": "train", "state": {"run": run, "jobs": {"train": {"name": job.training_job_name}}}}
    assert describe_job.handler(event, None)["status"] == "InProgress"
    job.training_job_status = "Failed"
    job.failure_reason = "AlgorithmError: CUDA out of memory"
    with pytest.raises(JobFailed, match=r"^train job .*-train failed: AlgorithmError: CUDA out of memory"):
        describe_job.handler(event, None)


def test_throttling_becomes_one_error_name(aws, run, monkeypatch):
    import common.jobs

    def throttled(kind, name):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeTrainingJob")

    monkeypatch.setattr(common.jobs, "describe", throttled)
    with pytest.raises(ThrottlingException):
        _start(run, "train")


def test_unknown_kind_is_refused(aws, run):
    with pytest.raises(ValueError, match="'deploy' is not a job kind"):
        _start(run, "deploy")


def test_waits_grow_with_the_time_a_stage_has_taken_up_to_its_cap():
    from common.polling import cap_seconds, looks_for, next_wait

    cap = cap_seconds("train", 672 * 3600, 60)
    assert cap == 2420  # 1,000 looks for the longest spot job
    assert next_wait(0, 60, cap) == 60  # a new job is looked at after the input's interval
    assert next_wait(3600, 60, cap) == 360  # an hour in: a tenth of the time taken
    assert next_wait(10 * 24 * 3600, 60, cap) == cap  # never more than the cap
    assert looks_for(672 * 3600, 60, cap) <= 1_000 + 40
    assert next_wait(5, 1, cap_seconds("prepare", 2 * 3600, 1)) == 1  # local mode: every second at first
