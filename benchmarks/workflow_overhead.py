"""What the workflow itself costs: a local-mode run's wall time against the time spent inside its jobs.

Runs the demo as a user does (`python -m local_mode run --model tiny --summary-json ...`) and
splits its wall time into:

- jobs: from each SageMaker job's start to its end (prepare, train, evaluate run one after another);
- endpoint start-up: from CreateEndpoint until the model server answers /ping (the hosting's own
  work: downloading the model and loading it into a server);
- orchestration: the rest of the execution (Lambdas, the state machine's waits and polls, the
  endpoint check's requests);
- start-up: the command's wall time before and after the execution (imports, synthesis, the
  emulated account).

The execution input is the local demo's (examples/local-input.json) with the evaluation gate opened
(thresholds 0, no comparison with production), so that a run with the tiny random model goes on
through registration, deployment and the endpoint check as a passing demo does.

Also times the CDK app's synthesis (`python app.py`, as `cdk synth` runs it).

    python -m benchmarks.workflow_overhead
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import result_file
from benchmarks.measure import spread

REPO_ROOT = Path(__file__).resolve().parent.parent

RESULT_NAME = "workflow_overhead"
DEMO_INPUT = REPO_ROOT / "examples" / "local-input.json"
OPEN_GATE = {"min_execution_accuracy": 0, "min_improvement_over_base": 0, "compare_to_production": False}
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="local_mode's --model (default tiny)")
    parser.add_argument("--repeats", type=int, default=2, help="local-mode runs")
    parser.add_argument("--synth-repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    for name in ("repeats", "synth_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: {getattr(args, name)} is not allowed; it must be >= 1")
    return args


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an ISO-8601 string or a number (None when absent)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def job_intervals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """(name, kind, start, end) of each job of the run, and of each endpoint deployment (kind "endpoint").

    Taken from the summary's `started`/`ended` fields when local mode writes them; otherwise from the
    job's folder: `request.json` is written when the job starts and `job.log`'s last line when it ends.
    """
    intervals = []
    run_folder = Path(summary["run_folder"]) if summary.get("run_folder") else None
    for job in summary.get("jobs") or []:
        start, end = _timestamp(job.get("started")), _timestamp(job.get("ended"))
        source = "summary"
        if (start is None or end is None) and run_folder is not None:
            folder = run_folder / "jobs" / job["name"]
            if (folder / "request.json").is_file() and (folder / "job.log").is_file():
                start, end = (folder / "request.json").stat().st_mtime, (folder / "job.log").stat().st_mtime
                source = "job folder timestamps"
        if start is None or end is None:
            raise ValueError(f"job {job.get('name')!r}: no start/end time in the summary or its folder")
        intervals.append(
            {
                "name": job["name"],
                "kind": job["kind"],
                "status": job.get("status"),
                "start": start,
                "end": end,
                "seconds": end - start,
                "source": source,
            }
        )
    for deployment in (summary.get("endpoint") or {}).get("deployments") or []:
        start, end = _timestamp(deployment["started"]), _timestamp(deployment["ended"])
        intervals.append(
            {
                "name": f"{deployment['endpoint']} ({deployment['action']} {deployment['config']})",
                "kind": "endpoint",
                "status": deployment.get("status"),
                "start": start,
                "end": end,
                "seconds": end - start,
                "source": "summary",
            }
        )
    return intervals


def busy_seconds(intervals: list[dict[str, Any]]) -> float:
    """Wall time covered by at least one job (overlaps counted once)."""
    total, current_start, current_end = 0.0, None, None
    for interval in sorted(intervals, key=lambda item: item["start"]):
        if current_end is None or interval["start"] > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = interval["start"], interval["end"]
        else:
            current_end = max(current_end, interval["end"])
    if current_end is not None:
        total += current_end - current_start
    return total


def split_run(wall: float, summary: dict[str, Any], intervals: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall time split into start-up, jobs, endpoint start-up and orchestration, with the orchestration's share."""
    execution = float(summary["seconds"])
    jobs = busy_seconds([interval for interval in intervals if interval.get("kind") != "endpoint"])
    endpoint = busy_seconds([interval for interval in intervals if interval.get("kind") == "endpoint"])
    orchestration = max(0.0, execution - busy_seconds(intervals))
    return {
        "wall_seconds": wall,
        "execution_seconds": execution,
        "job_seconds": jobs,
        "endpoint_startup_seconds": endpoint,
        "orchestration_seconds": orchestration,
        "startup_seconds": max(0.0, wall - execution),
        "orchestration_share_of_execution": orchestration / execution if execution else None,
        "orchestration_share_of_wall": orchestration / wall if wall else None,
        "jobs": intervals,
        "status": summary.get("status"),
    }


def open_gate_input(target: Path) -> Path:
    """The demo's execution input with every gate threshold at 0."""
    execution_input = json.loads(DEMO_INPUT.read_text())
    execution_input.setdefault("evaluation", {})["gate"] = dict(OPEN_GATE)
    target.write_text(json.dumps(execution_input, indent=2))
    return target


def run_local_mode(model: str, scratch: Path) -> dict[str, Any]:
    summary_path = scratch / "summary.json"
    workdir = scratch / "workdir"
    command = [
        sys.executable,
        "-m",
        "local_mode",
        "run",
        "--model",
        model,
        "--workdir",
        str(workdir),
        "--input",
        str(open_gate_input(scratch / "input.json")),
        "--summary-json",
        str(summary_path),
        "--quiet",
    ]
    began = time.perf_counter()
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True
    )
    wall = time.perf_counter() - began
    if not summary_path.is_file():
        raise RuntimeError(f"local mode wrote no summary (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    summary = json.loads(summary_path.read_text())
    return split_run(wall, summary, job_intervals(summary))


def time_synth(scratch: Path) -> float:
    outdir = scratch / f"cdk.out-{time.monotonic_ns()}"
    began = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env={**os.environ, **OFFLINE_ENV, "CDK_OUTDIR": str(outdir)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if completed.returncode != 0:
        raise RuntimeError(f"python app.py failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    load_before = result_file.load_average()
    runs, synth = [], []
    with tempfile.TemporaryDirectory(prefix="workflow-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        for repeat in range(args.repeats):
            run_dir = scratch / f"run-{repeat}"
            run_dir.mkdir()
            result = run_local_mode(args.model, run_dir)
            runs.append(result)
            print(
                f"  run {repeat + 1}/{args.repeats}: {result['status']}, wall {result['wall_seconds']:.1f}s, "
                f"execution {result['execution_seconds']:.1f}s, jobs {result['job_seconds']:.1f}s, "
                f"endpoint start-up {result['endpoint_startup_seconds']:.1f}s, "
                f"orchestration {result['orchestration_seconds']:.1f}s "
                f"({100 * result['orchestration_share_of_execution']:.1f}% of the execution)",
                flush=True,
            )
        for repeat in range(args.synth_repeats):
            synth.append(time_synth(scratch))
            print(f"  synth {repeat + 1}/{args.synth_repeats}: {synth[-1]:.1f}s", flush=True)

    def figure(key: str) -> dict[str, float]:
        return spread([run[key] for run in runs]).as_dict()

    payload = {
        **result_file.header(
            RESULT_NAME,
            "local-mode demo: orchestration's own time against the time inside the SageMaker jobs; app synth",
            argv,
            started,
            load_before,
        ),
        "settings": {
            "model": args.model,
            "repeats": args.repeats,
            "synth_repeats": args.synth_repeats,
            "local_mode_command": f"python -m local_mode run --model {args.model} --input "
            "<examples/local-input.json with the gate opened> --summary-json FILE",
            "gate": OPEN_GATE,
        },
        "wall_seconds": figure("wall_seconds"),
        "execution_seconds": figure("execution_seconds"),
        "job_seconds": figure("job_seconds"),
        "endpoint_startup_seconds": figure("endpoint_startup_seconds"),
        "orchestration_seconds": figure("orchestration_seconds"),
        "startup_seconds": figure("startup_seconds"),
        "orchestration_share_of_execution": figure("orchestration_share_of_execution"),
        "orchestration_share_of_wall": figure("orchestration_share_of_wall"),
        "synth_seconds": spread(synth).as_dict(),
        "runs": runs,
        "benchmark_seconds": time.time() - started,
    }
    path = result_file.write(args.out, RESULT_NAME, payload)
    share = payload["orchestration_share_of_execution"]
    print(
        f"\norchestration {payload['orchestration_seconds']['median']:.1f}s = {100 * share['median']:.1f}% of the "
        f"execution ({100 * share['min']:.1f}-{100 * share['max']:.1f}%); synth "
        f"{payload['synth_seconds']['median']:.1f}s; results: {path}"
    )
    return 0 if all(run["status"] == "SUCCEEDED" for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
