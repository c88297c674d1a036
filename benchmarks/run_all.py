"""`make bench`: run the CPU benchmarks fresh, one after another, then regenerate docs/benchmarks.md.

    python -m benchmarks.run_all                      # all four CPU benchmarks, then the page
    python -m benchmarks.run_all --only eval_throughput
    python -m benchmarks.run_all --render-only        # the page from benchmarks/results/ as they are

The GPU benchmark (benchmarks/gpu/qlora_llama8b.py) needs a GPU and is not run here; its result
file, when present in benchmarks/results/, is rendered with the others.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import eval_throughput, fill_discrimination, train_throughput, workflow_overhead
from benchmarks.report import write_document

REPO_ROOT = Path(__file__).resolve().parent.parent

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DOCUMENT = REPO_ROOT / "docs" / "benchmarks.md"
BENCHMARKS = {
    "train_throughput": train_throughput.main,
    "eval_throughput": eval_throughput.main,
    "workflow_overhead": workflow_overhead.main,
    "fill_discrimination": fill_discrimination.main,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--render-only", action="store_true", help="only regenerate docs/benchmarks.md")
    args = parser.parse_args(argv)
    failures = []
    if not args.render_only:
        for name in args.only or list(BENCHMARKS):
            print(f"== {name}", flush=True)
            began = time.perf_counter()
            status = BENCHMARKS[name]([])  # each writes to benchmarks/results/ by default
            print(f"== {name}: exit {status} after {time.perf_counter() - began:.0f}s\n", flush=True)
            if status != 0:
                failures.append(name)
    path = write_document(RESULTS_DIR, DOCUMENT)
    print(f"wrote {path.relative_to(REPO_ROOT)}")
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
