#!/usr/bin/env python3
"""CDK entry point: `python app.py` (or `npx cdk synth`) writes the template to cdk.out/.

The stack is environment-agnostic: no account, no region, no lookups; container images are
resolved per region through a mapping. Settings come from cdk.json context (`fine-tune:*`).
Run directly with `python app.py`, the app reads cdk.json itself, as the CDK CLI would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from cdk_app.config import Settings
from cdk_app.stacks.fine_tuning_stack import FineTuningStack

STACK_NAME = "LlmFineTuning"
CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def project_context() -> dict[str, Any]:
    """Feature flags and defaults from cdk.json."""
    return json.loads(CDK_JSON.read_text())["context"]


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    """Build the app with its stack and the cdk-nag AwsSolutions checks.

    Without `context` and `outdir`, the CDK CLI's are used when the CLI runs the app; otherwise
    cdk.json's context and the cdk.out/ folder next to it.
    """
    run_by_cli = "CDK_OUTDIR" in os.environ
    if context is None and not run_by_cli:
        context = project_context()
    if outdir is None and not run_by_cli:
        outdir = str(CDK_JSON.parent / "cdk.out")
    app = cdk.App(context=context, outdir=outdir)
    settings = Settings.from_context(app.node.try_get_context)
    FineTuningStack(
        app, STACK_NAME, settings=settings, description="Fine-tunes open LLMs on Amazon SageMaker and serves them"
    )
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    return app


if __name__ == "__main__":
    build_app().synth()
