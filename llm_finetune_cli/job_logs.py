"""A job's output in CloudWatch Logs, where SageMaker writes it: one stream per host, `<job>/<host>-<epoch>`.

The job's streams are found by their prefix (DescribeLogStreams), and FilterLogEvents over them gives
every host's lines in time order. Following a job polls from the last timestamp seen and skips the
events already printed at that timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from llm_finetune_cli.jobs import LOG_GROUPS, api_of

MAX_STREAMS = 100


@dataclass
class LogLine:
    job: str
    kind: str
    host: str
    timestamp: int
    message: str


@dataclass
class JobLogReader:
    logs: Any
    kind: str
    job_name: str
    _last_timestamp: int = 0
    _seen_at_last: set[str] = field(default_factory=set)

    @property
    def group(self) -> str:
        return LOG_GROUPS[api_of(self.kind)]

    def streams(self) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamNamePrefix": f"{self.job_name}/"}
        while True:
            try:
                page = self.logs.describe_log_streams(**kwargs)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return []  # no job has written to this log group yet
                raise
            names += [stream["logStreamName"] for stream in page.get("logStreams", [])]
            if not page.get("nextToken"):
                return names
            kwargs["nextToken"] = page["nextToken"]

    def read_new(self) -> Iterator[LogLine]:
        """Every line not yet read, page by page, oldest first."""
        streams = self.streams()
        if not streams:
            return
        # FilterLogEvents takes at most 100 stream names: the hosts of a job, restarts included.
        kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamNames": streams[-MAX_STREAMS:]}
        if self._last_timestamp:
            kwargs["startTime"] = self._last_timestamp
        while True:
            page = self.logs.filter_log_events(**kwargs)
            for event in sorted(page.get("events", []), key=lambda e: e["timestamp"]):
                if not self._is_new(event):
                    continue
                yield LogLine(
                    job=self.job_name,
                    kind=self.kind,
                    host=_host(event.get("logStreamName", "")),
                    timestamp=event["timestamp"],
                    message=event["message"].rstrip("\n"),
                )
            if not page.get("nextToken"):
                return
            kwargs["nextToken"] = page["nextToken"]

    def _is_new(self, event: dict) -> bool:
        # Event ids are unique within a stream; the stream name makes them unique across hosts.
        timestamp = event["timestamp"]
        event_id = f"{event.get('logStreamName')}:{event.get('eventId') or event['message']}"
        if timestamp < self._last_timestamp or (timestamp == self._last_timestamp and event_id in self._seen_at_last):
            return False
        if timestamp > self._last_timestamp:
            self._last_timestamp, self._seen_at_last = timestamp, set()
        self._seen_at_last.add(event_id)
        return True


def _host(stream: str) -> str:
    """`<job>/algo-1-1700000000` -> `algo-1`."""
    tail = stream.rsplit("/", 1)[-1]
    host, _, epoch = tail.rpartition("-")
    return host if host and epoch.isdigit() else tail
