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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chat_format import ensure_chat_template, prompt_messages, render_prompt
from sql_execution import exact_match, execution_match, extract_schema

OPT_ML = Path(os.environ.get("OPT_ML", "/opt/ml"))
PROCESSING_INPUT = OPT_ML / "processing" / "input"
DEFAULT_OUTPUT = OPT_ML / "processing" / "output" / "eval"
MODELS = ("fine_tuned", "base")

_FENCE_RE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|$)", re.DOTALL)
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")
_SQL_LINE_RE = re.compile(r"^[ \t]*(SELECT|WITH)\b", re.IGNORECASE | re.MULTILINE)


class EvaluationError(ValueError):
    """Bad input for the evaluation (a test row, a path, an option)."""


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


@dataclass(frozen=True)
class EvalRow:
    id: str
    messages: list[dict]  # the prompt: every message before the answer
    gold: str
    schema: str  # CREATE TABLE statements found in the prompt ('' when there are none)


@dataclass(frozen=True)
class Verdict:
    prediction: str
    output: str  # the raw generated text, before clean_prediction
    exact_match: bool
    execution_match: bool | None  # None when the row has no schema to execute against
    error: str | None


# --- test rows ----------------------------------------------------------------------------------

def load_test_rows(path: Path, max_samples: int | None = None) -> list[EvalRow]:
    """Read test.jsonl ({"messages": [...]} per line, last message the gold answer)."""
    if not path.is_file():
        raise EvaluationError(f"--test-file {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise EvaluationError(f"{path.name} line {number}: broken JSON ({error.msg})") from error
            messages = record.get("messages") if isinstance(record, dict) else None
            if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict) \
                    or messages[-1].get("role") != "assistant" or not isinstance(messages[-1].get("content"), str):
                raise EvaluationError(f"{path.name} line {number}: expected {{\"messages\": [...]}} ending with "
                                      "the assistant's answer")
            prompt = prompt_messages(messages)
            if not prompt:
                raise EvaluationError(f"{path.name} line {number}: no message before the assistant's answer")
            schema = extract_schema("\n".join(str(m.get("content", "")) for m in prompt))
            rows.append(EvalRow(str(record.get("id", number)), prompt, messages[-1]["content"], schema))
            if max_samples is not None and len(rows) >= max_samples:
                break
    if not rows:
        raise EvaluationError(f"--test-file {path} holds no rows")
    return rows


# --- generation ---------------------------------------------------------------------------------

def load_model(reference: str | Path):
    """Model and tokenizer from a folder or a Hub id, ready for batched greedy generation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(str(reference)))
    tokenizer.padding_side = "left"
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else (torch.float16 if cuda else torch.float32)
    model = AutoModelForCausalLM.from_pretrained(str(reference), dtype=dtype)
    model.to("cuda" if cuda else "cpu")
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
    continuation starts right after its prompt; the answers equal one-at-a-time generation.
    """
    import torch
    from transformers import GenerationConfig

    if batch_size < 1:
        raise EvaluationError(f"batch size must be at least 1, got {batch_size}")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    settings = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, num_beams=1,
                                pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=_stop_token_ids(model, tokenizer))
    lengths = [len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda index: -lengths[index])
    outputs: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        batch = tokenizer([prompts[index] for index in indices], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        with torch.inference_mode():
            generated = model.generate(**batch, generation_config=settings)
        new_tokens = generated[:, batch["input_ids"].shape[1]:]
        for index, tokens in zip(indices, new_tokens):
            outputs[index] = tokenizer.decode(tokens, skip_special_tokens=True)
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
        text = text[query_line.start():]
    text = _BLANK_LINE_RE.split(text.strip(), maxsplit=1)[0]
    return text.strip()


# --- scoring ------------------------------------------------------------------------------------

def judge(row: EvalRow, output: str, seed: int = 0) -> Verdict:
    prediction = clean_prediction(output)
    if not row.schema:
        return Verdict(prediction, output, exact_match(prediction, row.gold), None, None)
    result = execution_match(prediction, row.gold, row.schema, seed=seed)
    return Verdict(prediction, output, exact_match(prediction, row.gold), result.match, result.error)


def summarize(verdicts: list[Verdict], seconds: float) -> dict:
    """One model's entry of metrics.json."""
    executable = [v for v in verdicts if v.execution_match is not None]
    count = len(verdicts)
    return {
        "execution_accuracy": (round(sum(v.execution_match for v in executable) / len(executable), 4)
                               if executable else None),
        "exact_match": round(sum(v.exact_match for v in verdicts) / count, 4) if count else 0.0,
        "count": count,
        "execution_errors": sum(1 for v in executable if v.error and not v.error.startswith("gold query failed")),
        "seconds": round(seconds, 3),
        "prompts_per_second": round(count / seconds, 3) if seconds > 0 else None,
    }


def evaluate_model(reference: str | Path, rows: list[EvalRow], config: EvalConfig) -> tuple[dict, list[Verdict], list[str]]:
    """Generate for every row with one model; returns its metrics, verdicts and rendered prompts."""
    if config.generation_backend == "vllm":  # vLLM loads the model itself; only the tokenizer is needed here
        import vllm_generation

        model, tokenizer = None, vllm_generation.load_tokenizer(reference)
    else:
        model, tokenizer = load_model(reference)
    prompts = [render_prompt(tokenizer, row.messages) for row in rows]
    started = time.perf_counter()
    if model is None:
        outputs = vllm_generation.generate(reference, tokenizer, prompts, config.batch_size, config.max_new_tokens)
    else:
        outputs = generate(model, tokenizer, prompts, config.batch_size, config.max_new_tokens)
    seconds = time.perf_counter() - started
    del model
    _free_memory()
    verdicts = [judge(row, output, config.execution_seed) for row, output in zip(rows, outputs)]
    return summarize(verdicts, seconds), verdicts, prompts


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- outputs ------------------------------------------------------------------------------------

def _verdict_json(verdict: Verdict | None) -> dict | None:
    if verdict is None:
        return None
    return {"prediction": verdict.prediction, "output": verdict.output, "exact_match": verdict.exact_match,
            "execution_match": verdict.execution_match, "error": verdict.error}


def prediction_rows(rows: list[EvalRow], prompts: list[str], verdicts: dict[str, list[Verdict] | None]) -> list[dict]:
    out = []
    for index, row in enumerate(rows):
        record = {"id": row.id, "prompt": prompts[index], "messages": row.messages, "gold": row.gold}
        for name in MODELS:
            model_verdicts = verdicts.get(name)
            record[name] = _verdict_json(model_verdicts[index] if model_verdicts else None)
        out.append(record)
    return out


def load_training_log(path: Path | None) -> list[dict]:
    """The trainer's log history from training_metrics.json (empty when there is none)."""
    if path is None or not path.is_file():
        return []
    data = json.loads(path.read_text())
    history = data.get("log_history", []) if isinstance(data, dict) else data
    return [entry for entry in history if isinstance(entry, dict)] if isinstance(history, list) else []


def run(config: EvalConfig) -> dict:
    """Evaluate, write metrics.json, predictions.jsonl and report.html; return the metrics."""
    from report import render_report

    rows = load_test_rows(config.test_file, config.max_samples)
    fine_tuned, fine_tuned_verdicts, prompts = evaluate_model(config.model_dir, rows, config)
    base, base_verdicts = None, None
    if config.base_model is not None:
        base, base_verdicts, _ = evaluate_model(config.base_model, rows, config)
    metrics = {
        "fine_tuned": fine_tuned,
        "base": base,
        "settings": {"max_new_tokens": config.max_new_tokens, "batch_size": config.batch_size, "greedy": True},
    }
    predictions = prediction_rows(rows, prompts, {"fine_tuned": fine_tuned_verdicts, "base": base_verdicts})
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (config.output_dir / "predictions.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
        for record in predictions:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    html = render_report(metrics, predictions, load_training_log(config.training_metrics))
    (config.output_dir / "report.html").write_text(html, encoding="utf-8")
    return metrics


# --- command line -------------------------------------------------------------------------------

def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=PROCESSING_INPUT / "model",
                        help="the fine-tuned (merged) model folder")
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--base-model-dir", type=Path, default=None)
    base.add_argument("--base-model-id", default=None, help="a Hugging Face Hub model id (needs the network)")
    base.add_argument("--skip-base", action="store_true", help="evaluate only the fine-tuned model")
    parser.add_argument("--test-file", type=Path, default=PROCESSING_INPUT / "data" / "test.jsonl")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--training-metrics", type=Path, default=None,
                        help="training_metrics.json, for the loss curve in the report")
    parser.add_argument("--max-samples", type=_positive, default=None, help="evaluate only the first N test rows")
    parser.add_argument("--batch-size", type=_positive, default=16)
    parser.add_argument("--max-new-tokens", type=_positive, default=128)
    parser.add_argument("--base-model-revision", default=None,
                        help="the commit (or branch) of --base-model-id to evaluate")
    parser.add_argument("--hf-token-secret-arn", default=None,
                        help="Secrets Manager secret holding the Hugging Face token, for a gated base model")
    parser.add_argument("--generation-backend", choices=("transformers", "vllm"), default="transformers",
                        help="what generates the answers: transformers' batched generate, or vLLM (which must be "
                             "importable, as in the vLLM serving image), the engine that serves the model")
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
    return EvalConfig(model_dir=args.model_dir, test_file=args.test_file, output_dir=args.output_dir,
                      base_model=base_model, training_metrics=training_metrics, max_samples=args.max_samples,
                      batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                      base_model_revision=args.base_model_revision if args.base_model_id else None,
                      hf_token_secret_arn=args.hf_token_secret_arn, generation_backend=args.generation_backend)


def pin_hub_base_model(config: EvalConfig) -> EvalConfig:
    """A base model given by Hub id, downloaded at its pinned commit with the token, as a local folder."""
    if config.base_model is None or Path(config.base_model).is_dir():
        return config
    from huggingface_hub.errors import HfHubHTTPError
    from hf_token import TokenError, read_hf_token
    from hub_snapshot import pinned_snapshot

    try:
        folder = pinned_snapshot(config.base_model, config.base_model_revision,
                                 read_hf_token(config.hf_token_secret_arn))
    except (HfHubHTTPError, TokenError, OSError) as error:
        raise EvaluationError(f"--base-model-id {config.base_model!r} at revision "
                              f"{config.base_model_revision or 'main'} cannot be downloaded: {error}") from error
    return replace(config, base_model=folder)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        metrics = run(pin_hub_base_model(config))
    except EvaluationError as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 1
    for name in MODELS:
        if metrics[name]:
            summary = ", ".join(f"{key}={value}" for key, value in metrics[name].items())
            print(f"evaluate: {name}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
