"""The packages a job needs beyond its image, as wheels that travel with the training code.

Jobs may run with network isolation, or in a VPC without a route to the internet, so nothing can
come from a package index when they start. The training image (the Hugging Face PyTorch training
container) ships older transformers, trl, peft, datasets and accelerate than requirements.txt pins,
so the pins and every package they need travel as wheels, built for the image's Python and
platform, next to this file in `wheelhouse/`:

- `build` (at set-up: `make wheelhouse`) downloads one wheel for each package of the pins'
  dependency closure, at the version this project's environment runs (the versions the tests
  ran), except torch and what only torch needs: the image has them. It then proves the wheelhouse
  complete by resolving the pins offline against it for the image's Python, with only torch given.
- `install` (launch.py, at job start) checks every wheel against the manifest's SHA-256 and runs
  `pip install --no-index --find-links wheelhouse/ <missing pins>`: pip takes from the wheelhouse
  only what the image does not already satisfy, and can reach nothing else.

`wheelhouse/manifest.json` (read by the CDK app too, as plain data):

    {"python": "3.12", "platforms": ["manylinux_2_35_x86_64", ...],
     "requirements_sha256": "<sha256 of requirements.txt>", "requirements": ["trl==1.16.0", ...],
     "provided_by_image": {"torch": "2.9.0"}, "wheels": {"<file name>": "<sha256>", ...}}

    python training/wheelhouse.py build --cdk-json cdk.json --output build/job-wheels/wheelhouse
    python training/wheelhouse.py check build/job-wheels/wheelhouse
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
BUILD_COMMAND = "make wheelhouse"
# Packages the image provides and the wheelhouse must never replace (the image's CUDA build of torch).
PROVIDED_BY_IMAGE = ("torch",)
# The training image is Ubuntu 22.04 (glibc 2.35) on x86_64: every manylinux tag up to 2.35 runs there.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
# What a job's script imports beyond a serving image's own software (pure Python; taken from the
# wheelhouse at the pins of requirements.txt when the image lacks them): evaluate.py's SQL parser.
IMAGE_EXTRAS = {"evaluate.py": ("sqlglot",)}
# launch.py's flag for a script run in a serving image, which keeps the image's software and adds only the extras.
IMAGE_SOFTWARE_FLAG = "--image-software"
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


class WheelhouseError(RuntimeError):
    """The wheelhouse is missing, stale, tampered with, or for another Python."""


def read_pins(requirements: Path) -> list[tuple[str, str]]:
    """(name, version) for every `name==version` line; comments, blanks and options are skipped."""
    pins = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            pins.append((match.group(1), match.group(3)))
    return pins


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------- in the job


def read_manifest(wheelhouse: Path) -> dict:
    path = wheelhouse / MANIFEST
    if not path.is_file():
        raise WheelhouseError(
            f"{path} not found: the training code was deployed without its wheelhouse; "
            f"run `{BUILD_COMMAND}` and deploy again"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def verify(wheelhouse: Path, manifest: dict) -> None:
    """Every file is a listed wheel with the listed SHA-256, and every listed wheel is there."""
    listed = manifest.get("wheels") or {}
    present = {path.name for path in wheelhouse.iterdir() if path.name != MANIFEST}
    if present - set(listed):
        raise WheelhouseError(f"{wheelhouse}: files not in the manifest: {', '.join(sorted(present - set(listed)))}")
    if set(listed) - present:
        raise WheelhouseError(f"{wheelhouse}: wheels missing: {', '.join(sorted(set(listed) - present))}")
    for name, expected in sorted(listed.items()):
        actual = sha256_of(wheelhouse / name)
        if actual != expected:
            raise WheelhouseError(f"{wheelhouse / name}: SHA-256 {actual} does not match the manifest's {expected}")


def install(
    requirements: list[str],
    wheelhouse: Path,
    pip: list[str] | None = None,
    python_version: str | None = None,
    run=subprocess.run,
) -> None:
    """Install `requirements` (name==version) from the wheelhouse alone, after checking it."""
    if not requirements:
        return
    manifest = read_manifest(wheelhouse)
    python_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest.get("python") != python_version:
        raise WheelhouseError(
            f"the wheelhouse was built for Python {manifest.get('python')}, the image runs "
            f"Python {python_version}: set the image's py_version in cdk.json, run "
            f"`{BUILD_COMMAND}` and deploy again"
        )
    carried = set(manifest.get("requirements") or [])
    absent = [requirement for requirement in requirements if requirement not in carried]
    if absent:
        raise WheelhouseError(
            f"the wheelhouse does not carry {', '.join(absent)} (it was built for another "
            f"requirements.txt): run `{BUILD_COMMAND}` and deploy again"
        )
    verify(wheelhouse, manifest)
    pip = pip or [sys.executable, "-m", "pip"]
    print(f"launch: installing from the wheelhouse: {' '.join(requirements)}", flush=True)
    run(
        [
            *pip,
            "--isolated",
            "install",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--only-binary=:all:",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            *requirements,
        ],
        check=True,
    )


def install_pure(
    requirements: list[str], wheelhouse: Path, target: Path, pip: list[str] | None = None, run=subprocess.run
) -> None:
    """Install pure-Python `requirements` (name==version) into `target`, without their dependencies.

    For a job in a serving image: the image keeps its own software (its Python may differ from the
    one the wheelhouse was built for), and only the named packages, which run on any Python 3, are
    added beside it.
    """
    if not requirements:
        return
    manifest = read_manifest(wheelhouse)
    verify(wheelhouse, manifest)
    for requirement in requirements:
        name, version = requirement.split("==", 1)
        prefix = f"{_canonical(name).replace('-', '_')}-{version}-"
        wheels = [wheel for wheel in manifest.get("wheels") or {} if wheel.lower().startswith(prefix.lower())]
        if not wheels:
            raise WheelhouseError(
                f"the wheelhouse does not carry {requirement}: run `{BUILD_COMMAND}` and deploy again"
            )
        if not any(_is_pure(wheel) for wheel in wheels):
            raise WheelhouseError(
                f"{requirement}: the wheelhouse holds only {', '.join(wheels)}, built for one "
                "Python; a serving image can only be given pure-Python wheels"
            )
    pip = pip or [sys.executable, "-m", "pip"]
    print(f"launch: adding to the image's software, from the wheelhouse: {' '.join(requirements)}", flush=True)
    run(
        [
            *pip,
            "--isolated",
            "install",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--only-binary=:all:",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(target),
            *requirements,
        ],
        check=True,
    )


def _is_pure(wheel: str) -> bool:
    """A wheel whose tags run on any Python 3 and platform (`py3-none-any`, `py2.py3-none-any`)."""
    python_tag, abi, platform = wheel[: -len(".whl")].split("-")[-3:]
    return "py3" in python_tag.split(".") and abi == "none" and platform == "any"


# ---------------------------------------------------------------- at set-up


def _marker_environment(python_version: str) -> dict[str, str]:
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_version": "",
        "implementation_version": f"{python_version}.0",
        "extra": "",
    }


def closure(pins: list[tuple[str, str]], python_version: str) -> list[str]:
    """`name==version` of the pins and everything they need on the target Python, from this environment.

    The installed versions are the ones the project's tests ran; packages the image provides are
    not followed. A dependency this environment lacks (a marker true only on the target Python) is
    kept as its requirement, for pip to pick the newest wheel that satisfies it.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    environment = _marker_environment(python_version)
    found: dict[str, str] = {}
    pending: list[tuple[str, str | None]] = []
    for name, version in pins:
        installed = _installed_version(metadata, name)
        if installed != version:
            raise WheelhouseError(
                f"requirements.txt pins {name}=={version}, this environment has "
                f"{installed or 'nothing'}: run `make setup` first"
            )
        pending.append((name, None))
    while pending:
        name, requirement = pending.pop()
        key = _canonical(name)
        if key in found or key in PROVIDED_BY_IMAGE:
            continue
        installed_version = _installed_version(metadata, name)
        if installed_version is None:
            found[key] = requirement or name
            continue
        found[key] = f"{key}=={installed_version}"
        for line in metadata.distribution(name).requires or []:
            dependency = Requirement(line)
            if dependency.marker is None or dependency.marker.evaluate(environment):
                pending.append((dependency.name, f"{dependency.name}{dependency.specifier}"))
    return sorted(found.values())


def _installed_version(metadata, name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _target_options(python_version: str) -> list[str]:
    abi = "cp" + python_version.replace(".", "")
    options = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", "--abi", abi]
    for platform in PLATFORMS:
        options += ["--platform", platform]
    return options


def _stub_wheel(folder: Path, name: str, version: str) -> None:
    """A metadata-only wheel standing for a package the image provides, for the offline resolution."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: wheelhouse\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


def check(wheelhouse: Path, pip: list[str] | None = None) -> list[str]:
    """Resolve the pins offline from the wheelhouse for the image's Python, the image giving only torch.

    Returns what pip would install; raises WheelhouseError when the wheelhouse lacks anything.
    """
    manifest = read_manifest(wheelhouse)
    verify(wheelhouse, manifest)
    pip = pip or [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="wheelhouse-check-") as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "image").mkdir()
        for name, version in (manifest.get("provided_by_image") or {}).items():
            _stub_wheel(scratch / "image", name, version)
        report = scratch / "report.json"
        result = subprocess.run(
            [
                *pip,
                "--isolated",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                "--find-links",
                str(scratch / "image"),
                *_target_options(manifest["python"]),
                "--target",
                str(scratch / "target"),
                "--report",
                str(report),
                *manifest["requirements"],
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise WheelhouseError(
                f"{wheelhouse} does not install offline for Python {manifest['python']}:\n"
                f"{result.stderr.strip()[-2000:]}"
            )
        installs = json.loads(report.read_text())["install"]
    return sorted(f"{item['metadata']['name']}=={item['metadata']['version']}" for item in installs)


def build(
    output: Path, requirements: Path, python_version: str, torch_version: str, pip: list[str] | None = None
) -> dict:
    """Download the wheels into `output`, write the manifest, and check the result."""
    pip = pip or [sys.executable, "-m", "pip"]
    pins = read_pins(requirements)
    wanted = closure(pins, python_version)
    output.mkdir(parents=True, exist_ok=True)
    (output / MANIFEST).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as download:
        subprocess.run(
            [
                *pip,
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
                *_target_options(python_version),
                "--dest",
                download,
                *wanted,
            ],
            check=True,
        )
        for old in output.iterdir():
            old.unlink()
        for wheel in sorted(Path(download).glob("*.whl")):
            wheel.rename(output / wheel.name)
    manifest = {
        "python": python_version,
        "platforms": list(PLATFORMS),
        "requirements_sha256": sha256_of(requirements),
        "requirements": [f"{name}=={version}" for name, version in pins],
        "provided_by_image": dict.fromkeys(PROVIDED_BY_IMAGE, torch_version),
        "wheels": {wheel.name: sha256_of(wheel) for wheel in sorted(output.glob("*.whl"))},
    }
    (output / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    check(output, pip)
    return manifest


def image_versions(cdk_json: Path) -> tuple[str, str]:
    """(Python version, torch version) of the training image named in cdk.json's context."""
    context = json.loads(cdk_json.read_text(encoding="utf-8"))["context"]
    py_version = context["fine-tune:training_py_version"]  # "py312"
    match = re.fullmatch(r"py(\d)(\d+)", py_version)
    if not match:
        raise WheelhouseError(f"{cdk_json}: fine-tune:training_py_version {py_version!r} is not like py312")
    return f"{match.group(1)}.{match.group(2)}", context["fine-tune:training_pytorch_version"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="download the wheels, write the manifest, check")
    build_parser.add_argument("--output", type=Path, required=True)
    build_parser.add_argument("--requirements", type=Path, default=HERE / "requirements.txt")
    build_parser.add_argument(
        "--cdk-json",
        type=Path,
        default=HERE.parent / "cdk.json",
        help="the training image's Python and torch versions come from its context",
    )
    check_parser = commands.add_parser("check", help="resolve the pins offline from a built wheelhouse")
    check_parser.add_argument("wheelhouse", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            python_version, torch_version = image_versions(args.cdk_json)
            manifest = build(args.output, args.requirements, python_version, torch_version)
            size = sum((args.output / name).stat().st_size for name in manifest["wheels"])
            print(
                f"wheelhouse: {len(manifest['wheels'])} wheels, {size / 1e6:.0f} MB, for Python "
                f"{python_version} with torch {torch_version} from the image, in {args.output}"
            )
        else:
            print("\n".join(check(args.wheelhouse)))
    except WheelhouseError as error:
        print(f"wheelhouse: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
