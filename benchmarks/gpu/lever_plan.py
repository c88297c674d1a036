"""What benchmarks/gpu/throughput_llama8b.py measures, and the goals its figures are held to.

Kept apart from the script (which needs torch and sets up import paths) so that the report that
renders docs/benchmarks.md can list the plan, measured or not, without importing either.
"""

from __future__ import annotations

RESULT_NAME = "gpu_throughput"
TRL_DEFAULTS = {
    "batching": "padding",
    "gradient_checkpointing": "full",
    "attn_implementation": "sdpa",
    "use_liger_kernel": "false",
    "tokens_per_micro_batch": "none",
    "torch_compile": "false",
    "optim": "adamw_torch_fused",
    "lora_dtype": "auto",
}
BEFORE_LEVERS = {**TRL_DEFAULTS, "batching": "padding_free"}
# name -> (what it is, train.py hyperparameters on top of BEFORE_LEVERS); `auto` is every lever on auto.
# "2x" stands for twice max_length; "flip" for the adapter dtype auto does not pick.
LEVERS: dict[str, tuple[str, dict[str, str]]] = {
    "trl_defaults": ("trl's defaults: padded batches, full activation checkpointing, sdpa", TRL_DEFAULTS),
    "before_levers": ("train.py before the levers: padding-free batches, full checkpointing, sdpa", {}),
    "flash_attention_2": ("flash-attention 2 (varlen) instead of sdpa", {"attn_implementation": "flash_attention_2"}),
    "checkpointing_none": ("no activation checkpointing", {"gradient_checkpointing": "none"}),
    "checkpointing_selective": ("every second layer checkpointed", {"gradient_checkpointing": "selective"}),
    "token_budget": ("micro-batches packed to 2 x max_length tokens", {"tokens_per_micro_batch": "2x"}),
    "optim_plain": ("plain (unfused) AdamW", {"optim": "adamw_torch"}),
    "lora_dtype_flipped": ("adapters in the other dtype (fp32 on QLoRA, bf16 on LoRA)", {"lora_dtype": "flip"}),
    "liger": ("Liger kernels", {"use_liger_kernel": "true"}),
    "auto": ("every lever on auto, as a job on this GPU resolves them", {}),
    "torch_compile": ("torch.compile", {"torch_compile": "true"}),
}
PRECISIONS = ("qlora", "bf16")
GOALS = {"mfu": {"bf16": 0.40, "qlora": 0.30}, "ratio_to_trl_defaults": 2.5, "evaluation_ratio": 10.0}
GOAL_TEXT = (
    "auto: bf16 LoRA >= 40% MFU, QLoRA >= 30% MFU, >= 2.5x trl defaults' real tokens/s, peak memory no "
    "higher than train.py before the levers; evaluation batched >= 10x one prompt at a time"
)
