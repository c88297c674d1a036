"""The GPU benchmark script's code path, run on CPU with a tiny Llama (`--smoke`)."""

from __future__ import annotations

import json

import pytest

from benchmarks.gpu import qlora_llama8b


def test_smoke_run_measures_trl_defaults_and_train_py_choice_with_qlora(tmp_path):
    status = qlora_llama8b.main(
        [
            "--smoke",
            "--precisions",
            "qlora",
            "--strategies",
            "padding,auto",
            "--seq-len",
            "128",
            "--warmup-steps",
            "0",
            "--measured-steps",
            "1",
            "--packing-micro-batch",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 0
    result = json.loads((tmp_path / qlora_llama8b.RESULT_FILE).read_text())
    assert result["complete"] is True
    assert result["timings"]["quantized_layers"] == 14  # 7 linear layers in each of the 2 decoder layers
    by_role = {variant["settings"]["role"]: variant for variant in result["variants"]}
    assert set(by_role) == {"trl_defaults", "train_py_choice"}
    defaults, choice = by_role["trl_defaults"], by_role["train_py_choice"]
    assert choice["settings"]["strategy"] == result["train_py_choice"]
    assert defaults["ratio_to_trl_defaults"] == pytest.approx(1.0)
    assert choice["ratio_to_trl_defaults"] > 0
    for variant in (defaults, choice):
        assert variant["real_tokens_per_second"] > 0
        assert 0 < variant["mfu"] < variant["hfu"]
        assert variant["peak_memory_bytes"] > 0
    assert defaults["padding_share"] > 0  # rows of varied length padded to the longest in each batch
    assert defaults["documents"] == 4 * 1  # one measured step of the smoke batch size, sampled from the pool
    if choice["settings"]["sft_config"]["padding_free"]:
        assert choice["padding_share"] == 0


def test_bad_arguments_name_the_option_and_what_is_allowed(capsys):
    with pytest.raises(SystemExit):
        qlora_llama8b.parse_args(["--precisions", "fp8"])
    assert "--precisions: 'fp8' is not allowed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        qlora_llama8b.parse_args(["--strategies", "padding,zigzag"])
    assert "zigzag not allowed" in capsys.readouterr().err


def test_planned_strategies_put_defaults_then_train_py_choice_first():
    plan = qlora_llama8b.planned_strategies(("group_by_length", "auto", "padding"), choice="packing")
    assert plan == [("padding", "trl_defaults"), ("packing", "train_py_choice"), ("group_by_length", "alternative")]


def test_packing_is_also_measured_in_accumulated_micro_batches():
    args = qlora_llama8b.parse_args(
        [
            "--smoke",
            "--batch-size",
            "4",
            "--strategies",
            "padding,auto",
            "--precisions",
            "qlora",
            "--packing-micro-batch",
            "1",
        ]
    )
    settings = qlora_llama8b.settings_from_args(args)
    names = [variant.name for variant in qlora_llama8b.planned_variants(settings, choice="packing")]
    assert names == ["qlora/padding", "qlora/packing", "qlora/packing (1x4 accumulated)"]
