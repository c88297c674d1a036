"""A model the serving image cannot read fails the run before registration: no package, no endpoint.

The base model is a SmolLM3: this project's transformers trains and evaluates it, but TGI 3.3.6's
transformers (4.51) does not know the architecture, so the endpoint would never load it.
"""

import pytest
import torch
from botocore.exceptions import ClientError
from transformers import GenerationConfig, SmolLM3Config, SmolLM3ForCausalLM

from local_mode.models import build_tiny_tokenizer
from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, local_aws


@pytest.fixture(scope="module")
def tiny_smollm3(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tiny-smollm3")
    tokenizer = build_tiny_tokenizer()
    config = SmolLM3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = SmolLM3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def test_an_architecture_the_serving_image_does_not_know_stops_the_run_before_registration(
    stack_template, tiny_smollm3, tiny_input, tmp_path
):
    tiny_input["deployment"]["endpoint_name"] = "never-served"
    with local_aws(tmp_path, stack_template) as aws:
        summary = run_execution(
            aws, RunRequest(tiny_input, "unservable", model_dir=tiny_smollm3, dataset=EXAMPLE_DATA, timeout_seconds=600)
        )
        packages = (
            aws.sagemaker.list_model_packages(ModelPackageGroupName="sql-assistant").get("ModelPackageSummaryList", [])
            if summary["model_package"]
            else []
        )
        with pytest.raises(ClientError):
            aws.sagemaker.describe_endpoint(EndpointName="never-served")
    assert summary["status"] == "FAILED"
    assert summary["error"] == "ServingCheckFailed", (summary["error"], summary["cause"])
    assert [(job["kind"], job["status"]) for job in summary["jobs"]][-1] == ("processing", "Failed")
    # A failed job uploads no outputs; its failure reason carries the mismatches.
    assert "config error" in summary["cause"] and "model type `smollm3`" in summary["cause"]
    assert summary["metrics"]["fine_tuned"]["count"] == 6  # evaluated, then refused by the serving image
    assert summary["model_package"] is None and packages == []
    assert summary["cleanup"] is not None
