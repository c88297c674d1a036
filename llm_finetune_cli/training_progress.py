"""Training progress from the job's `train_metrics:` lines in CloudWatch Logs (training/metrics_logging.py).

The first host (`algo-1`, where the main process prints the lines) is followed forward, one
GetLogEvents page per poll. The total number of steps is `max_steps` when the job sets it; otherwise
it is estimated from the epoch the lines report against the job's `epochs`, or left unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cdk_app.contract import METRIC_PREFIX
from llm_finetune_cli.jobs import LOG_GROUPS

_PAIR = re.compile(r"(\w+)=([-+0-9.eE]+|nan|inf)")
RATE_WINDOW = 20  # metric lines the time-left estimate looks back over


@dataclass
class TrainingPoint:
    step: int
    timestamp: float  # seconds, from the log event
    loss: float | None = None
    learning_rate: float | None = None
    epoch: float | None = None
    tokens_per_second: float | None = None


def parse_metric_line(message: str, timestamp_ms: int = 0) -> TrainingPoint | None:
    index = message.find(METRIC_PREFIX)
    if index < 0:
        return None
    values: dict[str, float] = {}
    for key, text in _PAIR.findall(message[index + len(METRIC_PREFIX) :]):
        try:
            values[key] = float(text)
        except ValueError:
            continue
    if "step" not in values:
        return None
    return TrainingPoint(
        step=int(values["step"]),
        timestamp=timestamp_ms / 1000,
        loss=values.get("loss"),
        learning_rate=values.get("learning_rate"),
        epoch=values.get("epoch"),
        tokens_per_second=values.get("tokens_per_second"),
    )


@dataclass
class Progress:
    """Where training stands: the latest point, the total (exact, estimated or unknown), the time left."""

    point: TrainingPoint
    total: int | None
    total_estimated: bool
    seconds_left: float | None

    def describe(self, time_left: bool = True) -> str:
        point = self.point
        total = "?" if self.total is None else ("~" if self.total_estimated else "") + str(self.total)
        parts = [f"step {point.step}/{total}"]
        if point.loss is not None:
            parts.append(f"loss {point.loss:.4f}")
        if point.tokens_per_second is not None:
            parts.append(f"{point.tokens_per_second:,.0f} tokens/s")
        if time_left and self.seconds_left is not None:
            parts.append(f"{format_seconds(self.seconds_left)} left")
        return "  ".join(parts)


def total_steps(hyperparameters: dict[str, str], point: TrainingPoint | None) -> tuple[int | None, bool]:
    """(total, estimated): max_steps when positive; else epochs / reported epoch x step; else unknown."""
    max_steps = _number(hyperparameters.get("max_steps"))
    if max_steps is not None and max_steps > 0:
        return int(max_steps), False
    epochs = _number(hyperparameters.get("epochs"))
    if epochs and point is not None and point.epoch and point.epoch > 0:
        return max(point.step, round(point.step * epochs / point.epoch)), True
    return None, False


def estimate(points: list[TrainingPoint], hyperparameters: dict[str, str]) -> Progress | None:
    if not points:
        return None
    point = points[-1]
    total, estimated = total_steps(hyperparameters, point)
    left = None
    window = [p for p in points[-RATE_WINDOW:] if p.step <= point.step]
    if total is not None and len(window) >= 2:
        first = window[0]
        elapsed, steps = point.timestamp - first.timestamp, point.step - first.step
        if elapsed > 0 and steps > 0:
            left = max(0.0, (total - point.step) * elapsed / steps)
    return Progress(point=point, total=total, total_estimated=estimated, seconds_left=left)


class TrainingLog:
    """The training job's algo-1 log stream, read forward; a restarted job (spot) gets a new stream."""

    def __init__(self, logs: Any, job_name: str, rediscover_every: int = 10):
        self.logs = logs
        self.job_name = job_name
        self.group = LOG_GROUPS["training"]
        self.stream: str | None = None
        self.points: list[TrainingPoint] = []
        self._token: str | None = None
        self._polls = 0
        self.rediscover_every = rediscover_every

    def poll(self) -> list[TrainingPoint]:
        """New metric points since the last poll (at most one stream lookup and one page of events)."""
        if self.stream is None or self._polls % self.rediscover_every == 0:
            self._discover()
        self._polls += 1
        if self.stream is None:
            return []
        kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": self.stream, "startFromHead": True}
        if self._token:
            kwargs["nextToken"] = self._token
        try:
            page = self.logs.get_log_events(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise
        self._token = page.get("nextForwardToken") or self._token
        new = [
            p
            for p in (parse_metric_line(e["message"], e.get("timestamp", 0)) for e in page.get("events", []))
            if p is not None
        ]
        self.points.extend(new)
        return new

    def latest(self) -> list[TrainingPoint]:
        """The points of the newest page of the stream (one call), for a one-shot look at where training is."""
        self._discover()
        if self.stream is None:
            return []
        page = self.logs.get_log_events(logGroupName=self.group, logStreamName=self.stream, startFromHead=False)
        self.points = [
            p
            for p in (parse_metric_line(e["message"], e.get("timestamp", 0)) for e in page.get("events", []))
            if p is not None
        ]
        return self.points

    def _discover(self) -> None:
        try:
            streams = self.logs.describe_log_streams(
                logGroupName=self.group, logStreamNamePrefix=f"{self.job_name}/algo-1-"
            )["logStreams"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return
            raise
        if not streams:
            return
        newest = max(streams, key=lambda s: (s.get("creationTime", 0), s["logStreamName"]))["logStreamName"]
        if newest != self.stream:
            # A restarted job resumes from its checkpoint: its rate starts again too.
            self.stream, self._token, self.points = newest, None, []


def format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
