"""The shared constants (lambdas/common/contract.json), read the same by every side that uses them."""

from __future__ import annotations

import json
import re

import pytest
from common import contract as lambda_contract
from common import jobs, naming
from common.job_requests import METRIC_DEFINITIONS
from common.s3_paths import RunPaths

from cdk_app import contract as app_contract
from cdk_app.constructs import workflow_definition, workflow_functions
from llm_finetune_cli import jobs as cli_jobs
from training import metrics_logging, wheelhouse


def test_the_app_and_the_lambdas_read_one_file():
    assert app_contract.CONTRACT_PATH.resolve() == lambda_contract.CONTRACT_PATH.resolve()
    for name in ("RUN_ID_TAG", "STACK_TAG", "JOB_APIS", "JOB_KINDS", "NAME_SUFFIXES", "RUNS_PREFIX", "RUN_LAYOUT"):
        assert getattr(app_contract, name) == getattr(lambda_contract, name), name


def test_every_job_kind_has_an_api_a_name_suffix_and_a_workflow_stage():
    assert set(jobs.APIS) == set(lambda_contract.JOB_KINDS)
    assert {kind: api.noun.lower() for kind, api in jobs.APIS.items()} == lambda_contract.JOB_APIS
    assert set(lambda_contract.JOB_KINDS) <= set(naming.SUFFIXES)
    assert [kind for kind, _ in workflow_definition.JOB_STAGES] == list(lambda_contract.JOB_KINDS)
    assert cli_jobs.KINDS == lambda_contract.JOB_KINDS
    assert {kind: cli_jobs.api_of(kind) for kind in cli_jobs.KINDS} == lambda_contract.JOB_APIS


@pytest.mark.parametrize("kind", ["prepare", "train", "evaluate", "serving_check"])
def test_the_stacks_iam_name_patterns_cover_the_names_a_run_gives_its_jobs(kind):
    names = naming.RunNames.for_run(naming.run_id_from_execution_name("an execution"), None, "group")
    name = getattr(names, kind)
    api = lambda_contract.JOB_APIS[kind]
    patterns = workflow_functions.JOB_SUFFIXES[f"{api}-job"]
    assert any(re.fullmatch(pattern.replace("*", ".*"), name) for pattern in patterns), (name, patterns)
    other = workflow_functions.JOB_SUFFIXES["training-job" if api == "processing" else "processing-job"]
    assert not any(re.fullmatch(pattern.replace("*", ".*"), name) for pattern in other)


def test_run_paths_follow_the_declared_layout():
    paths = RunPaths.for_run("bucket", "run-1", "run-1-train").as_dict()
    run = f"s3://bucket/{app_contract.run_prefix('run-1')}"
    for name, key in lambda_contract.RUN_LAYOUT.items():
        assert paths[name] == run + key
    model = run + "training/run-1-train/output/model/"
    assert paths["model"] == model
    for name, key in lambda_contract.MODEL_LAYOUT.items():
        assert paths[name] == model + key


def test_the_training_jobs_side_of_the_metric_line_and_the_launch_flag_matches():
    # The jobs' import root is training/, which ships without the Lambda code: they keep their
    # side of these constants, and this test holds them to the contract.
    assert metrics_logging.METRIC_PREFIX == lambda_contract.METRIC_PREFIX
    line = metrics_logging.format_metric_line(7, 0.5, 1e-4, 0.25, 1234.5)
    assert [part.split("=")[0] for part in line.split()[1:]] == list(lambda_contract.METRIC_FIELDS)
    for definition in METRIC_DEFINITIONS:
        assert re.search(definition["Regex"], line), definition
    assert wheelhouse.IMAGE_SOFTWARE_FLAG == lambda_contract.IMAGE_SOFTWARE_FLAG


def test_the_contract_file_is_plain_json_with_no_unknown_sections():
    data = json.loads(lambda_contract.CONTRACT_PATH.read_text())
    assert set(data) == {
        "description",
        "tags",
        "jobs",
        "name_suffixes",
        "s3_layout",
        "metric_line",
        "image_software_flag",
    }
