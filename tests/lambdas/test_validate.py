"""ValidateInput: defaults, every problem at once, naming, the recorded input."""

import json
import re

import botocore.session
import pytest
import validate
from common.errors import InvalidInput
from common.naming import is_sagemaker_name, run_id_from_execution_name
from common.validation import resolve, schema

from .conftest import ARTIFACTS, EXECUTION, STACK_DEFAULTS


def _problems(execution_input: dict) -> list[str]:
    with pytest.raises(InvalidInput) as raised:
        resolve(execution_input, STACK_DEFAULTS)
    assert str(raised.value).count("\n- ") == len(raised.value.problems)
    return raised.value.problems


@pytest.mark.parametrize(
    "execution_input, field, words",
    [
        ({"trainig": {}}, "trainig", "unknown key"),
        ({"training": {"epochs": 3}}, "training.epochs", "unknown key"),
        ({"training": {"instance_type": "ml.g5.2xlarg"}}, "training.instance_type", "did you mean ml.g5.2xlarge"),
        ({"preparation": {"instance_type": "ml.p4d.24xlarge"}}, "preparation.instance_type", "not allowed"),
        ({"deployment": {"instance_type": "ml.g5.huge"}}, "deployment.instance_type", "not allowed"),
        ({"training": {"instance_count": 0}}, "training.instance_count", "at least 1"),
        ({"training": {"use_spot": "yes"}}, "training.use_spot", "expected boolean"),
        (
            {"training": {"hyperparameters": {"learning_rate": 0}}},
            "training.hyperparameters.learning_rate",
            "greater than 0",
        ),
        ({"training": {"hyperparameters": {"quantization": "8bit"}}}, "training.hyperparameters.quantization", "4bit"),
        ({"training": {"hyperparameters": {"batching": "pack"}}}, "training.hyperparameters.batching", "padding_free"),
        ({"training": {"hyperparameters": {"max_steps": 0}}}, "training.hyperparameters.max_steps", "-1"),
        (
            {"training": {"use_spot": True, "max_runtime_hours": 10, "max_wait_hours": 4}},
            "training.max_wait_hours",
            "at least the run time",
        ),
        ({"training": {"use_spot": False, "max_wait_hours": 4}}, "training.max_wait_hours", "use_spot true"),
        ({"deployment": {"endpoint_name": "sql_assistant"}}, "deployment.endpoint_name", "does not match"),
        ({"deployment": {"endpoint_name": "a" * 64}}, "deployment.endpoint_name", "at most 63"),
        ({"deployment": {"instance_type": "ml.m5.large"}}, "deployment.instance_type", "GPU"),
        (
            {"deployment": {"max_input_tokens": 4096, "max_total_tokens": 2048}},
            "deployment.max_input_tokens",
            "less than",
        ),
        (
            {"base_model": {"hf_model_id": "Qwen/Qwen2.5", "s3_uri": "s3://bucket/models/"}},
            "base_model",
            "exactly one of hf_model_id or s3_uri",
        ),
        ({"base_model": {"s3_uri": "https://bucket/models/"}}, "base_model.s3_uri", "does not match"),
        ({"base_model": {"hf_model_id": "not a hub id"}}, "base_model.hf_model_id", "does not match"),
        ({"dataset": {"s3_uri": "s3://bucket/data/", "format": "messages"}}, "dataset.s3_uri", "one file"),
        (
            {"dataset": {"hf_dataset_id": "b-mc2/sql-create-context", "format": "csv"}},
            "dataset.format",
            "sql-create-context",
        ),
        (
            {"evaluation": {"gate": {"min_execution_accuracy": 1.2}}},
            "evaluation.gate.min_execution_accuracy",
            "at most 1",
        ),
        (
            {"evaluation": {"gate": {"min_improvement_over_base": -0.1}}},
            "evaluation.gate.min_improvement_over_base",
            "at least 0",
        ),
        (
            {"evaluation": {"gate": {"require_significance": "yes"}}},
            "evaluation.gate.require_significance",
            "expected boolean",
        ),
        ({"evaluation": {"gate": {"significance_level": 0}}}, "evaluation.gate.significance_level", "greater than 0"),
        ({"evaluation": {"gate": {"significance_level": 0.6}}}, "evaluation.gate.significance_level", "at most 0.5"),
        (
            {"evaluation": {"gate": {"significance_level": "5%"}}},
            "evaluation.gate.significance_level",
            "expected number",
        ),
        ({"orchestration": {"poll_interval_seconds": 0}}, "orchestration.poll_interval_seconds", "at least 1"),
        ({"evaluation": {"generation": "tgi"}}, "evaluation.generation", "transformers"),
        # vLLM's serving image needs a GPU, and a vllm deployment is evaluated in it unless told otherwise
        (
            {"deployment": {"engine": "vllm"}, "evaluation": {"instance_type": "ml.m5.xlarge"}},
            "evaluation.instance_type",
            "evaluation.generation to 'transformers'",
        ),
        ({"evaluation": {"generation": "vllm", "instance_type": "ml.c5.2xlarge"}}, "evaluation.instance_type", "GPU"),
        (
            {"deployment": {"blue_green": {"rollback_alarm_names": ["a"] * 11}}},
            "deployment.blue_green.rollback_alarm_names",
            "maxItems",
        ),
    ],
)
def test_rejects_bad_input_naming_the_field(execution_input, field, words):
    problems = _problems(execution_input)
    assert any(p.startswith(f"{field}:") and words in p for p in problems), problems


def test_reports_every_problem_at_once():
    problems = _problems(
        {
            "training": {"instance_type": "ml.x", "instance_count": 0},
            "deployment": {"endpoint_name": "bad_name"},
            "extra": True,
        }
    )
    fields = {p.split(":")[0] for p in problems}
    assert {"training.instance_type", "training.instance_count", "deployment.endpoint_name", "extra"} <= fields


def test_problem_names_the_value_and_what_is_allowed():
    (problem,) = _problems({"dataset": {"hf_dataset_id": "x/y", "format": "xml"}})
    assert '"xml"' in problem and "messages, prompt-completion, alpaca, sql-create-context" in problem


def test_input_wins_over_stack_defaults_and_replaces_their_source():
    config = resolve(
        {"base_model": {"s3_uri": "s3://models-bucket/qwen/"}, "training": {"use_spot": False}}, STACK_DEFAULTS
    )
    assert config["base_model"] == {"s3_uri": "s3://models-bucket/qwen/"}
    assert config["training"]["use_spot"] is False
    assert config["training"]["instance_type"] == "ml.g5.2xlarge"  # schema default
    assert config["dataset"]["hf_dataset_id"] == "b-mc2/sql-create-context"  # stack default


def test_gate_significance_defaults_and_accepted_values():
    gate = resolve({}, STACK_DEFAULTS)["evaluation"]["gate"]
    assert gate["require_significance"] is False and gate["significance_level"] == 0.05
    chosen = resolve(
        {"evaluation": {"gate": {"require_significance": True, "significance_level": 0.5}}}, STACK_DEFAULTS
    )["evaluation"]["gate"]
    assert chosen["require_significance"] is True and chosen["significance_level"] == 0.5


def test_instance_type_enums_match_botocores_sagemaker_model():
    model = botocore.session.get_session().get_service_model("sagemaker")
    defs = schema()["$defs"]
    for key, shape in (
        ("training_instance_type", "TrainingInstanceType"),
        ("processing_instance_type", "ProcessingInstanceType"),
        ("endpoint_instance_type", "ProductionVariantInstanceType"),
    ):
        assert set(defs[key]["enum"]) == set(model.shape_for(shape).enum), f"refresh $defs.{key} from botocore"


@pytest.mark.parametrize("name", ["a", "x" * 80, "nightly run #7 (retry)", "---", "été-2026_ü", EXECUTION])
def test_run_ids_give_valid_sagemaker_names(name):
    run_id = run_id_from_execution_name(name)
    for suffix in ("-prep", "-train", "-eval", "-model", "-cfg", "-ep"):
        assert is_sagemaker_name(run_id + suffix), run_id + suffix
    assert run_id == run_id_from_execution_name(name)


def test_run_ids_of_similar_names_differ():
    assert run_id_from_execution_name("run a") != run_id_from_execution_name("run-a")
    assert run_id_from_execution_name("x" * 80) != run_id_from_execution_name("x" * 79)


def test_handler_returns_the_run_and_records_the_resolved_input(aws):
    run = validate.handler(
        {
            "step": "ValidateInput",
            "execution_name": EXECUTION,
            "state": {"orchestration": {"poll_interval_seconds": 1}},
        },
        None,
    )
    run_id = run["run_id"]
    assert run["poll_seconds"] == 1
    assert run["names"]["train"] == f"{run_id}-train"
    assert run["names"]["model_package_group"] == "fine-tuned-models"
    assert run["paths"]["merged"] == f"s3://{ARTIFACTS}/runs/{run_id}/training/{run_id}-train/output/model/merged/"
    obj = aws.session.client("s3").get_object(Bucket=ARTIFACTS, Key=f"runs/{run_id}/input.json")
    assert obj["ServerSideEncryption"] == "aws:kms"
    assert json.loads(obj["Body"].read())["config"] == run["config"]


def test_handler_raises_invalid_input(aws):
    with pytest.raises(InvalidInput, match=re.escape("training.instance_count")):
        validate.handler({"execution_name": EXECUTION, "state": {"training": {"instance_count": -1}}}, None)


def test_examples_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    for name in ("execution-input.json", "execution-input-minimal.json"):
        resolve(json.loads((root / name).read_text()), STACK_DEFAULTS)


NVIDIA_FAMILY_PREFIXES = ("ml.g4dn.", "ml.g5", "ml.g6", "ml.g7", "ml.p")


def test_every_nvidia_instance_type_the_schema_allows_is_in_the_gpu_table_or_left_out_with_a_reason():
    from common.instance_types import GPU_FAMILIES_LEFT_OUT, family_and_size, gpu_count

    definitions = schema()["$defs"]
    for name in ("training_instance_type", "processing_instance_type", "endpoint_instance_type"):
        for instance_type in definitions[name]["enum"]:
            if not instance_type.startswith(NVIDIA_FAMILY_PREFIXES):
                continue
            family = family_and_size(instance_type)[0]
            assert gpu_count(instance_type) or family in GPU_FAMILIES_LEFT_OUT, (name, instance_type)


def test_a_left_out_gpu_family_is_refused_with_its_reason():
    problems = _problems({"deployment": {"instance_type": "ml.p2.xlarge"}})
    assert any(p.startswith("deployment.instance_type:") and "K80" in p for p in problems), problems
