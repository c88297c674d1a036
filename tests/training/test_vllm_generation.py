"""vllm_generation.py: evaluate.generate's settings mapped onto vLLM, the worker protocol, and (where the
vLLM environment is built: `make vllm-env`) vLLM's greedy outputs against transformers'."""

import sys
import textwrap
from pathlib import Path

import evaluate
import pytest
import vllm_generation
from chat_format import render_prompt
from evaluate import EvalConfig, EvalRow, generate, load_model, parse_args
from vllm_generation import (
    PROTOCOL_PREFIX,
    Request,
    VllmGenerationError,
    VllmWorker,
    cpu_environment,
    engine_arguments,
    generate_in_worker,
    load_generation_config,
    model_greedy_settings,
    prompt_token_ids,
    resolve_dtype,
    sampling_arguments,
    stop_token_ids,
)

from tests.vllm_models import vllm_tiny_model

from .conftest import sql_conversations

MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def prompts(tiny_tokenizer):
    conversations = sql_conversations(6, seed=3)
    return [render_prompt(tiny_tokenizer, row["messages"][:-1]) for row in conversations]


# --- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, cuda, bf16, expected",
    [
        ("auto", False, False, "float32"),
        ("auto", True, True, "bfloat16"),
        ("auto", True, False, "float16"),
        ("bfloat16", False, False, "bfloat16"),
        ("float32", True, True, "float32"),
    ],
)
def test_auto_dtype_follows_evaluates_rule(dtype, cuda, bf16, expected):
    assert resolve_dtype(dtype, cuda, bf16) == expected


def test_an_unknown_dtype_names_the_allowed_ones():
    with pytest.raises(VllmGenerationError, match=r"dtype 'fp8' is not allowed; allowed: auto, float32"):
        resolve_dtype("fp8", cuda=False)


def test_engine_has_room_for_the_longest_prompt_and_its_answer():
    arguments = engine_arguments(
        "/models/m", [30, 120, 7], batch_size=16, max_new_tokens=48, dtype="float32", cuda=False
    )
    assert arguments["max_model_len"] == 168
    assert arguments["max_num_seqs"] == 16
    assert arguments["model"] == arguments["tokenizer"] == "/models/m"
    assert arguments["dtype"] == "float32" and arguments["enforce_eager"] is True
    assert engine_arguments("m", [5], 1, 1, "bfloat16", cuda=True)["enforce_eager"] is False


@pytest.mark.parametrize(
    "lengths, batch_size, max_new_tokens, message",
    [
        ([], 4, 8, "no prompts"),
        ([3], 0, 8, "batch size must be at least 1, got 0"),
        ([3], 4, 0, "max_new_tokens must be at least 1, got 0"),
    ],
)
def test_bad_engine_arguments_are_refused(lengths, batch_size, max_new_tokens, message):
    with pytest.raises(VllmGenerationError, match=message):
        engine_arguments("m", lengths, batch_size, max_new_tokens, "float32", cuda=False)


def test_sampling_is_greedy_with_evaluates_length_and_stop_tokens():
    arguments = sampling_arguments(48, [2, 7])
    assert arguments["temperature"] == 0.0 and arguments["n"] == 1 and arguments["repetition_penalty"] == 1.0
    assert arguments["max_tokens"] == 48 and arguments["stop_token_ids"] == [2, 7]
    assert arguments["ignore_eos"] is False and arguments["detokenize"] is False


def test_stop_tokens_are_evaluates(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    assert stop_token_ids(load_generation_config(tiny_model_dir), tokenizer) == evaluate._stop_token_ids(
        model, tokenizer
    )
    # A folder without generation_config.json: transformers derives the config from config.json.
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    (bare / "generation_config.json").unlink()
    model, tokenizer = load_model(bare)
    assert stop_token_ids(load_generation_config(bare), tokenizer) == evaluate._stop_token_ids(model, tokenizer)


def test_the_models_own_greedy_settings_are_applied_and_those_vllm_lacks_refused():
    from transformers import GenerationConfig

    assert model_greedy_settings(GenerationConfig(eos_token_id=2)) == {}
    settings = model_greedy_settings(GenerationConfig(repetition_penalty=1.05, min_new_tokens=3))
    assert settings == {"repetition_penalty": 1.05, "min_tokens": 3}
    assert sampling_arguments(8, [2], settings)["repetition_penalty"] == 1.05
    with pytest.raises(VllmGenerationError, match="sets no_repeat_ngram_size=3, which vLLM cannot apply"):
        model_greedy_settings(GenerationConfig(no_repeat_ngram_size=3))


def test_prompts_are_tokenized_as_evaluate_tokenizes_them(tiny_tokenizer, prompts):
    ids = prompt_token_ids(tiny_tokenizer, prompts)
    batch = tiny_tokenizer(prompts[:1], add_special_tokens=False)["input_ids"][0]
    assert ids[0] == batch and len(ids) == len(prompts)


def test_cpu_environment_keeps_what_is_set_and_binds_threads():
    environment = cpu_environment({"VLLM_CPU_KVCACHE_SPACE": "6", "PATH": "/bin"}, threads=2)
    assert environment["VLLM_CPU_KVCACHE_SPACE"] == "6" and environment["PATH"] == "/bin"
    assert environment["VLLM_CPU_OMP_THREADS_BIND"] == "0-1" and environment["VLLM_NO_USAGE_STATS"] == "1"
    assert cpu_environment({}, threads=1)["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in cpu_environment({})
    with pytest.raises(VllmGenerationError, match="threads must be at least 1, got 0"):
        cpu_environment({}, threads=0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prompts": []}, "prompts: expected a non-empty list of strings"),
        ({"batch_size": 0}, "batch_size: 0 is not allowed"),
        ({"max_new_tokens": "8"}, "max_new_tokens: '8' is not allowed"),
        ({"dtype": "fp8"}, "dtype: 'fp8' is not allowed"),
    ],
)
def test_bad_requests_name_the_field(change, message):
    data = {**Request("m", ["p"], 4, 8).to_json(), **change}
    with pytest.raises(VllmGenerationError, match=message):
        Request.from_json(data)
    with pytest.raises(VllmGenerationError, match="lacks prompts, batch_size"):
        Request.from_json({"model_dir": "m", "max_new_tokens": 8})


# --- evaluate.py's switch -----------------------------------------------------------------------


def test_evaluate_takes_a_generation_backend(tmp_path):
    common = ["--model-dir", str(tmp_path), "--test-file", str(tmp_path / "t.jsonl"), "--skip-base"]
    assert parse_args(common).generation_backend == "transformers"
    assert parse_args([*common, "--generation-backend", "vllm"]).generation_backend == "vllm"
    with pytest.raises(SystemExit):
        parse_args([*common, "--generation-backend", "onnx"])


def test_the_vllm_backend_generates_with_vllm_and_never_loads_the_model_in_transformers(
    tiny_model_dir, monkeypatch, tmp_path
):
    calls = []

    def fake_generate(reference, tokenizer, prompts, batch_size, max_new_tokens):
        calls.append((reference, len(prompts), batch_size, max_new_tokens))
        return ["SELECT name FROM head"] * len(prompts)

    monkeypatch.setattr(vllm_generation, "generate", fake_generate)
    monkeypatch.setattr(evaluate, "load_model", lambda reference: pytest.fail("transformers loaded the model"))
    rows = [EvalRow("1", [{"role": "user", "content": "Names?"}], "SELECT name FROM head", "")]
    config = EvalConfig(
        model_dir=tiny_model_dir,
        test_file=tmp_path / "t.jsonl",
        output_dir=tmp_path,
        batch_size=3,
        max_new_tokens=9,
        generation_backend="vllm",
    )
    result = evaluate.evaluate_model("fine_tuned", tiny_model_dir, rows, config)
    metrics, verdicts, prompts = result.summary, result.verdicts, result.prompts
    assert calls == [(tiny_model_dir, 1, 3, 9)]
    assert verdicts[0].exact_match and metrics["count"] == 1 and "Names?" in prompts[0]


# --- the worker protocol ------------------------------------------------------------------------

FAKE_VLLM = '''
"""A stand-in for vllm: answers each prompt with its last three token ids, then the first stop token."""
CREATED = []


class SamplingParams:
    def __init__(self, **arguments):
        self.arguments = arguments


class _Completion:
    def __init__(self, token_ids):
        self.token_ids = token_ids


class _Result:
    def __init__(self, token_ids):
        self.outputs = [_Completion(token_ids)]


class LLM:
    def __init__(self, **arguments):
        print("INFO a log line vLLM prints on stdout", flush=True)
        if arguments["max_num_seqs"] == 99:
            raise RuntimeError("the engine failed to start")
        self.arguments = arguments

    def generate(self, prompts, settings, use_tqdm=True):
        stop = settings.arguments["stop_token_ids"][0]
        return [_Result(prompt["prompt_token_ids"][-3:][: settings.arguments["max_tokens"]] + [stop])
                for prompt in prompts]
'''


@pytest.fixture()
def fake_vllm_environment(tmp_path):
    folder = tmp_path / "fake-vllm"
    (folder / "vllm").mkdir(parents=True)
    (folder / "vllm" / "__init__.py").write_text(FAKE_VLLM)
    import os

    return {**os.environ, "PYTHONPATH": str(folder)}


def test_the_worker_answers_every_request_through_the_protocol(
    tiny_model_dir, tiny_tokenizer, prompts, fake_vllm_environment, tmp_path
):
    request = Request(str(tiny_model_dir), prompts, batch_size=4, max_new_tokens=MAX_NEW_TOKENS)
    log = tmp_path / "worker.log"
    with VllmWorker(sys.executable, request, environ=fake_vllm_environment, threads=1, log_file=log) as worker:
        assert worker.load_seconds > 0 and worker.dtype == "float32"
        first, seconds = worker.generate()
        short, _ = worker.generate(max_new_tokens=1)
    ids = prompt_token_ids(tiny_tokenizer, prompts)
    assert first == [tiny_tokenizer.decode(row[-3:], skip_special_tokens=True) for row in ids]
    assert short == [tiny_tokenizer.decode(row[-3:][:1], skip_special_tokens=True) for row in ids]
    assert seconds >= 0
    assert "a log line vLLM prints on stdout" in log.read_text()


def test_generate_in_worker_gives_the_outputs_in_prompt_order(
    tiny_model_dir, tiny_tokenizer, prompts, fake_vllm_environment
):
    outputs = generate_in_worker(
        sys.executable, tiny_model_dir, prompts, 2, MAX_NEW_TOKENS, environ=fake_vllm_environment
    )
    assert outputs == [
        tiny_tokenizer.decode(row[-3:], skip_special_tokens=True) for row in prompt_token_ids(tiny_tokenizer, prompts)
    ]


def test_an_engine_that_fails_to_start_is_reported(tiny_model_dir, prompts, fake_vllm_environment):
    request = Request(str(tiny_model_dir), prompts, batch_size=99, max_new_tokens=MAX_NEW_TOKENS)
    with (
        pytest.raises(VllmGenerationError, match="the vLLM worker failed: RuntimeError: the engine failed to start"),
        VllmWorker(sys.executable, request, environ=fake_vllm_environment),
    ):
        pass


def test_asking_for_more_tokens_than_the_engine_was_started_for_is_reported(
    tiny_model_dir, prompts, fake_vllm_environment
):
    request = Request(str(tiny_model_dir), prompts, batch_size=4, max_new_tokens=4)
    with (
        VllmWorker(sys.executable, request, environ=fake_vllm_environment) as worker,
        pytest.raises(VllmGenerationError, match="max_new_tokens 5 is more than the engine was started for"),
    ):
        worker.generate(max_new_tokens=5)


def _fake_worker(tmp_path, body: str) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(body))
    return script


def test_a_worker_that_dies_is_reported_with_its_exit_status_and_stderr(tmp_path):
    script = _fake_worker(
        tmp_path,
        """
        import sys
        print("no protocol here", flush=True)
        print("Traceback: it broke", file=sys.stderr)
        sys.exit(3)
    """,
    )
    request = Request("m", ["p"], 1, 4)
    with (
        pytest.raises(VllmGenerationError, match=r"exited \(3\) without answering:\n(.|\n)*it broke"),
        VllmWorker(sys.executable, request, script=script),
    ):
        pass


def test_a_silent_worker_times_out(tmp_path):
    script = _fake_worker(
        tmp_path,
        f"""
        import json, sys, time
        print({PROTOCOL_PREFIX!r} + json.dumps({{"ready": True, "load_seconds": 0.1}}), flush=True)
        time.sleep(60)
    """,
    )
    with (
        VllmWorker(sys.executable, Request("m", ["p"], 1, 4), script=script, timeout=2) as worker,
        pytest.raises(VllmGenerationError, match="did not answer within 2 s"),
    ):
        worker.generate()


def test_a_worker_that_answers_for_the_wrong_number_of_prompts_is_refused(tmp_path):
    script = _fake_worker(
        tmp_path,
        f"""
        import json, sys
        say = lambda message: print({PROTOCOL_PREFIX!r} + json.dumps(message), flush=True)
        say({{"ready": True, "load_seconds": 0.1}})
        for line in sys.stdin:
            say({{"outputs": ["only one"], "seconds": 0.5}})
    """,
    )
    with (
        VllmWorker(sys.executable, Request("m", ["p", "q"], 1, 4), script=script) as worker,
        pytest.raises(VllmGenerationError, match="answered 1 outputs for 2 prompts"),
    ):
        worker.generate()


# --- real vLLM ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_tiny_model_dir(tmp_path_factory, tiny_model_dir):
    return vllm_tiny_model(tiny_model_dir, tmp_path_factory.mktemp("vllm-tiny") / "model")


def _vllm_python():
    from local_mode import vllm_env

    return vllm_env.find_python()


@pytest.mark.skipif(
    _vllm_python() is None,
    reason="the vLLM environment is not built (make vllm-env, about 3 GB); "
    "or set LLM_FINETUNE_VLLM_PYTHON to its python",
)
def test_vllm_greedy_outputs_equal_evaluates(vllm_tiny_model_dir, prompts):
    from local_mode import vllm_env

    model, tokenizer = load_model(vllm_tiny_model_dir)
    expected = generate(model, tokenizer, prompts, batch_size=4, max_new_tokens=MAX_NEW_TOKENS)
    request = Request(str(vllm_tiny_model_dir), prompts, batch_size=4, max_new_tokens=MAX_NEW_TOKENS, dtype="float32")
    with VllmWorker(_vllm_python(), request, environ=vllm_env.clean_environment(), threads=1, timeout=600) as worker:
        outputs, _ = worker.generate()
    assert worker.versions["vllm-cpu"] == vllm_env.VLLM.split("==")[1]
    assert outputs == expected
    assert any(output.strip() for output in outputs)


def test_the_vllm_environment_takes_evaluations_pins_from_the_jobs_requirements(tmp_path):
    from local_mode import vllm_env
    from local_mode.compat_envs import CompatEnvError

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# jobs\ntransformers==5.23.0\nsqlglot==30.30.0\n")
    assert vllm_env.evaluation_pins(requirements) == ("sqlglot==30.30.0",)
    requirements.write_text("transformers==5.23.0\n")
    with pytest.raises(CompatEnvError, match="no pin for sqlglot"):
        vllm_env.evaluation_pins(requirements)
    assert set(vllm_env.evaluation_pins()) <= set(vllm_env.PACKAGES)
