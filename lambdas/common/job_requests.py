"""CreateProcessingJob / CreateTrainingJob requests per the job container contract.

The prepare, train and evaluate jobs run the Hugging Face PyTorch training image with an explicit
entrypoint, `python3 <code dir>/launch.py <script> [args...]` (launch.py installs the wheelhouse, then
runs the script); the serving check runs in the serving image itself, with that image's `python3`.
The evaluation of a model that vLLM will serve runs in the vLLM serving image, through
`launch.py --image-software`: the image's own vLLM, torch and transformers generate the answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from common.contract import IMAGE_SOFTWARE_FLAG, METRIC_FIELDS, METRIC_PREFIX, RUN_ID_TAG, STACK_TAG
from common.environment import LambdaEnvironment
from common.instance_types import volume_kms_key
from common.serving import evaluation_generation

PROCESSING = "/opt/ml/processing"
PROCESSING_CODE_DIR = f"{PROCESSING}/input/code"
TRAINING_CODE_DIR = "/opt/ml/input/data/code"
CHECKPOINT_DIR = "/opt/ml/checkpoints"
JOB_SCRIPTS = {
    "prepare": "prepare_data.py",
    "train": "train.py",
    "evaluate": "evaluate.py",
    "serving_check": "check_serving.py",
}
# The serving check runs in the serving image itself, with that image's Python and transformers.
SERVING_CHECK_HOURS = 2

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# One CloudWatch metric per field of the `train_metrics:` line train.py prints.
METRIC_DEFINITIONS = [
    {"Name": f"train:{field}", "Regex": rf"{re.escape(METRIC_PREFIX)}.* {field}={_NUMBER}"} for field in METRIC_FIELDS
]


@dataclass(frozen=True)
class RunContext:
    """What every request builder needs: the run's identity, resolved input and layout."""

    run_id: str
    config: dict
    names: dict
    paths: dict
    env: LambdaEnvironment
    preflight: dict = field(default_factory=dict)  # what Preflight resolved ($.preflight)

    @classmethod
    def from_run(cls, run: dict, env: LambdaEnvironment, preflight: dict | None = None) -> RunContext:
        return cls(run["run_id"], run["config"], run["names"], run["paths"], env, preflight or {})

    def hub_revision(self, what: str) -> str | None:
        """The commit Preflight resolved for the Hub base model or data set (`what`), else the asked revision.

        Every job downloads that commit, so the model that is registered is the one that was checked
        and trained, even when the branch moves during the run.
        """
        resolved = self.preflight.get(what) or {}
        if resolved.get("source") == "hub" and resolved.get("sha"):
            return resolved["sha"]
        section = self.config["base_model"] if what == "base_model" else self.config["dataset"]
        return section.get("revision" if what == "base_model" else "hf_revision")

    def hub_token_args(self) -> list[str]:
        """Where the scripts read the Hugging Face token (gated repositories), when the stack has one."""
        return ["--hf-token-secret-arn", self.env.hf_token_secret_arn] if self.env.hf_token_secret_arn else []

    @property
    def tags(self) -> list[dict]:
        return owner_tags(self.run_id, self.env.stack_tag)

    @property
    def base_model_from_s3(self) -> bool:
        return "s3_uri" in self.config["base_model"]


def owner_tags(run_id: str, stack_tag: str) -> list[dict]:
    """The tags that say which run, of which stack, created a resource."""
    tags = [{"Key": RUN_ID_TAG, "Value": run_id}]
    if stack_tag:
        tags.append({"Key": STACK_TAG, "Value": stack_tag})
    return tags


def owned_by(tags: list[dict] | dict, run_id: str | None, stack_tag: str) -> bool:
    """Whether tags (a list or a dict) name this stack (and this run, when `run_id` is given)."""
    values = tags if isinstance(tags, dict) else {tag["Key"]: tag["Value"] for tag in tags}
    if stack_tag and values.get(STACK_TAG) != stack_tag:
        return False
    return run_id is None or values.get(RUN_ID_TAG) == run_id


def _seconds(hours: float) -> int:
    return round(hours * 3600)


def _s3_input(name: str, uri: str, local_path: str) -> dict:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _network_config(ctx: RunContext, isolate: bool) -> dict:
    config: dict[str, Any] = {"EnableNetworkIsolation": isolate, "EnableInterContainerTrafficEncryption": False}
    if ctx.env.vpc_config:
        config["VpcConfig"] = ctx.env.vpc_config
    return config


def _processing_request(
    ctx: RunContext,
    kind: str,
    group: dict,
    inputs: list[dict],
    output_name: str,
    output_dir: str,
    output_uri: str,
    args: list[str],
    isolate: bool,
    image: str | None = None,
    max_runtime_hours: float | None = None,
    launched_in_image: bool = False,
) -> dict:
    instance_type = group["instance_type"]
    launch = f"{PROCESSING_CODE_DIR}/launch.py"
    if image is None:  # the training image, through launch.py (the wheelhouse, then the script)
        entrypoint = ["python3", launch, JOB_SCRIPTS[kind], *args]
    elif launched_in_image:  # a serving image's own software, plus only what the script imports beyond it
        entrypoint = ["python3", launch, IMAGE_SOFTWARE_FLAG, JOB_SCRIPTS[kind], *args]
    else:  # another image runs the script directly, with its own software
        entrypoint = ["python3", f"{PROCESSING_CODE_DIR}/{JOB_SCRIPTS[kind]}", *args]
    return {
        "ProcessingJobName": ctx.names[kind],
        "RoleArn": ctx.env.sagemaker_role_arn,
        "AppSpecification": {"ImageUri": image or ctx.env.training_image_uri, "ContainerEntrypoint": entrypoint},
        "ProcessingInputs": [_s3_input("code", ctx.env.code_s3_uri, PROCESSING_CODE_DIR), *inputs],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": output_name,
                    "AppManaged": False,
                    "S3Output": {"S3Uri": output_uri, "LocalPath": output_dir, "S3UploadMode": "EndOfJob"},
                }
            ],
            "KmsKeyId": ctx.env.kms_key_arn,
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": instance_type,
                "VolumeSizeInGB": group["volume_size_gb"],
                **volume_kms_key(instance_type, ctx.env.kms_key_arn),
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": _seconds(max_runtime_hours or group["max_runtime_hours"])},
        "NetworkConfig": _network_config(ctx, isolate),
        "Environment": {"FINE_TUNE_RUN_ID": ctx.run_id},
        "Tags": ctx.tags,
    }


def prepare_request(ctx: RunContext) -> dict:
    dataset = ctx.config["dataset"]
    data_dir, output_dir = f"{PROCESSING}/input/data", f"{PROCESSING}/output/data"
    args = [
        "--format",
        dataset["format"],
        "--output-dir",
        output_dir,
        "--test-size",
        str(dataset["test_size"]),
        "--seed",
        str(dataset["seed"]),
        "--max-bad-fraction",
        str(dataset["max_bad_fraction"]),
        # A refused set still completes the job, so its report.json is uploaded; DescribePrepare fails the run.
        "--refused-exit-code",
        "0",
    ]
    if "max_samples" in dataset:
        args += ["--max-samples", str(dataset["max_samples"])]
    max_length = ctx.config["training"].get("hyperparameters", {}).get("max_length")
    if max_length:  # rows far longer than training reads are refused by line
        args += ["--max-length", str(max_length)]
    inputs = []
    if "s3_uri" in dataset:
        file_name = dataset["s3_uri"].rsplit("/", 1)[-1]
        inputs.append(_s3_input("data", dataset["s3_uri"], data_dir))
        args = ["--input", f"{data_dir}/{file_name}", *args]
    else:
        args += ["--hf-dataset-id", dataset["hf_dataset_id"], "--hf-split", dataset.get("hf_split", "train")]
        if ctx.hub_revision("dataset"):
            args += ["--hf-revision", ctx.hub_revision("dataset")]
        args += ctx.hub_token_args()
    return _processing_request(
        ctx,
        "prepare",
        ctx.config["preparation"],
        inputs,
        "data",
        output_dir,
        ctx.paths["data"],
        args,
        isolate="s3_uri" in dataset,
    )


def evaluate_request(ctx: RunContext) -> dict:
    evaluation, base = ctx.config["evaluation"], ctx.config["base_model"]
    root = f"{PROCESSING}/input"
    output_dir = f"{PROCESSING}/output/eval"
    inputs = [
        _s3_input("model", ctx.paths["merged"], f"{root}/model"),
        _s3_input("data", ctx.paths["test_file"], f"{root}/data"),
        _s3_input("training", ctx.paths["training_metrics"], f"{root}/training"),
    ]
    args = [
        "--model-dir",
        f"{root}/model",
        "--test-file",
        f"{root}/data/test.jsonl",
        "--output-dir",
        output_dir,
        "--training-metrics",
        f"{root}/training/training_metrics.json",
        "--max-samples",
        str(evaluation["max_samples"]),
        "--batch-size",
        str(evaluation["batch_size"]),
        "--max-new-tokens",
        str(evaluation["max_new_tokens"]),
    ]
    gate = evaluation.get("gate") or {}
    if gate.get("require_significance"):  # intervals at the level the gate decides at
        args += ["--confidence", f"{1 - gate.get('significance_level', 0.05):g}"]
    if evaluation.get("skip_base"):
        args.append("--skip-base")
    elif ctx.base_model_from_s3:
        inputs.append(_s3_input("base_model", base["s3_uri"], f"{root}/base_model"))
        args += ["--base-model-dir", f"{root}/base_model"]
    else:
        args += ["--base-model-id", base["hf_model_id"], *ctx.hub_token_args()]
        if base_revision := ctx.hub_revision("base_model"):
            args += ["--base-model-revision", base_revision]
    isolate = ctx.base_model_from_s3 or bool(evaluation.get("skip_base"))
    if evaluation_generation(ctx.config) == "vllm":  # evaluated by the engine that serves it, in its image
        args += ["--generation-backend", "vllm"]
        return _processing_request(
            ctx,
            "evaluate",
            evaluation,
            inputs,
            "eval",
            output_dir,
            ctx.paths["eval"],
            args,
            isolate=isolate,
            image=ctx.env.serving_image({"engine": "vllm"}),
            launched_in_image=True,
        )
    return _processing_request(
        ctx, "evaluate", evaluation, inputs, "eval", output_dir, ctx.paths["eval"], args, isolate=isolate
    )


def serving_check_request(ctx: RunContext) -> dict:
    """The merged model read by the serving image's own software, before the model is registered."""
    evaluation, deployment = ctx.config["evaluation"], ctx.config["deployment"]
    root, output_dir = f"{PROCESSING}/input", f"{PROCESSING}/output/serving-check"
    inputs = [
        _s3_input("model", ctx.paths["merged"], f"{root}/model"),
        _s3_input("predictions", ctx.paths["predictions"], f"{root}/predictions"),
    ]
    args = [
        "--model-dir",
        f"{root}/model",
        "--predictions",
        f"{root}/predictions/predictions.jsonl",
        "--expected-config",
        f"{root}/model/serving_check.json",
        "--engine",
        deployment.get("engine", "tgi"),
        "--samples",
        str(evaluation["serving_check_samples"]),
        "--max-new-tokens",
        str(evaluation["max_new_tokens"]),
        "--output",
        f"{output_dir}/report.json",
        "--failure-file",
        "/opt/ml/output/failure",
    ]
    return _processing_request(
        ctx,
        "serving_check",
        evaluation,
        inputs,
        "serving-check",
        output_dir,
        ctx.paths["serving_check"],
        args,
        isolate=True,
        image=ctx.env.serving_image(deployment),
        max_runtime_hours=SERVING_CHECK_HOURS,
    )


def _hyperparameters(ctx: RunContext) -> dict[str, str]:
    """SageMaker passes hyperparameters as strings; train.py parses them back."""
    values = dict(ctx.config["training"].get("hyperparameters", {}))
    base = ctx.config["base_model"]
    if not ctx.base_model_from_s3:
        values["model_id"] = base["hf_model_id"]
        if ctx.hub_revision("base_model"):
            values["model_revision"] = ctx.hub_revision("base_model")
        if ctx.env.hf_token_secret_arn:
            values["hf_token_secret_arn"] = ctx.env.hf_token_secret_arn
    return {key: (str(value).lower() if isinstance(value, bool) else str(value)) for key, value in values.items()}


def _channel(name: str, uri: str) -> dict:
    return {
        "ChannelName": name,
        "InputMode": "File",
        "CompressionType": "None",
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
    }


def train_request(ctx: RunContext) -> dict:
    training = ctx.config["training"]
    instance_type, count = training["instance_type"], training["instance_count"]
    channels = [_channel("code", ctx.env.code_s3_uri), _channel("train", ctx.paths["data"])]
    if ctx.base_model_from_s3:
        channels.append(_channel("model", ctx.config["base_model"]["s3_uri"]))
    runtime = _seconds(training["max_runtime_hours"])
    stopping = {"MaxRuntimeInSeconds": runtime}
    if training["use_spot"]:
        wait_hours = training.get("max_wait_hours") or min(2 * training["max_runtime_hours"], 672)
        stopping["MaxWaitTimeInSeconds"] = max(_seconds(wait_hours), runtime)
    request = {
        "TrainingJobName": ctx.names["train"],
        "RoleArn": ctx.env.sagemaker_role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": ctx.env.training_image_uri,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["python3", f"{TRAINING_CODE_DIR}/launch.py", JOB_SCRIPTS["train"]],
            "MetricDefinitions": METRIC_DEFINITIONS,
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "HyperParameters": _hyperparameters(ctx),
        "InputDataConfig": channels,
        "OutputDataConfig": {
            "S3OutputPath": ctx.paths["training_output"],
            "KmsKeyId": ctx.env.kms_key_arn,
            "CompressionType": "NONE",
        },
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": count,
            "VolumeSizeInGB": training["volume_size_gb"],
            **volume_kms_key(instance_type, ctx.env.kms_key_arn),
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": bool(training["use_spot"]),
        "CheckpointConfig": {"S3Uri": ctx.paths["checkpoints"], "LocalPath": CHECKPOINT_DIR},
        "EnableNetworkIsolation": ctx.base_model_from_s3,
        "EnableInterContainerTrafficEncryption": count > 1,
        "Environment": {"FINE_TUNE_RUN_ID": ctx.run_id},
        "Tags": ctx.tags,
    }
    if ctx.env.vpc_config:
        request["VpcConfig"] = ctx.env.vpc_config
    return request


BUILDERS = {
    "prepare": prepare_request,
    "train": train_request,
    "evaluate": evaluate_request,
    "serving_check": serving_check_request,
}
