"""Fine-tune a causal LM with LoRA (QLoRA on CUDA) on chat "messages" JSONL, the SageMaker way.

Inputs follow the SageMaker training contract, with every path also a command-line option:

    $OPT_ML/input/data/train/train.jsonl      one {"messages": [...]} per line (test.jsonl optional)
    $OPT_ML/input/data/model/                 base model files (else hyperparameter model_id)
    $OPT_ML/input/config/hyperparameters.json all values strings; --name VALUE options win
    $OPT_ML/model/                            adapter/, merged/, training_metrics.json
    $OPT_ML/checkpoints/                      checkpoint-N/; a restarted job resumes from the newest

OPT_ML defaults to /opt/ml. Loss is computed on assistant tokens only, each assistant turn ends
with the EOS token, and the adapter is merged into the unquantized base model.

Under torchrun (several GPUs or hosts; launch.py decides) every process trains; with `fsdp` the
model is sharded over them (FSDP2, on CPU processes too). At the end every process takes part in
saving the adapter, then the process group is ended and only the main process merges: the others
exit at once instead of waiting in a collective that would time out during a long merge.

Metric line, once per logging step (see metrics_logging.py; the training job's MetricDefinitions,
in lambdas/common/job_requests.py, read it):

    train_metrics: step=12 loss=1.2345 learning_rate=0.0002 epoch=0.50 tokens_per_second=812.3
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from chat_format import ensure_chat_template
from checkpoints import newest_checkpoint
from distributed_setup import release_ranks_then
from hf_token import TokenError, read_hf_token
from hyperparameters import (
    HyperparameterError,
    Hyperparameters,
    add_hyperparameter_options,
    build_hyperparameters,
    merge_sources,
    read_hyperparameters_file,
)
from job_paths import Paths, write_failure
from merging import merge_and_save
from metrics_logging import TokenCounter
from model_loading import load_training_model, local_model_folder, model_source
from run_settings import RunSettings
from sft_config import build_sft_config, job_levers
from sft_trainer import make_trainer, optimizer_record
from throughput import LeverError
from training_data import DataError, load_channel, tokenize_channel
from training_metrics import TrainingOutcome, training_metrics, write_training_metrics

LOG = logging.getLogger("train")
# Errors in what the job was given: reported as the job's failure reason, exit code 2, no traceback.
INPUT_ERRORS = (
    (DataError, "training data error"),
    (LeverError, "invalid hyperparameters"),
    (TokenError, "Hugging Face token"),
)


def parse_arguments(argv: list[str] | None = None) -> tuple[Paths, Hyperparameters]:
    """Paths and validated hyperparameters; raises HyperparameterError before anything heavy happens."""
    defaults = Paths.defaults(Path(os.environ.get("OPT_ML", "/opt/ml")))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in vars(defaults).items():
        parser.add_argument("--" + name, dest=name, type=Path, default=value, help=f"default {value}")
    add_hyperparameter_options(parser)
    args = vars(parser.parse_args(argv))
    paths = Paths(**{name: args.pop(name) for name in vars(defaults)})
    values = merge_sources(read_hyperparameters_file(paths.hyperparameters_file), args)
    return paths, build_hyperparameters(values)


def train(paths: Paths, hyperparameters: Hyperparameters) -> dict[str, Any]:
    """Run one training job end to end; returns what is written to training_metrics.json."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    conversations, eval_conversations = load_channel(paths.train_dir)
    settings = RunSettings.for_job(hyperparameters, model_source(paths, hyperparameters))
    LOG.info("%s", settings.summary())
    job_levers(hyperparameters, settings)  # a lever this machine cannot give fails the job before anything loads
    token = read_hf_token(hyperparameters.hf_token_secret_arn)
    source = local_model_folder(settings.model_source, hyperparameters, token)

    # `source` is a local folder now (the model channel or the pinned snapshot): no revision to pass.
    tokenizer = AutoTokenizer.from_pretrained(source, token=token)  # nosec B615
    tokenizer = ensure_chat_template(tokenizer)
    train_dataset, dropped, eval_dataset = tokenize_channel(
        tokenizer, conversations, eval_conversations, hyperparameters.max_length
    )

    load_started = time.perf_counter()
    attention = job_levers(hyperparameters, settings).attn_implementation.value
    model = load_training_model(source, settings, hyperparameters, token, attn_implementation=attention)
    timings = {"model_load_seconds": time.perf_counter() - load_started}
    lengths = [len(ids) for ids in train_dataset["input_ids"]]
    levers = job_levers(hyperparameters, settings, model, mean_row_tokens=sum(lengths) / len(lengths))
    LOG.info("throughput levers: %s", "; ".join(levers.summary_lines()))

    counter = TokenCounter()
    sft_config = build_sft_config(paths, hyperparameters, settings, model, levers)
    trainer = make_trainer(
        model,
        tokenizer,
        train_dataset,
        eval_dataset,
        sft_config,
        hyperparameters,
        counter,
        settings.num_processes,
        lora_dtype=levers.lora_dtype.value,
    )
    resume_from = newest_checkpoint(paths.checkpoint_dir)
    if resume_from:
        LOG.info("resuming from %s", resume_from)
    train_started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    timings["train_seconds"] = time.perf_counter() - train_started
    eval_loss = trainer.evaluate()["eval_loss"] if eval_dataset is not None else None

    adapter_dir, merged_dir = paths.output_dir / "adapter", paths.output_dir / "merged"
    trainer.save_model(str(adapter_dir))  # every rank: under FSDP the adapter is gathered from all
    is_main = trainer.is_world_process_zero()
    outcome = TrainingOutcome(
        global_step=result.global_step,
        training_loss=result.training_loss,
        eval_loss=eval_loss,
        log_history=list(trainer.state.log_history),
        train_rows=len(train_dataset),
        dropped_rows=dropped,
        throughput={**levers.to_dict(), "optimizer": optimizer_record(trainer)},
        resumed_from=resume_from,
    )
    del trainer, model
    gc.collect()
    if settings.device == "cuda":
        torch.cuda.empty_cache()

    def merge_and_record() -> dict[str, Any]:
        tokenizer.save_pretrained(adapter_dir)
        merge_started = time.perf_counter()
        merge_and_save(source, adapter_dir, merged_dir, tokenizer, settings.device, token)
        timings["merge_seconds"] = time.perf_counter() - merge_started
        timings["total_seconds"] = time.perf_counter() - started
        metrics = training_metrics(outcome, counter, settings, hyperparameters, timings)
        write_training_metrics(paths.output_dir, metrics)
        return metrics

    # The other ranks are released before the main process merges: no collective outlives the training.
    return release_ranks_then(merge_and_record, is_main) or {}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        paths, hyperparameters = parse_arguments(argv)
    except HyperparameterError as error:
        print(error, file=sys.stderr)
        write_failure(Paths.defaults(Path(os.environ.get("OPT_ML", "/opt/ml"))), str(error))
        return 2
    try:
        train(paths, hyperparameters)
    except Exception as error:
        reason = next((f"{prefix}: {error}" for kind, prefix in INPUT_ERRORS if isinstance(error, kind)), None)
        if reason is None:
            write_failure(paths, f"{type(error).__name__}: {error}")
            raise
        print(reason, file=sys.stderr)
        write_failure(paths, reason)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
