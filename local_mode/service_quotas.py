"""Service Quotas for the emulated account: SageMaker's per-instance-type quotas, as ListServiceQuotas lists them.

moto knows only VPC quotas. SageMaker's quotas are named `<instance type> for <usage>` (training job
usage, spot training job usage, processing job usage, endpoint usage), one per instance type the
service offers; local mode lists them for every instance type botocore knows, each with a value a
local run can use. A test sets a quota with `set`; a user who wants the preflight to see the quotas of
their own account exports them once (`aws service-quotas list-service-quotas --service-code sagemaker
> quotas.json`) and passes the file (`--quotas quotas.json`), which `load_file` reads.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

USAGES = {
    "TrainingInstanceType": ("training job usage", "spot training job usage"),
    "ProcessingInstanceType": ("processing job usage",),
    "ProductionVariantInstanceType": ("endpoint usage",),
}
DEFAULT_VALUE = 4.0


class QuotaFileError(ValueError):
    """A quotas file that is not the output of `aws service-quotas list-service-quotas`."""


@dataclass
class Quota:
    name: str
    code: str
    value: float

    def as_dict(self, account: str, region: str) -> dict:
        return {
            "ServiceCode": "sagemaker",
            "ServiceName": "Amazon SageMaker",
            "QuotaCode": self.code,
            "QuotaName": self.name,
            "Value": self.value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
            "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:sagemaker/{self.code}",
        }


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

    def load_file(self, path: str | Path) -> int:
        """Take the values (and codes) of `aws service-quotas list-service-quotas --service-code sagemaker`'s
        output in `path`; every quota the file does not list keeps its value. Returns how many it set."""
        path = Path(path)
        try:
            document = json.loads(path.read_text())
        except OSError as error:
            raise QuotaFileError(f"--quotas {path}: cannot be read: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise QuotaFileError(
                f"--quotas {path}: line {error.lineno}: not JSON ({error.msg}); expected the "
                "output of `aws service-quotas list-service-quotas --service-code sagemaker`"
            ) from None
        listed = document.get("Quotas") if isinstance(document, dict) else None
        if not isinstance(listed, list):
            raise QuotaFileError(
                f'--quotas {path}: no "Quotas" list; expected the output of '
                "`aws service-quotas list-service-quotas --service-code sagemaker`"
            )
        for index, entry in enumerate(listed):
            name, value = (entry.get("QuotaName"), entry.get("Value")) if isinstance(entry, dict) else (None, None)
            if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise QuotaFileError(
                    f"--quotas {path}: Quotas[{index}]: {json.dumps(entry)[:120]}; expected an "
                    "object with a string QuotaName and a number Value"
                )
            if entry.get("ServiceCode", "sagemaker") != "sagemaker":
                continue
            code = entry.get("QuotaCode") if isinstance(entry.get("QuotaCode"), str) else quota_code(name)
            self.quotas[name] = Quota(name, code, float(value))
        return len(listed)
