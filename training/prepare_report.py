"""What report.json, the log and the job's exit message say about rows dropped or changed.

Every list of rows in report.json stops at a cap (the total is always given), so a file with
millions of bad rows still gives a report that opens. The exit message is what SageMaker shows for
a failed Processing job (its first 1 KB): the count and the first lines, pointing to the log, which
lists every bad row.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from data_formats import Change

LIST_CAP = 1000
# SageMaker keeps 1,024 bytes of a Processing job's exit message; a failure reason built from it
# ("AlgorithmError: ExitCode 1" and a line break before it) must fit in the same 1,024.
EXIT_MESSAGE_BYTES = 992
ERRORS_SHOWN = 5


class ChangeCounts:
    """Per kind of change: how many rows, how many times, per detail (a field name) and the first lines;
    details and lines stop at the cap."""

    def __init__(self, cap: int = LIST_CAP) -> None:
        self.cap = cap
        self._kinds: dict[str, dict] = {}

    def add(self, line: int, changes: list[Change]) -> None:
        for kind in dict.fromkeys(change.kind for change in changes):
            entry = self._kinds.setdefault(kind, {"rows": 0, "occurrences": 0, "details": Counter(), "lines": []})
            entry["rows"] += 1
            if len(entry["lines"]) < self.cap:
                entry["lines"].append(line)
        for change in changes:
            entry = self._kinds[change.kind]
            entry["occurrences"] += 1
            if change.detail:
                entry["details"][change.detail] += 1

    def to_report(self) -> dict:
        return {
            kind: {
                "rows": entry["rows"],
                "occurrences": entry["occurrences"],
                **({"details": dict(entry["details"].most_common(self.cap))} if entry["details"] else {}),
                "lines": entry["lines"],
            }
            for kind, entry in sorted(self._kinds.items())
        }


def bad_row_line(row: dict) -> str:
    return f"line {row['line']}: {row['reason']}"


def first_bad_rows(rejected: list[dict], shown: int = ERRORS_SHOWN) -> str:
    lines = "\n".join(f"  {bad_row_line(row)}" for row in rejected[:shown])
    more = f"\n  ... and {len(rejected) - shown} more" if len(rejected) > shown else ""
    return lines + more


def exit_message(summary: str, rejected: list[dict], report_path: Path | None, limit: int = EXIT_MESSAGE_BYTES) -> str:
    """The refusal in at most ``limit`` UTF-8 bytes: the summary, as many first bad rows as fit, and
    where the rest is."""
    tail = "every bad row is printed in the job's log" + (
        f" and listed in {report_path}" if report_path is not None else ""
    )
    text, shown = summary, 0
    for row in rejected:
        candidate = f"{text}\n{_clip(bad_row_line(row), 200)}"
        rest = f"\n... {len(rejected) - shown - 1} more; {tail}"
        if len((candidate + rest).encode("utf-8")) > limit:
            break
        text, shown = candidate, shown + 1
    text += f"\n... {len(rejected) - shown} more; {tail}" if shown < len(rejected) else f"\n{tail}"
    return _clip_bytes(text, limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


def write_exit_message(paths: list[Path], message: str) -> None:
    """Best effort: a job that cannot write its message still fails with its log."""
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(message.encode("utf-8", errors="backslashreplace"))
        except OSError:
            pass
