"""Tiny offline models shaped like the ones the serving checks must get right.

- `build_qwen2_model`: a Qwen2 with a RoPE base of 1e6 (transformers 4 reads 10,000 unless config.json
  says otherwise), a ChatML template, bf16 weights and a repetition penalty in generation_config, as
  Qwen2.5-Coder-7B-Instruct has them.
- `build_bos_llama_model`: a Llama whose tokenizer adds BOS by itself and whose chat template writes
  it as well: an engine that adds special tokens would feed BOS twice. Its generation config is
  derived from the model config (`_from_model_config`), as SmolLM2's is.
"""

from __future__ import annotations

from pathlib import Path

from local_mode.models import build_tiny_tokenizer

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer(specials: list[str]):
    """The tiny trained BPE with `specials` added, wrapped as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    backend = build_tiny_tokenizer().backend_tokenizer
    backend.add_special_tokens(specials)
    return backend, lambda **tokens: PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=2048, **tokens)


def build_qwen2_model(out_dir: str | Path, rope_theta: float = 1e6) -> Path:
    import torch
    from chat_format import ensure_chat_template
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    _, make = _tokenizer(["<|im_start|>", "<|im_end|>"])
    tokenizer = make()
    tokenizer.eos_token, tokenizer.pad_token = "<|im_end|>", "<|pad|>"
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer = ensure_chat_template(tokenizer)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=rope_theta,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_sliding_window=False,
        sliding_window=4096,
        max_window_layers=2,
    )
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_bos_llama_model(out_dir: str | Path) -> Path:
    import torch
    from chat_format import ensure_chat_template
    from tokenizers import processors
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    backend, make = _tokenizer(["<s>"])
    bos_id = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    tokenizer = ensure_chat_template(make(bos_token="<s>", eos_token="<|endoftext|>", pad_token="<|pad|>"))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=bos_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(2)
    model = LlamaForCausalLM(config).to(torch.float32)
    # Derived from the model config, as SmolLM2's is: transformers 4 treats such a config specially.
    model.generation_config = GenerationConfig.from_model_config(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
