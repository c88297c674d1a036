"""Training metrics in a stable text form that SageMaker turns into CloudWatch metrics.

Once per logging step the main process prints exactly one line:

    train_metrics: step=12 loss=1.2345 learning_rate=0.0002 epoch=0.50 tokens_per_second=812.3

The training job's `MetricDefinitions` that read it are declared once, with the job request
(lambdas/common/job_requests.py), and tested against `format_metric_line`.
tokens_per_second counts real (non-padding) tokens of all processes since the previous line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from transformers import TrainerCallback

METRIC_PREFIX = "train_metrics:"


def format_metric_line(step: int, loss: float, learning_rate: float, epoch: float, tokens_per_second: float) -> str:
    return (
        f"{METRIC_PREFIX} step={step} loss={loss:.4f} learning_rate={learning_rate:.6g} "
        f"epoch={epoch:.2f} tokens_per_second={tokens_per_second:.1f}"
    )


@dataclass
class TokenCounter:
    """Real and padding tokens this process has trained on, and the time spent in training steps."""

    real_tokens: int = 0
    padding_tokens: int = 0
    started: float | None = None
    _window_tokens: int = 0
    _window_start: float = field(default_factory=time.perf_counter)

    def add(self, real: int, padding: int) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started = now
            self._window_start = now
        self.real_tokens += real
        self.padding_tokens += padding
        self._window_tokens += real

    def window_rate(self) -> float:
        """Real tokens per second since the previous call (or the first batch), then start a new window."""
        now = time.perf_counter()
        elapsed = now - self._window_start
        rate = self._window_tokens / elapsed if elapsed > 0 else 0.0
        self._window_tokens, self._window_start = 0, now
        return rate

    @property
    def padding_share(self) -> float:
        total = self.real_tokens + self.padding_tokens
        return self.padding_tokens / total if total else 0.0


class MetricLineCallback(TrainerCallback):
    """Prints one `train_metrics:` line per logging step, on the main process only."""

    def __init__(self, counter: TokenCounter, num_processes: int = 1, printer=print):
        self.counter = counter
        self.num_processes = num_processes
        self.printer = printer

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        # Every process counts its own batches; they are the same size on average.
        rate = self.counter.window_rate() * self.num_processes
        if state.is_world_process_zero:
            line = format_metric_line(
                step=state.global_step,
                loss=float(logs["loss"]),
                learning_rate=float(logs.get("learning_rate", 0.0)),
                epoch=float(logs.get("epoch", state.epoch or 0.0)),
                tokens_per_second=rate,
            )
            self.printer(line, flush=True)
