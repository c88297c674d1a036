"""benchmarks/gpu/throughput_llama8b.py's code path, run on CPU with a tiny Llama (`--smoke`)."""

from __future__ import annotations

import json

import pytest

from benchmarks.gpu import throughput_llama8b as bench


def test_smoke_run_measures_levers_through_train_py_and_evaluation_batching(tmp_path):
    status = bench.main(
        ["--smoke", "--precisions", "qlora", "--levers", "trl_defaults,token_budget,liger,auto", "--out", str(tmp_path)]
    )
    assert status == 0
    result = json.loads((tmp_path / bench.RESULT_FILE).read_text())
    assert result["complete"] is True and result["command"].endswith("--out $OUT")
    by_lever = {variant["settings"]["lever"]: variant for variant in result["variants"]}
    assert list(by_lever) == ["trl_defaults", "token_budget", "liger", "auto"]
    assert by_lever["trl_defaults"]["ratio_to_trl_defaults"] == pytest.approx(1.0)
    for lever in ("trl_defaults", "token_budget", "auto"):
        variant = by_lever[lever]
        assert variant["real_tokens_per_second"] > 0 and 0 < variant["mfu"] < variant["hfu"], lever
    # train.py's own choices were made and recorded: 4-bit base, padded batches for trl's defaults.
    assert by_lever["trl_defaults"]["settings"]["batching"] == "padding"
    assert by_lever["trl_defaults"]["padding_share"] > 0
    assert by_lever["token_budget"]["micro_batches"]["tokens_per_micro_batch"] == 2 * result["settings"]["seq_len"]
    assert by_lever["token_budget"]["padding_share"] == 0
    assert by_lever["auto"]["settings"]["levers"]["optim"]["value"] == "adamw_torch"  # auto on CPU
    assert by_lever["liger"]["error"].startswith("not measured here: use_liger_kernel='true': needs a CUDA device")
    evaluation = result["evaluation"]
    assert evaluation["prompts_in_walkthrough"] == 1000
    assert evaluation["batched"]["prompts"] == 4 and evaluation["one_at_a_time"]["batch_size"] == 1
    assert evaluation["ratio"] > 0


def test_variant_hyperparameters_put_one_lever_on_train_py_before_the_levers():
    settings = bench.settings_from_args(bench.parse_args(["--smoke"]))
    before = bench.variant_hyperparameters(bench.Variant("qlora", "before_levers"), settings)
    alone = bench.variant_hyperparameters(bench.Variant("qlora", "checkpointing_none"), settings)
    assert {name for name in alone if alone[name] != before[name]} == {"gradient_checkpointing"}
    assert before["batching"] == "padding_free" and before["quantization"] == "4bit"
    flipped = bench.variant_hyperparameters(bench.Variant("bf16", "lora_dtype_flipped"), settings)
    assert flipped["lora_dtype"] == "bf16" and flipped["quantization"] == "none"
    auto = bench.variant_hyperparameters(bench.Variant("bf16", "auto"), settings)
    assert "gradient_checkpointing" not in auto and "attn_implementation" not in auto  # train.py's defaults: auto


def test_compile_and_patching_levers_run_after_the_others():
    settings = bench.settings_from_args(
        bench.parse_args(
            ["--smoke", "--precisions", "qlora", "--levers", "auto,liger,torch_compile,checkpointing_none"]
        )
    )
    assert [variant.lever for variant in bench.planned_variants(settings)] == [
        "trl_defaults",
        "checkpointing_none",
        "torch_compile",
        "auto",
        "liger",
    ]


def test_bad_arguments_name_the_option_and_what_is_allowed(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--levers", "turbo"])
    assert "--levers: turbo not allowed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--precisions", "fp8"])
    assert "--precisions: 'fp8' is not allowed" in capsys.readouterr().err
