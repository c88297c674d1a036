"""The Hugging Face vLLM container's request contract, as its `/invocations` answers it.

vLLM's server routes `/invocations` by the request's shape: `{"messages": [...]}` is a chat
completion (the model's chat template renders the conversation, with no special tokens added on
top), `{"prompt": "..."}` a text completion (the tokenizer's special tokens are added unless
`add_special_tokens` is false). It checks the prompt plus `max_tokens` against
`SM_VLLM_MAX_MODEL_LEN`, answers for the model named `SM_VLLM_SERVED_MODEL_NAME`, generates greedily
at temperature 0, and answers errors as OpenAI-style error objects.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from local_mode.engines.model import Sampling, ServedModel

CHAT_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "n",
    "stream",
    "repetition_penalty",
    "add_generation_prompt",
    "chat_template_kwargs",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "user",
}
COMPLETION_FIELDS = {
    "model",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "n",
    "stream",
    "repetition_penalty",
    "add_special_tokens",
    "echo",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "user",
}


class BadRequest(ValueError):
    """Answered with HTTP 400 and an OpenAI-style error object."""


def _error(message: str, status: int = 400, kind: str = "BadRequestError") -> tuple[int, dict]:
    return status, {"object": "error", "message": message, "type": kind, "param": None, "code": status}


class VllmEngine:
    name = "vllm"

    def __init__(self, model: ServedModel, environ: dict[str, str]):
        self.model = model
        self.max_model_len = int(
            environ.get("SM_VLLM_MAX_MODEL_LEN") or getattr(model.model.config, "max_position_embeddings", 2048)
        )
        self.served_name = environ.get("SM_VLLM_SERVED_MODEL_NAME") or environ.get("SM_VLLM_MODEL") or "model"

    def invoke(self, request: Any) -> tuple[int, Any]:
        if not isinstance(request, dict):
            return _error("Invalid request: expected a JSON object with `messages` (chat) or `prompt` (completion)")
        if request.get("model") not in (None, self.served_name):
            return _error(f"The model `{request['model']}` does not exist.", 404, "NotFoundError")
        try:
            if "messages" in request:
                return 200, self.chat(request)
            if "prompt" in request:
                return 200, self.complete(request)
        except BadRequest as error:
            return _error(str(error))
        return _error("Invalid request: `/invocations` takes a chat completion (`messages`) or a completion (`prompt`)")

    def chat(self, request: dict) -> dict:
        self._check_fields(request, CHAT_FIELDS)
        messages = request["messages"]
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) and isinstance(m.get("role"), str)
            for m in messages
        ):
            raise BadRequest('`messages` must be a list of {"role", "content"} objects with string content')
        text = self.model.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=request.get("add_generation_prompt", True)
        )
        input_ids = self.model.encode(text, add_special_tokens=False)
        limit = request.get("max_completion_tokens", request.get("max_tokens"))
        new_ids, finish = self._generate(input_ids, limit, request, "messages")
        content = self.model.decode(new_ids)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": _usage(len(input_ids), len(new_ids)),
        }

    def complete(self, request: dict) -> dict:
        self._check_fields(request, COMPLETION_FIELDS)
        prompt = request["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("`prompt` must be a non-empty string")
        input_ids = self.model.encode(prompt, add_special_tokens=request.get("add_special_tokens", True))
        new_ids, finish = self._generate(input_ids, request.get("max_tokens", 16), request, "prompt")
        text = self.model.decode(new_ids)
        if request.get("echo"):
            text = prompt + text
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.served_name,
            "choices": [{"index": 0, "text": text, "finish_reason": finish}],
            "usage": _usage(len(input_ids), len(new_ids)),
        }

    def _check_fields(self, request: dict, allowed: set[str]) -> None:
        unknown = sorted(set(request) - allowed)
        if unknown:
            raise BadRequest(f"Unrecognized request argument(s): {', '.join(unknown)}")
        if request.get("stream"):
            raise BadRequest("streaming is not served by the local endpoint; send stream false")
        if request.get("n", 1) != 1:
            raise BadRequest("n: only one choice per request is served by the local endpoint")

    def _generate(self, input_ids: list[int], max_tokens: Any, request: dict, where: str) -> tuple[list[int], str]:
        prompt_tokens = len(input_ids)
        if max_tokens is None:
            max_tokens = self.max_model_len - prompt_tokens
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest(f"max_tokens must be at least 1, got {max_tokens!r}")
        if prompt_tokens + max_tokens > self.max_model_len:
            raise BadRequest(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the {where}, {max_tokens} in the "
                "completion). Please reduce the length of the messages or completion."
            )
        temperature = request.get("temperature", 1.0)
        sampling = Sampling(
            temperature=temperature,
            top_p=request.get("top_p"),
            top_k=request.get("top_k"),
            seed=request.get("seed"),
            repetition_penalty=request.get("repetition_penalty"),
        )
        new_ids, stopped = self.model.generate(input_ids, max_tokens, sampling)
        return new_ids, "stop" if stopped else "length"


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
