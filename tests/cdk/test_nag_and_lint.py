"""cdk-nag's AwsSolutions pack and cfn-lint pass over the whole app; every acknowledgment is explained."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cfnlint.api import ManualArgs, lint

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def acknowledged(report):
    [plugin] = report["pluginReports"]
    return plugin["suppressedViolations"]


def test_aws_solutions_checks_find_nothing_unacknowledged(synthesized):
    [plugin] = synthesized.validation_report["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []


def test_every_acknowledgment_has_a_reason_and_is_narrow(synthesized):
    suppressed = acknowledged(synthesized.validation_report)
    assert suppressed, "the report lists acknowledged findings"
    for violation in suppressed:
        assert len(violation["reason"]) >= 40, violation["acknowledgedId"]
        rule = violation["ruleName"]
        if rule.startswith(("AwsSolutions-IAM5", "AwsSolutions-IAM4")):
            # One finding (one action or resource), never the whole rule.
            assert re.fullmatch(r"AwsSolutions-IAM[45]\[(Action|Resource|Policy)::.+\]", rule), rule
        else:
            assert rule == "AwsSolutions-L1", rule
        # Acknowledged on the resource itself, not on the stack or a parent construct.
        [construct] = violation["violatingConstructs"]
        assert violation["acknowledgedAt"] == construct["constructPath"], rule


def test_wildcards_outside_the_cdk_provider_are_resources_not_actions(synthesized):
    for violation in acknowledged(synthesized.validation_report):
        if "[Action::" in violation["ruleName"]:
            assert "Custom::CDKBucketDeployment" in violation["acknowledgedAt"], violation["ruleName"]


def test_security_doc_lists_every_acknowledged_rule_and_reason(synthesized, synthesized_in_vpc):
    text = " ".join(SECURITY_DOC.read_text().split())
    for report in (synthesized.validation_report, synthesized_in_vpc.validation_report):
        for violation in acknowledged(report):
            rule = violation["ruleName"].split("[")[0]
            assert rule in text, rule
            assert violation["reason"] in text, violation["reason"]


def test_cfn_lint_finds_no_errors(synthesized):
    matches = lint(
        json.dumps(synthesized.template), config=ManualArgs(regions=["us-east-1", "eu-west-1", "ap-northeast-1"])
    )
    errors = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches if m.rule.severity == "error"]
    assert errors == []
    # W3005: redundant DependsOn that the CDK itself writes next to Fn::GetAtt (role before function).
    warnings = [f"{m.rule.id} {m.message}" for m in matches if m.rule.severity == "warning" and m.rule.id != "W3005"]
    assert warnings == []
