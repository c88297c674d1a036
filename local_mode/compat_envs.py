"""One Python environment per supported serving image, holding that image's own transformers.

In production the merged model is read by the serving image's software, not by the project's: the
TGI 3.3.6 image runs transformers 4.51.0, the SageMaker vLLM image 5.15.0. These environments let
tests and local mode run training/check_serving.py with those releases, so a model that an engine
would misread fails here as it would there.

Each environment is a venv under .cache/compat-envs/ (or $LLM_FINETUNE_COMPAT_ENVS), built once and
reused while its package list is unchanged. torch is the CPU build of the project's own release
(2.13.0+cpu, taken from local wheels, never a CUDA build); it is installed once into a shared
folder that every environment sees through a .pth file, behind its own packages.

    python -m local_mode.compat_envs [--only NAME] [--rebuild]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cdk_app.assets import training_code_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ENV_VAR = "LLM_FINETUNE_COMPAT_ENVS"
CHECK_SCRIPT = training_code_dir() / "check_serving.py"
# The local-version pin fails fast where no CPU wheel is reachable instead of pulling a CUDA build.
TORCH = "torch==2.13.0+cpu"
READY_FILE = ".ready.json"


class CompatEnvError(RuntimeError):
    """A compatibility environment could not be built or does not hold what it should."""


@dataclass(frozen=True)
class ServingImage:
    """A serving image and the Python packages inside it that read the model folder."""

    name: str
    engine: str  # how check_serving tokenizes requests: "tgi" or "vllm"
    image: str
    packages: tuple[str, ...]  # exact pins; transformers first
    source: str  # where the pins were found

    @property
    def transformers(self) -> str:
        return self.packages[0].split("==", 1)[1]


SERVING_IMAGES = (
    ServingImage(
        name="tgi-3.3.6",
        engine="tgi",
        image="763104351884.dkr.ecr.<region>.amazonaws.com/huggingface-pytorch-tgi-inference:"
        "2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04",
        packages=(
            "transformers==4.51.0",
            "tokenizers==0.21.0",
            "safetensors==0.5.2",
            "huggingface-hub==0.30.1",
            "accelerate==1.3.0",
            "jinja2==3.1.6",
        ),
        source="huggingface/text-generation-inference v3.3.6: server/uv.lock (transformers 4.51.0, tokenizers "
        "0.21.0, safetensors 0.5.2, huggingface-hub 0.30.1, accelerate 1.3.0), installed by the "
        "Dockerfile's `uv sync --frozen`; the SageMaker image, awslabs/llm-hosting-container "
        "huggingface/pytorch/tgi/docker/3.3.6/Dockerfile, is FROM that image, upgrades Jinja2>=3.1.6, "
        "and lists 'transformers; version 4.51.0' in its THIRD-PARTY-LICENSES",
    ),
    ServingImage(
        name="hf-vllm-0.29.0",
        engine="vllm",
        image="763104351884.dkr.ecr.<region>.amazonaws.com/huggingface-vllm:"
        "0.29.0-transformers5.15.0-gpu-py312-cu130-ubuntu24.04-v1.0",
        packages=(
            "transformers==5.15.0",
            "huggingface-hub==1.17.0",
            "tokenizers==0.22.2",
            "safetensors==0.8.0",
            "jinja2==3.1.6",
        ),
        source="sagemaker 3.27.0 image catalogue (sagemaker/core/image_uri_config/huggingface-vllm.json, newest "
        "0.29.0, tag 0.29.0-transformers5.15.0; ModelBuilder's vLLM default), built by "
        "aws/deep-learning-containers docker/huggingface/vllm/Dockerfile, which runs "
        "`uv pip install transformers==${TRANSFORMERS_VERSION}` from "
        ".github/config/image/huggingface-vllm/sagemaker.yml; huggingface-hub 1.17.0 from that config; "
        "tokenizers and safetensors as transformers 5.15.0 resolves them",
    ),
)


def serving_image(name: str) -> ServingImage:
    for image in SERVING_IMAGES:
        if image.name == name:
            return image
    raise CompatEnvError(f"serving image {name!r} is unknown; allowed: {', '.join(i.name for i in SERVING_IMAGES)}")


def for_image(image_uri: str) -> ServingImage | None:
    """The environment of the serving image `image_uri` names (any region's registry), or None."""
    wanted = image_uri.split("/", 1)[-1]
    return next((image for image in SERVING_IMAGES if image.image.split("/", 1)[-1] == wanted), None)


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV_VAR)
    return Path(configured) if configured else REPO_ROOT / ".cache" / "compat-envs"


def ensure_env(name: str, cache_dir: str | Path | None = None, rebuild: bool = False) -> Path:
    """The Python interpreter of serving image `name`'s environment, built first if needed."""
    image = serving_image(name)
    root = Path(cache_dir or default_cache_dir())
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{image.name}-{_spec_hash(image.packages)}"
    python = target / "bin" / "python"
    if not rebuild and _ready(target, image.packages):
        return python
    with _lock(root):
        if not rebuild and _ready(target, image.packages):
            return python
        torch_dir = _ensure_torch(root)
        started = time.perf_counter()
        shutil.rmtree(target, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(target)])
        site = _site_packages(python)
        (site / "compat_torch.pth").write_text(str(torch_dir) + "\n", encoding="utf-8")
        _pip_install(python, *image.packages)
        versions = _versions(python, image)
        _verify(image, versions)
        _write_ready(target, image.packages, versions, time.perf_counter() - started)
    return python


def run_check(
    name: str, arguments: list[str], cache_dir: str | Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run training/check_serving.py in image `name`'s environment, offline; returns the finished process."""
    image = serving_image(name)
    python = ensure_env(name, cache_dir)
    command = [str(python), str(CHECK_SCRIPT), "--engine", image.engine, *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=_clean_environment(), timeout=timeout)


def build_all(names: list[str] | None = None, rebuild: bool = False) -> dict[str, float]:
    """Build the environments (all, or `names`); returns the seconds each took (0 when cached)."""
    seconds = {}
    for image in SERVING_IMAGES:
        if names and image.name not in names:
            continue
        started = time.perf_counter()
        ensure_env(image.name, rebuild=rebuild)
        seconds[image.name] = time.perf_counter() - started
    return seconds


# ---------------------------------------------------------------- building


def _ensure_torch(root: Path) -> Path:
    """The shared folder holding torch and its dependencies (installed with pip --target)."""
    folder = root / f"shared-{_spec_hash((TORCH,))}"
    if _ready(folder, (TORCH,)):
        return folder
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    _pip_install(Path(sys.executable), "--target", str(folder), TORCH)
    _write_ready(folder, (TORCH,), {"torch": TORCH.split("==", 1)[1]}, time.perf_counter() - started)
    return folder


def _verify(image: ServingImage, versions: dict[str, str]) -> None:
    for pin in image.packages:
        package, version = pin.split("==", 1)
        if versions.get(package) != version:
            raise CompatEnvError(f"{image.name}: {package} is {versions.get(package)}, the image has {version}")
    if versions.get("torch_cuda") not in (None, "None"):
        raise CompatEnvError(f"{image.name}: torch is a CUDA build ({versions.get('torch_cuda')}); use the CPU wheel")


_VERSIONS_SCRIPT = """
import json, importlib.metadata as metadata, sys
import torch
found = {name: metadata.version(name) for name in sys.argv[1:]}
found.update(torch=torch.__version__, torch_cuda=str(torch.version.cuda), torch_file=torch.__file__)
print(json.dumps(found))
"""


def _versions(python: Path, image: ServingImage) -> dict[str, str]:
    names = [pin.split("==", 1)[0] for pin in image.packages]
    return json.loads(_run([str(python), "-c", _VERSIONS_SCRIPT, *names]).stdout)


def _site_packages(python: Path) -> Path:
    return Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def _pip_install(python: Path, *arguments: str) -> None:
    """pip install, without byte-compiling: only the few modules a check imports are ever compiled."""
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--no-compile",
            *arguments,
        ]
    )


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_environment())
    if result.returncode:
        raise CompatEnvError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def _clean_environment() -> dict[str, str]:
    """This process's environment without anything that would put the project's packages on the path."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    environment.update(
        {
            "PYTHONNOUSERSITE": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return environment


def _spec_hash(packages: tuple[str, ...]) -> str:
    spec = json.dumps({"python": sys.version_info[:2], "packages": list(packages)})
    return hashlib.sha256(spec.encode()).hexdigest()[:10]


def _ready(folder: Path, packages: tuple[str, ...]) -> bool:
    try:
        ready = json.loads((folder / READY_FILE).read_text())
    except (OSError, ValueError):
        return False
    return ready.get("packages") == list(packages)


def _write_ready(folder: Path, packages: tuple[str, ...], versions: dict[str, str], seconds: float) -> None:
    (folder / READY_FILE).write_text(
        json.dumps({"packages": list(packages), "versions": versions, "build_seconds": round(seconds, 1)}, indent=2)
    )


@contextlib.contextmanager
def _lock(root: Path):
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=[image.name for image in SERVING_IMAGES],
        help="build only this environment (repeatable)",
    )
    parser.add_argument("--rebuild", action="store_true", help="build again even when cached")
    args = parser.parse_args(argv)
    try:
        seconds = build_all(args.only, args.rebuild)
    except CompatEnvError as error:
        print(f"compat_envs: error: {error}", file=sys.stderr)
        return 1
    for name, took in seconds.items():
        image = serving_image(name)
        print(
            f"compat_envs: {name}: transformers {image.transformers} ready ({took:.1f} s) "
            f"at {ensure_env(name).parent.parent}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
