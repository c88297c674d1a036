"""Service Quotas for the emulated account: SageMaker's per-instance-type quotas, as ListServiceQuotas lists them.

moto knows only VPC quotas. SageMaker's quotas are named `<instance type> for <usage>` (training job
usage, spot training job usage, processing job usage, endpoint usage), one per instance type the
service offers; local mode lists them for every instance type botocore knows, each with a value a
local run can use. A test (or a user trying the preflight) sets a quota with `set`.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

USAGES = {"TrainingInstanceType": ("training job usage", "spot training job usage"),
          "ProcessingInstanceType": ("processing job usage",),
          "ProductionVariantInstanceType": ("endpoint usage",)}
DEFAULT_VALUE = 4.0


@dataclass
class Quota:
    name: str
    code: str
    value: float

    def as_dict(self, account: str, region: str) -> dict:
        return {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": self.code,
                "QuotaName": self.name, "Value": self.value, "Unit": "None", "Adjustable": True,
                "GlobalQuota": False,
                "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:sagemaker/{self.code}"}


def quota_code(name: str) -> str:
    return "L-" + hashlib.sha256(name.encode()).hexdigest()[:8].upper()


@functools.lru_cache(maxsize=1)
def _instance_types() -> dict[str, tuple[str, ...]]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return {shape: tuple(model.shape_for(shape).enum) for shape in USAGES}


class SageMakerQuotas:
    """The account's SageMaker quotas (one registry per emulated account)."""

    def __init__(self, default_value: float = DEFAULT_VALUE):
        self.quotas: dict[str, Quota] = {}
        for shape, usages in USAGES.items():
            for instance_type in _instance_types()[shape]:
                for usage in usages:
                    name = f"{instance_type} for {usage}"
                    self.quotas[name] = Quota(name, quota_code(name), default_value)

    def set(self, name: str, value: float) -> None:
        if name not in self.quotas:
            raise KeyError(f"no SageMaker quota named {name!r}")
        self.quotas[name].value = float(value)

    def listed(self, account: str, region: str) -> list[dict]:
        return [quota.as_dict(account, region) for quota in self.quotas.values()]
