"""The Hugging Face LLM (TGI) container's request contract, as `/invocations` answers it.

`{"inputs": "...", "parameters": {...}}` in, `[{"generated_text": "..."}]` out. TGI tokenizes
`inputs` with the tokenizer's special tokens (a BOS-adding tokenizer gets its BOS), checks
`MAX_INPUT_TOKENS` and `MAX_TOTAL_TOKENS`, generates greedily unless `do_sample` is set, and keeps
a stop sequence in the text it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_mode.engines.model import Sampling, ServedModel

DEFAULT_MAX_NEW_TOKENS = 100
ALLOWED_PARAMETERS = {
    "max_new_tokens",
    "do_sample",
    "return_full_text",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "stop",
    "seed",
    "details",
    "decoder_input_details",
    "truncate",
    "watermark",
    "typical_p",
    "best_of",
    "frequency_penalty",
    "top_n_tokens",
}


class RequestError(ValueError):
    """A request TGI would refuse: answered with HTTP 422 and TGI's error body."""


@dataclass
class Limits:
    max_input_tokens: int | None
    max_total_tokens: int | None

    @classmethod
    def from_environment(cls, environ: dict[str, str]) -> Limits:
        def number(*names: str) -> int | None:
            for name in names:
                if environ.get(name):
                    return int(environ[name])
            return None

        return cls(number("MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH"), number("MAX_TOTAL_TOKENS"))


def parse_request(request: Any) -> tuple[str, dict]:
    if not isinstance(request, dict) or "inputs" not in request:
        raise RequestError("Failed to deserialize the JSON body into the target type: missing field `inputs`")
    inputs = request["inputs"]
    if not isinstance(inputs, str) or not inputs:
        raise RequestError(f"Input validation error: `inputs` must be a non-empty string, got {inputs!r:.80}")
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError(
            f"Failed to deserialize the JSON body: `parameters` must be an object, got {parameters!r:.80}"
        )
    unknown = sorted(set(parameters) - ALLOWED_PARAMETERS)
    if unknown:
        raise RequestError(
            f"Failed to deserialize the JSON body: unknown parameter(s) {unknown}; "
            f"allowed: {sorted(ALLOWED_PARAMETERS)}"
        )
    max_new_tokens = parameters.get("max_new_tokens")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens <= 0):
        raise RequestError(
            f"Input validation error: `max_new_tokens` must be strictly positive, got {max_new_tokens!r}"
        )
    stop = parameters.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise RequestError(f"Input validation error: `stop` must be a list of strings, got {stop!r:.80}")
    return inputs, parameters


def check_limits(input_tokens: int, max_new_tokens: int, limits: Limits) -> None:
    if limits.max_input_tokens is not None and input_tokens > limits.max_input_tokens:
        raise RequestError(
            f"Input validation error: `inputs` must have less than {limits.max_input_tokens} tokens. "
            f"Given: {input_tokens}"
        )
    if limits.max_total_tokens is not None and input_tokens + max_new_tokens > limits.max_total_tokens:
        raise RequestError(
            f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
            f"{limits.max_total_tokens}. Given: {input_tokens} `inputs` tokens and "
            f"{max_new_tokens} `max_new_tokens`"
        )


def cut_at_stop(text: str, stop: list[str]) -> str:
    """TGI ends generation at the first stop sequence and keeps the sequence in the text."""
    cut = len(text)
    for sequence in stop:
        index = text.find(sequence)
        if sequence and index != -1:
            cut = min(cut, index + len(sequence))
    return text[:cut]


class TgiEngine:
    name = "tgi"

    def __init__(self, model: ServedModel, environ: dict[str, str]):
        self.model = model
        self.limits = Limits.from_environment(environ)

    def invoke(self, request: Any) -> tuple[int, Any]:
        try:
            return 200, self.generate(request)
        except RequestError as error:
            return 422, {"error": str(error), "error_type": "validation"}

    def generate(self, request: Any) -> list[dict]:
        inputs, parameters = parse_request(request)
        input_ids = self.model.encode(inputs, add_special_tokens=True)
        max_new_tokens = int(parameters.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
        check_limits(len(input_ids), max_new_tokens, self.limits)
        sampling = Sampling(repetition_penalty=parameters.get("repetition_penalty"), seed=parameters.get("seed"))
        if parameters.get("do_sample"):
            sampling = Sampling(
                temperature=parameters.get("temperature") or 1.0,
                top_p=parameters.get("top_p"),
                top_k=parameters.get("top_k"),
                seed=parameters.get("seed"),
                repetition_penalty=parameters.get("repetition_penalty"),
            )
        new_ids, _ = self.model.generate(input_ids, max_new_tokens, sampling)
        text = cut_at_stop(self.model.decode(new_ids), parameters.get("stop") or [])
        if parameters.get("return_full_text"):
            text = inputs + text
        return [{"generated_text": text}]
