"""Throughput levers: what `auto` picks on each kind of machine (faked), and training with the CPU-runnable ones."""

import json
import math

import pytest
import throughput
from hyperparameters import HyperparameterError, build_hyperparameters
from throughput import LeverError, Machine, ModelDims, Request, micro_batch_plan, resolve_levers

from .conftest import run_training

GIB = 2**30
LLAMA_8B = ModelDims(hidden_size=4096, intermediate_size=14336, num_layers=32, vocab_size=128256)
CPU = Machine(device="cpu", memory_bytes=16 * GIB)
H100 = Machine(device="cuda", cuda_capability=(9, 0), bf16=True, memory_bytes=80 * GIB)
H100_FLASH = Machine(
    device="cuda",
    cuda_capability=(9, 0),
    bf16=True,
    memory_bytes=80 * GIB,
    packages=frozenset({"flash_attn", "liger_kernel", "kernels"}),
)
T4_FLASH = Machine(
    device="cuda", cuda_capability=(7, 5), bf16=False, memory_bytes=16 * GIB, packages=frozenset({"flash_attn"})
)


def _levers(machine, dims=None, model_bytes=0, mean=None, **asked):
    return resolve_levers(Request(**asked), machine, dims, model_bytes, mean)


@pytest.mark.parametrize(
    "machine, padding_free, expected",
    [
        (CPU, True, "sdpa"),
        (H100, True, "sdpa"),  # flash-attn not installed
        (H100_FLASH, True, "flash_attention_2"),
        (H100_FLASH, False, "sdpa"),  # padded batches
        (T4_FLASH, True, "sdpa"),  # compute capability below 8.0
    ],
)
def test_auto_attention_takes_flash_only_where_it_runs_and_pays(machine, padding_free, expected):
    assert _levers(machine, padding_free=padding_free).attn_implementation.value == expected


@pytest.mark.parametrize(
    "machine, asked, message",
    [
        (CPU, "flash_attention_2", "attn_implementation='flash_attention_2': needs a CUDA device"),
        (H100, "flash_attention_2", "needs the flash-attn package; allowed here: auto, sdpa, eager"),
        (T4_FLASH, "flash_attention_2", "needs compute capability 8.0 or more"),
        (H100, "kernels-community/flash-attn", "attn_implementation='kernels-community/flash-attn': needs the kernels"),
    ],
)
def test_attention_that_cannot_run_here_names_the_field_and_what_is_allowed(machine, asked, message):
    with pytest.raises(LeverError, match=message):
        _levers(machine, attn_implementation=asked, padding_free=True)


def test_explicit_attention_choices_are_kept_where_they_can_run():
    assert _levers(CPU, attn_implementation="eager").attn_implementation.value == "eager"
    assert (
        _levers(H100_FLASH, attn_implementation="kernels-community/flash-attn").attn_implementation.value
        == "kernels-community/flash-attn"
    )


def test_liger_compile_optimizer_and_adapter_dtype_follow_the_device():
    on_cpu, on_gpu, with_packages = _levers(CPU), _levers(H100), _levers(H100_FLASH)
    assert (on_cpu.use_liger_kernel.value, on_gpu.use_liger_kernel.value, with_packages.use_liger_kernel.value) == (
        False,
        False,
        True,
    )
    assert "not installed" in on_gpu.use_liger_kernel.reason
    assert not on_cpu.torch_compile.value and not with_packages.torch_compile.value
    assert _levers(H100, torch_compile="true").torch_compile.value is True
    assert (on_cpu.optim.value, on_gpu.optim.value) == ("adamw_torch", "adamw_torch_fused")
    assert _levers(H100, optim="paged_adamw_8bit").optim.value == "paged_adamw_8bit"
    assert _levers(CPU, quantize_4bit=True).lora_dtype.value == "bf16"  # what trl does for a 4-bit base
    assert on_gpu.lora_dtype.value == "fp32"
    assert _levers(H100, lora_dtype="bf16").lora_dtype.value == "bf16"


@pytest.mark.parametrize(
    "machine, asked, message",
    [
        (CPU, {"use_liger_kernel": "true"}, "use_liger_kernel='true': needs a CUDA device"),
        (H100, {"use_liger_kernel": "true"}, "needs the liger-kernel package; allowed here: auto, false"),
        (CPU, {"optim": "paged_adamw_8bit"}, "optim='paged_adamw_8bit': bitsandbytes optimizers need a CUDA device"),
        (T4_FLASH, {"lora_dtype": "bf16"}, "lora_dtype='bf16': this GPU has no bf16"),
        (
            CPU,
            {"gradient_checkpointing": "selective", "fsdp": True},
            "gradient_checkpointing='selective': not available with fsdp",
        ),
        (
            CPU,
            {"tokens_per_micro_batch": "1024", "max_length": 2048},
            "tokens_per_micro_batch=1024: below max_length=2048",
        ),
        (
            CPU,
            {"tokens_per_micro_batch": "4096", "padding_free": False},
            "tokens_per_micro_batch=4096: needs padding-free",
        ),
    ],
)
def test_levers_this_machine_cannot_give_fail_with_field_value_and_reason(machine, asked, message):
    with pytest.raises(LeverError, match=message):
        _levers(machine, **{"padding_free": True, **asked})


@pytest.mark.parametrize("memory_gib, expected", [(141, "none"), (80, "selective"), (24, "full")])
def test_auto_checkpointing_takes_the_least_recompute_whose_activations_fit(memory_gib, expected):
    machine = Machine(device="cuda", cuda_capability=(9, 0), bf16=True, memory_bytes=memory_gib * GIB)
    levers = _levers(machine, dims=LLAMA_8B, model_bytes=6 * GIB, per_device_train_batch_size=4, max_length=2048)
    assert levers.gradient_checkpointing.value == expected
    assert "8192-token micro-batch" in levers.gradient_checkpointing.reason  # 4 rows of up to 2048 tokens


def test_auto_checkpointing_is_full_without_a_memory_figure_or_under_fsdp():
    assert _levers(Machine(device="cpu"), dims=LLAMA_8B).gradient_checkpointing.value == "full"
    assert _levers(H100, dims=LLAMA_8B, fsdp=True).gradient_checkpointing.value == "full"
    assert _levers(H100, gradient_checkpointing="none").gradient_checkpointing.value == "none"


def test_activation_estimate_shrinks_with_each_checkpointed_layer():
    none, selective, full = (
        throughput.activation_bytes(LLAMA_8B, 8192, kind) for kind in ("none", "selective", "full")
    )
    assert full < selective < none
    per_layer = 2 * 8192 * (16 * 4096 + 5 * 14336)
    assert none == 32 * per_layer
    assert full == 32 * 2 * 8192 * 4096 + per_layer  # every layer's input, and one layer recomputed
    assert throughput.selective_layers(5) == [0, 2, 4]


def test_token_budget_accumulation_keeps_the_tokens_of_an_optimizer_step():
    # 16 rows of 1024 tokens on average per step asked for: 16,384 tokens, two micro-batches of 8,192.
    plan = micro_batch_plan(8192, rows_per_micro_batch=2, accumulation=8, mean_row_tokens=1024)
    assert (plan.per_device_train_batch_size, plan.gradient_accumulation_steps, plan.tokens_per_step_asked) == (
        1,
        2,
        16384,
    )
    assert micro_batch_plan(8192, 1, 1, 500).gradient_accumulation_steps == 1  # never below one micro-batch
    assert micro_batch_plan(None, 4, 3, 500) == throughput.MicroBatchPlan(None, 4, 3)


def test_auto_token_budget_needs_flash_attention_and_fits_memory():
    asked = {
        "padding_free": True,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 16,
        "max_length": 2048,
    }
    without_flash = _levers(H100, dims=LLAMA_8B, mean=600, **asked)
    assert without_flash.plan.tokens_per_micro_batch is None and "varlen" in without_flash.micro_batches.reason
    flash = _levers(H100_FLASH, dims=LLAMA_8B, model_bytes=6 * GIB, mean=600, **asked)
    assert flash.plan.tokens_per_micro_batch == 9600 and flash.plan.gradient_accumulation_steps == 1
    small_gpu = Machine(
        device="cuda", cuda_capability=(8, 6), bf16=True, memory_bytes=24 * GIB, packages=frozenset({"flash_attn"})
    )
    split = _levers(
        small_gpu, dims=LLAMA_8B, model_bytes=6 * GIB, mean=600, **{**asked, "gradient_accumulation_steps": 64}
    )
    assert (split.plan.tokens_per_micro_batch, split.plan.gradient_accumulation_steps) == (19200, 2)
    assert throughput.activation_bytes(LLAMA_8B, split.plan.tokens_per_micro_batch, "full") <= throughput.memory_left(
        small_gpu, 6 * GIB
    )


def test_sft_config_values_of_the_levers():
    levers = _levers(CPU, gradient_checkpointing="selective", optim="adamw_torch_fused")
    kwargs = throughput.sft_config_kwargs(levers, fsdp=False)
    assert kwargs["activation_checkpointing"] is True
    assert kwargs["activation_checkpointing_kwargs"] == {"use_reentrant": False, "every_n_layers": 2}
    assert kwargs["optim"] == "adamw_torch_fused" and kwargs["use_liger_kernel"] is False
    assert throughput.sft_config_kwargs(levers, fsdp=True)["activation_checkpointing"] is False  # FSDP's own instead
    budget = _levers(CPU, tokens_per_micro_batch="4096", padding_free=True, mean=512)
    assert throughput.batching_overrides(budget.plan) == {
        "packing": True,
        "padding_free": True,
        "max_length": 4096,
        "train_sampling_strategy": "random",
    }


def test_selective_checkpoints_the_layers_transformers_every_n_layers_picks(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    kwargs = throughput.sft_config_kwargs(_levers(CPU, gradient_checkpointing="selective"), fsdp=False)
    every = kwargs["activation_checkpointing_kwargs"].pop("every_n_layers")
    model.activation_checkpointing_enable(
        activation_checkpointing_kwargs=kwargs["activation_checkpointing_kwargs"], every_n_layers=every
    )
    flags = [layer.gradient_checkpointing for layer in model.model.layers]
    assert [index for index, flag in enumerate(flags) if flag] == throughput.selective_layers(len(flags))
    assert not all(flags)


@pytest.mark.parametrize(
    "raw, field, expected",
    [
        ("8192", "tokens_per_micro_batch", "8192"),
        (8192.0, "tokens_per_micro_batch", "8192"),
        ("None", "tokens_per_micro_batch", "none"),
        ("yes", "use_liger_kernel", "true"),
        (False, "torch_compile", "false"),
        ("ADAMW_TORCH_FUSED", "optim", "adamw_torch_fused"),
        ("BF16", "lora_dtype", "bf16"),
        ("kernels-community/flash-attn", "attn_implementation", "kernels-community/flash-attn"),
    ],
)
def test_lever_hyperparameters_are_parsed(raw, field, expected):
    assert getattr(build_hyperparameters({field: raw}), field) == expected


@pytest.mark.parametrize(
    "values, expected",
    [
        (
            {"attn_implementation": "flash3"},
            "attn_implementation='flash3': out of range; allowed: one of auto, "
            "flash_attention_2, kernels-community/flash-attn, sdpa, eager",
        ),
        (
            {"tokens_per_micro_batch": "lots"},
            "tokens_per_micro_batch='lots': out of range; allowed: auto, none, or an integer from 16",
        ),
        ({"tokens_per_micro_batch": "8"}, "tokens_per_micro_batch='8': out of range"),
        ({"use_liger_kernel": "maybe"}, "use_liger_kernel='maybe': out of range; allowed: auto, true or false"),
        ({"optim": "sgd"}, "optim='sgd': out of range; allowed: one of auto, adamw_torch, adamw_torch_fused"),
        ({"lora_dtype": "fp16"}, "lora_dtype='fp16': out of range; allowed: one of auto, bf16, fp32"),
    ],
)
def test_bad_lever_values_name_field_value_and_what_is_allowed(values, expected):
    with pytest.raises(HyperparameterError) as error:
        build_hyperparameters(values)
    assert expected in str(error.value)


# ---------------------------------------------------------------- training on the tiny model


def _metrics(output):
    return json.loads((output / "training_metrics.json").read_text())


def test_tiny_run_records_its_levers(tiny_training_run):
    output, _ = tiny_training_run
    recorded = _metrics(output)["throughput"]
    assert recorded["attn_implementation"]["value"] == "sdpa"
    assert recorded["gradient_checkpointing"] == {"value": "none", "reason": "asked for"}
    assert recorded["optim"]["value"] == "adamw_torch" and recorded["optimizer"] == {"class": "AdamW", "fused": False}
    assert recorded["use_liger_kernel"]["value"] is False and recorded["torch_compile"]["value"] is False
    assert recorded["micro_batches"]["value"]["tokens_per_micro_batch"] is None


@pytest.mark.parametrize(
    "asked, attention, checkpointing, fused",
    [
        (
            {"gradient_checkpointing": "true", "attn_implementation": "eager", "optim": "adamw_torch"},
            "eager",
            "full",
            False,
        ),
        ({"gradient_checkpointing": "selective", "optim": "adamw_torch_fused"}, "sdpa", "selective", True),
    ],
)
def test_checkpointing_attention_and_optimizer_levers_train(
    tmp_path, tiny_model_dir, sql_train_dir, asked, attention, checkpointing, fused
):
    metrics = _metrics(
        run_training(tmp_path, tiny_model_dir, sql_train_dir, max_steps=2, logging_steps=1, save_steps=100, **asked)
    )
    recorded = metrics["throughput"]
    assert recorded["attn_implementation"]["value"] == attention
    assert recorded["gradient_checkpointing"]["value"] == checkpointing
    assert recorded["optimizer"]["fused"] is fused
    assert metrics["global_step"] == 2 and metrics["final_loss"] > 0


def test_token_budget_micro_batches_derive_the_accumulation_and_the_step_count(
    tmp_path, tiny_model_dir, sql_train_dir, tiny_tokenizer
):
    import training_data
    from trl.data_utils import pack_dataset

    metrics = _metrics(
        run_training(
            tmp_path,
            tiny_model_dir,
            sql_train_dir,
            batching="padding_free",
            tokens_per_micro_batch=256,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=2,
            max_steps=-1,
            epochs=1,
            logging_steps=1,
            save_steps=1000,
        )
    )
    plan = metrics["throughput"]["micro_batches"]["value"]
    rows = training_data.load_conversations(sql_train_dir / "train.jsonl")
    dataset, _ = training_data.tokenize_conversations(tiny_tokenizer, rows, 128)
    mean = sum(len(ids) for ids in dataset["input_ids"]) / len(dataset)
    asked_tokens = 4 * 2 * mean
    assert plan["tokens_per_micro_batch"] == 256 and plan["per_device_train_batch_size"] == 1
    assert plan["gradient_accumulation_steps"] == max(1, round(asked_tokens / 256))
    packed_rows = len(pack_dataset(dataset, 256, strategy="bfd"))
    assert metrics["global_step"] == math.ceil(packed_rows / plan["gradient_accumulation_steps"])
    assert metrics["padding_tokens"] == 0 and metrics["real_tokens"] == sum(len(ids) for ids in dataset["input_ids"])


def test_a_lever_this_machine_lacks_fails_the_job_before_loading(tmp_path, tiny_model_dir, sql_train_dir):
    with pytest.raises(SystemExit) as exit_info:
        run_training(tmp_path, tiny_model_dir, sql_train_dir, attn_implementation="flash_attention_2")
    assert exit_info.value.code == 2
    assert "attn_implementation='flash_attention_2': needs a CUDA device" in (tmp_path / "failure").read_text()


# ---------------------------------------------------------------- schema, parsing and docs agree


def _schema_hyperparameters():
    from .conftest import REPO_ROOT_FOR_TESTS

    schema = json.loads((REPO_ROOT_FOR_TESTS / "lambdas" / "common" / "execution_input.schema.json").read_text())
    return schema["properties"]["training"]["properties"]["hyperparameters"]["properties"]


def test_schema_defaults_and_lever_choices_are_what_train_py_accepts():
    properties = _schema_hyperparameters()
    # As the workflow passes them: every value a string, booleans lower-case.
    as_sent = {
        name: str(spec["default"]).lower() if isinstance(spec["default"], bool) else str(spec["default"])
        for name, spec in properties.items()
        if "default" in spec
    }
    parsed = build_hyperparameters(as_sent)
    assert parsed.gradient_checkpointing == "auto" and parsed.tokens_per_micro_batch == "auto"
    choices = {
        "attn_implementation": throughput.ATTENTION_CHOICES,
        "optim": throughput.OPTIM_CHOICES,
        "lora_dtype": throughput.LORA_DTYPE_CHOICES,
    }
    for name, allowed in choices.items():
        assert tuple(properties[name]["enum"]) == allowed, name
    for value in properties["gradient_checkpointing"]["enum"]:
        build_hyperparameters({"gradient_checkpointing": str(value).lower()})


def test_docs_table_lists_every_hyperparameter():
    from hyperparameters import Hyperparameters

    from .conftest import REPO_ROOT_FOR_TESTS

    docs = (REPO_ROOT_FOR_TESTS / "docs" / "training.md").read_text()
    missing = [name for name in Hyperparameters.model_fields if f"| `{name}` |" not in docs]
    assert not missing


def test_kernels_counts_only_at_a_version_transformers_accepts(monkeypatch):
    import importlib.util

    from transformers.utils import import_utils

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(import_utils, "is_kernels_available", lambda: False)
    assert throughput.importable_packages() == {"flash_attn", "liger_kernel"}
    monkeypatch.setattr(import_utils, "is_kernels_available", lambda: True)
    assert throughput.importable_packages() == {"flash_attn", "liger_kernel", "kernels"}
