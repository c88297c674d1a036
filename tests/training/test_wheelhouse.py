"""The wheelhouse: jobs install what the image lacks offline, from hashed wheels that travel with the code."""

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import wheelhouse
from wheelhouse import WheelhouseError

from cdk_app.assets import default_wheelhouse_root
from cdk_app.constructs.workflow import wheelhouse_problem

from .conftest import REPO_ROOT_FOR_TESTS

TRAINING = REPO_ROOT_FOR_TESTS / "training"


def _wheel(folder: Path, name: str, version: str, module_text: str) -> Path:
    """A small, valid pure-Python wheel holding one module `<name>.py`."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_text,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def _wheelhouse(folder: Path, python: str | None = None) -> Path:
    folder.mkdir(parents=True)
    wheel = _wheel(folder, "offline_probe", "1.0.0", "ANSWER = 42\n")
    manifest = {
        "python": python or f"{sys.version_info.major}.{sys.version_info.minor}",
        "requirements": ["offline_probe==1.0.0"],
        "provided_by_image": {},
        "wheels": {wheel.name: wheelhouse.sha256_of(wheel)},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_missing_pins_install_offline_from_the_wheelhouse_alone(tmp_path):
    """A real pip run into a fresh environment, with no index: only the wheelhouse can serve it."""
    house = _wheelhouse(tmp_path / "wheelhouse")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "image")], check=True)
    image_python = tmp_path / "image" / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(image_python)]
    wheelhouse.install(["offline_probe==1.0.0"], house, pip=pip)
    probe = subprocess.run(
        [str(image_python), "-c", "import offline_probe; print(offline_probe.ANSWER)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "42"


def test_a_tampered_or_foreign_wheelhouse_is_refused_before_pip_runs(tmp_path):
    calls = []
    house = _wheelhouse(tmp_path / "wheelhouse")
    wheel = next(house.glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"x")
    with pytest.raises(WheelhouseError, match=r"SHA-256 .* does not match"):
        wheelhouse.install(["offline_probe==1.0.0"], house, run=lambda *a, **k: calls.append(a))
    with pytest.raises(WheelhouseError, match=r"does not carry trl==1\.16\.0 .*make wheelhouse"):
        wheelhouse.install(["trl==1.16.0"], house, run=lambda *a, **k: calls.append(a))
    (house / "stray.whl").write_bytes(b"")
    with pytest.raises(WheelhouseError, match=re.escape("not in the manifest: stray.whl")):
        wheelhouse.verify(house, wheelhouse.read_manifest(house))
    other = _wheelhouse(tmp_path / "other", python="3.9")
    with pytest.raises(WheelhouseError, match=re.escape("built for Python 3.9, the image runs Python")):
        wheelhouse.install(["offline_probe==1.0.0"], other, run=lambda *a, **k: calls.append(a))
    with pytest.raises(WheelhouseError, match=r"manifest\.json not found.*make wheelhouse"):
        wheelhouse.install(["offline_probe==1.0.0"], tmp_path / "none", run=lambda *a, **k: calls.append(a))
    assert calls == []


def test_the_closure_follows_requirements_for_the_image_python_but_not_torch():
    pins = wheelhouse.read_pins(TRAINING / "requirements.txt")
    closure = wheelhouse.closure(pins, "3.12")
    names = {line.split("==")[0] for line in closure}
    assert {
        "transformers",
        "trl",
        "peft",
        "datasets",
        "bitsandbytes",
        "accelerate",
        "huggingface-hub",
        "tokenizers",
        "safetensors",
        "pyarrow",
    } <= names
    assert not names & {"torch", "sympy", "networkx", "triton"}  # the image's torch and what only torch needs
    assert all("==" in line for line in closure)


def _built_wheelhouse() -> Path:
    house = default_wheelhouse_root() / "wheelhouse"
    if not (house / "manifest.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{house} was not built: `make test` runs `make wheelhouse` first")
        pytest.skip(f"{house} not built here: run `make wheelhouse`")
    return house


def test_the_built_wheelhouse_installs_every_pin_offline_on_the_image_python():
    house = _built_wheelhouse()
    manifest = wheelhouse.read_manifest(house)
    python, torch = wheelhouse.image_versions(REPO_ROOT_FOR_TESTS / "cdk.json")
    assert manifest["python"] == python and manifest["provided_by_image"] == {"torch": torch}
    assert manifest["requirements"] == [f"{n}=={v}" for n, v in wheelhouse.read_pins(TRAINING / "requirements.txt")]
    # An image with nothing but torch: everything else must come from the wheelhouse, offline.
    would_install = {line.replace("_", "-").lower() for line in wheelhouse.check(house)}
    assert {pin.replace("_", "-").lower() for pin in manifest["requirements"]} <= would_install
    assert f"torch=={torch}" in would_install


def test_synthesis_refuses_a_missing_or_stale_wheelhouse_and_says_what_to_run(tmp_path):
    training = tmp_path / "training"
    training.mkdir()
    (training / "requirements.txt").write_text("trl==1.16.0\n")
    problem = wheelhouse_problem(tmp_path / "job-wheels", training, "py312")
    assert "has not been built" in problem and "make wheelhouse" in problem
    house = tmp_path / "job-wheels" / "wheelhouse"
    house.mkdir(parents=True)
    manifest = {"python": "3.12", "requirements_sha256": hashlib.sha256(b"trl==1.15.0\n").hexdigest()}
    (house / "manifest.json").write_text(json.dumps(manifest))
    assert "built for another" in wheelhouse_problem(tmp_path / "job-wheels", training, "py312")
    manifest["requirements_sha256"] = hashlib.sha256(b"trl==1.16.0\n").hexdigest()
    (house / "manifest.json").write_text(json.dumps(manifest))
    assert wheelhouse_problem(tmp_path / "job-wheels", training, "py312") is None
    assert "holds wheels for py312, the training image runs py313" in wheelhouse_problem(
        tmp_path / "job-wheels", training, "py313"
    )


def test_a_serving_image_gets_pure_wheels_beside_its_own_software_whatever_its_python(tmp_path):
    """The image's Python may differ from the wheelhouse's: a pure wheel goes into the job's own folder."""
    house = _wheelhouse(tmp_path / "wheelhouse", python="3.9")
    target = tmp_path / "extras"
    wheelhouse.install_pure(["offline_probe==1.0.0"], house, target)
    probe = subprocess.run(
        [sys.executable, "-c", "import offline_probe; print(offline_probe.ANSWER)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "42"


def test_only_pure_wheels_go_into_a_serving_image(tmp_path):
    house = _wheelhouse(tmp_path / "wheelhouse")
    compiled = house / "fast-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    compiled.write_bytes(b"not really a wheel")
    manifest = json.loads((house / "manifest.json").read_text())
    manifest["wheels"][compiled.name] = wheelhouse.sha256_of(compiled)
    (house / "manifest.json").write_text(json.dumps(manifest))
    calls = []
    with pytest.raises(WheelhouseError, match=r"fast==2\.0: the wheelhouse holds only .*cp312.* pure-Python"):
        wheelhouse.install_pure(["fast==2.0"], house, tmp_path / "t", run=lambda *a, **k: calls.append(a))
    with pytest.raises(WheelhouseError, match=re.escape("does not carry absent==1.0")):
        wheelhouse.install_pure(["absent==1.0"], house, tmp_path / "t", run=lambda *a, **k: calls.append(a))
    assert calls == []


def test_evaluates_extras_are_pure_wheels_of_the_built_wheelhouse():
    """What a serving image is given for evaluate.py is in the wheelhouse `make setup` builds, as pure wheels."""
    house = REPO_ROOT_FOR_TESTS / "build" / "job-wheels" / "wheelhouse"
    manifest = wheelhouse.read_manifest(house)
    pins = dict(wheelhouse.read_pins(TRAINING / "requirements.txt"))
    for name in wheelhouse.IMAGE_EXTRAS["evaluate.py"]:
        prefix = f"{name.replace('-', '_')}-{pins[name]}-"
        wheels = [wheel for wheel in manifest["wheels"] if wheel.startswith(prefix)]
        assert wheels and all(wheelhouse._is_pure(wheel) for wheel in wheels), (name, wheels)
