"""Where the code the constructs ship lives: the Lambda handlers, the training scripts, the jobs' wheels.

In a checkout (and an editable install) they are the folders beside `cdk_app/`: `lambdas/`,
`training/` and `build/job-wheels/`. An installed wheel carries `lambdas/` and `training/` inside
the package as `cdk_app/_assets/` (pyproject.toml maps them there), so another CDK app gets them
with the constructs. The folders keep their own import roots: Lambda imports `common.*` from the
function's folder, the jobs import their siblings by bare name; nothing here imports them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGED = "_assets"
CHECKOUT = Path(__file__).resolve().parent.parent


def _packaged_root() -> Path:
    return Path(str(files("cdk_app").joinpath(PACKAGED)))


def installed() -> bool:
    """True when cdk_app runs from an installed wheel rather than from the project's checkout."""
    return _packaged_root().is_dir()


def _code_dir(name: str) -> Path:
    """The packaged copy in an installed wheel, the checkout's folder otherwise."""
    path = (_packaged_root() if installed() else CHECKOUT) / name
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: the package was built without its {name}/ folder")
    return path


def lambda_code_dir() -> Path:
    """The Lambda functions' code folder: `<verb>.py` handlers and `common/`."""
    return _code_dir("lambdas")


def training_code_dir() -> Path:
    """The jobs' code folder: prepare_data.py, train.py, evaluate.py, launch.py, requirements.txt ..."""
    return _code_dir("training")


def default_wheelhouse_root() -> Path:
    """Where the jobs' wheels are built: the checkout's build/job-wheels/, or for an installed
    package build/job-wheels/ in the CDK app's folder (the CDK CLI runs the app from there)."""
    return (Path.cwd() if installed() else CHECKOUT) / "build" / "job-wheels"


def wheelhouse_build_command() -> str:
    """The command that builds the wheelhouse in `default_wheelhouse_root()`."""
    if not installed():
        return "make wheelhouse"
    return (
        f"python {training_code_dir() / 'wheelhouse.py'} build --cdk-json cdk.json "
        "--output build/job-wheels/wheelhouse (cdk.json's context naming fine-tune:training_py_version "
        "and fine-tune:training_pytorch_version)"
    )
