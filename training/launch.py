"""Container entrypoint for every job: `python3 launch.py <script> [args...]`.

1. Installs the pins of requirements.txt (next to this file) that the image lacks or has at another
   version, from the wheelhouse that travels with the code (`wheelhouse/`, see wheelhouse.py):
   no package index is ever asked, so a job with network isolation or without egress starts too.
   Nothing is installed when the image already satisfies every pin.
2. Runs the script: train.py through `torchrun` when the job has several GPUs or several hosts
   (hosts from $OPT_ML/input/config/resourceconfig.json, the first host is the rendezvous master),
   anything else as a single `python` process. The script replaces this process, so SageMaker's
   stop signal (spot interruption, StopTrainingJob) reaches it directly.

`python3 launch.py --image-software <script> [args...]` runs a script in a serving image (the vLLM
image, for evaluate.py) instead: the image keeps its own software, and only what the script imports
beyond it (wheelhouse.IMAGE_EXTRAS, pure Python) is added from the wheelhouse into a folder of the
job's own, when the image lacks it. The image's CUDA forward-compatibility libraries are enabled as
its own entrypoint enables them (`start_cuda_compat.sh`), since the job replaces that entrypoint.

Environment: OPT_ML (default /opt/ml); SM_NUM_GPUS (GPUs per host, else counted by torch);
LAUNCH_NPROC_PER_NODE (force a process count per host, e.g. 2 CPU processes for a local test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import wheelhouse
from wheelhouse import IMAGE_EXTRAS, IMAGE_SOFTWARE_FLAG, WheelhouseError, read_pins

HERE = Path(__file__).resolve().parent
DISTRIBUTED_SCRIPTS = {"train.py"}
MASTER_PORT = 29500
# Sourced by the serving images' entrypoints: puts the CUDA compat libraries first when the host driver is older.
CUDA_COMPAT_SCRIPT = Path("/usr/local/bin/start_cuda_compat.sh")


@dataclass(frozen=True)
class Cluster:
    """Where this process runs: every host of the job, this host, and processes to start per host."""

    hosts: tuple[str, ...]
    current_host: str
    processes_per_host: int
    network_interface: str | None = None

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def distributed(self) -> bool:
        return len(self.hosts) > 1 or self.processes_per_host > 1


def missing_pins(pins: list[tuple[str, str]], installed_version=None) -> list[str]:
    """`name==version` for each pin that is not installed, or installed at another version."""
    installed_version = installed_version or _installed_version
    return [f"{name}=={version}" for name, version in pins if installed_version(name) != version]


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def install(requirements: list[str], opt_ml: Path) -> None:
    """Install from the wheelhouse; a wheelhouse that cannot serve them fails the job with the reason."""
    try:
        wheelhouse.install(requirements, HERE / "wheelhouse")
    except WheelhouseError as error:
        _fail(opt_ml, error)


def _fail(opt_ml: Path, error: Exception) -> None:
    message = f"launch: {error}"
    failure = opt_ml / "output" / "failure"
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(message[:1024], encoding="utf-8")
    except OSError:
        pass
    raise SystemExit(message) from error


def image_extras(script: str, pins: list[tuple[str, str]], installed_version=None) -> list[str]:
    """`name==version` of the script's extras that the image lacks altogether (the image's own versions stay)."""
    installed_version = installed_version or _installed_version
    pinned = dict(pins)
    return [f"{name}=={pinned[name]}" for name in IMAGE_EXTRAS.get(script, ()) if installed_version(name) is None]


def add_image_extras(requirements: list[str], opt_ml: Path, environ: dict[str, str]) -> dict[str, str]:
    """Install the extras into a folder of this job's and return the environment that sees it first."""
    if not requirements:
        return environ
    target = Path(tempfile.mkdtemp(prefix="launch-extras-"))
    try:
        wheelhouse.install_pure(requirements, HERE / "wheelhouse", target)
    except (WheelhouseError, subprocess.CalledProcessError) as error:
        _fail(opt_ml, error)
    paths = [str(target), *filter(None, [environ.get("PYTHONPATH")])]
    return {**environ, "PYTHONPATH": os.pathsep.join(paths)}


def cuda_compat_environment(
    environ: dict[str, str], script: Path = CUDA_COMPAT_SCRIPT, run=subprocess.run
) -> dict[str, str]:
    """The environment with the image's CUDA compat setting applied, as its entrypoint would apply it."""
    if not script.is_file():
        return environ
    result = run(
        ["bash", "-c", 'source "$0" >&2; printf %s "${LD_LIBRARY_PATH:-}"', str(script)],
        env=environ,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(f"launch: {script} exited {result.returncode}; the host driver's CUDA libraries are used", flush=True)
        return environ
    library_path = result.stdout
    if library_path == environ.get("LD_LIBRARY_PATH", ""):
        return environ
    print(f"launch: LD_LIBRARY_PATH={library_path} (from {script})", flush=True)
    return {**environ, "LD_LIBRARY_PATH": library_path}


def read_cluster(opt_ml: Path, environ: dict[str, str]) -> Cluster:
    """The job's hosts from resourceconfig.json (one local host when absent) and processes per host."""
    config_file = opt_ml / "input" / "config" / "resourceconfig.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        hosts = tuple(config["hosts"])
        current = config["current_host"]
        if current not in hosts:
            raise ValueError(f"{config_file}: current_host {current!r} is not among hosts {list(hosts)}")
    else:
        config, hosts, current = {}, ("localhost",), "localhost"
    if environ.get("LAUNCH_NPROC_PER_NODE"):
        processes = int(environ["LAUNCH_NPROC_PER_NODE"])
    elif environ.get("SM_NUM_GPUS"):
        processes = max(int(environ["SM_NUM_GPUS"]), 1)
    else:
        processes = max(_count_gpus(), 1)
    return Cluster(
        hosts=hosts,
        current_host=current,
        processes_per_host=processes,
        network_interface=config.get("network_interface_name"),
    )


def _count_gpus() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def build_command(script: Path, args: list[str], cluster: Cluster, python: str = sys.executable) -> list[str]:
    """The command line that runs `script`: torchrun for a distributed train.py, plain python otherwise."""
    if script.name in DISTRIBUTED_SCRIPTS and cluster.distributed:
        return [
            python,
            "-m",
            "torch.distributed.run",
            f"--nnodes={len(cluster.hosts)}",
            f"--node_rank={cluster.node_rank}",
            f"--nproc_per_node={cluster.processes_per_host}",
            f"--master_addr={cluster.hosts[0] if len(cluster.hosts) > 1 else '127.0.0.1'}",
            f"--master_port={MASTER_PORT}",
            str(script),
            *args,
        ]
    return [python, str(script), *args]


def child_environment(cluster: Cluster, environ: dict[str, str]) -> dict[str, str]:
    """The environment for the script: on several hosts, NCCL and gloo talk over the job's network interface."""
    env = dict(environ)
    if len(cluster.hosts) > 1 and cluster.network_interface:
        env.setdefault("NCCL_SOCKET_IFNAME", cluster.network_interface)
        env.setdefault("GLOO_SOCKET_IFNAME", cluster.network_interface)
    return env


def resolve_script(name: str) -> Path:
    script = Path(name)
    if not script.is_absolute():
        script = HERE / script
    if not script.is_file():
        raise FileNotFoundError(f"launch: script {name!r} not found next to launch.py ({HERE})")
    return script


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None, execute=os.execve) -> None:
    argv = sys.argv[1:] if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    in_image = bool(argv) and argv[0] == IMAGE_SOFTWARE_FLAG
    if in_image:
        argv = argv[1:]
    if not argv:
        raise SystemExit(f"usage: python3 launch.py [{IMAGE_SOFTWARE_FLAG}] <script> [args...]")
    script = resolve_script(argv[0])
    opt_ml = Path(environ.get("OPT_ML", "/opt/ml"))
    requirements = HERE / "requirements.txt"
    pins = read_pins(requirements) if requirements.is_file() else []
    if in_image:
        environ = add_image_extras(image_extras(script.name, pins), opt_ml, environ)
        environ = cuda_compat_environment(environ)
    else:
        missing = missing_pins(pins)
        if missing:
            install(missing, opt_ml)
    cluster = read_cluster(opt_ml, environ)
    command = build_command(script, argv[1:], cluster)
    print(f"launch: {' '.join(command)}", flush=True)
    sys.stdout.flush()
    execute(command[0], command, child_environment(cluster, environ))


if __name__ == "__main__":
    main()
