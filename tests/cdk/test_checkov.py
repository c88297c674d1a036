"""checkov over the synthesized template: nothing fails, and every skip is a declared one with its reason.

checkov runs from its own venv (`make checkov-env`, .cache/checkov-venv): its boto3 pin conflicts
with the project's. Without that venv the scan is skipped and says how to build it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app import STACK_NAME
from cdk_app.constructs.scanner_exemptions import METADATA_KEY, REASONS

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOV = REPO_ROOT / ".cache" / "checkov-venv" / "bin" / "checkov"
SECURITY_DOC = REPO_ROOT / "docs" / "security.md"


@pytest.fixture(scope="module")
def scan(synthesized):
    if not CHECKOV.is_file():
        pytest.skip(f"{CHECKOV} not found: run `make checkov-env` to install checkov (requirements-checkov.txt)")
    template = synthesized.outdir / f"{STACK_NAME}.template.json"
    completed = subprocess.run(
        [
            str(CHECKOV),
            "-f",
            str(template),
            "--framework",
            "cloudformation",
            "--skip-download",
            "-o",
            "json",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]  # 1: failed checks, reported below
    return json.loads(completed.stdout)


def test_checkov_fails_no_check(scan):
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in scan["results"]["failed_checks"]]
    assert failed == []
    assert scan["summary"]["failed"] == 0 and scan["summary"]["parsing_errors"] == 0
    assert scan["summary"]["passed"] > 300  # the template was really scanned


def test_checkov_skips_only_the_declared_checks_with_their_reasons(scan):
    skipped = scan["results"]["skipped_checks"]
    assert skipped
    for check in skipped:
        assert check["check_id"] in REASONS, check["check_id"]
        assert check["check_result"]["suppress_comment"] == REASONS[check["check_id"]], check["resource"]


def test_every_skip_in_the_template_is_declared_with_a_reason(synthesized):
    skips = [
        (name, skip)
        for name, resource in synthesized.template["Resources"].items()
        for skip in (resource.get("Metadata") or {}).get(METADATA_KEY, {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert set(skip) == {"id", "comment"}, name
        assert skip["comment"].strip() and skip["comment"] == REASONS.get(skip["id"]), (name, skip["id"])
    assert all(len(reason) >= 40 for reason in REASONS.values())


def test_skips_keep_cdk_nag_metadata(synthesized):
    for verb, function in synthesized.functions().items():
        metadata = function["Metadata"]
        assert metadata["cdk_nag"]["rules_to_suppress"], verb
        ids = {skip["id"] for skip in metadata[METADATA_KEY]["skip"]}
        assert ids == {"CKV_AWS_115", "CKV_AWS_117"} | (set() if verb == "cleanup" else {"CKV_AWS_116"}), verb


def test_security_doc_names_every_skip_and_its_reason():
    text = " ".join(SECURITY_DOC.read_text().split())
    for check_id, reason in REASONS.items():
        assert f"| {check_id} |" in text and reason in text, check_id
