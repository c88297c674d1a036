"""Check, inside a serving image, that its own transformers reads a merged model as it was evaluated.

    python check_serving.py --model-dir merged/ --predictions eval/predictions.jsonl --engine tgi \
        [--expected-config merged/serving_check.json] [--samples 8] [--max-new-tokens 128] \
        [--dtype auto] [--output report.json]

It needs only what a serving image has (transformers, torch, tokenizers, safetensors) and, next to
it, serving_manifest.py (standard library). It compares, with the image's software:

- config: the values this transformers reads (RoPE settings, sizes, special token ids, dtype)
  against the trained values in serving_check.json, which train.py writes next to the weights;
- tokenizer: it loads; its special tokens, size and chat template are the trained ones; the probe
  prompt, tokenized the way the engine tokenizes, gives the token ids training used; decoding gives
  the same text;
- generation_config: the same stop tokens;
- weights: the dtype and files written;
- outputs: for the first N rows of predictions.jsonl, `prompt` tokenized the way the engine
  tokenizes a request (TGI's /invocations: the router's Rust tokenizer, re-saved by transformers,
  with special tokens; vLLM's completions: transformers' tokenizer, with special tokens), generated
  greedily one row at a time and decoded without special tokens, equals `fine_tuned.output`. A
  special token the engine adds (a second BOS) is reported for the row.

Greedy outputs are compared in one compute dtype on both sides. `--dtype auto` uses evaluate.py's
rule (fp32 on CPU, bf16 on a bf16-capable GPU, else fp16), so run this on the kind of machine the
evaluation ran on. The weights are stored in bf16; loading them in fp32 is exact, and fp32 greedy
decoding does not depend on batching, so on CPU the comparison is exact. bf16 outputs can change
with batch composition; a bf16 evaluation is not a bit-exact reference.

Exit status: 0 when everything matches; 1 when anything does not (every mismatch is in the report,
with its check, field or row, the value found and the value expected); 2 when the input is unusable.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from cli_arguments import whole_number
from serving_manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    MISSING,
    PROBE_MESSAGES,
    config_values,
    differences,
    major_version,
)

ENGINES = ("tgi", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SAFETENSORS_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}
# Generation settings that change greedy output (the others only shape sampling).
GREEDY_SETTINGS = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "sequence_bias",
    "encoder_repetition_penalty",
    "exponential_decay_length_penalty",
)


class InputError(ValueError):
    """The model folder, the manifest or the predictions cannot be used."""


class Report:
    """Mismatches and notes, gathered check by check."""

    def __init__(self) -> None:
        self.mismatches: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.checks: dict[str, str] = {}

    def run(self, name: str, check, *args):
        """Run one check; an exception it raises becomes a mismatch of that check, never a crash."""
        before = len(self.mismatches)
        try:
            result = check(self, *args)
        except Exception as error:
            self.add(name, "error", f"{type(error).__name__}: {error}", "no error")
            result = None
        self.checks[name] = "passed" if len(self.mismatches) == before else "failed"
        return result

    def add(
        self, check: str, field: str, found: Any, expected: Any, row: str | None = None, message: str | None = None
    ) -> None:
        entry: dict[str, Any] = {"check": check, "field": field, "found": found, "expected": expected}
        if row is not None:
            entry["row"] = row
        if message:
            entry["message"] = message
        self.mismatches.append(entry)


# ---------------------------------------------------------------- inputs


def read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(
            f"--expected-config {path} does not exist (train.py writes {MANIFEST_NAME} next to the weights)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"--expected-config {path}: not valid JSON ({error.msg} at line {error.lineno})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"--expected-config {path}: format {found!r}, this check reads format {FORMAT_VERSION}")
    for key in ("config", "tokenizer", "generation", "weights"):
        if not isinstance(manifest.get(key), dict):
            raise InputError(f"--expected-config {path}: no '{key}' object")
    return manifest


def read_rows(path: Path, samples: int) -> tuple[list[dict[str, str]], int]:
    """The first `samples` rows with a prompt and a fine-tuned output, and how many rows lacked them."""
    if samples == 0:
        return [], 0
    if not path.is_file():
        raise InputError(f"--predictions {path} does not exist")
    rows, skipped = [], 0
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path.name} line {number}: not valid JSON ({error.msg})") from error
            tuned = record.get("fine_tuned") if isinstance(record, dict) else None
            prompt = record.get("prompt") if isinstance(record, dict) else None
            output = tuned.get("output") if isinstance(tuned, dict) else None
            if not isinstance(prompt, str) or not isinstance(output, str):
                skipped += 1
                continue
            rows.append({"id": str(record.get("id", number)), "prompt": prompt, "output": output})
            if len(rows) >= samples:
                break
    if not rows:
        raise InputError(f"--predictions {path}: no row has a 'prompt' and a 'fine_tuned.output' string")
    return rows, skipped


# ---------------------------------------------------------------- the engines' tokenization


class EngineTokenizer:
    """Encode a request's text as the engine does.

    TGI's router loads the tokenizer with transformers, saves it, and encodes with the Rust
    tokenizer from the saved tokenizer.json (the Python tokenizer when there is none), adding
    special tokens for /invocations requests with `inputs`. vLLM's completions encode with the
    transformers tokenizer, adding special tokens.
    """

    def __init__(self, engine: str, tokenizer) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.rust = None
        if engine == "tgi":
            from tokenizers import Tokenizer

            with tempfile.TemporaryDirectory() as folder:
                tokenizer.save_pretrained(folder)
                saved = Path(folder) / "tokenizer.json"
                self.rust = Tokenizer.from_file(str(saved)) if saved.is_file() else None

    def encode(self, text: str) -> list[int]:
        if self.rust is not None:
            return list(self.rust.encode(text, add_special_tokens=True).ids)
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])


# ---------------------------------------------------------------- checks


def check_config(report: Report, model_dir: Path, manifest: dict) -> None:
    import transformers
    from transformers import AutoConfig

    found = config_values(AutoConfig.from_pretrained(model_dir), transformers.__version__)  # nosec B615 # the merged model folder the training job wrote
    expected = manifest["config"]
    for field, value, wanted in differences({key: found.get(key, MISSING) for key in expected}, expected, "config"):
        report.add("config", field, value, wanted)


def load_tokenizer(report: Report, model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)  # nosec B615 # the merged model folder the training job wrote


def check_tokenizer(report: Report, model_dir: Path, tokenizer, engine: EngineTokenizer, manifest: dict) -> None:
    expected = manifest["tokenizer"]
    for name, wanted in expected.get("special_tokens", {}).items():
        value = str(getattr(tokenizer, name, None)) if getattr(tokenizer, name, None) is not None else None
        if value != wanted:
            report.add("tokenizer", name, value, wanted)
    if tokenizer.eos_token_id != expected.get("eos_token_id"):
        report.add("tokenizer", "eos_token_id", tokenizer.eos_token_id, expected.get("eos_token_id"))
    if len(tokenizer) != expected.get("size"):
        report.add("tokenizer", "size", len(tokenizer), expected.get("size"))
    template = engine_chat_template(engine.engine, model_dir, tokenizer)
    if _sha256(template) != expected.get("chat_template_sha256"):
        where = (
            "tokenizer_config.json or chat_template.json (the only files TGI's router reads it from)"
            if engine.engine == "tgi"
            else "the tokenizer"
        )
        report.add(
            "tokenizer",
            "chat_template_sha256",
            _sha256(template),
            expected.get("chat_template_sha256"),
            message=f"chat template in {where}",
        )
    probe = expected["probe"]
    if engine.engine == "vllm":  # vLLM renders chat requests with transformers; TGI's router has its own renderer
        rendered = tokenizer.apply_chat_template(list(PROBE_MESSAGES), tokenize=False, add_generation_prompt=True)
        if rendered != probe["text"]:
            report.add(
                "tokenizer",
                "chat_template_rendering",
                rendered,
                probe["text"],
                message="the probe conversation rendered by this transformers' apply_chat_template",
            )
    ids = engine.encode(probe["text"])
    if ids != probe["ids"]:
        report.add(
            "tokenizer",
            "probe_ids",
            ids,
            probe["ids"],
            message=f"the probe prompt tokenized as {engine.engine} tokenizes a request"
            + _added_tokens_message(tokenizer, ids, probe["ids"]),
        )
    decode = expected["decode_probe"]
    text = tokenizer.decode(decode["ids"], skip_special_tokens=True)
    if text != decode["text"]:
        report.add("tokenizer", "decoded_text", text, decode["text"])


def engine_chat_template(engine: str, model_dir: Path, tokenizer) -> Any:
    if engine != "tgi":
        return tokenizer.chat_template
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = model_dir / name
        if path.is_file():
            template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
            if template:
                return template
    return None


def check_generation_config(report: Report, model_dir: Path, manifest: dict):
    from transformers import GenerationConfig

    expected = manifest["generation"]
    generation = GenerationConfig.from_pretrained(model_dir)  # nosec B615 # the merged model folder the training job wrote
    eos = _as_list(generation.eos_token_id)
    if eos != expected.get("eos_token_id"):
        report.add("generation_config", "eos_token_id", eos, expected.get("eos_token_id"))
    if generation.pad_token_id != expected.get("pad_token_id"):
        report.add("generation_config", "pad_token_id", generation.pad_token_id, expected.get("pad_token_id"))
    for key, wanted in expected.get("defaults", {}).items():
        if key in GREEDY_SETTINGS and _json(getattr(generation, key, None)) != wanted:
            report.add("generation_config", key, _json(getattr(generation, key, None)), wanted)
    return generation


def check_weights(report: Report, model_dir: Path, manifest: dict) -> None:
    expected = manifest["weights"]
    files = sorted(path.name for path in model_dir.glob("*.safetensors"))
    if files != expected.get("files"):
        report.add("weights", "files", files, expected.get("files"))
    dtypes = sorted(
        {SAFETENSORS_DTYPES.get(dtype, dtype) for name in files for dtype in _tensor_dtypes(model_dir / name)}
    )
    if dtypes != [expected.get("dtype")]:
        report.add("weights", "dtype", dtypes, [expected.get("dtype")])


def _tensor_dtypes(path: Path) -> set[str]:
    """The dtypes in a safetensors file's header (8 bytes of length, then JSON), without loading tensors."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {entry["dtype"] for name, entry in header.items() if name != "__metadata__"}


def check_outputs(
    report: Report, model_dir: Path, tokenizer, engine: EngineTokenizer, generation, rows, settings: dict
) -> list[dict]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    dtype = getattr(torch, settings["dtype"])
    dtype_argument = "dtype" if major_version(transformers.__version__) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(model_dir, **{dtype_argument: dtype}).to(settings["device"])  # nosec B615 # the merged model folder the training job wrote
    model.eval()
    greedy = copy.deepcopy(generation) if generation is not None else GenerationConfig()
    greedy._from_model_config = False  # else transformers 4 may rebuild it from the model config
    stops = sorted({tokenizer.eos_token_id, *_as_list(greedy.eos_token_id)} - {None})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    greedy.update(
        do_sample=False, num_beams=1, max_new_tokens=settings["max_new_tokens"], pad_token_id=pad, eos_token_id=stops
    )
    # The model's own config, not a generate() argument: transformers 4.5x replaces a passed config's
    # default-valued fields (do_sample=False among them) with the model's values.
    model.generation_config = greedy
    results = []
    for row in rows:
        ids = engine.encode(row["prompt"])
        plain = list(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"])
        if ids != plain:
            report.add(
                "outputs",
                "prompt_ids",
                ids,
                plain,
                row=row["id"],
                message=f"{engine.engine} tokenizes the evaluated prompt differently from the evaluation"
                + _added_tokens_message(tokenizer, ids, plain),
            )
        inputs = torch.tensor([ids], device=settings["device"])
        with torch.inference_mode():
            generated = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs))
        text = tokenizer.decode(generated[0, len(ids) :], skip_special_tokens=True)
        if text != row["output"]:
            report.add(
                "outputs",
                "output",
                text,
                row["output"],
                row=row["id"],
                message=f"greedy output differs from character {_first_difference(text, row['output'])}",
            )
        results.append({"id": row["id"], "prompt_tokens": len(ids), "matches": text == row["output"]})
    return results


def _added_tokens_message(tokenizer, found: list[int], expected: list[int]) -> str:
    """Name the special tokens the engine put around the expected ids, and a doubled BOS."""
    if len(found) <= len(expected):
        return ""
    for start in range(len(found) - len(expected) + 1):
        if found[start : start + len(expected)] == expected:
            added = found[:start] + found[start + len(expected) :]
            names = tokenizer.convert_ids_to_tokens(added)
            text = f": it adds {names}"
            bos = tokenizer.bos_token_id
            if bos is not None and start and found[start - 1] == bos and expected and expected[0] == bos:
                text += f"; the prompt already starts with BOS {tokenizer.bos_token!r}, so the model sees it twice"
            return text
    return ""


def _first_difference(a: str, b: str) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


def generation_notes(engine: str, manifest: dict) -> list[str]:
    defaults = {
        key: value
        for key, value in manifest["generation"].get("defaults", {}).items()
        if key in GREEDY_SETTINGS and value not in (None, 1.0, 0, [])
    }
    if not defaults:
        return []
    if engine == "tgi":
        return [
            f"generation_config.json sets {defaults}; the evaluation applied them, TGI does not read them: "
            "send them with each request to get the evaluated outputs"
        ]
    return [
        f"generation_config.json sets {defaults}; the evaluation applied them, and so does vLLM by default "
        "(--generation-config auto) unless a request overrides them"
    ]


# ---------------------------------------------------------------- main


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Device and compute dtype: evaluate.py's choice for this machine unless --dtype says otherwise."""
    import torch

    cuda = torch.cuda.is_available()
    dtype = args.dtype
    if dtype == "auto":
        dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if cuda else "float32"
    return {"device": "cuda" if cuda else "cpu", "dtype": dtype, "max_new_tokens": args.max_new_tokens}


def check(args: argparse.Namespace) -> dict[str, Any]:
    """Run every check and return the report (passed is True only when nothing differs)."""
    model_dir = args.model_dir
    if not (model_dir / "config.json").is_file():
        raise InputError(f"--model-dir {model_dir} has no config.json")
    manifest = read_manifest(args.expected_config or model_dir / MANIFEST_NAME)
    rows, skipped = read_rows(args.predictions, args.samples)
    settings = resolve_settings(args)
    report = Report()
    report.run("config", check_config, model_dir, manifest)
    report.run("weights", check_weights, model_dir, manifest)
    generation = report.run("generation_config", check_generation_config, model_dir, manifest)
    tokenizer = report.run("tokenizer_load", load_tokenizer, model_dir)
    results: list[dict] = []
    if tokenizer is not None:
        engine = EngineTokenizer(args.engine, tokenizer)
        report.run("tokenizer", check_tokenizer, model_dir, tokenizer, engine, manifest)
        if rows:
            results = (
                report.run("outputs", check_outputs, model_dir, tokenizer, engine, generation, rows, settings) or []
            )
    if skipped:
        report.notes.append(f"{skipped} prediction rows without a prompt or fine_tuned.output were skipped")
    report.notes += generation_notes(args.engine, manifest)
    return {
        "passed": not report.mismatches,
        "engine": args.engine,
        "model_dir": str(model_dir),
        "software": _software(),
        "settings": settings,
        "checks": report.checks,
        "rows": {
            "compared": len(results),
            "matching": sum(result["matches"] for result in results),
            "results": results,
        },
        "mismatches": report.mismatches,
        "notes": report.notes,
    }


def _software() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("transformers", "tokenizers", "torch", "safetensors"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    return versions


def _sha256(template: Any) -> str | None:
    import hashlib

    if not template:
        return None
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return sorted(set(value if isinstance(value, list) else [value]))


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="the merged model folder")
    parser.add_argument("--predictions", type=Path, required=True, help="evaluate.py's predictions.jsonl")
    parser.add_argument(
        "--expected-config", type=Path, default=None, help=f"the trained values (default: MODEL_DIR/{MANIFEST_NAME})"
    )
    parser.add_argument("--engine", choices=ENGINES, required=True, help="how requests are tokenized")
    parser.add_argument(
        "--samples", type=whole_number(0), default=8, help="prediction rows whose greedy output is compared (0: none)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=whole_number(1),
        default=128,
        help="the evaluation's max_new_tokens (metrics.json settings)",
    )
    parser.add_argument(
        "--dtype", choices=DTYPES, default="auto", help="compute dtype; auto: what evaluate.py uses on this machine"
    )
    parser.add_argument("--output", type=Path, default=None, help="where to write the report (JSON)")
    parser.add_argument(
        "--failure-file",
        type=Path,
        default=None,
        help="where to write the first mismatches when the check fails (a job's failure reason)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = check(args)
    except InputError as error:
        print(f"check_serving: error: {error}", file=sys.stderr)
        return 2
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    software = report["software"]
    print(
        f"check_serving: engine={args.engine} transformers={software['transformers']} "
        f"rows={report['rows']['matching']}/{report['rows']['compared']} matching: "
        f"{'passed' if report['passed'] else 'FAILED'}"
    )
    for mismatch in report["mismatches"]:
        where = f" row {mismatch['row']}" if "row" in mismatch else ""
        print(
            f"  {mismatch['check']}{where} {mismatch['field']}: found {_short(mismatch['found'])}, "
            f"expected {_short(mismatch['expected'])}" + (f" ({mismatch['message']})" if "message" in mismatch else "")
        )
    for note in report["notes"]:
        print(f"  note: {note}")
    if not report["passed"] and args.failure_file is not None:
        _write_failure(args.failure_file, report)
    return 0 if report["passed"] else 1


def _write_failure(path: Path, report: dict) -> None:
    """The first mismatches, for the job's FailureReason (SageMaker shows 1024 characters)."""
    lines = [f"the serving image's software reads the model differently ({len(report['mismatches'])} mismatch(es))"]
    for mismatch in report["mismatches"][:4]:
        where = f" row {mismatch['row']}" if "row" in mismatch else ""
        lines.append(
            f"{mismatch['check']}{where} {mismatch['field']}: found {_short(mismatch['found'], 80)}, "
            f"expected {_short(mismatch['expected'], 80)}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines)[:1024], encoding="utf-8")
    except OSError:
        pass


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


if __name__ == "__main__":
    sys.exit(main())
