"""SageMaker real-time endpoints as local HTTP servers, with SageMaker's lifecycle.

CreateEndpoint leaves the endpoint `Creating` while the model data is downloaded from the emulated S3
and a server (`python -m local_mode.endpoint_server`) starts on a free port of 127.0.0.1; it becomes
`InService` once `GET /ping` answers 200, or `Failed` with SageMaker's FailureReason when the server
exits or stays unhealthy beyond the variant's `ContainerStartupHealthCheckTimeoutInSeconds`.
UpdateEndpoint is blue/green: the new configuration gets its own server, and only a healthy one
replaces the old; a failed update rolls back, so the old configuration keeps serving.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto.core.exceptions import ServiceException
from moto.core.utils import utcnow

from local_mode import process_env
from local_mode.moto_patches import S3Store
from local_mode.s3_transfer import download_prefix, list_keys, split_s3_uri

DEFAULT_HEALTH_CHECK_TIMEOUT = 600
PING_FAILURE = (
    "The primary container for production variant {variant} did not pass the ping health check. "
    "Please check CloudWatch logs for this endpoint."
)
EventSink = Callable[[str, str], None]  # (endpoint name, message)


class EndpointNotFound(ServiceException):
    code = "ValidationError"


class ModelError(ServiceException):
    code = "ModelError"


class DeployFailed(RuntimeError):
    """The new configuration could not be served; the message is the endpoint's FailureReason."""


@dataclass
class EndpointSettings:
    region: str = "us-east-1"
    # Local knobs, off by default (see docs/local-mode.md):
    never_healthy: bool = False  # every new server answers /ping with 503
    health_check_timeout_cap: float | None = None  # wait at most this long, whatever the config says
    invoke_timeout_seconds: float = 300.0


@dataclass
class Server:
    endpoint_name: str
    config_name: str
    variant: str
    folder: Path
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class EndpointEmulator:
    workdir: Path
    settings: EndpointSettings = field(default_factory=EndpointSettings)
    on_event: EventSink | None = None
    # The account's IAM (local_mode.iam.AccountIam); None serves without checking the execution role.
    iam: Any = None
    serving: dict[str, Server] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- called by the moto patches ------------------------------------------------------------
    def create(self, backend: Any, endpoint: Any, request: dict) -> None:
        endpoint.endpoint_status = "Creating"
        endpoint.failure_reason = None
        self._background(self._create, backend, endpoint, endpoint.endpoint_config_name)

    def update(self, backend: Any, endpoint: Any, config_name: str, rollback_alarms: list[str] | None = None) -> None:
        endpoint.endpoint_status = "Updating"
        endpoint.failure_reason = None
        endpoint.last_modified_time = utcnow()
        self._background(self._update, backend, endpoint, config_name, list(rollback_alarms or []))

    def delete(self, endpoint_name: str) -> None:
        with self._lock:
            server = self.serving.pop(endpoint_name, None)
        if server is not None:
            server.stop()
            self._event(endpoint_name, f"deleted; server on {server.url} stopped")

    def invoke(
        self,
        account_id: str,
        region: str,
        endpoint_name: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
    ) -> tuple[int, dict, bytes]:
        server = self.serving.get(endpoint_name)
        if server is None or server.process.poll() is not None:
            raise EndpointNotFound(f"Endpoint {endpoint_name} of account {account_id} not found.")
        request = urllib.request.Request(
            f"{server.url}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": content_type or "application/json", "Accept": accept or "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.invoke_timeout_seconds) as response:  # nosec B310 # an http URL of the emulated endpoint's server on this machine
                payload = response.read()
                headers = {
                    "Content-Type": response.headers.get("Content-Type", "application/json"),
                    "x-Amzn-Invoked-Production-Variant": server.variant,
                }
                return 200, headers, payload
        except urllib.error.HTTPError as error:
            message = error.read().decode("utf-8", "replace")
            kind = "client" if error.code < 500 else "server"
            raise ModelError(
                f'Received {kind} error ({error.code}) from primary with message "{message}". '
                f"See the endpoint's server log in {server.folder} for more information."
            ) from error

    # ---- for the runner and tests ---------------------------------------------------------------
    def url(self, endpoint_name: str) -> str | None:
        server = self.serving.get(endpoint_name)
        return server.url if server else None

    def wait_idle(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        self.wait_idle(30)
        with self._lock:
            servers = list(self.serving.values())
            self.serving.clear()
        for server in servers:
            server.stop()

    # ---- lifecycles ------------------------------------------------------------------------------
    def _create(self, backend: Any, endpoint: Any, config_name: str) -> None:
        started = _now()
        try:
            server = self._launch(backend, endpoint.endpoint_name, config_name)
        except Exception as error:  # DeployFailed, or the emulation itself: never leave it Creating
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = _failure_reason(error)
            self._event(endpoint.endpoint_name, f"Failed: {endpoint.failure_reason}")
        else:
            with self._lock:
                self.serving[endpoint.endpoint_name] = server
            if endpoint.endpoint_name not in backend.endpoints:  # deleted while it was starting
                self.delete(endpoint.endpoint_name)
                return
            endpoint.endpoint_status = "InService"
            self._event(endpoint.endpoint_name, f"InService at {server.url} ({config_name})")
        endpoint.last_modified_time = utcnow()
        self._record(endpoint.endpoint_name, config_name, "create", endpoint.endpoint_status, started)

    def _update(self, backend: Any, endpoint: Any, config_name: str, rollback_alarms: list[str]) -> None:
        started = _now()
        try:
            server = self._launch(backend, endpoint.endpoint_name, config_name)
            self._check_alarms(backend, server, rollback_alarms)
        except Exception as error:  # DeployFailed, or the emulation itself: never leave it Updating
            # Blue/green with automatic rollback: the old configuration keeps serving.
            endpoint.endpoint_status = "InService"
            reason = _failure_reason(error)
            endpoint.failure_reason = f"Update failed and was rolled back: {reason}"
            self._event(endpoint.endpoint_name, f"update to {config_name} failed, rolled back: {reason}")
            result = "RolledBack"
        else:
            with self._lock:
                old = self.serving.get(endpoint.endpoint_name)
                self.serving[endpoint.endpoint_name] = server
            if old is not None:
                old.stop()
            config = backend.endpoint_configs[config_name]
            endpoint.endpoint_config_name = config_name
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
            endpoint.endpoint_status = "InService"
            self._event(endpoint.endpoint_name, f"updated to {config_name}, InService at {server.url}")
            result = "InService"
        endpoint.last_modified_time = utcnow()
        self._record(endpoint.endpoint_name, config_name, "update", result, started)

    @staticmethod
    def _check_alarms(backend: Any, server: Server, alarm_names: list[str]) -> None:
        """Blue/green's baking: an AutoRollbackConfiguration alarm in ALARM rolls the new fleet back."""
        from moto.cloudwatch.models import cloudwatch_backends

        alarms = cloudwatch_backends[backend.account_id][backend.region_name].alarms
        firing = [name for name in alarm_names if name in alarms and alarms[name].state_value == "ALARM"]
        if firing:
            server.stop()
            raise DeployFailed(
                f"Auto rollback: alarm(s) {', '.join(firing)} went into ALARM while the new fleet was baking"
            )

    def _record(self, endpoint_name: str, config_name: str, action: str, status: str, started: datetime) -> None:
        """One deployment and how long the server took to come up (or fail), for summaries and benchmarks."""
        ended = _now()
        self.history.append(
            {
                "endpoint": endpoint_name,
                "config": config_name,
                "action": action,
                "status": status,
                "started": started.isoformat(),
                "ended": ended.isoformat(),
                "seconds": round((ended - started).total_seconds(), 3),
            }
        )

    def deployments(self, endpoint_name: str, since: datetime | None = None) -> list[dict]:
        """The endpoint's creations and updates, those that started at or after `since` when given."""
        return [
            dict(entry)
            for entry in list(self.history)
            if entry["endpoint"] == endpoint_name
            and (since is None or datetime.fromisoformat(entry["started"]) >= since)
        ]

    def _launch(self, backend: Any, endpoint_name: str, config_name: str) -> Server:
        """Download the model data, start a server, wait for /ping: a Server, or DeployFailed."""
        config = backend.endpoint_configs.get(config_name)
        if config is None:
            raise DeployFailed(f"Could not find endpoint configuration '{config_name}'.")
        variant = config.production_variants[0]
        variant_name = variant.get("VariantName", "AllTraffic")
        model = backend._models.get(variant["ModelName"])
        if model is None:
            raise DeployFailed(f"Could not find model '{variant['ModelName']}'.")
        container = model.primary_container or (model.containers[0] if model.containers else {})
        self._check_execution_role(model, container, endpoint_name, variant_name)
        folder = self.workdir / "endpoints" / endpoint_name / config_name
        if folder.exists():
            shutil.rmtree(folder)
        model_dir = folder / "model"
        try:
            self._download_model(container, model_dir)
        except Exception as error:
            raise DeployFailed(
                f"Failed to download model data for production variant {variant_name}: {error}"
            ) from error
        port = _free_port()
        environment = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
        for key, value in list(environment.items()):
            if value == "/opt/ml/model" or value.startswith("/opt/ml/model/"):
                environment[key] = str(model_dir) + value[len("/opt/ml/model") :]
        command = [
            sys.executable,
            "-m",
            "local_mode.endpoint_server",
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
            "--engine",
            engine_for_image(container.get("Image", "")),
        ]
        if self.settings.never_healthy:
            command.append("--never-healthy")
        env = {**process_env.snapshot(), **environment, "PYTHONUNBUFFERED": "1"}
        project_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = project_root + os.pathsep + env.get("PYTHONPATH", "")
        with open(folder / "server.log", "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(folder), start_new_session=True
            )
        server = Server(endpoint_name, config_name, variant_name, folder, port, process)
        self._event(endpoint_name, f"starting {config_name}: server on {server.url}, log {folder / 'server.log'}")
        timeout = float(variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or DEFAULT_HEALTH_CHECK_TIMEOUT)
        if self.settings.health_check_timeout_cap is not None:
            timeout = min(timeout, self.settings.health_check_timeout_cap)
        if not _wait_healthy(server, timeout):
            server.stop()
            raise DeployFailed(PING_FAILURE.format(variant=variant_name))
        return server

    def _check_execution_role(self, model: Any, container: dict, endpoint_name: str, variant: str) -> None:
        """What SageMaker does as the model's execution role before the container starts: pull the image,
        read the model data, open the endpoint's log stream (and join the VPC when the model has one)."""
        if self.iam is None:
            return
        from local_mode.iam import AccessDenied, service_checks

        principal = self.iam.sagemaker(model.execution_role_arn)
        view = self.iam.view
        steps = [("pull the inference image", service_checks.image_pull(view, container.get("Image", "")))]
        source = (container.get("ModelDataSource") or {}).get("S3DataSource")
        if source is not None:
            bucket, prefix = split_s3_uri(source["S3Uri"])
            s3 = boto3.session.Session(region_name=self.settings.region).client("s3")
            keys = list_keys(s3, bucket, prefix)
            steps.append(("download model data", service_checks.read_prefix(view, source["S3Uri"], keys)))
        steps.append(("write the endpoint's logs", service_checks.endpoint_logs(view, endpoint_name, variant)))
        if model.vpc_config:
            steps.append(("attach to the VPC", service_checks.vpc_interfaces()))
        for step, checks in steps:
            try:
                self.iam.authorize(principal, checks, f"sagemaker endpoint {endpoint_name}: {step}")
            except AccessDenied as denied:
                raise DeployFailed(
                    f"Failed to {step} for production variant {variant}: {denied.code}: {denied}"
                ) from denied

    def _download_model(self, container: dict, model_dir: Path) -> None:
        # A session of its own: boto3 sessions are not thread-safe, and the Lambdas use the default one.
        s3 = boto3.session.Session(region_name=self.settings.region).client("s3")
        source = (container.get("ModelDataSource") or {}).get("S3DataSource")
        if source is not None:
            if source.get("CompressionType", "None") != "None":
                raise ValueError(f"ModelDataSource CompressionType {source.get('CompressionType')!r} is not emulated")
            download_prefix(s3, source["S3Uri"], model_dir, store=S3Store.of_current_account(self.settings.region))
        elif container.get("ModelDataUrl"):
            bucket, key = split_s3_uri(container["ModelDataUrl"])
            archive = model_dir.parent / "model.tar.gz"
            model_dir.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(archive))
            with tarfile.open(archive) as tar:
                tar.extractall(model_dir, filter="data")
        else:
            raise ValueError("the model has neither ModelDataSource nor ModelDataUrl")

    def _background(self, target: Callable, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _event(self, endpoint_name: str, message: str) -> None:
        if self.on_event is not None:
            self.on_event(endpoint_name, message)


def engine_for_image(image_uri: str) -> str:
    """Which container contract an image serves: the vLLM images', or TGI's (the Hugging Face LLM image)."""
    repository = image_uri.split("/", 1)[-1].split(":", 1)[0]
    return "vllm" if repository in ("huggingface-vllm", "vllm") or repository.endswith("/vllm") else "tgi"


def _failure_reason(error: Exception) -> str:
    """SageMaker's reason for a deployment that failed; the emulation's own errors say they are ours."""
    if isinstance(error, DeployFailed):
        return str(error)
    return f"InternalServerError: local mode could not start the server: {type(error).__name__}: {error}"


def _now() -> datetime:
    return datetime.now(UTC)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(server: Server, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=2) as response:  # nosec B310 # an http URL of the emulated endpoint's server on this machine
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.25)
    return False


def describe_for_summary(
    emulator: EndpointEmulator, endpoint_name: str | None, since: datetime | None = None, engine: str = "tgi"
) -> dict | None:
    if not endpoint_name:
        return None
    url = emulator.url(endpoint_name)
    deployments = emulator.deployments(endpoint_name, since)
    if url is None:
        return {"name": endpoint_name, "url": None, "deployments": deployments}
    # A request in the engine's own format: TGI's text generation, vLLM's OpenAI chat completions.
    example = json.dumps(
        {"model": "model", "messages": [{"role": "user", "content": "List all tables."}], "max_tokens": 32}
        if engine == "vllm"
        else {"inputs": "SELECT", "parameters": {"max_new_tokens": 32}}
    )
    return {
        "name": endpoint_name,
        "url": url,
        "curl": f"curl -s {url}/invocations -H 'Content-Type: application/json' -d '{example}'",
        "deployments": deployments,
    }
