"""A platform team builds the pipeline in its own stack with its own key and bucket (docs/constructs.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import App
from aws_cdk.assertions import Template

from cdk_app.asl import state_machine_definition

DOC = Path(__file__).resolve().parents[2] / "docs" / "constructs.md"


def documented_example() -> str:
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return code


def test_the_documented_stack_synthesizes_with_the_platform_key_and_bucket():
    namespace: dict = {}
    exec(compile(documented_example(), str(DOC), "exec"), namespace)
    app = App()
    stack = namespace["MlPlatformStack"](app, "MlPlatform")
    template = Template.from_stack(stack).to_json()
    resources = template["Resources"]

    keys = [name for name, r in resources.items() if r["Type"] == "AWS::KMS::Key"]
    assert len(keys) == 1 and keys[0].startswith("PlatformKey")
    buckets = [name for name, r in resources.items() if r["Type"] == "AWS::S3::Bucket"]
    assert len(buckets) == 3  # the platform's artifacts bucket, the pipeline's data and access-log buckets
    artifacts = next(name for name in buckets if name.startswith("PlatformArtifacts"))

    functions = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        and "ARTIFACTS_BUCKET" in json.dumps(r["Properties"].get("Environment", {}))
    ]
    assert len(functions) == 12
    for function in functions:
        env = function["Properties"]["Environment"]["Variables"]
        assert env["ARTIFACTS_BUCKET"] == {"Ref": artifacts}
        assert env["KMS_KEY_ARN"] == {"Fn::GetAtt": [keys[0], "Arn"]}
        assert env["MODEL_PACKAGE_GROUP_NAME"] == "sql-assistant-models"
        assert json.loads(env["DEFAULTS_JSON"])["training"]["instance_type"] == "ml.g6e.2xlarge"

    key_policy = json.dumps(resources[keys[0]]["Properties"]["KeyPolicy"])
    assert "AllowCloudWatchLogs" in key_policy
    assert state_machine_definition(template)["StartAt"] == "ValidateInput"
    subscriptions = [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert subscriptions[0]["Properties"]["Endpoint"] == "ml-team@example.com"

    # The scientists' role may start executions and read run artifacts, nothing else.
    scientist_policies = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and r["Properties"].get("Roles") == ["data-scientists"]
    ]
    actions = {
        a
        for p in scientist_policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert "states:StartExecution" in actions and "s3:GetObject" in actions
    assert not any(a.startswith(("s3:Put", "sagemaker:", "iam:")) for a in actions)
