"""Facts about SageMaker instance types that the API does not tell a request builder."""

from __future__ import annotations

# GPUs per instance; TGI shards the model over SM_NUM_GPUS of them.
_GPUS_BY_SIZE = {
    "g4dn": {"12xlarge": 4},
    "g5": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "g6": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "g6e": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "g7e": {"12xlarge": 2, "24xlarge": 4, "48xlarge": 8},
    "p3": {"8xlarge": 4, "16xlarge": 8},
    "p3dn": {"24xlarge": 8},
    "p4d": {"24xlarge": 8},
    "p4de": {"24xlarge": 8},
    "p5": {"48xlarge": 8},
    "p5e": {"48xlarge": 8},
    "p5en": {"48xlarge": 8},
    "p6-b200": {"48xlarge": 8},
    "p6-b300": {"48xlarge": 8},
}
_ONE_GPU_FAMILIES = {"g4dn", "g5", "g6", "g6e", "g7e", "p3", "p5"}
# NVIDIA families SageMaker offers that this table leaves out on purpose, and why (a test keeps every
# NVIDIA type of the execution input's schema either in the table above or here).
GPU_FAMILIES_LEFT_OUT = {
    "p2": "its K80 GPUs are not supported by the CUDA 12 and 13 builds the images carry",
    "p6e-gb200": "its hosts are Arm (Grace) and the images are built for x86_64",
    "g5g": "its hosts are Arm (Graviton) and the images are built for x86_64",
    "g7": "its GPUs per size are not in this table yet: set deployment.num_gpus",
}

# Families with local NVMe instance storage. AWS encrypts it in hardware and rejects a
# VolumeKmsKeyId (jobs) or KmsKeyId (endpoint configs) for these instance types.
_LOCAL_STORAGE_FAMILIES = {
    "c5d",
    "m5d",
    "r5d",
    "g4dn",
    "g5",
    "g6",
    "g6e",
    "g7e",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "p6-b200",
    "p6-b300",
    "p6e-gb200",
    "trn1",
    "trn1n",
    "trn2",
    "m6gd",
    "c6gd",
    "r6gd",
    "r7gd",
    "dl1",
}


def family_and_size(instance_type: str) -> tuple[str, str]:
    """'ml.g5.12xlarge' -> ('g5', '12xlarge')."""
    parts = instance_type.split(".")
    if len(parts) != 3 or parts[0] != "ml":
        raise ValueError(f"{instance_type!r} is not a SageMaker instance type like ml.g5.2xlarge")
    return parts[1], parts[2]


def gpu_count(instance_type: str) -> int | None:
    """GPUs of an instance type, or None when it has no NVIDIA GPU this table knows (see GPU_FAMILIES_LEFT_OUT)."""
    family, size = family_and_size(instance_type)
    if family in _GPUS_BY_SIZE and size in _GPUS_BY_SIZE[family]:
        return _GPUS_BY_SIZE[family][size]
    if family in _ONE_GPU_FAMILIES:
        return 1
    return None


def has_local_storage(instance_type: str) -> bool:
    return family_and_size(instance_type)[0] in _LOCAL_STORAGE_FAMILIES


def volume_kms_key(instance_type: str, kms_key_arn: str) -> dict:
    """{'VolumeKmsKeyId': key} where AWS accepts one, else {} (instance storage is hardware-encrypted)."""
    return {} if has_local_storage(instance_type) or not kms_key_arn else {"VolumeKmsKeyId": kms_key_arn}


def no_gpu_reason(instance_type: str) -> str:
    """Why gpu_count gives None for an instance type, for an error message."""
    family = family_and_size(instance_type)[0]
    return GPU_FAMILIES_LEFT_OUT.get(family, "it has no NVIDIA GPU")
