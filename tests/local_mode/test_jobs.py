"""SageMaker jobs as local processes: lifecycle, container contract, uniqueness, stop, failure, hosts, network."""

import json
import socket
import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local_mode import moto_patches
from local_mode.endpoints import EndpointEmulator
from local_mode.job_network import namespaces_available
from local_mode.jobs import JobRunner, JobSettings

needs_namespaces = pytest.mark.skipif(
    not namespaces_available(), reason="network namespaces need root (unshare, nsenter, ip)"
)

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sm"
SCRIPT = r"""
import json, os, sys, time, pathlib
root = pathlib.Path(os.environ["OPT_ML"])
hp = json.loads((root / "input/config/hyperparameters.json").read_text())
print("args", sys.argv[1:], flush=True)
print("train rows", (root / "input/data/train/rows.txt").read_text().strip(), flush=True)
if hp.get("mode") == "crash":
    raise ValueError("bad learning rate 'x': expected a number")
ckpt = root / "checkpoints"
done = sorted(ckpt.glob("checkpoint-*"))
start = int(done[-1].name.split("-")[1]) if done else 0
for step in range(start + 1, int(hp["steps"]) + 1):
    print(f"train_metrics: step={step} loss={1.0 / step:.4f}", flush=True)
    (ckpt / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
    (ckpt / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    time.sleep(float(hp.get("sleep", "0")))
(root / "model" / "weights.txt").write_text(f"steps={hp['steps']} start={start}")
"""


@pytest.fixture
def aws(tmp_path):
    lines = []
    with mock_aws():
        runner = JobRunner(
            tmp_path,
            on_log=lambda job, kind, line: lines.append((job, line)),
            settings=JobSettings(poll_seconds=0.1, checkpoint_sync_seconds=0.1, stop_grace_seconds=2),
        )
        with moto_patches.installed(object(), runner, EndpointEmulator(tmp_path)):
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="bkt")
            s3.put_object(Bucket="bkt", Key="code/job.py", Body=SCRIPT.encode())
            s3.put_object(Bucket="bkt", Key="data/rows.txt", Body=b"42\n")
            yield runner, boto3.client("sagemaker", region_name=REGION), s3, lines
            runner.shutdown()


def training_request(name, **hyperparameters):
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": "img",
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["python3", "/opt/ml/input/data/code/job.py"],
            "ContainerArguments": ["--out=/opt/ml/model"],
            "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=([0-9.]+)"}],
        },
        "HyperParameters": {"steps": "3", **hyperparameters},
        "InputDataConfig": [
            {
                "ChannelName": "code",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bkt/code/"}},
            },
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bkt/data"}},
            },
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bkt/runs/r1/training/", "CompressionType": "NONE"},
        "CheckpointConfig": {"S3Uri": "s3://bkt/runs/r1/checkpoints"},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Tags": [{"Key": "fine-tune:run-id", "Value": "r1"}],
    }


def wait(sagemaker, name, statuses=("Completed", "Failed", "Stopped")):
    for _ in range(300):
        job = sagemaker.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"{name} stuck in {job['TrainingJobStatus']}")


def wait_processing(sagemaker, name):
    """The processing job once it has left InProgress (or after 20 s)."""
    for _ in range(200):
        job = sagemaker.describe_processing_job(ProcessingJobName=name)
        if job["ProcessingJobStatus"] != "InProgress":
            break
        time.sleep(0.1)
    return job


def test_training_job_runs_the_script_under_the_container_contract(aws, tmp_path):
    runner, sagemaker, s3, lines = aws
    sagemaker.create_training_job(**training_request("r1-train"))
    assert sagemaker.describe_training_job(TrainingJobName="r1-train")["TrainingJobStatus"] == "InProgress"
    job = wait(sagemaker, "r1-train")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == "s3://bkt/runs/r1/training/r1-train/output/model/"
    body = s3.get_object(Bucket="bkt", Key="runs/r1/training/r1-train/output/model/weights.txt")["Body"].read()
    assert body == b"steps=3 start=0"
    assert {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]} == {"loss": pytest.approx(0.3333)}
    assert job["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "loss"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt", Prefix="runs/r1/checkpoints/")["Contents"]]
    assert "runs/r1/checkpoints/checkpoint-3/trainer_state.json" in keys
    folder = tmp_path / "runs" / "r1" / "jobs" / "r1-train"
    log = (folder / "job.log").read_text()
    assert "train rows 42" in log and f"--out={folder / 'opt_ml' / 'model'}" in log
    assert json.loads((folder / "opt_ml/input/config/hyperparameters.json").read_text()) == {"steps": "3"}
    assert ("r1-train", "train_metrics: step=2 loss=0.5000") in lines
    [summary] = runner.summaries()
    assert summary["status"] == "Completed" and summary["started"] < summary["ended"] and summary["seconds"] > 0


def test_a_second_job_under_an_existing_name_is_rejected_as_aws_does(aws):
    runner, sagemaker, _s3, _lines = aws
    sagemaker.create_training_job(**training_request("r1-train"))
    with pytest.raises(ClientError) as error:
        sagemaker.create_training_job(**training_request("r1-train"))
    assert error.value.response["Error"]["Code"] == "ResourceInUse"
    wait(sagemaker, "r1-train")
    assert [s["name"] for s in runner.summaries()] == ["r1-train"]


def test_crash_fails_the_job_with_the_error_lines(aws):
    _runner, sagemaker, _s3, _lines = aws
    sagemaker.create_training_job(**training_request("r1-crash", mode="crash"))
    job = wait(sagemaker, "r1-crash")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ExitCode 1")
    assert "ValueError: bad learning rate 'x': expected a number" in job["FailureReason"]


def wait_for_line(lines, name, prefix):
    for _ in range(600):
        if any(job == name and line.startswith(prefix) for job, line in list(lines)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never printed {prefix!r}")


def test_stop_kills_the_process(aws):
    _runner, sagemaker, _s3, lines = aws
    sagemaker.create_training_job(**training_request("r1-slow", steps="1000", sleep="0.05"))
    wait_for_line(lines, "r1-slow", "train_metrics:")
    sagemaker.stop_training_job(TrainingJobName="r1-slow")
    job = wait(sagemaker, "r1-slow")
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith("/r1-slow/output/model/")
    with pytest.raises(ClientError, match="Could not find training job"):
        sagemaker.stop_training_job(TrainingJobName="nope")


def test_a_stop_while_inputs_download_keeps_the_process_from_starting(aws, monkeypatch):
    runner, sagemaker, _s3, lines = aws
    downloading, release = threading.Event(), threading.Event()
    prepare = runner._prepare_folder

    def slow_prepare(job, s3_client):
        downloading.set()
        release.wait(30)
        prepare(job, s3_client)

    monkeypatch.setattr(runner, "_prepare_folder", slow_prepare)
    sagemaker.create_training_job(**training_request("r1-early", steps="1000", sleep="0.05"))
    assert downloading.wait(30)
    sagemaker.stop_training_job(TrainingJobName="r1-early")
    assert sagemaker.describe_training_job(TrainingJobName="r1-early")["TrainingJobStatus"] == "Stopping"
    release.set()
    job = wait(sagemaker, "r1-early")
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    assert not any(line.startswith("train_metrics:") for name, line in lines if name == "r1-early")
    assert [s["attempts"] for s in runner.summaries()] == [0]


def test_spot_interruption_restarts_from_synced_checkpoints(tmp_path):
    with mock_aws():
        runner = JobRunner(
            tmp_path,
            settings=JobSettings(
                poll_seconds=0.1, checkpoint_sync_seconds=0.1, interrupt_training_after_checkpoint=True
            ),
        )
        with moto_patches.installed(object(), runner, EndpointEmulator(tmp_path)):
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="bkt")
            s3.put_object(Bucket="bkt", Key="code/job.py", Body=SCRIPT.encode())
            s3.put_object(Bucket="bkt", Key="data/rows.txt", Body=b"42\n")
            sagemaker = boto3.client("sagemaker", region_name=REGION)
            sagemaker.create_training_job(**training_request("r1-spot", steps="40", sleep="0.1"))
            job = wait(sagemaker, "r1-spot")
            runner.shutdown()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert "Interrupted" in statuses and "Restarting" in statuses
    log = (tmp_path / "runs/r1/jobs/r1-spot/job.log").read_text()
    assert "restored checkpoints" in log
    second_attempt = log.split("attempt 2:")[1]
    first_step = int(second_attempt.split("train_metrics: step=")[1].split()[0])
    assert first_step > 1


@needs_namespaces
def test_a_spot_interruption_restarts_every_host_from_the_synced_checkpoints(tmp_path):
    with mock_aws():
        runner = JobRunner(
            tmp_path,
            settings=JobSettings(
                poll_seconds=0.1, checkpoint_sync_seconds=0.1, interrupt_training_after_checkpoint=True
            ),
        )
        with moto_patches.installed(object(), runner, EndpointEmulator(tmp_path)):
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="bkt")
            s3.put_object(Bucket="bkt", Key="code/job.py", Body=SCRIPT.encode())
            s3.put_object(Bucket="bkt", Key="data/rows.txt", Body=b"42\n")
            sagemaker = boto3.client("sagemaker", region_name=REGION)
            request = training_request("r1-spot-hosts", steps="40", sleep="0.1")
            request["ResourceConfig"]["InstanceCount"] = 2
            sagemaker.create_training_job(**request)
            job = wait(sagemaker, "r1-spot-hosts")
            runner.shutdown()
            body = s3.get_object(Bucket="bkt", Key="runs/r1/training/r1-spot-hosts/output/model/weights.txt")[
                "Body"
            ].read()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    [summary] = runner.summaries()
    assert summary["attempts"] == 2
    log = (tmp_path / "runs/r1/jobs/r1-spot-hosts/job.log").read_text()
    assert "[local mode] algo-1 restored checkpoints" in log and "[local mode] algo-2 restored checkpoints" in log
    second_attempt = log.split("attempt 2:", 1)[1]
    for host in ("algo-1", "algo-2"):
        first_step = int(second_attempt.split(f"[{host}] train_metrics: step=")[1].split()[0])
        assert first_step > 1, host
    assert body.startswith(b"steps=40 start=") and body != b"steps=40 start=0"


def test_processing_job_maps_local_paths_and_uploads_outputs(aws, tmp_path):
    _runner, sagemaker, s3, _lines = aws
    s3.put_object(
        Bucket="bkt",
        Key="code/prep.py",
        Body=(
            b"import sys, pathlib\n"
            b"src = pathlib.Path(sys.argv[1]); out = pathlib.Path(sys.argv[2])\n"
            b"(out / 'copy.txt').write_text((src / 'rows.txt').read_text())\n"
        ),
    )
    sagemaker.create_processing_job(
        ProcessingJobName="r1-prep",
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": "img",
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/prep.py"],
            "ContainerArguments": ["/opt/ml/processing/input/data", "/opt/ml/processing/output/data"],
        },
        ProcessingInputs=[
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": "s3://bkt/code/prep.py",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": "s3://bkt/data/",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "data",
                    "S3Output": {
                        "S3Uri": "s3://bkt/runs/r1/data",
                        "LocalPath": "/opt/ml/processing/output/data",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
        },
        Tags=[{"Key": "fine-tune:run-id", "Value": "r1"}],
    )
    job = wait_processing(sagemaker, "r1-prep")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert s3.get_object(Bucket="bkt", Key="runs/r1/data/copy.txt")["Body"].read() == b"42\n"
    with pytest.raises(ClientError) as error:
        sagemaker.create_processing_job(
            ProcessingJobName="r1-prep",
            RoleArn=ROLE,
            AppSpecification={"ImageUri": "img"},
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
            },
        )
    assert error.value.response["Error"]["Code"] == "ResourceInUse"


def test_spot_emulation_waits_for_the_whole_checkpoint_to_reach_s3(tmp_path):
    from types import SimpleNamespace

    from local_mode.jobs import LocalJob, _signature

    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "checkpoint-2").mkdir(parents=True)
    state = checkpoints / "checkpoint-2" / "trainer_state.json"
    optimizer = checkpoints / "checkpoint-2" / "optimizer.pt"
    state.write_text("{}")
    optimizer.write_bytes(b"x" * 10)
    second = tmp_path / "algo-2-checkpoints"
    (second / "checkpoint-2").mkdir(parents=True)
    rng = second / "checkpoint-2" / "rng_state_1.pth"  # what the second host's rank writes
    rng.write_bytes(b"r")
    spec = SimpleNamespace(
        kind="training",
        hosts=[
            SimpleNamespace(name="algo-1", checkpoint=SimpleNamespace(local_path=checkpoints)),
            SimpleNamespace(name="algo-2", checkpoint=SimpleNamespace(local_path=second)),
        ],
    )
    job = LocalJob(spec=spec, fake=None, folder=tmp_path, log_path=tmp_path / "job.log")
    first, other = job.hosts
    runner = JobRunner(tmp_path, settings=JobSettings(interrupt_training_after_checkpoint=True))
    first.synced = {"checkpoint-2/trainer_state.json": _signature(state)}
    assert not runner._should_interrupt(job)  # the optimizer state has not been uploaded yet
    first.synced["checkpoint-2/optimizer.pt"] = (3, 0)
    assert not runner._should_interrupt(job)  # an older version of it has
    first.synced["checkpoint-2/optimizer.pt"] = _signature(optimizer)
    assert not runner._should_interrupt(job)  # the second host's part has not
    other.synced["checkpoint-2/rng_state_1.pth"] = _signature(rng)
    assert runner._should_interrupt(job)
    job.interrupted = True
    assert not runner._should_interrupt(job)  # once per job


def test_an_error_of_the_emulation_itself_fails_the_job_instead_of_leaving_it_in_progress(aws, monkeypatch):
    _runner, sagemaker, _s3, _lines = aws

    class BrokenSession:
        def __init__(self, **kwargs):
            raise KeyError("credential_provider")

    monkeypatch.setattr("local_mode.jobs.boto3.session.Session", BrokenSession)
    sagemaker.create_training_job(**training_request("r1-broken"))
    job = wait(sagemaker, "r1-broken")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "InternalServerError: KeyError: 'credential_provider'"


HOSTS_SCRIPT = r"""
import json, os, pathlib, socket, sys, time
root = pathlib.Path(os.environ["OPT_ML"])
config = json.loads((root / "input/config/resourceconfig.json").read_text())
me, hosts = config["current_host"], config["hosts"]
print("host", me, "of", ",".join(hosts), "rows", (root / "input/data/train/rows.txt").read_text().strip(), flush=True)
checkpoint = root / "checkpoints" / "checkpoint-1"
checkpoint.mkdir(parents=True, exist_ok=True)
if me == hosts[0]:
    server = socket.create_server(("0.0.0.0", 29500))
    peers = []
    for _ in hosts[1:]:
        connection, _ = server.accept()
        peers.append(connection.recv(64).decode())
    print("rendezvous", sorted(peers), flush=True)
    (checkpoint / "trainer_state.json").write_text("{}")
else:
    if os.environ.get("BREAK_HOST") == me:
        time.sleep(0.5)
        (root / "output").mkdir(exist_ok=True)
        (root / "output" / "failure").write_text(f"ValueError: {me} broke")
        raise SystemExit(3)
    for _ in range(100):
        try:
            connection = socket.create_connection((hosts[0], 29500), timeout=2)
            break
        except OSError:
            time.sleep(0.1)
    connection.sendall(f"{me}@{socket.gethostname()}".encode())
    (checkpoint / f"rng_state_{hosts.index(me)}.pth").write_text(me)
if os.environ.get("BREAK_HOST") and me == hosts[0]:
    time.sleep(120)
(root / "model" / "weights.txt").write_text(me)
"""


def hosts_request(name, count, **extra):
    request = training_request(name)
    request["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python3", "/opt/ml/input/data/code/hosts.py"]
    request["ResourceConfig"]["InstanceCount"] = count
    request.update(extra)
    return request


@needs_namespaces
def test_several_instances_run_as_hosts_that_reach_each_other_by_name(aws, tmp_path):
    _runner, sagemaker, s3, _lines = aws
    s3.put_object(Bucket="bkt", Key="code/hosts.py", Body=HOSTS_SCRIPT.encode())
    sagemaker.create_training_job(**hosts_request("r1-hosts", 3, EnableNetworkIsolation=True))
    job = wait(sagemaker, "r1-hosts")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    folder = tmp_path / "runs" / "r1" / "jobs" / "r1-hosts"
    roots = {
        "algo-1": folder / "opt_ml",
        "algo-2": folder / "algo-2" / "opt_ml",
        "algo-3": folder / "algo-3" / "opt_ml",
    }
    for host, root in roots.items():
        config = json.loads((root / "input/config/resourceconfig.json").read_text())
        assert config["current_host"] == host and config["hosts"] == ["algo-1", "algo-2", "algo-3"]
        assert config["network_interface_name"] == "eth0"
        assert (root / "input/data/train/rows.txt").read_text() == "42\n"  # every channel on every host
    log = (folder / "job.log").read_text()
    assert "[algo-1] rendezvous ['algo-2@algo-2', 'algo-3@algo-3']" in log  # by name, over the job's network
    # Only the first host's model is the job's model; every host's checkpoint files reach the one URI.
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bkt", Prefix="runs/r1/")["Contents"]}
    assert "runs/r1/training/r1-hosts/output/model/weights.txt" in keys
    assert (
        s3.get_object(Bucket="bkt", Key="runs/r1/training/r1-hosts/output/model/weights.txt")["Body"].read()
        == b"algo-1"
    )
    assert {
        "runs/r1/checkpoints/checkpoint-1/trainer_state.json",
        "runs/r1/checkpoints/checkpoint-1/rng_state_1.pth",
        "runs/r1/checkpoints/checkpoint-1/rng_state_2.pth",
    } <= keys


@needs_namespaces
def test_one_host_failing_fails_the_job_with_its_reason_and_stops_the_others(aws, monkeypatch):
    _runner, sagemaker, s3, lines = aws
    monkeypatch.setenv("BREAK_HOST", "algo-2")
    s3.put_object(Bucket="bkt", Key="code/hosts.py", Body=HOSTS_SCRIPT.encode())
    started = time.monotonic()
    sagemaker.create_training_job(**hosts_request("r1-broken-host", 2))
    job = wait(sagemaker, "r1-broken-host")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: ExitCode 3\nValueError: algo-2 broke"
    assert time.monotonic() - started < 60  # algo-1 (sleeping 120 s) was stopped
    assert any(
        line.startswith("[local mode] algo-2 failed (exit code 3): stopping the other hosts")
        for name, line in lines
        if name == "r1-broken-host"
    )
    assert not any(
        o["Key"].endswith("weights.txt")
        for o in s3.list_objects_v2(Bucket="bkt", Prefix="runs/r1/training/").get("Contents", [])
    )


NETWORK_SCRIPT = r"""
import json, os, pathlib, socket, sys, urllib.request
root = pathlib.Path(os.environ["OPT_ML"])
result = {"interfaces": sorted(name for _, name in socket.if_nameindex()),
          "rows": (root / "input/data/train/rows.txt").read_text().strip(), "reached": []}
targets = [("1.1.1.1", 443), ("127.0.0.1", int(sys.argv[1]))]
for host, port in targets:
    try:
        socket.create_connection((host, port), timeout=3).close()
        result["reached"].append(f"{host}:{port}")
    except OSError as error:
        pass
try:
    urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=5)
    result["reached"].append("pypi.org")
except OSError:
    pass
(root / "model" / "network.json").write_text(json.dumps(result))
"""


@needs_namespaces
@pytest.mark.parametrize("isolated", [True, False])
def test_no_socket_leaves_a_job_and_s3_channels_still_arrive(aws, tmp_path, isolated):
    _runner, sagemaker, s3, _lines = aws
    # A server on this machine's loopback: the job must not reach it either.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    s3.put_object(Bucket="bkt", Key="code/network.py", Body=NETWORK_SCRIPT.encode())
    request = training_request(f"r1-net-{isolated}".lower())
    request["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python3", "/opt/ml/input/data/code/network.py"]
    request["AlgorithmSpecification"]["ContainerArguments"] = [str(port)]
    request["EnableNetworkIsolation"] = isolated
    sagemaker.create_training_job(**request)
    job = wait(sagemaker, request["TrainingJobName"])
    server.close()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    result = json.loads(
        (tmp_path / "runs/r1/jobs" / request["TrainingJobName"] / "opt_ml/model/network.json").read_text()
    )
    assert result["rows"] == "42" and result["reached"] == []
    assert result["interfaces"] == (["lo"] if isolated else ["eth0", "lo"])


def test_running_vllm_in_the_vllm_image_without_its_cpu_build_fails_the_job_saying_what_to_run(
    aws, monkeypatch, tmp_path
):
    from local_mode import compat_envs

    _runner, sagemaker, _s3, _lines = aws
    monkeypatch.setenv("LLM_FINETUNE_VLLM_PYTHON", str(tmp_path / "no-such-python"))
    [image] = [
        image.image.replace("<region>", REGION) for image in compat_envs.SERVING_IMAGES if image.engine == "vllm"
    ]
    sagemaker.create_processing_job(
        ProcessingJobName="r1-eval",
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": image,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/launch.py", "--image-software", "job.py"],
        },
        ProcessingInputs=[
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": "s3://bkt/code/",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.g5.2xlarge", "VolumeSizeInGB": 30}
        },
        Tags=[{"Key": "fine-tune:run-id", "Value": "r1"}],
    )
    job = wait_processing(sagemaker, "r1-eval")
    assert job["ProcessingJobStatus"] == "Failed"
    assert "make vllm-env" in job["FailureReason"] and "evaluation.generation" in job["FailureReason"]


def test_a_job_past_its_max_runtime_is_stopped(aws):
    _, sagemaker, _, lines = aws
    request = training_request("r1-long", steps="1000", sleep="0.05")
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    sagemaker.create_training_job(**request)
    job = wait(sagemaker, "r1-long")
    assert job["TrainingJobStatus"] == "Stopped", job.get("FailureReason")
    assert ("r1-long", "[local mode] MaxRuntimeInSeconds exceeded: stopping the job") in lines
