"""A local stand-in for the Hugging Face LLM (TGI) container behind a SageMaker endpoint.

It speaks the SageMaker inference container contract: `GET /ping` answers 200 once the model is
loaded, `POST /invocations` takes TGI's request (`{"inputs": "...", "parameters": {...}}`) and answers
TGI's response (`[{"generated_text": "..."}]`). Generation uses transformers with the model's own
generation config, greedy unless `do_sample` is set, and checks the token limits TGI enforces
(`MAX_INPUT_TOKENS`, `MAX_TOTAL_TOKENS` from the environment). Run it as
`python -m local_mode.endpoint_server --model-dir DIR --port N`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MAX_NEW_TOKENS = 100
ALLOWED_PARAMETERS = {"max_new_tokens", "do_sample", "return_full_text", "temperature", "top_p", "top_k",
                      "repetition_penalty", "stop", "seed", "details", "decoder_input_details", "truncate",
                      "watermark", "typical_p", "best_of", "frequency_penalty", "top_n_tokens"}


class RequestError(ValueError):
    """A request TGI would refuse: answered with HTTP 422 and TGI's error body."""


@dataclass
class Limits:
    max_input_tokens: int | None
    max_total_tokens: int | None

    @classmethod
    def from_environment(cls, environ: dict[str, str]) -> "Limits":
        def number(*names: str) -> int | None:
            for name in names:
                if environ.get(name):
                    return int(environ[name])
            return None
        return cls(number("MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH"), number("MAX_TOTAL_TOKENS"))


class Generator:
    """Loads the served model once and generates for one request at a time."""

    def __init__(self, model_dir: str, limits: Limits):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model.eval()
        self.limits = limits
        self.lock = threading.Lock()

    def generate(self, request: Any) -> list[dict]:
        inputs, parameters = parse_request(request)
        encoded = self.tokenizer(inputs, return_tensors="pt")
        input_tokens = int(encoded["input_ids"].shape[1])
        max_new_tokens = int(parameters.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
        check_limits(input_tokens, max_new_tokens, self.limits)
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": bool(parameters.get("do_sample"))}
        if options["do_sample"]:
            for name in ("temperature", "top_p", "top_k", "typical_p"):
                if parameters.get(name) is not None:
                    options[name] = parameters[name]
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        if parameters.get("repetition_penalty") is not None:
            options["repetition_penalty"] = float(parameters["repetition_penalty"])
        if self.tokenizer.pad_token_id is None:
            options["pad_token_id"] = self.tokenizer.eos_token_id
        with self.lock, self.torch.no_grad():
            if parameters.get("seed") is not None:
                self.torch.manual_seed(int(parameters["seed"]))
            output = self.model.generate(**encoded, **options)
        text = self.tokenizer.decode(output[0][input_tokens:], skip_special_tokens=True)
        text = cut_at_stop(text, parameters.get("stop") or [])
        if parameters.get("return_full_text"):
            text = inputs + text
        return [{"generated_text": text}]


def parse_request(request: Any) -> tuple[str, dict]:
    if not isinstance(request, dict) or "inputs" not in request:
        raise RequestError("Failed to deserialize the JSON body into the target type: missing field `inputs`")
    inputs = request["inputs"]
    if not isinstance(inputs, str) or not inputs:
        raise RequestError(f"Input validation error: `inputs` must be a non-empty string, got {inputs!r:.80}")
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError(f"Failed to deserialize the JSON body: `parameters` must be an object, got {parameters!r:.80}")
    unknown = sorted(set(parameters) - ALLOWED_PARAMETERS)
    if unknown:
        raise RequestError(f"Failed to deserialize the JSON body: unknown parameter(s) {unknown}; "
                           f"allowed: {sorted(ALLOWED_PARAMETERS)}")
    max_new_tokens = parameters.get("max_new_tokens")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens <= 0):
        raise RequestError(f"Input validation error: `max_new_tokens` must be strictly positive, got {max_new_tokens!r}")
    stop = parameters.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise RequestError(f"Input validation error: `stop` must be a list of strings, got {stop!r:.80}")
    return inputs, parameters


def check_limits(input_tokens: int, max_new_tokens: int, limits: Limits) -> None:
    if limits.max_input_tokens is not None and input_tokens > limits.max_input_tokens:
        raise RequestError(f"Input validation error: `inputs` must have less than {limits.max_input_tokens} tokens. "
                           f"Given: {input_tokens}")
    if limits.max_total_tokens is not None and input_tokens + max_new_tokens > limits.max_total_tokens:
        raise RequestError(f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                           f"{limits.max_total_tokens}. Given: {input_tokens} `inputs` tokens and "
                           f"{max_new_tokens} `max_new_tokens`")


def cut_at_stop(text: str, stop: list[str]) -> str:
    """TGI ends generation at the first stop sequence and keeps the sequence in the text."""
    cut = len(text)
    for sequence in stop:
        index = text.find(sequence)
        if sequence and index != -1:
            cut = min(cut, index + len(sequence))
    return text[:cut]


def make_handler(generator: Generator | None, healthy: bool):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/ping":
                self._answer(200 if healthy else 503, {} if healthy else {"error": "model is not ready"})
            else:
                self._answer(404, {"error": f"no route {self.path}; the container serves GET /ping and "
                                            "POST /invocations"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?")[0] != "/invocations":
                self._answer(404, {"error": f"no route {self.path}"})
                return
            if not healthy or generator is None:
                self._answer(503, {"error": "model is not ready", "error_type": "overloaded"})
                return
            try:
                request = json.loads(raw or b"null")
                self._answer(200, generator.generate(request))
            except json.JSONDecodeError as error:
                self._answer(422, {"error": f"Failed to parse the request body as JSON: {error}",
                                   "error_type": "validation"})
            except RequestError as error:
                self._answer(422, {"error": str(error), "error_type": "validation"})
            except Exception as error:  # generation failed: TGI answers 424-like errors as 500s
                self._answer(500, {"error": f"{type(error).__name__}: {error}", "error_type": "generation"})

    return Handler


def exit_with_parent() -> None:
    """Stop serving when the process that started this server is gone (it cannot clean up then)."""
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="the downloaded model data (stands in for /opt/ml/model)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--never-healthy", action="store_true",
                        help="answer /ping with 503 forever (simulates a container that never becomes healthy)")
    args = parser.parse_args(argv)
    exit_with_parent()
    generator = None
    if not args.never_healthy:
        generator = Generator(args.model_dir, Limits.from_environment(dict(os.environ)))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(generator, healthy=not args.never_healthy))
    print(f"serving {args.model_dir} on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
