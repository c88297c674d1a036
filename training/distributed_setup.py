"""Training over several processes (torchrun; launch.py decides): FSDP2 sharding, on GPUs and on CPU
processes alike, and how the processes part at the end so that none waits through the merge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hyperparameters import Hyperparameters

Result = TypeVar("Result")


def fsdp_arguments(
    hyperparameters: Hyperparameters, model: Any, activation_checkpointing: bool | None = None
) -> dict[str, Any]:
    """SFTConfig's fsdp/fsdp_config for `fsdp` (e.g. "full_shard auto_wrap"), FSDP2 wrapping each decoder layer.

    FSDP's own activation checkpointing (every layer) is on unless `gradient_checkpointing` resolved to none.
    """
    options = hyperparameters.fsdp.split()
    if not options:
        return {}
    if activation_checkpointing is None:
        activation_checkpointing = hyperparameters.gradient_checkpointing != "none"
    config: dict[str, Any] = {
        "version": 2,
        "reshard_after_forward": "shard_grad_op" not in options,
        "cpu_offload": "offload" in options,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "activation_checkpointing": activation_checkpointing,
        "state_dict_type": "FULL_STATE_DICT",
        "cpu_ram_efficient_loading": False,  # every process loads the model before FSDP shards it
    }
    layer_classes = list(getattr(model, "_no_split_modules", None) or [])
    if layer_classes:
        config["transformer_layer_cls_to_wrap"] = layer_classes
    return {"fsdp": True, "fsdp_config": config}


def enable_fsdp_on_cpu(trainer: Any) -> None:
    """Let CPU processes (gloo) take accelerate's FSDP2 path, as GPU processes do.

    accelerate turns FSDP on only for accelerator devices and silently trains CPU processes with
    DDP instead, although torch's FSDP2 shards CPU tensors over gloo. Local mode and the tests
    train on CPU: without this they would never run the sharding, the FSDP checkpoints and their
    resume that a GPU job runs. On GPUs (and without `fsdp`) this changes nothing.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if trainer.args.fsdp_plugin_args is None or trainer.accelerator.distributed_type != DistributedType.MULTI_CPU:
        return
    for shared in (PartialState._shared_state, AcceleratorState._shared_state):
        shared["distributed_type"] = DistributedType.FSDP
    AcceleratorState._shared_state["fsdp_plugin"] = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
    trainer.is_fsdp_enabled = True


def parameter_shares(model: Any) -> tuple[int, int]:
    """(bytes of all parameters, bytes this process holds): under FSDP each holds about 1/N."""
    from torch.distributed.tensor import DTensor

    total = held = 0
    for parameter in model.parameters():
        size = parameter.element_size()
        total += parameter.numel() * size
        held += (parameter.to_local().numel() if isinstance(parameter, DTensor) else parameter.numel()) * size
    return total, held


def release_ranks_then(work_on_main: Callable[[], Result], is_main: bool) -> Result | None:
    """End the process group on every rank, then run `work_on_main` on the main process alone.

    Merging a large model on CPU takes longer than any collective timeout (NCCL's and gloo's
    defaults are 10 and 30 minutes); a rank that waited for it in a barrier would fail the job.
    After the last barrier here no rank waits for another: the others return None at once.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return work_on_main() if is_main else None
