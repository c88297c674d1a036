"""SageMaker Training and Processing jobs as local processes, with SageMaker's lifecycle.

A created job gets a folder `<workdir>/runs/<run_id>/jobs/<job>/` holding the request it was
created with (`request.json`), its log (`job.log`) and one `/opt/ml` stand-in per host: `opt_ml/`
for algo-1, `algo-<k>/opt_ml/` for the others of a job with `InstanceCount` > 1. Inputs are
downloaded from the emulated S3 to every host, each host's command runs with the current Python in
the job's own network namespaces (job_network.py: the hosts reach each other, nothing else), and the
moto job object that Describe* reads moves InProgress -> Completed / Failed / Stopped, with
SecondaryStatus, FailureReason and FinalMetricDataList as SageMaker reports them. Every host syncs
its checkpoints to the job's checkpoint URI; only the first host's model and output data are
uploaded; the first host to fail fails the job with its reason, and the others are stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto.core.utils import utcnow

from cdk_app.contract import IMAGE_SOFTWARE_FLAG
from local_mode import process_env
from local_mode.iam.sagemaker_jobs import JobAccessDenied
from local_mode.job_logs import JobLogStream
from local_mode.job_network import HostNetwork, NetworkUnavailable, build_job_network
from local_mode.job_spec import HostSpec, JobSpec, UnsupportedJob, processing_spec, training_spec
from local_mode.moto_patches import S3Store
from local_mode.s3_transfer import download_prefix, list_keys, split_s3_uri, upload_folder


class ImageSoftwareMissing(RuntimeError):
    """A job's image holds software this machine has no stand-in for yet."""


LogSink = Callable[[str, str, str], None]  # (job name, kind, line)
FAILURE_REASON_LIMIT = 1024
_TRACE_LINE = re.compile(r"(Error|Exception|error:|Traceback|raise |Killed)")


def _now() -> datetime:
    """Timezone-aware, so the summary's job times read the same anywhere."""
    return datetime.now(UTC)


@dataclass
class JobSettings:
    """Local knobs: none of them changes what the workflow sees except as documented."""

    region: str = "us-east-1"
    poll_seconds: float = 0.5
    checkpoint_sync_seconds: float = 1.0
    stop_grace_seconds: float = 10.0
    # Simulate one managed-spot interruption of every training job, right after its first checkpoint
    # reached S3: the process is killed and the job restarts from the checkpoints, as SageMaker does.
    interrupt_training_after_checkpoint: bool = False
    # Network namespaces for every job (None: wherever this machine allows them, see job_network.py).
    network_namespaces: bool | None = None


@dataclass
class HostRun:
    """One host of a job: its process and what was seen of it."""

    spec: HostSpec
    process: subprocess.Popen | None = None
    readers: list = field(default_factory=list)
    tail: deque = field(default_factory=lambda: deque(maxlen=200))
    synced: dict[str, tuple[int, int]] = field(default_factory=dict)
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)
    exited_at: float | None = None  # monotonic time its process ended, for "who failed first"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalJob:
    spec: JobSpec
    fake: Any
    folder: Path
    log_path: Path
    status: str = "InProgress"
    attempts: int = 0
    interrupted: bool = False
    stop_requested: bool = False
    hosts: list[HostRun] = field(default_factory=list)
    failed_host: HostRun | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    network: Any = None
    permissions: Any = None  # local_mode.iam.sagemaker_jobs.JobPermissions, when IAM is evaluated
    thread: threading.Thread | None = None
    failure_reason: str | None = None
    store: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    started: datetime = field(default_factory=_now)
    ended: datetime | None = None

    def __post_init__(self) -> None:
        if not self.hosts:
            self.hosts = [HostRun(spec=host) for host in self.spec.hosts]

    @property
    def kind(self) -> str:
        return self.spec.kind


class JobRunner:
    """Starts, follows and stops the local processes behind SageMaker jobs."""

    def __init__(
        self,
        workdir: Path,
        on_log: LogSink | None = None,
        settings: JobSettings | None = None,
        on_start: Callable[[JobSpec], None] | None = None,
    ):
        self.workdir = Path(workdir)
        self.on_log = on_log or (lambda job, kind, line: None)
        self.on_start = on_start or (lambda spec: None)
        self.settings = settings or JobSettings()
        self.jobs: dict[tuple[str, str], LocalJob] = {}
        self._lock = threading.Lock()
        # The account's IAM (local_mode.iam.AccountIam); None runs jobs without checking their role.
        self.iam: Any = None
        # What a job without network isolation may reach: name -> port on 127.0.0.1 ("aws": the
        # emulated account's endpoint, "hub": a local model hub), and who hands out job credentials.
        self.gateway: dict[str, int] = {}
        self.credentials_for: Callable[[Any], dict[str, str]] | None = None

    # ---- called by the moto patches ------------------------------------------------------------
    def start(self, kind: str, backend: Any, fake: Any, request: dict) -> None:
        builder = training_spec if kind == "training" else processing_spec
        name = request["TrainingJobName" if kind == "training" else "ProcessingJobName"]
        try:
            spec = builder(request, self.workdir / "runs")
        except (UnsupportedJob, KeyError, ValueError) as error:
            self._set_status(fake, kind, "Failed", failure=f"ClientError: {error}")
            return
        folder = spec.folder
        if folder.exists():
            shutil.rmtree(folder)  # a leftover from an earlier emulated account with the same names
        folder.mkdir(parents=True)
        (folder / "request.json").write_text(json.dumps(request, indent=2, default=str))
        job = LocalJob(spec=spec, fake=fake, folder=folder, log_path=folder / "job.log")
        if self.iam is not None:
            from local_mode.iam.sagemaker_jobs import JobPermissions

            job.permissions = JobPermissions(self.iam, request, kind)
        with self._lock:
            self.jobs[(kind, name)] = job
        self.on_start(spec)
        self._set_status(fake, kind, "InProgress", secondary="Starting", message="Preparing the instances")
        if kind == "processing":
            fake.processing_end_time = None
            fake.processing_start_time = utcnow()
        else:
            fake.training_end_time = None
            fake.training_start_time = utcnow()
            fake.final_metric_data_list = []
            fake.model_artifacts = None
        job.thread = threading.Thread(target=self._run, args=(job,), name=f"job-{name}", daemon=True)
        job.thread.start()

    def stop(self, kind: str, name: str) -> None:
        job = self.jobs.get((kind, name))
        if job is None or job.status != "InProgress":
            return
        # Under the job's lock, so a process being started either sees the request or gets killed.
        with job.lock:
            job.stop_requested = True
            self._set_status(job.fake, kind, "Stopping", secondary="Stopping", message="Stopping the job")
            self._terminate(job, graceful=True)

    # ---- for the runner, tests and the summary ---------------------------------------------------
    def summaries(self) -> list[dict]:
        return [
            {
                "name": job.spec.name,
                "kind": job.kind,
                "status": job.status,
                "attempts": job.attempts,
                "run_id": job.spec.run_id,
                "folder": str(job.folder),
                "failure_reason": job.failure_reason,
                "started": job.started.isoformat(),
                "ended": job.ended.isoformat() if job.ended else None,
                "seconds": round((job.ended - job.started).total_seconds(), 3) if job.ended else None,
            }
            for job in list(self.jobs.values())
        ]

    def started_names(self) -> list[str]:
        return [job.spec.name for job in list(self.jobs.values())]

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop whatever still runs (the execution ended or was abandoned) and wait for the threads."""
        for job in list(self.jobs.values()):
            if job.status in ("InProgress", "Stopping"):
                job.stop_requested = True
                self._terminate(job, graceful=False)
        for job in list(self.jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout)

    # ---- the job's life --------------------------------------------------------------------------
    def _run(self, job: LocalJob) -> None:
        # Everything inside the try: a thread that died here would leave the job InProgress for ever,
        # and the execution polling it until its timeout.
        try:
            # A session of its own: boto3 sessions are not thread-safe, and the Lambdas use the default one.
            s3 = boto3.session.Session(region_name=self.settings.region).client("s3")
            job.store = S3Store.of_current_account(self.settings.region)
            self._set_progress(job, "Downloading", "Downloading input data")
            try:
                self._check_start(job, s3)
            except JobAccessDenied as denied:
                self._set_final(job, "Failed", failure=str(denied))
                return
            self._prepare_folder(job, s3)
            try:
                job.network = self._build_network(job)
            except NetworkUnavailable as error:
                self._set_final(job, "Failed", failure=f"ClientError: {error}")
                return
            while True:
                returncode = self._attempt(job, s3)
                if job.interrupted and job.attempts == 1 and not job.stop_requested:
                    self._log(job, "[local mode] spot interruption simulated: restarting from the checkpoints")
                    self._set_progress(job, "Restarting", "Restarting after an interruption")
                    self._reset_for_restart(job, s3)
                    continue
                break
            self._finish(job, s3, returncode)
        except ImageSoftwareMissing as missing:  # this machine lacks what the image would hold
            self._log(job, f"[local mode] {missing}")
            self._set_final(job, "Failed", failure=f"local mode: {missing}")
        except JobAccessDenied as denied:  # SageMaker could not act as the job's role: the job fails
            self._terminate(job, graceful=False)
            self._log(job, f"[local mode] {denied}")
            self._set_final(job, "Failed", failure=str(denied))
        except Exception as error:  # the emulation itself failed: the job fails, the run goes on
            self._log(job, f"[local mode] {type(error).__name__}: {error}")
            self._set_final(job, "Failed", failure=f"InternalServerError: {type(error).__name__}: {error}")
        finally:
            if job.network is not None:
                job.network.close()

    def _image_python(self, job: LocalJob) -> tuple[str | None, dict[str, str]]:
        """A serving image's own Python, for jobs that run in that image (None: ours), and what it adds to the
        environment.

        A job that runs vLLM itself in the vLLM image (`launch.py --image-software`: the evaluation) gets
        vLLM's CPU build (local_mode/vllm_env.py), the nearest this machine has to the image's vLLM.
        """
        from local_mode import compat_envs, vllm_env

        image = compat_envs.for_image(job.spec.image)
        if image is None:
            return None, {}
        if image.engine == "vllm" and IMAGE_SOFTWARE_FLAG in job.hosts[0].spec.command:
            python = vllm_env.find_python()
            if python is None:
                raise ImageSoftwareMissing(
                    f"the job runs vLLM in {image.name}; local mode runs it with vLLM's CPU build, whose "
                    "environment is not built: run `make vllm-env`, or set evaluation.generation to "
                    "'transformers'"
                )
            self._log(
                job,
                f"[local mode] the job runs in vLLM's CPU build ({vllm_env.VLLM}) in place of {image.name}'s GPU build",
            )
            return str(python), {
                key: value
                for key, value in vllm_env.clean_environment().items()
                if key.startswith(("VLLM_", "TORCHINDUCTOR_"))
            }
        self._log(job, f"[local mode] the job runs in {image.name}'s environment (transformers {image.transformers})")
        return str(compat_envs.ensure_env(image.name)), {}

    def _environment(self, job: LocalJob, spec: HostSpec, own_python: bool = False) -> dict[str, str]:
        """The container's environment: the request's, plus what reaches the job's gateway.

        A job that can reach the emulated account gets its own credentials, evaluated by IAM as its
        execution role (SageMaker hands a container its role's credentials); this process's own
        credentials and offline switches never leak into a job that has somewhere to connect to.
        """
        env = process_env.snapshot()
        urls = getattr(job.network, "gateway_urls", {}) or {}
        if "aws" in urls:
            for name in [key for key in env if key.startswith("AWS_")]:
                env.pop(name)
            env.update(
                AWS_ENDPOINT_URL=urls["aws"], AWS_DEFAULT_REGION=self.settings.region, AWS_REGION=self.settings.region
            )
            if self.credentials_for is not None and job.permissions is not None:
                env.update(self.credentials_for(job.permissions.principal))
        if "hub" in urls:
            for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
                env.pop(name, None)
            env["HF_ENDPOINT"] = urls["hub"]
        if own_python:  # an image's own interpreter sees none of this project's packages
            for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
                env.pop(name, None)
        env.update(spec.environment)  # the request's Environment, as SageMaker sets it
        return env

    def _check_start(self, job: LocalJob, s3: Any) -> None:
        """What SageMaker does as the job's role before the container starts (image, volume, inputs)."""
        if job.permissions is None:
            return
        inputs = {}
        for transfer in job.hosts[0].spec.inputs:
            bucket, prefix = split_s3_uri(transfer.s3_uri)
            inputs[transfer.s3_uri] = list_keys(s3, bucket, prefix)
        job.permissions.at_start(inputs)

    def _check_upload(self, job: LocalJob, folder: Path, uri: str, files: list[Path] | None, what: str) -> None:
        if job.permissions is None:
            return
        _, prefix = split_s3_uri(uri)
        paths = files if files is not None else sorted(p for p in folder.rglob("*") if p.is_file())
        keys = [f"{prefix.rstrip('/')}/{p.relative_to(folder).as_posix()}".lstrip("/") for p in paths]
        job.permissions.upload(uri, keys, what)

    def _build_network(self, job: LocalJob):
        """The job's own namespaces: its hosts reach each other and nothing else (see job_network.py)."""
        network = build_job_network(
            [host.name for host in job.hosts],
            job.spec.network_isolation,
            job.folder / "network",
            use_namespaces=self.settings.network_namespaces,
            gateway=self.gateway,
        )
        if isinstance(network, HostNetwork):
            self._log(
                job,
                "[local mode] network namespaces are not available here (they need root): the job "
                "runs with this machine's network, without network isolation",
            )
        else:
            shape = f"{len(job.hosts)} hosts on {network.interface}" if network.interface else "no interface but lo"
            self._log(
                job,
                f"[local mode] job network: {shape}, no route out"
                + (" (network isolation)" if job.spec.network_isolation else ""),
            )
        return network

    def _prepare_folder(self, job: LocalJob, s3: Any) -> None:
        for host in job.hosts:
            spec = host.spec
            for relative, content in spec.files.items():
                path = spec.opt_ml / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(content, indent=2))
            for transfer in spec.inputs:
                download_prefix(s3, transfer.s3_uri, transfer.local_path, store=job.store)
            for transfer in spec.outputs:
                transfer.local_path.mkdir(parents=True, exist_ok=True)
            if job.kind == "training":
                for folder in ("model", "output/data", "output/intermediate"):
                    (spec.opt_ml / folder).mkdir(parents=True, exist_ok=True)
            if spec.checkpoint is not None:
                self._restore_checkpoints(job, host, s3)

    def _restore_checkpoints(self, job: LocalJob, host: HostRun, s3: Any) -> None:
        """Every host starts with everything the checkpoint URI holds, as SageMaker copies it in."""
        checkpoint = host.spec.checkpoint
        checkpoint.local_path.mkdir(parents=True, exist_ok=True)
        bucket, prefix = split_s3_uri(checkpoint.s3_uri)
        keys = list_keys(s3, bucket, prefix.rstrip("/") + "/")
        if keys and job.permissions is not None:
            job.permissions.restore_checkpoints(checkpoint.s3_uri, keys)
        if keys:
            download_prefix(s3, checkpoint.s3_uri.rstrip("/") + "/", checkpoint.local_path, store=job.store)
            who = f"{host.name} " if len(job.hosts) > 1 else ""
            self._log(job, f"[local mode] {who}restored checkpoints from {checkpoint.s3_uri}")
        host.synced = {
            str(p.relative_to(checkpoint.local_path)): _signature(p)
            for p in checkpoint.local_path.rglob("*")
            if p.is_file()
        }
        host.pending = {}

    def _reset_for_restart(self, job: LocalJob, s3: Any) -> None:
        """Replacement instances start empty: only S3 (inputs and synced checkpoints) survives."""
        for host in job.hosts:
            shutil.rmtree(host.spec.opt_ml)
            host.process, host.readers, host.exited_at = None, [], None
        job.failed_host = None
        self._prepare_folder(job, s3)

    def _attempt(self, job: LocalJob, s3: Any) -> int | None:
        """Run every host's process once; None when a stop came before they could start."""
        python, image_environment = self._image_python(job)
        with job.lock:
            if job.stop_requested:
                self._log(job, "[local mode] stopped before the process started")
                return None
            job.attempts += 1
            self._set_progress(
                job,
                "Training" if job.kind == "training" else None,
                "Training image download completed. Training in progress.",
            )
            for host in job.hosts:
                self._start_host(job, host, python, image_environment)
        self._watch_hosts(job, s3)
        for host in job.hosts:
            for thread in host.readers:
                thread.join(timeout=10)
        return self._exit_code(job)

    def _start_host(self, job: LocalJob, host: HostRun, python: str | None, image_environment: dict) -> None:
        spec = host.spec
        self._log(job, f"[local mode] attempt {job.attempts}: {self._host_label(job, host)}{' '.join(spec.command)}")
        command = [python or spec.command[0], *spec.command[1:]]
        host.process = subprocess.Popen(
            _dies_with_runner(job.network.command(host.name, command)),
            cwd=str(spec.opt_ml.parent),
            env={**self._environment(job, spec, own_python=python is not None), **image_environment},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            errors="replace",
            start_new_session=True,
        )
        host.exited_at = None
        host.readers = [
            threading.Thread(target=self._read_output, args=(job, host, host.process), daemon=True),
            threading.Thread(target=_note_exit, args=(host, host.process), daemon=True),
        ]
        for thread in host.readers:
            thread.start()

    def _watch_hosts(self, job: LocalJob, s3: Any) -> None:
        """Until every host exits: sync checkpoints, stop the others when one fails, enforce the runtime limit."""
        started = time.monotonic()
        last_sync = 0.0
        while any(host.running for host in job.hosts):
            time.sleep(self.settings.poll_seconds)
            if (
                job.spec.checkpoint is not None
                and time.monotonic() - last_sync >= self.settings.checkpoint_sync_seconds
            ):
                self._sync_checkpoints(job, s3, stable_only=True)
                last_sync = time.monotonic()
                self._interrupt_if_due(job)
            if self._still_undecided(job):
                self._stop_others_if_one_failed(job)
            if job.spec.max_runtime_seconds and time.monotonic() - started > job.spec.max_runtime_seconds:
                job.stop_requested = True
                self._log(job, "[local mode] MaxRuntimeInSeconds exceeded: stopping the job")
                self._terminate(job, graceful=True)

    def _interrupt_if_due(self, job: LocalJob) -> None:
        if self._should_interrupt(job):
            job.interrupted = True
            self._log(job, "[local mode] simulating a spot interruption: killing the training process")
            self._set_progress(job, "Interrupted", "Training job interrupted (managed spot)")
            self._terminate(job, graceful=False)

    @staticmethod
    def _still_undecided(job: LocalJob) -> bool:
        """No host has failed yet, and neither a stop nor an interruption explains an exit."""
        return job.failed_host is None and not job.stop_requested and not job.interrupted

    def _stop_others_if_one_failed(self, job: LocalJob) -> None:
        failed = self._first_failed_host(job)
        if failed is None:
            return
        job.failed_host = failed
        if any(host.running for host in job.hosts):
            self._log(
                job,
                f"[local mode] {failed.name} failed (exit code {failed.process.returncode}): stopping the other hosts",
            )
            self._terminate(job, graceful=True)

    def _exit_code(self, job: LocalJob) -> int:
        """The failed host's exit code, else the first non-zero one, else 0."""
        if self._still_undecided(job):
            job.failed_host = self._first_failed_host(job)
        if job.failed_host is not None:
            return job.failed_host.process.returncode
        return next((host.process.returncode for host in job.hosts if host.process.returncode), 0)

    @staticmethod
    def _first_failed_host(job: LocalJob) -> HostRun | None:
        failed = [host for host in job.hosts if host.process is not None and host.process.poll() not in (None, 0)]
        return min(failed, key=lambda host: host.exited_at or float("inf")) if failed else None

    def _should_interrupt(self, job: LocalJob) -> bool:
        if (
            not self.settings.interrupt_training_after_checkpoint
            or job.kind != "training"
            or job.interrupted
            or job.stop_requested
        ):
            return False
        return any(
            self._checkpoint_in_s3(job, key.rpartition("/")[0])
            for host in job.hosts
            for key in list(host.synced)
            if key.endswith("/trainer_state.json")
        )

    def _checkpoint_in_s3(self, job: LocalJob, folder: str) -> bool:
        """Every file any host wrote into the checkpoint folder has reached S3 as it is now.

        trainer_state.json is written last, but a replacement instance can only resume from a
        checkpoint whose other files made it too (on several hosts, each host writes some of them):
        interrupting earlier would test nothing.
        """
        for host in job.hosts:
            checkpoint = host.spec.checkpoint
            for path in (p for p in (checkpoint.local_path / folder).rglob("*") if p.is_file()):
                try:
                    if host.synced.get(str(path.relative_to(checkpoint.local_path))) != _signature(path):
                        return False
                except FileNotFoundError:
                    continue  # rotated away by save_total_limit after its upload
        return True

    def _read_output(self, job: LocalJob, host: HostRun, process: subprocess.Popen) -> None:
        label = self._host_label(job, host)
        cloudwatch = self._log_stream(job, host)
        for line in process.stdout:
            line = line.rstrip("\n")
            host.tail.append(line)
            self._collect_metrics(job, line)
            self._log(job, label + line)
            if cloudwatch is not None:
                cloudwatch.write(line)

    def _log_stream(self, job: LocalJob, host: HostRun) -> JobLogStream | None:
        """The host's CloudWatch Logs stream, as SageMaker names it (None if moto's backend refuses)."""
        try:
            return JobLogStream(
                job.store.account_id, self.settings.region, job.kind, job.spec.name, host.name, job.started.timestamp()
            )
        except Exception as error:
            self._log(job, f"[local mode] job logs are not copied to CloudWatch Logs: {error}")
            return None

    def _collect_metrics(self, job: LocalJob, line: str) -> None:
        for definition in job.spec.metric_definitions:
            try:
                match = re.search(definition["Regex"], line)
            except re.error:
                continue
            if match and match.groups():
                with contextlib.suppress(ValueError):
                    job.metrics[definition["Name"]] = float(match.group(1))

    def _sync_checkpoints(self, job: LocalJob, s3: Any, stable_only: bool) -> None:
        """Upload every host's new or changed checkpoint files to the one checkpoint URI.

        With stable_only, only files unchanged for one scan. Hosts that write the same file
        overwrite each other in S3, as on SageMaker.
        """
        for host in job.hosts:
            checkpoint = host.spec.checkpoint
            if checkpoint is None or not checkpoint.local_path.exists():
                continue
            to_upload = []
            for path in sorted(p for p in checkpoint.local_path.rglob("*") if p.is_file()):
                relative = str(path.relative_to(checkpoint.local_path))
                try:
                    signature = _signature(path)
                except FileNotFoundError:
                    continue
                if host.synced.get(relative) == signature:
                    continue
                if stable_only and host.pending.get(relative) != signature:
                    host.pending[relative] = signature
                    continue
                to_upload.append((path, relative, signature))
            if to_upload:
                self._check_upload(
                    job, checkpoint.local_path, checkpoint.s3_uri, [p for p, _, _ in to_upload], "checkpoints"
                )
            for path, relative, signature in to_upload:
                try:
                    upload_folder(s3, checkpoint.local_path, checkpoint.s3_uri, only=[path], store=job.store)
                except FileNotFoundError:
                    continue
                host.synced[relative] = signature

    def _finish(self, job: LocalJob, s3: Any, returncode: int | None) -> None:
        spec = job.spec
        stopped = job.stop_requested
        if spec.kind == "training":
            if spec.checkpoint is not None:
                self._sync_checkpoints(job, s3, stable_only=False)
            if returncode == 0 or stopped:
                self._set_progress(job, "Uploading", "Uploading generated training model")
                self._upload_training_outputs(job, s3)
        elif returncode == 0:
            for host in job.hosts:
                for transfer in host.spec.outputs:
                    self._check_upload(job, transfer.local_path, transfer.s3_uri, None, "outputs")
                    upload_folder(s3, transfer.local_path, transfer.s3_uri, store=job.store)
        if stopped:
            self._set_final(job, "Stopped")
        elif returncode == 0:
            self._set_final(job, "Completed")
        else:
            self._set_final(
                job, "Failed", failure=self._failure_reason(job, job.failed_host or job.hosts[0], returncode)
            )

    def _upload_training_outputs(self, job: LocalJob, s3: Any) -> None:
        """The first host's /opt/ml/model (and output/data) is the job's model, as on SageMaker."""
        spec = job.spec
        if spec.model_output_uri is None:
            return
        opt_ml = spec.hosts[0].opt_ml
        model_dir = opt_ml / "model"
        self._check_upload(job, model_dir, f"{spec.model_output_uri}/model/", None, "outputs")
        if spec.compress_model:
            _upload_tarball(s3, model_dir, job.folder / "model.tar.gz", f"{spec.model_output_uri}/model.tar.gz")
            job.fake.model_artifacts = {"S3ModelArtifacts": f"{spec.model_output_uri}/model.tar.gz"}
        else:
            upload_folder(s3, model_dir, f"{spec.model_output_uri}/model/", store=job.store)
            job.fake.model_artifacts = {"S3ModelArtifacts": f"{spec.model_output_uri}/model/"}
        data_dir = opt_ml / "output" / "data"
        if any(data_dir.rglob("*")):
            _upload_tarball(s3, data_dir, job.folder / "output.tar.gz", f"{spec.model_output_uri}/output.tar.gz")

    def _failure_reason(self, job: LocalJob, host: HostRun, returncode: int) -> str:
        """The failed host's `/opt/ml/output/failure` when its script wrote one (SageMaker's rule),
        else its log's last errors."""
        failure_file = host.spec.opt_ml / "output" / "failure"
        if failure_file.is_file() and failure_file.read_text().strip():
            detail = failure_file.read_text().strip()
        else:
            lines = [line for line in host.tail if line.strip() and not line.startswith("[local mode]")]
            errors = [line for line in lines if _TRACE_LINE.search(line)]
            picked = (errors or lines)[-4:]
            detail = "\n".join(picked) if picked else "no output"
        reason = f"AlgorithmError: ExitCode {returncode}\n{detail}"
        if len(reason) > FAILURE_REASON_LIMIT:
            reason = reason[:40] + "\n...\n" + reason[-(FAILURE_REASON_LIMIT - 45) :]
        return reason

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _host_label(job: LocalJob, host: HostRun) -> str:
        """`[algo-2] ` before a host's lines when the job has several hosts; nothing otherwise."""
        return f"[{host.name}] " if len(job.hosts) > 1 else ""

    def _terminate(self, job: LocalJob, graceful: bool) -> None:
        for host in job.hosts:
            self._terminate_process(host.process, graceful)

    def _terminate_process(self, process: subprocess.Popen | None, graceful: bool) -> None:
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        except ProcessLookupError:
            return
        if graceful:

            def escalate() -> None:
                try:
                    process.wait(self.settings.stop_grace_seconds)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)

            threading.Thread(target=escalate, daemon=True).start()

    def _log(self, job: LocalJob, line: str) -> None:
        with job.log_lock, open(job.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        self.on_log(job.spec.name, job.kind, line)

    def _set_final(self, job: LocalJob, status: str, failure: str | None = None) -> None:
        job.status = status
        job.failure_reason = failure
        job.ended = _now()
        secondary = {"Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped"}[status]
        self._set_status(
            job.fake,
            job.kind,
            status,
            secondary=secondary,
            failure=failure,
            message={
                "Completed": "Training job completed",
                "Failed": "Training job failed",
                "Stopped": "Training job stopped",
            }[status],
        )
        now = utcnow()
        if job.kind == "training":
            job.fake.training_end_time = now
            seconds = int((now - job.fake.training_start_time).total_seconds())
            job.fake.training_time_in_seconds = seconds
            job.fake.billable_time_in_seconds = seconds
            job.fake.final_metric_data_list = [
                {"MetricName": name, "Value": value, "Timestamp": now} for name, value in job.metrics.items()
            ]
        else:
            job.fake.processing_end_time = now
            if failure:
                job.fake.exit_message = failure[:1024]
        self._log(job, f"[local mode] job {status}" + (f": {failure}" if failure else ""))

    def _set_progress(self, job: LocalJob, secondary: str | None, message: str) -> None:
        """A step of a running job; a job asked to stop stays Stopping, as on SageMaker."""
        if job.stop_requested:
            self._set_status(job.fake, job.kind, "Stopping")
        else:
            self._set_status(job.fake, job.kind, "InProgress", secondary=secondary, message=message)

    def _set_status(
        self,
        fake: Any,
        kind: str,
        status: str,
        secondary: str | None = None,
        failure: str | None = None,
        message: str = "",
    ) -> None:
        now = utcnow()
        fake.last_modified_time = now
        if failure:
            fake.failure_reason = failure
        if kind == "processing":
            fake.processing_job_status = status
            return
        fake.training_job_status = status
        if secondary and secondary != getattr(fake, "secondary_status", None):
            transitions = getattr(fake, "secondary_status_transitions", None) or []
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            if (
                transitions
                and transitions[-1].get("Status") == "Starting"
                and transitions[-1].get("StatusMessage") == "Preparing the instances for training"
            ):
                transitions = []  # moto's canned transition
            transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
            fake.secondary_status_transitions = transitions
            fake.secondary_status = secondary


def _dies_with_runner(command: list[str]) -> list[str]:
    """The job's command, killed by the kernel if this process dies without stopping it (SIGKILL)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *command] if shutil.which("setpriv") else command


def _note_exit(host: HostRun, process: subprocess.Popen) -> None:
    process.wait()
    host.exited_at = time.monotonic()


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _upload_tarball(s3: Any, folder: Path, archive: Path, uri: str) -> None:
    """Archive a folder's contents as SageMaker does for compressed outputs, and upload it to `uri`."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    bucket, key = split_s3_uri(uri)
    s3.upload_file(str(archive), bucket, key)
