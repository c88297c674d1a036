"""Translate a CreateTrainingJob / CreateProcessingJob request into what a local process needs.

The translation follows the SageMaker container contract: input channels under
`/opt/ml/input/data/<channel>`, hyperparameters as strings in `input/config/hyperparameters.json`,
processing inputs and outputs at their `LocalPath`, checkpoints at `CheckpointConfig.LocalPath`. Every
container path below `/opt/ml` is mapped to the host's own folder, and the scripts learn where that is
from `OPT_ML`.

A job with `InstanceCount` N has N hosts, `algo-1` ... `algo-N`, each with its own `/opt/ml` tree
(`<job>/opt_ml/` for algo-1, `<job>/algo-<k>/opt_ml/` for the others) and its own
`resourceconfig.json`; every channel is copied to every host (FullyReplicated).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cdk_app.contract import RUN_ID_TAG

CONTAINER_ROOT = "/opt/ml"
_OPT_ML = re.compile(r"(?<![\w/.])/opt/ml(?=/|$|\s|,|;|\")")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")


class UnsupportedJob(ValueError):
    """The request asks for something local mode cannot run as a local process."""


@dataclass
class Transfer:
    """One S3 prefix <-> one local folder (already mapped below the job's folder)."""

    s3_uri: str
    local_path: Path


@dataclass
class HostSpec:
    """One instance of a job: its name and everything below its own /opt/ml."""

    name: str  # algo-1, algo-2, ...
    opt_ml: Path  # this host's stand-in for /opt/ml
    command: list[str]
    environment: dict[str, str]
    inputs: list[Transfer] = field(default_factory=list)
    outputs: list[Transfer] = field(default_factory=list)
    files: dict[str, object] = field(default_factory=dict)  # relative to opt_ml -> JSON content
    checkpoint: Transfer | None = None


@dataclass
class JobSpec:
    kind: str  # "training" or "processing"
    name: str
    run_id: str
    hosts: list[HostSpec]
    model_output_uri: str | None = None  # training: where the first host's /opt/ml/model goes
    compress_model: bool = False
    max_runtime_seconds: int | None = None
    metric_definitions: list[dict] = field(default_factory=list)
    max_steps: int | None = None
    network_isolation: bool = False
    image: str = ""  # the container image: a serving image runs with its own software

    @property
    def folder(self) -> Path:
        """The job's folder: request, log, network files; the first host's opt_ml/ is inside it."""
        return self.hosts[0].opt_ml.parent

    @property
    def opt_ml(self) -> Path:
        return self.hosts[0].opt_ml

    @property
    def checkpoint(self) -> Transfer | None:
        return self.hosts[0].checkpoint


def host_names(count: int) -> list[str]:
    return [f"algo-{index + 1}" for index in range(count)]


def host_opt_ml(job_folder: Path, host: str) -> Path:
    return job_folder / "opt_ml" if host == "algo-1" else job_folder / host / "opt_ml"


def map_container_path(path: str, opt_ml: Path) -> Path:
    """'/opt/ml/processing/input/data' -> <opt_ml>/processing/input/data; other paths are refused."""
    if path != CONTAINER_ROOT and not path.startswith(CONTAINER_ROOT + "/"):
        raise UnsupportedJob(
            f"container path {path!r} is outside {CONTAINER_ROOT}; local mode maps only "
            f"{CONTAINER_ROOT} to the job's folder"
        )
    return opt_ml / path[len(CONTAINER_ROOT) :].lstrip("/")


def rewrite_argument(argument: str, opt_ml: Path) -> str:
    """Rewrite every literal /opt/ml prefix inside one command-line argument."""
    return _OPT_ML.sub(str(opt_ml), argument)


def build_command(entrypoint: list[str] | None, arguments: list[str] | None, opt_ml: Path) -> list[str]:
    if not entrypoint:
        raise UnsupportedJob(
            "the job has no ContainerEntrypoint: local mode runs only jobs that name their "
            "command explicitly (the image's own entrypoint is not available offline)"
        )
    command = [rewrite_argument(part, opt_ml) for part in list(entrypoint) + list(arguments or [])]
    if _PYTHON.match(os.path.basename(command[0])):
        command[0] = sys.executable
    return command


def run_id_of(request: dict, job_name: str) -> str:
    for tag in request.get("Tags") or []:
        if tag.get("Key") == RUN_ID_TAG and tag.get("Value"):
            return tag["Value"]
    return job_name


def _base_environment(opt_ml: Path, request: dict) -> dict[str, str]:
    environment = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
    environment["OPT_ML"] = str(opt_ml)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _channels(request: dict) -> list[tuple[str, str]]:
    """(channel name, S3 prefix) of every input channel; each host gets a full copy of each."""
    channels = []
    for channel in request.get("InputDataConfig") or []:
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if source is None:
            raise UnsupportedJob(f"channel {channel.get('ChannelName')!r}: only S3DataSource is emulated")
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise UnsupportedJob(
                f"channel {channel['ChannelName']!r}: S3DataType {source.get('S3DataType')!r} "
                "is not emulated (only S3Prefix)"
            )
        if source.get("S3DataDistributionType", "FullyReplicated") != "FullyReplicated":
            raise UnsupportedJob(
                f"channel {channel['ChannelName']!r}: S3DataDistributionType "
                f"{source['S3DataDistributionType']!r} is not emulated (only FullyReplicated)"
            )
        channels.append((channel["ChannelName"], source["S3Uri"]))
    return channels


def training_spec(request: dict, jobs_folder: Path) -> JobSpec:
    name = request["TrainingJobName"]
    run_id = run_id_of(request, name)
    folder = jobs_folder / run_id / "jobs" / name
    algorithm = request.get("AlgorithmSpecification") or {}
    channels = _channels(request)
    hyperparameters = {str(k): str(v) for k, v in (request.get("HyperParameters") or {}).items()}
    resources = request.get("ResourceConfig") or {}
    names = host_names(int(resources.get("InstanceCount", 1)))
    output = request.get("OutputDataConfig") or {}
    checkpoint_config = request.get("CheckpointConfig")
    hosts = []
    for host in names:
        opt_ml = host_opt_ml(folder, host)
        checkpoint = None
        if checkpoint_config:
            checkpoint = Transfer(
                checkpoint_config["S3Uri"],
                map_container_path(checkpoint_config.get("LocalPath") or f"{CONTAINER_ROOT}/checkpoints", opt_ml),
            )
        hosts.append(
            HostSpec(
                name=host,
                opt_ml=opt_ml,
                command=build_command(
                    algorithm.get("ContainerEntrypoint"), algorithm.get("ContainerArguments"), opt_ml
                ),
                environment=_base_environment(opt_ml, request),
                inputs=[Transfer(uri, opt_ml / "input" / "data" / channel) for channel, uri in channels],
                checkpoint=checkpoint,
                files={
                    "input/config/hyperparameters.json": hyperparameters,
                    "input/config/resourceconfig.json": {
                        "current_host": host,
                        "current_instance_type": resources.get("InstanceType"),
                        "current_group_name": "homogeneousCluster",
                        "hosts": names,
                        "instance_groups": [
                            {
                                "instance_group_name": "homogeneousCluster",
                                "instance_type": resources.get("InstanceType"),
                                "hosts": names,
                            }
                        ],
                        "network_interface_name": "eth0",
                    },
                    "input/config/inputdataconfig.json": {
                        channel: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
                        for channel, _ in channels
                    },
                },
            )
        )
    max_steps = hyperparameters.get("max_steps")
    return JobSpec(
        kind="training",
        name=name,
        run_id=run_id,
        hosts=hosts,
        network_isolation=bool(request.get("EnableNetworkIsolation")),
        image=algorithm.get("TrainingImage", ""),
        model_output_uri=f"{output['S3OutputPath'].rstrip('/')}/{name}/output" if output.get("S3OutputPath") else None,
        compress_model=output.get("CompressionType", "GZIP") != "NONE",
        max_runtime_seconds=(request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
        metric_definitions=list(algorithm.get("MetricDefinitions") or []),
        max_steps=int(max_steps) if max_steps and max_steps.lstrip("-").isdigit() and int(max_steps) > 0 else None,
    )


def processing_spec(request: dict, jobs_folder: Path) -> JobSpec:
    name = request["ProcessingJobName"]
    run_id = run_id_of(request, name)
    folder = jobs_folder / run_id / "jobs" / name
    app = request.get("AppSpecification") or {}
    for item in request.get("ProcessingInputs") or []:
        if item.get("S3Input") is None:
            raise UnsupportedJob(f"processing input {item.get('InputName')!r}: only S3Input is emulated")
        if item["S3Input"].get("S3DataDistributionType", "FullyReplicated") != "FullyReplicated":
            raise UnsupportedJob(f"processing input {item.get('InputName')!r}: only FullyReplicated is emulated")
    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        if item.get("S3Output") is None:
            raise UnsupportedJob(f"processing output {item.get('OutputName')!r}: only S3Output is emulated")
    resources = (request.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    names = host_names(int(resources.get("InstanceCount", 1)))
    hosts = []
    for host in names:
        opt_ml = host_opt_ml(folder, host)
        hosts.append(
            HostSpec(
                name=host,
                opt_ml=opt_ml,
                command=build_command(app.get("ContainerEntrypoint"), app.get("ContainerArguments"), opt_ml),
                environment=_base_environment(opt_ml, request),
                inputs=[
                    Transfer(item["S3Input"]["S3Uri"], map_container_path(item["S3Input"]["LocalPath"], opt_ml))
                    for item in request.get("ProcessingInputs") or []
                ],
                outputs=[
                    Transfer(item["S3Output"]["S3Uri"], map_container_path(item["S3Output"]["LocalPath"], opt_ml))
                    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
                ],
                files={"config/resourceconfig.json": {"current_host": host, "hosts": names}},
            )
        )
    network = request.get("NetworkConfig") or {}
    return JobSpec(
        kind="processing",
        name=name,
        run_id=run_id,
        hosts=hosts,
        network_isolation=bool(network.get("EnableNetworkIsolation")),
        image=app.get("ImageUri", ""),
        max_runtime_seconds=(request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
    )
