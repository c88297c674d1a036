"""Synthesize the app once per session (synth takes a while) and share the results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app import STACK_NAME, build_app, project_context
from cdk_app.asl import state_machine_definition


@dataclass
class Synthesized:
    template: dict[str, Any]
    validation_report: dict[str, Any]
    outdir: Path

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            name: resource for name, resource in self.template["Resources"].items() if resource["Type"] == resource_type
        }

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    def functions(self) -> dict[str, dict[str, Any]]:
        """Workflow functions by handler verb (the BucketDeployment provider is left out)."""
        return {
            resource["Properties"]["Handler"].removesuffix(".handler"): resource
            for resource in self.resources("AWS::Lambda::Function").values()
            if "Environment" in resource["Properties"]
            and "ARTIFACTS_BUCKET" in resource["Properties"]["Environment"]["Variables"]
        }


def synthesize(outdir: Path, **overrides: Any) -> Synthesized:
    context = {**project_context(), **{f"fine-tune:{key}": value for key, value in overrides.items()}}
    assembly = build_app(context=context, outdir=str(outdir)).synth()
    template = assembly.get_stack_by_name(STACK_NAME).template
    report = json.loads((outdir / "validation-report.json").read_text())
    return Synthesized(template=template, validation_report=report, outdir=outdir)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app as `cdk synth` builds it, with cdk.json's context."""
    return synthesize(tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="session")
def synthesized_in_vpc(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with a VPC, a Hugging Face token secret and an e-mail address configured."""
    return synthesize(
        tmp_path_factory.mktemp("cdk-out-vpc"),
        subnet_ids="subnet-0123456789abcdef0,subnet-0fedcba9876543210",
        security_group_ids=["sg-0123456789abcdef0"],
        hf_token_secret_arn="arn:aws:secretsmanager:us-east-1:111122223333:secret:hf-token-AbCdEf",
        notification_email="ml-team@example.com",
    )


@pytest.fixture(scope="session")
def definition(synthesized: Synthesized) -> dict[str, Any]:
    return state_machine_definition(synthesized.template)
