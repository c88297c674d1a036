"""Evaluate a fine-tuned model against its base model on the held-out test rows.

    python training/evaluate.py --model-dir model/merged --base-model-dir base/ \
        --test-file data/test.jsonl --output-dir eval/ [--training-metrics training_metrics.json]

Both models answer every test prompt with greedy, batched generation; each answer is scored by exact
match (normalized SQL) and by execution accuracy (sql_execution: the predicted and the gold query
run on SQLite databases built from the row's CREATE TABLE schema and filled with generated rows).
Writes ``metrics.json`` and ``predictions.jsonl`` as docs/workflow-contract.md describes, and a
self-contained ``report.html``.

In a SageMaker Processing job the defaults read ``$OPT_ML/processing/input/{model,base_model,data,
training}`` and write ``$OPT_ML/processing/output/eval``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chat_format import ensure_chat_template, prompt_messages, render_prompt
from cli_arguments import number_between, whole_number
from evaluation_stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, paired_comparison, proportion_interval
from sql_execution import exact_match, execution_match, extract_schema
from vllm_generation import software_versions

OPT_ML = Path(os.environ.get("OPT_ML", "/opt/ml"))
PROCESSING_INPUT = OPT_ML / "processing" / "input"
DEFAULT_OUTPUT = OPT_ML / "processing" / "output" / "eval"
MODELS = ("fine_tuned", "base")
METRICS = ("execution_accuracy", "exact_match")
PROBLEMS_LISTED = 20  # skipped test lines named in metrics.json and the log; all are counted

_FENCE_RE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|$)", re.DOTALL)
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")
_SQL_LINE_RE = re.compile(r"^[ \t]*(SELECT|WITH)\b", re.IGNORECASE | re.MULTILINE)


class EvaluationError(ValueError):
    """Bad input for the evaluation (a test row, a path, an option)."""


class EvaluationFailed(RuntimeError):
    """The evaluation could not finish; the message names the model and the rows it was on.

    ``partial`` holds what that model produced before it failed (verdicts of the rows it finished).
    """

    def __init__(self, message: str, model: str | None = None, partial: ModelRun | None = None):
        super().__init__(message)
        self.model = model
        self.partial = partial


class GenerationFailed(RuntimeError):
    """Generation raised on a batch: ``indices`` are that batch's prompts, ``done`` the texts generated before."""

    def __init__(self, indices: list[int], done: dict[int, str], cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.indices = indices
        self.done = done


@dataclass(frozen=True)
class EvalConfig:
    model_dir: Path
    test_file: Path
    output_dir: Path
    base_model: str | None = None  # a folder or a Hub id; None skips the base model
    training_metrics: Path | None = None
    max_samples: int | None = None
    batch_size: int = 16
    max_new_tokens: int = 128
    execution_seed: int = 0
    base_model_revision: str | None = None  # the Hub commit of a base model given by id
    hf_token_secret_arn: str | None = None  # where the token for a gated Hub base model is kept
    generation_backend: str = "transformers"  # or "vllm": the engine that serves the model (vllm_generation.py)
    confidence: float = DEFAULT_CONFIDENCE  # of the bootstrap intervals
    resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = 0


@dataclass(frozen=True)
class EvalRow:
    id: str
    messages: list[dict]  # the prompt: every message before the answer
    gold: str
    schema: str  # CREATE TABLE statements found in the prompt ('' when there are none)


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str


@dataclass(frozen=True)
class TestRows:
    rows: list[EvalRow]
    problems: list[RowProblem]  # lines that were skipped, and why

    @property
    def lines(self) -> int:
        return len(self.rows) + len(self.problems)


@dataclass(frozen=True)
class Verdict:
    prediction: str
    output: str  # the raw generated text, before clean_prediction
    exact_match: bool
    execution_match: bool | None  # None when the row has no schema to execute against
    error: str | None
    unscored: str | None = None  # why scoring failed; the row then counts as wrong


@dataclass
class ModelRun:
    """One model's answers: its metrics (None when it did not finish), a verdict per row (None for a
    row it never answered) and the prompts as rendered for it."""

    summary: dict | None
    verdicts: list[Verdict | None]
    prompts: list[str | None]


# --- test rows ----------------------------------------------------------------------------------


def _row_from(record: object, number: int) -> EvalRow:
    """One test row from a parsed JSON line; raises EvaluationError saying what is wrong with it."""
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise EvaluationError('expected {"messages": [...]} ending with the assistant\'s answer')
    for position, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise EvaluationError(
                f'messages[{position}] is not a {{"role": ..., "content": "..."}} object with string values'
            )
    if messages[-1]["role"] != "assistant":
        raise EvaluationError(
            'expected {"messages": [...]} ending with the assistant\'s answer, '
            f"the last message's role is {messages[-1]['role']!r}"
        )
    prompt = prompt_messages(messages)
    if not prompt:
        raise EvaluationError("no message before the assistant's answer")
    schema = extract_schema("\n".join(message["content"] for message in prompt))
    row_id = record.get("id", number) if isinstance(record, dict) else number
    return EvalRow(str(row_id), prompt, messages[-1]["content"], schema)


def load_test_rows(path: Path, max_samples: int | None = None) -> TestRows:
    """Read test.jsonl ({"messages": [...]} per line, last message the gold answer).

    A line that is not JSON or not such a row is skipped and reported with its number, so that one
    bad row does not cost the whole evaluation; a file without a single usable row is an error.
    """
    if not path.is_file():
        raise EvaluationError(f"--test-file {path} does not exist")
    rows: list[EvalRow] = []
    problems: list[RowProblem] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(RowProblem(number, f"broken JSON ({error.msg})"))
                continue
            try:
                rows.append(_row_from(record, number))
            except EvaluationError as error:
                problems.append(RowProblem(number, str(error)))
                continue
            if max_samples is not None and len(rows) >= max_samples:
                break
    if not rows:
        listed = "; ".join(f"line {p.line}: {p.reason}" for p in problems[:3])
        raise EvaluationError(f"--test-file {path} holds no usable rows" + (f" ({listed})" if listed else ""))
    return TestRows(rows, problems)


# --- generation ---------------------------------------------------------------------------------


def load_model(reference: str | Path):
    """Model and tokenizer from a folder or a Hub id, ready for batched greedy generation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(str(reference)))  # nosec B615 # a local folder: a Hub base model is downloaded at its pinned commit first
    tokenizer.padding_side = "left"
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else (torch.float16 if cuda else torch.float32)
    model = AutoModelForCausalLM.from_pretrained(str(reference), dtype=dtype)  # nosec B615 # a local folder: a Hub base model is downloaded at its pinned commit first
    # transformers wraps PreTrainedModel.to with functools.wraps, which mypy reads as an unbound function.
    model.to("cuda" if cuda else "cpu")  # type: ignore[arg-type]
    model.eval()
    return model, tokenizer


def _stop_token_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(token for token in ids if token is not None)


def generate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> list[str]:
    """Greedy continuations of ``prompts`` (rendered text), in the order given.

    Prompts are batched longest first, so each batch pads little, and left-padded so every
    continuation starts right after its prompt; the answers equal one-at-a-time generation. No
    repetition penalty, as the serving engines generate by default. A batch that raises raises
    GenerationFailed naming its prompts (indices into ``prompts``) with the texts finished before.
    """
    import torch
    from transformers import GenerationConfig

    if batch_size < 1:
        raise EvaluationError(f"batch size must be at least 1, got {batch_size}")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    settings = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        num_beams=1,
        repetition_penalty=1.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=_stop_token_ids(model, tokenizer),
    )
    lengths = []
    for index, prompt in enumerate(prompts):
        try:
            lengths.append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        except Exception as error:
            raise GenerationFailed([index], {}, error) from error
    order = sorted(range(len(prompts)), key=lambda index: -lengths[index])
    outputs: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    done: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        try:
            batch = tokenizer(
                [prompts[index] for index in indices], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            with torch.inference_mode():
                generated = model.generate(**batch, generation_config=settings)
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            texts = [tokenizer.decode(tokens, skip_special_tokens=True) for tokens in new_tokens]
        except Exception as error:
            raise GenerationFailed(sorted(indices), dict(done), error) from error
        for index, text in zip(indices, texts, strict=True):
            outputs[index] = done[index] = text
    return outputs


def clean_prediction(text: str) -> str:
    """The answer in a generated text: inside the first code fence if there is one, without an
    [SQL] ... [/SQL] wrapper, from the first line that starts a query when the text opens with
    prose, up to the first blank line, stripped."""
    text = text.strip()
    fence = _FENCE_RE.search(text)
    if fence:
        text = fence.group(1)
    text = text.strip()
    if text[:5].upper() == "[SQL]":
        text = text[5:]
    closing = text.upper().find("[/SQL]")
    if closing >= 0:
        text = text[:closing]
    text = text.strip()
    query_line = _SQL_LINE_RE.search(text)
    if query_line and not _SQL_LINE_RE.match(text):
        text = text[query_line.start() :]
    text = _BLANK_LINE_RE.split(text.strip(), maxsplit=1)[0]
    return text.strip()


# --- scoring ------------------------------------------------------------------------------------


def judge(row: EvalRow, output: str, seed: int = 0) -> Verdict:
    prediction = clean_prediction(output)
    if not row.schema:
        return Verdict(prediction, output, exact_match(prediction, row.gold), None, None)
    result = execution_match(prediction, row.gold, row.schema, seed=seed)
    return Verdict(prediction, output, exact_match(prediction, row.gold), result.match, result.error)


def _text(value: object) -> str:
    """Any generated value as text that JSON and UTF-8 can hold (lone surrogates replaced)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return text.encode("utf-8", "replace").decode("utf-8")


def judge_safely(row: EvalRow, output: object, seed: int = 0) -> Verdict:
    """``judge``, but whatever cleaning or scoring raises makes the row unscored instead of ending
    the evaluation: it counts as wrong and its verdict says why."""
    try:
        return judge(row, output, seed)  # type: ignore[arg-type]
    except Exception as error:
        try:
            prediction = _text(clean_prediction(output))  # type: ignore[arg-type]
        except Exception:
            prediction = ""
        reason = f"{type(error).__name__}: {error}"
        return Verdict(prediction, _text(output), False, False if row.schema else None, None, reason)


def summarize(verdicts: list[Verdict], seconds: float) -> dict:
    """One model's entry of metrics.json (its intervals are added by ``add_statistics``)."""
    executable = [v for v in verdicts if v.execution_match is not None]
    count = len(verdicts)
    return {
        "execution_accuracy": (
            round(sum(bool(v.execution_match) for v in executable) / len(executable), 4) if executable else None
        ),
        "exact_match": round(sum(v.exact_match for v in verdicts) / count, 4) if count else 0.0,
        "count": count,
        "execution_errors": sum(1 for v in executable if v.error and not v.error.startswith("gold query failed")),
        "unscored": sum(1 for v in verdicts if v.unscored),
        "seconds": round(seconds, 3),
        "prompts_per_second": round(count / seconds, 3) if seconds > 0 else None,
    }


def _rows_named(rows: list[EvalRow], indices: list[int], limit: int = 8) -> str:
    named = ", ".join(f"{rows[i].id} (index {i})" for i in indices[:limit])
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    return f"row{'s' if len(indices) > 1 else ''} {named}{more}"


def evaluate_model(name: str, reference: str | Path, rows: list[EvalRow], config: EvalConfig) -> ModelRun:
    """Generate for every row with one model and judge each answer.

    Raises EvaluationFailed naming the model and the rows it was on when loading, rendering or
    generation fails; the rows answered before are kept in the error's ``partial``.
    """
    try:
        if config.generation_backend == "vllm":  # vLLM loads the model itself; only the tokenizer is needed here
            import vllm_generation

            model, tokenizer = None, vllm_generation.load_tokenizer(reference)
        else:
            model, tokenizer = load_model(reference)
    except Exception as error:
        raise EvaluationFailed(
            f"{name} model {reference}: loading failed: {type(error).__name__}: {error}", name
        ) from error
    prompts: list[str] = []
    for index, row in enumerate(rows):
        try:
            prompts.append(render_prompt(tokenizer, row.messages))
        except Exception as error:
            raise EvaluationFailed(
                f"{name} model: rendering the prompt of {_rows_named(rows, [index])} failed: "
                f"{type(error).__name__}: {error}",
                name,
            ) from error
    started = time.perf_counter()
    try:
        if model is None:
            outputs: list[object] = list(
                vllm_generation.generate(reference, tokenizer, prompts, config.batch_size, config.max_new_tokens)
            )
        else:
            outputs = list(generate(model, tokenizer, prompts, config.batch_size, config.max_new_tokens))
    except GenerationFailed as error:
        partial = [
            judge_safely(rows[i], error.done[i], config.execution_seed) if i in error.done else None
            for i in range(len(rows))
        ]
        raise EvaluationFailed(
            f"{name} model: generation failed on {_rows_named(rows, error.indices)}: {error}",
            name,
            ModelRun(None, partial, list(prompts)),
        ) from error
    except Exception as error:
        every_row = _rows_named(rows, list(range(len(rows))), 3)
        raise EvaluationFailed(
            f"{name} model: generation failed on one of {every_row}: {type(error).__name__}: {error}",
            name,
            ModelRun(None, [None] * len(rows), list(prompts)),
        ) from error
    finally:
        seconds = time.perf_counter() - started
        del model
        _free_memory()
    if len(outputs) != len(rows):
        raise EvaluationFailed(f"{name} model: generation returned {len(outputs)} texts for {len(rows)} rows", name)
    verdicts = [judge_safely(row, output, config.execution_seed) for row, output in zip(rows, outputs, strict=True)]
    for row, verdict in zip(rows, verdicts, strict=True):
        if verdict.unscored:
            print(f"evaluate: {name}: row {row.id} unscored: {verdict.unscored}", file=sys.stderr)
    return ModelRun(summarize(verdicts, seconds), list(verdicts), list(prompts))


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- statistics ---------------------------------------------------------------------------------


def _scored_for(metric: str, verdict: Verdict) -> bool:
    """Execution accuracy counts only the rows with a schema; exact match counts every row."""
    return metric == "exact_match" or verdict.execution_match is not None


def _right(metric: str, verdict: Verdict) -> bool:
    return bool(verdict.exact_match if metric == "exact_match" else verdict.execution_match)


def add_statistics(metrics: dict, runs: dict[str, ModelRun], config: EvalConfig) -> dict:
    """Intervals per finished model and metric, and the paired comparison of fine-tuned vs base."""
    options: dict[str, Any] = {
        "confidence": config.confidence,
        "resamples": config.resamples,
        "seed": config.bootstrap_seed,
    }
    # A finished model (one with a summary) has a verdict for every row.
    finished = {
        name: [v for v in run.verdicts if v is not None] for name, run in runs.items() if run.summary is not None
    }
    for name, verdicts in finished.items():
        intervals = {}
        for metric in METRICS:
            outcomes = [_right(metric, v) for v in verdicts if _scored_for(metric, v)]
            interval = proportion_interval(outcomes, **options)
            intervals[metric] = interval.as_dict() if interval else None
        metrics[name]["intervals"] = intervals
    comparison = None
    if "fine_tuned" in finished and "base" in finished:
        comparison = {}
        for metric in METRICS:
            pairs = [
                (tuned, base)
                for tuned, base in zip(finished["fine_tuned"], finished["base"], strict=True)
                if _scored_for(metric, tuned)
            ]
            result = paired_comparison(
                [_right(metric, tuned) for tuned, _ in pairs], [_right(metric, base) for _, base in pairs], **options
            )
            comparison[metric] = result.as_dict("fine_tuned", "base") if result else None
    metrics["comparison"] = comparison
    metrics["statistics"] = {
        "confidence": config.confidence,
        "resamples": config.resamples,
        "seed": config.bootstrap_seed,
        "interval": "percentile bootstrap over the test rows",
        "paired_test": "McNemar exact: two-sided binomial test on the rows only one model got right",
    }
    return metrics


# --- outputs ------------------------------------------------------------------------------------


def _verdict_json(verdict: Verdict | None) -> dict | None:
    if verdict is None:
        return None
    return {
        "prediction": _text(verdict.prediction),
        "output": _text(verdict.output),
        "exact_match": verdict.exact_match,
        "execution_match": verdict.execution_match,
        "error": None if verdict.error is None else _text(verdict.error),
        "unscored": verdict.unscored,
    }


def prediction_rows(
    rows: list[EvalRow], prompts: list[str | None] | None, verdicts: dict[str, list[Verdict | None] | None]
) -> list[dict]:
    out = []
    for index, row in enumerate(rows):
        record: dict[str, Any] = {
            "id": row.id,
            "prompt": prompts[index] if prompts else None,
            "messages": row.messages,
            "gold": row.gold,
        }
        for name in MODELS:
            model_verdicts = verdicts.get(name)
            record[name] = _verdict_json(model_verdicts[index] if model_verdicts else None)
        out.append(record)
    return out


def load_training_log(path: Path | None) -> list[dict]:
    """The trainer's log history from training_metrics.json (empty when there is none or it is unreadable)."""
    if path is None or not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    history = data.get("log_history", []) if isinstance(data, dict) else data
    return [entry for entry in history if isinstance(entry, dict)] if isinstance(history, list) else []


def _test_rows_json(test: TestRows | None, limit: int = PROBLEMS_LISTED) -> dict | None:
    if test is None:
        return None
    return {
        "lines": test.lines,
        "used": len(test.rows),
        "skipped": len(test.problems),
        "problems": [{"line": p.line, "reason": p.reason} for p in test.problems[:limit]],
    }


def write_outputs(config: EvalConfig, metrics: dict, predictions: list[dict]) -> None:
    """metrics.json first (the workflow reads it), then predictions.jsonl, then report.html."""
    from report import render_error_report, render_report

    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (config.output_dir / "predictions.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
        for record in predictions:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    try:
        html = render_report(metrics, predictions, load_training_log(config.training_metrics))
    except Exception as error:
        html = render_error_report(metrics, f"the report could not be drawn: {type(error).__name__}: {error}")
    (config.output_dir / "report.html").write_text(html, encoding="utf-8")


def run(config: EvalConfig) -> dict:
    """Evaluate, write metrics.json, predictions.jsonl and report.html; return the metrics.

    The three files are written whatever happens. When the evaluation cannot finish, metrics.json
    carries an ``error`` naming the model and rows, the models that finished keep their metrics,
    and EvaluationFailed is raised after the files are written.
    """
    settings = {
        "max_new_tokens": config.max_new_tokens,
        "batch_size": config.batch_size,
        "greedy": True,
        "repetition_penalty": 1.0,
        "generation_backend": config.generation_backend,
        "software": software_versions(),
    }
    test: TestRows | None = None
    runs: dict[str, ModelRun] = {}
    try:
        test = load_test_rows(config.test_file, config.max_samples)
        for problem in test.problems[:PROBLEMS_LISTED]:
            print(f"evaluate: {config.test_file.name} line {problem.line} skipped: {problem.reason}", file=sys.stderr)
        if len(test.problems) > PROBLEMS_LISTED:
            print(f"evaluate: ... and {len(test.problems) - PROBLEMS_LISTED} more lines skipped", file=sys.stderr)
        runs["fine_tuned"] = evaluate_model("fine_tuned", config.model_dir, test.rows, config)
        if config.base_model is not None:
            runs["base"] = evaluate_model("base", config.base_model, test.rows, config)
        metrics: dict[str, Any] = {name: runs[name].summary if name in runs else None for name in MODELS}
        metrics["settings"] = settings
        metrics["test_rows"] = _test_rows_json(test)
        add_statistics(metrics, runs, config)
    except Exception as error:
        if isinstance(error, EvaluationFailed) and error.partial is not None and error.model is not None:
            runs[error.model] = error.partial
        message = (
            str(error) if isinstance(error, (EvaluationError, EvaluationFailed)) else f"{type(error).__name__}: {error}"
        )
        metrics = {name: runs[name].summary if name in runs else None for name in MODELS}
        metrics.update(settings=settings, test_rows=_test_rows_json(test), error=message)
        try:
            add_statistics(metrics, runs, config)
        except Exception:
            metrics.setdefault("comparison", None)
        rows = test.rows if test else []
        write_outputs(config, metrics, _predictions(rows, runs))
        raise EvaluationFailed(message) from error
    write_outputs(config, metrics, _predictions(test.rows, runs))
    return metrics


def _predictions(rows: list[EvalRow], runs: dict[str, ModelRun]) -> list[dict]:
    first = runs.get("fine_tuned") or runs.get("base")
    return prediction_rows(rows, first.prompts if first else None, {name: run.verdicts for name, run in runs.items()})


# --- command line -------------------------------------------------------------------------------

POSITIVE = whole_number(1)
CONFIDENCE = number_between(0.5, 1, include_high=False)


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, default=PROCESSING_INPUT / "model", help="the fine-tuned (merged) model folder"
    )
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--base-model-dir", type=Path, default=None)
    base.add_argument("--base-model-id", default=None, help="a Hugging Face Hub model id (needs the network)")
    base.add_argument("--skip-base", action="store_true", help="evaluate only the fine-tuned model")
    parser.add_argument("--test-file", type=Path, default=PROCESSING_INPUT / "data" / "test.jsonl")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--training-metrics", type=Path, default=None, help="training_metrics.json, for the loss curve in the report"
    )
    parser.add_argument("--max-samples", type=POSITIVE, default=None, help="evaluate only the first N test rows")
    parser.add_argument("--batch-size", type=POSITIVE, default=16)
    parser.add_argument("--max-new-tokens", type=POSITIVE, default=128)
    parser.add_argument(
        "--base-model-revision", default=None, help="the commit (or branch) of --base-model-id to evaluate"
    )
    parser.add_argument(
        "--hf-token-secret-arn",
        default=None,
        help="Secrets Manager secret holding the Hugging Face token, for a gated base model",
    )
    parser.add_argument(
        "--confidence",
        type=CONFIDENCE,
        default=DEFAULT_CONFIDENCE,
        help="confidence of the bootstrap intervals (default 0.95)",
    )
    parser.add_argument(
        "--resamples", type=POSITIVE, default=DEFAULT_RESAMPLES, help="bootstrap resamples (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument(
        "--generation-backend",
        choices=("transformers", "vllm"),
        default="transformers",
        help="what generates the answers: transformers' batched generate, or vLLM (which must be "
        "importable, as in the vLLM serving image), the engine that serves the model",
    )
    args = parser.parse_args(argv)
    base_model: str | None
    if args.skip_base:
        base_model = None
    elif args.base_model_dir is not None:
        base_model = str(args.base_model_dir)
    elif args.base_model_id:
        base_model = args.base_model_id
    elif (PROCESSING_INPUT / "base_model").is_dir():
        base_model = str(PROCESSING_INPUT / "base_model")
    else:
        parser.error("give --base-model-dir, --base-model-id or --skip-base")
    training_metrics = args.training_metrics
    default_metrics = PROCESSING_INPUT / "training" / "training_metrics.json"
    if training_metrics is None and default_metrics.is_file():
        training_metrics = default_metrics
    return EvalConfig(
        model_dir=args.model_dir,
        test_file=args.test_file,
        output_dir=args.output_dir,
        base_model=base_model,
        training_metrics=training_metrics,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        confidence=args.confidence,
        resamples=args.resamples,
        bootstrap_seed=args.seed,
        base_model_revision=args.base_model_revision if args.base_model_id else None,
        hf_token_secret_arn=args.hf_token_secret_arn,
        generation_backend=args.generation_backend,
    )


def pin_hub_base_model(config: EvalConfig) -> EvalConfig:
    """A base model given by Hub id, downloaded at its pinned commit with the token, as a local folder."""
    if config.base_model is None or Path(config.base_model).is_dir():
        return config
    from hf_token import TokenError, read_hf_token
    from hub_snapshot import pinned_snapshot
    from huggingface_hub.errors import HfHubHTTPError

    try:
        folder = pinned_snapshot(
            config.base_model, config.base_model_revision, read_hf_token(config.hf_token_secret_arn)
        )
    except (HfHubHTTPError, TokenError, OSError) as error:
        raise EvaluationError(
            f"--base-model-id {config.base_model!r} at revision "
            f"{config.base_model_revision or 'main'} cannot be downloaded: {error}"
        ) from error
    return replace(config, base_model=folder)


def summary_lines(metrics: dict) -> list[str]:
    """What the job prints at the end: each model's scores with intervals, and the paired comparison."""
    lines = []
    level = f"{metrics.get('statistics', {}).get('confidence', DEFAULT_CONFIDENCE):.0%}"
    for name in MODELS:
        entry = metrics.get(name)
        if not entry:
            continue
        parts = []
        for key, value in entry.items():
            if key == "intervals":
                continue
            interval = (entry.get("intervals") or {}).get(key)
            parts.append(f"{key}={value}" + (f" ({level} {interval['low']}-{interval['high']})" if interval else ""))
        lines.append(f"evaluate: {name}: {', '.join(parts)}")
    for metric, result in (metrics.get("comparison") or {}).items():
        if result:
            lines.append(
                f"evaluate: fine_tuned vs base, {metric}: difference {result['difference']:+} "
                f"({level} {result['low']:+} to {result['high']:+}), McNemar exact p={result['p_value']} "
                f"(fine-tuned alone right {result['fine_tuned_only']}, "
                f"base alone right {result['base_only']})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        config = pin_hub_base_model(config)
    except EvaluationError as error:  # the base model could not be downloaded: nothing was evaluated
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 1
    try:
        metrics = run(config)
    except EvaluationFailed as error:
        cause = error.__cause__
        while isinstance(cause, EvaluationFailed):
            cause = cause.__cause__
        if cause is not None and not isinstance(cause, EvaluationError):
            traceback.print_exception(cause)
        print(
            f"evaluate: error: {error} (metrics.json, predictions.jsonl and report.html hold what was done)",
            file=sys.stderr,
        )
        return 1
    for line in summary_lines(metrics):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
