"""The served model: loaded once, one generation at a time, greedy unless sampling is asked for."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sampling:
    """Greedy when `temperature` is None or 0; otherwise sampled with these settings."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    repetition_penalty: float | None = None

    @property
    def greedy(self) -> bool:
        return not self.temperature


class ServedModel:
    def __init__(self, model_dir: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)  # nosec B615 # the local model folder of the endpoint
        # fp32 on CPU, as the evaluation job computes its outputs there.
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)  # nosec B615 # the local model folder of the endpoint
        self.model.eval()
        self.lock = threading.Lock()

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def generate(self, input_ids: list[int], max_new_tokens: int, sampling: Sampling) -> tuple[list[int], bool]:
        """(new token ids, whether generation stopped at an end-of-sequence token)."""
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": not sampling.greedy}
        if sampling.greedy:
            options.update(temperature=None, top_p=None, top_k=None)
        else:
            for name in ("temperature", "top_p", "top_k"):
                if getattr(sampling, name) is not None:
                    options[name] = getattr(sampling, name)
        if sampling.repetition_penalty is not None:
            options["repetition_penalty"] = float(sampling.repetition_penalty)
        if self.tokenizer.pad_token_id is None:
            options["pad_token_id"] = self.tokenizer.eos_token_id
        ids = self.torch.tensor([input_ids])
        with self.lock, self.torch.no_grad():
            if sampling.seed is not None:
                self.torch.manual_seed(int(sampling.seed))
            output = self.model.generate(input_ids=ids, attention_mask=self.torch.ones_like(ids), **options)
        new = output[0][len(input_ids) :].tolist()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        return new, bool(new) and new[-1] in eos_ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)
