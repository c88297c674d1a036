"""A tiny model vLLM's CPU build can run: the test tokenizer, with 64-wide attention heads."""

from __future__ import annotations

import shutil
from pathlib import Path


def vllm_tiny_model(tiny_model_dir: Path, folder: Path) -> Path:
    """The tiny model with 64-wide attention heads (vLLM's CPU attention has no 16-wide kernel) and
    larger random weights, so greedy choices are not near-ties that rounding could flip."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shutil.copytree(tiny_model_dir, folder)
    config = AutoConfig.from_pretrained(folder)
    config.update(
        {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "initializer_range": 0.2,
        }
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).to(torch.float32).save_pretrained(folder)
    return folder
