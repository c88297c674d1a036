"""Job output in CloudWatch Logs, where SageMaker puts it: what `aws logs` and the CLI read.

Training jobs log to `/aws/sagemaker/TrainingJobs`, processing jobs to `/aws/sagemaker/ProcessingJobs`,
one stream per host, `<job name>/<host>-<start time in epoch seconds>`. Written straight to moto's
logs backend (SageMaker's own writing is not an API call of the workflow).
"""

from __future__ import annotations

import threading
import time

GROUPS = {"training": "/aws/sagemaker/TrainingJobs", "processing": "/aws/sagemaker/ProcessingJobs"}


def stream_name(job_name: str, host: str, started: float) -> str:
    return f"{job_name}/{host}-{int(started)}"


class JobLogStream:
    def __init__(self, account: str, region: str, kind: str, job_name: str, host: str, started: float | None = None):
        from moto.logs.models import logs_backends

        self.backend = logs_backends[account][region]
        self.group = GROUPS[kind]
        self.stream = stream_name(job_name, host, started if started is not None else time.time())
        self._lock = threading.Lock()
        self.backend.ensure_log_group(self.group)
        if self.stream not in self.backend.groups[self.group].streams:
            self.backend.create_log_stream(self.group, self.stream)

    def write(self, line: str) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": line}
        with self._lock:
            self.backend.put_log_events(self.group, self.stream, [event])
