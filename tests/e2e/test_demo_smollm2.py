"""The demo's default path: SmolLM2-135M-Instruct fine-tuned on the example data beats its base model."""

import json
import subprocess
import sys

import pytest

from local_mode.models import ModelUnavailableError, smollm2_model_dir
from tests.e2e.conftest import REPO_ROOT


@pytest.mark.slow
def test_demo_fine_tunes_smollm2_and_beats_the_base_model(tmp_path):
    try:
        smollm2_model_dir()
    except ModelUnavailableError as error:
        pytest.skip(str(error))
    summary_path = tmp_path / "summary.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_mode",
            "run",
            "--workdir",
            str(REPO_ROOT / ".cache" / "local-mode"),
            "--name",
            f"demo-{tmp_path.name}"[:80],
            "--summary-json",
            str(summary_path),
            "--brief-logs",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert summary_path.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert result.returncode == 0 and summary["status"] == "SUCCEEDED", (summary["error"], summary["cause"])
    base, tuned = summary["metrics"]["base"], summary["metrics"]["fine_tuned"]
    print(
        f"base execution accuracy {base['execution_accuracy']:.3f}, fine-tuned {tuned['execution_accuracy']:.3f} "
        f"on {tuned['count']} held-out rows; demo took {summary['seconds']:.0f}s"
    )
    assert tuned["execution_accuracy"] >= base["execution_accuracy"] + 0.1
    assert summary["gate"]["passed"] and summary["model_package"]["status"] == "Approved"
    assert summary["endpoint_check"]["passed"]
    assert "The endpoint server stops now" in result.stdout
