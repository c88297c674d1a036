"""The wheel gives another CDK app the constructs and the code they ship (docs/constructs.md).

The project is built into a wheel, installed into a fresh venv, and the platform team's example
from docs/constructs.md is synthesized by that venv's Python in a folder outside the checkout, so
only the installed package can provide cdk_app, the Lambda code and the training scripts. The
venv borrows the project's installed dependencies (aws-cdk-lib, jsii ...) through a .pth line,
which puts their folder on the path without running its .pth files: the project's editable
install stays inactive.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

from cdk_app.config import Settings

from .test_platform_team import documented_example

REPO_ROOT = Path(__file__).resolve().parents[2]
# What never goes into a build: environments, caches, outputs (and the shared build/ folder).
NOT_SOURCES = (".git", ".venv", "build", ".cache", "node_modules", "cdk.out", "runs", "*.egg-info", "__pycache__")
STACK = "MlPlatform"

SYNTH = """
import json, sys
from pathlib import Path

from aws_cdk import App

import cdk_app
from cdk_app import assets

{example}

app = App(outdir=sys.argv[1])
MlPlatformStack(app, "{stack}")
assembly = app.synth()
print(json.dumps({{
    "cdk_app": cdk_app.__file__,
    "installed": assets.installed(),
    "lambdas": str(assets.lambda_code_dir()),
    "template": assembly.get_stack_by_name("{stack}").template,
}}))
"""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _build_wheel(tmp_path: Path) -> Path:
    """`pip wheel .` of a copy of the checkout, so the build writes nothing into the checkout."""
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(dist)])
    [wheel] = dist.glob("sagemaker_llm_finetune-*.whl")
    return wheel


def _venv_with(wheel: Path, tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A new venv with the wheel installed and the project's dependencies visible: (python, site-packages)."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    dependencies = [path for path in site.getsitepackages() if Path(path).is_dir()]
    (purelib / "project_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], env=env)
    return python, purelib


def _wheelhouse_manifest(app_dir: Path) -> None:
    """The jobs' wheelhouse manifest, in the CDK app's build/job-wheels/ as an installed package expects.

    Synthesis reads only the manifest: it must name the packaged requirements.txt and the image's Python.
    """
    python = Settings().training_py_version.removeprefix("py")
    requirements = (REPO_ROOT / "training" / "requirements.txt").read_bytes()
    manifest = app_dir / "build" / "job-wheels" / "wheelhouse" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "python": f"{python[0]}.{python[1:]}",
                "requirements_sha256": hashlib.sha256(requirements).hexdigest(),
                "wheels": {},
            }
        )
    )


def _asset_dirs(outdir: Path) -> list[Path]:
    return [path for path in outdir.iterdir() if path.is_dir() and path.name.startswith("asset.")]


def test_the_documented_example_synthesizes_from_the_installed_wheel(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    wheel = _build_wheel(tmp_path)
    python, purelib = _venv_with(wheel, tmp_path, env)

    app_dir = tmp_path / "platform-app"
    app_dir.mkdir()
    _wheelhouse_manifest(app_dir)
    (app_dir / "app.py").write_text(SYNTH.format(example=documented_example(), stack=STACK))
    outdir = app_dir / "cdk.out"
    result = _run([str(python), "app.py", str(outdir)], cwd=app_dir, env=env)
    synthesized = json.loads(result.stdout.strip().splitlines()[-1])

    # cdk_app and its code came from the venv, not from the checkout.
    assert Path(synthesized["cdk_app"]).is_relative_to(purelib)
    assert not Path(synthesized["cdk_app"]).is_relative_to(REPO_ROOT)
    assert synthesized["installed"] is True
    assert Path(synthesized["lambdas"]) == purelib / "cdk_app" / "_assets" / "lambdas"

    resources = synthesized["template"]["Resources"]
    assert [r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    functions = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and "ARTIFACTS_BUCKET" in json.dumps(r["Properties"])
    ]
    handlers = {r["Properties"]["Handler"].removesuffix(".handler") for r in functions}
    assert {"validate", "start_job", "gate", "deploy"} <= handlers

    # The Lambda code and the training code were found and staged as assets, without bytecode.
    assets = _asset_dirs(outdir)
    lambda_assets = [path for path in assets if (path / "common" / "execution_input.schema.json").is_file()]
    training_assets = [path for path in assets if (path / "train.py").is_file()]
    assert len(lambda_assets) == 1 and len(training_assets) == 1
    for handler in handlers:
        assert (lambda_assets[0] / f"{handler}.py").is_file(), handler
    assert (lambda_assets[0] / "common" / "contract.json").is_file()
    requirements = (REPO_ROOT / "training" / "requirements.txt").read_bytes()
    assert (training_assets[0] / "requirements.txt").read_bytes() == requirements
    assert (training_assets[0] / "launch.py").is_file()
    assert not [path for asset in assets for path in asset.rglob("__pycache__")]
    # Every workflow function runs the staged Lambda code.
    lambda_hash = lambda_assets[0].name.removeprefix("asset.")
    assert all(lambda_hash in json.dumps(r["Properties"]["Code"]) for r in functions)
