"""Fill discrimination: how often execution accuracy tells a gold query from a query that means
something else, with one filled database against three, and how often it wrongly rejects a query
that means the same.

For each row, the gold query is rewritten with sqlglot (benchmarks/sql_mutations.py) into mutants
(a literal changed, a comparison flipped, a condition dropped, another aggregate, DISTINCT added,
the order reversed, another column selected) and equivalents (AND terms reordered, a comparison
mirrored, the table aliased, every identifier quoted, sqlglot's own rewrite). Each is scored
against the gold with `sql_execution.execution_match`, once with one fill (6 rows a table) and once
with the default three (6, 15 and 30 rows). The discrimination rate is the share of mutants that
run and are marked wrong; a mutant can, rarely, mean the same as the gold (e.g. DISTINCT on a
query that cannot return duplicates), so it is a lower bound. The false-rejection rate is the share
of equivalents marked wrong. Rows whose gold query cannot be scored are counted and left out.

    python -m benchmarks.fill_discrimination --data ../shared/datasets/sql-create-context-4k.jsonl --rows 400

--data defaults to $SQL_DATASET, then ../shared/datasets/sql-create-context-4k.jsonl beside the
repository, then the project's generated examples/data/sql-example.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import result_file
from benchmarks.sql_mutations import equivalents, mutants
from local_mode import training_code

REPO_ROOT = Path(__file__).resolve().parent.parent

# training/'s modules (train.py, evaluate.py ...) by bare name, as the job imports them.
training_code.enable()

RESULT_NAME = "fill_discrimination"
SHARED_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "sql-create-context-4k.jsonl"
EXAMPLE_DATASET = REPO_ROOT / "examples" / "data" / "sql-example.jsonl"
ONE_FILL = (6,)
_SQL_WRAPPER_RE = re.compile(r"^\s*\[SQL\](.*?)\[/SQL\]\s*$", re.DOTALL | re.IGNORECASE)


def default_data() -> Path:
    if os.environ.get("SQL_DATASET"):
        return Path(os.environ["SQL_DATASET"])
    return SHARED_DATASET if SHARED_DATASET.is_file() else EXAMPLE_DATASET


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="JSON lines with context and answer (default: $SQL_DATASET, the shared "
        "sql-create-context rows, else the generated examples)",
    )
    parser.add_argument("--rows", type=int, default=400, help="rows drawn at random (seeded)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    args.data = args.data or default_data()
    if args.rows < 1:
        parser.error(f"--rows: {args.rows} is not allowed; it must be >= 1")
    if not args.data.is_file():
        parser.error(f"--data: {args.data} is not a file")
    return args


def load_rows(path: Path, count: int, seed: int) -> list[dict[str, str]]:
    """`count` rows (seeded draw) as {"context", "gold"}; the [SQL] wrapper is removed."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            answer = str(record.get("answer", ""))
            wrapped = _SQL_WRAPPER_RE.match(answer)
            rows.append(
                {"context": str(record.get("context", "")), "gold": (wrapped.group(1) if wrapped else answer).strip()}
            )
    random.Random(seed).shuffle(rows)
    return rows[:count]


def context_columns(context: str) -> list[str]:
    """Column names declared in the context, for the "select another column" mutant."""
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(context, read="sqlite")
    except Exception:
        return []
    return [node.name for tree in trees if tree is not None for node in tree.find_all(exp.ColumnDef)]


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def data_label(data: Path) -> str:
    """How the result names its data: the shared data set by what it is, anything else by file name."""
    if data.name.startswith("sql-create-context"):
        return "sql-create-context (4,000 public rows, ../shared/datasets)"
    return f"{data.name}"


@dataclass
class Tally:
    """What scoring the rows has counted so far, and a few examples for the console."""

    fills: dict[str, tuple[int, ...]]
    unscorable: Counter = field(default_factory=Counter)
    gold_unparsed: int = 0
    mutant_counts: dict[str, dict[str, Counter]] = field(default_factory=dict)
    equivalent_counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    rejected_examples: list[dict[str, str]] = field(default_factory=list)
    missed_examples: list[dict[str, str]] = field(default_factory=list)
    progress_calls: int = 0

    def __post_init__(self) -> None:
        self.mutant_counts = {name: defaultdict(Counter) for name in self.fills}


def score_row(tally: Tally, gold: str, context: str) -> None:
    """A row's mutants and equivalents scored, unless its gold query cannot be scored against itself."""
    from sql_execution import execution_match, parse_query

    check = execution_match(gold, gold, context)
    tally.progress_calls += check.progress_calls
    if not check.scorable or not check.match:
        tally.unscorable[(check.error or "gold does not match itself").split(":")[0]] += 1
        return
    if parse_query(gold) is None:
        tally.gold_unparsed += 1
    score_mutants(tally, gold, context)
    score_equivalents(tally, gold, context)


def score_mutants(tally: Tally, gold: str, context: str) -> None:
    """Each mutant against the gold with every fill: told apart, accepted (missed) or an error."""
    from sql_execution import execution_match

    for kind, text in mutants(gold, context_columns(context)):
        for name, row_counts in tally.fills.items():
            result = execution_match(text, gold, context, row_counts=row_counts)
            tally.progress_calls += result.progress_calls
            counts = tally.mutant_counts[name][kind]
            counts["total"] += 1
            if result.error:
                counts["errors"] += 1
            elif result.match:
                counts["accepted"] += 1
                if name == "three_fills" and len(tally.missed_examples) < 8:
                    tally.missed_examples.append({"kind": kind, "gold": gold, "mutant": text})
            else:
                counts["told_apart"] += 1


def score_equivalents(tally: Tally, gold: str, context: str) -> None:
    """Each equivalent rewrite against the gold with the default fills: accepted, or wrongly rejected."""
    from sql_execution import execution_match

    for kind, text in equivalents(gold):
        result = execution_match(text, gold, context)
        tally.progress_calls += result.progress_calls
        counts = tally.equivalent_counts[kind]
        counts["total"] += 1
        if result.match:
            counts["accepted"] += 1
        else:
            counts["rejected"] += 1
            if len(tally.rejected_examples) < 8:
                tally.rejected_examples.append(
                    {"kind": kind, "gold": gold, "rewrite": text, "error": result.error or ""}
                )


def mutant_summary(per_kind: dict[str, Counter]) -> dict[str, Any]:
    """One fill setting's mutants: how many ran, how many were told apart, overall and by kind."""
    ran = sum(c["total"] - c["errors"] for c in per_kind.values())
    apart = sum(c["told_apart"] for c in per_kind.values())
    return {
        "mutants": sum(c["total"] for c in per_kind.values()),
        "ran": ran,
        "told_apart": apart,
        "discrimination_rate": _rate(apart, ran),
        "by_kind": {
            kind: {**dict(c), "discrimination_rate": _rate(c["told_apart"], c["total"] - c["errors"])}
            for kind, c in sorted(per_kind.items())
        },
    }


def equivalent_summary(per_kind: dict[str, Counter]) -> dict[str, Any]:
    """The equivalent rewrites: how many, how many wrongly rejected, overall and by kind."""
    total = sum(c["total"] for c in per_kind.values())
    rejected = sum(c["rejected"] for c in per_kind.values())
    return {
        "total": total,
        "rejected": rejected,
        "false_rejection_rate": _rate(rejected, total),
        "by_kind": {kind: dict(c) for kind, c in sorted(per_kind.items())},
    }


def build_payload(
    tally: Tally,
    args: argparse.Namespace,
    argv: list[str] | None,
    rows: list[dict[str, str]],
    label: str,
    timing: tuple[float, list[float] | None],
) -> dict[str, Any]:
    """The result file's content; `timing` is (when the run started, the load average before it)."""
    started, load_before = timing
    return {
        **result_file.header(
            RESULT_NAME,
            "execution_match on mutants and equivalent rewrites of gold queries, one fill vs three",
            argv,
            started,
            load_before,
        ),
        "settings": {
            "rows": len(rows),
            "seed": args.seed,
            "data": label,
            "one_fill": list(tally.fills["one_fill"]),
            "three_fills": list(tally.fills["three_fills"]),
        },
        "rows_unscorable": dict(tally.unscorable),
        "rows_scored": len(rows) - sum(tally.unscorable.values()),
        "gold_not_parsed_by_sqlglot": tally.gold_unparsed,
        "one_fill": mutant_summary(tally.mutant_counts["one_fill"]),
        "three_fills": mutant_summary(tally.mutant_counts["three_fills"]),
        "equivalents": equivalent_summary(tally.equivalent_counts),
        "progress_calls": tally.progress_calls,
        "wall_seconds": round(time.time() - started, 1),
    }


def print_examples(tally: Tally) -> None:
    """Accepted mutants and rejected rewrites, to the console only: the result file is committed, the
    data set's rows must not be."""
    for example in tally.missed_examples:
        print(f"  accepted mutant ({example['kind']}): {example['mutant']}\n    gold: {example['gold']}")
    for example in tally.rejected_examples:
        print(
            f"  rejected rewrite ({example['kind']}): {example['rewrite']}\n    gold: {example['gold']}; "
            f"{example['error']}"
        )


def print_summary(payload: dict[str, Any], path: Path) -> None:
    """The headline figures, and where the result file went."""
    one, three, equivalent = payload["one_fill"], payload["three_fills"], payload["equivalents"]
    print(
        f"\nmutants told apart: one fill {one['told_apart']}/{one['ran']} ({one['discrimination_rate']}), "
        f"three fills {three['told_apart']}/{three['ran']} ({three['discrimination_rate']}); equivalents "
        f"rejected {equivalent['rejected']}/{equivalent['total']}; results: {path}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from sql_execution import FILL_ROW_COUNTS

    rows = load_rows(args.data, args.rows, args.seed)
    label = data_label(args.data)
    tally = Tally(fills={"one_fill": ONE_FILL, "three_fills": tuple(FILL_ROW_COUNTS)})
    started = time.time()
    load_before = result_file.load_average()
    print(
        f"{len(rows)} rows from {label}; mutants with {tally.fills['one_fill']} and {tally.fills['three_fills']} "
        "rows a table",
        flush=True,
    )
    for number, row in enumerate(rows, 1):
        score_row(tally, row["gold"], row["context"])
        if number % 50 == 0:
            print(f"  {number}/{len(rows)} rows", flush=True)
    payload = build_payload(tally, args, argv, rows, label, (started, load_before))
    print_examples(tally)
    path = result_file.write(args.out, RESULT_NAME, payload)
    print_summary(payload, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
