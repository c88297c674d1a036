"""The evaluation gate: metrics.json against the input's thresholds (and the production model)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]
    metrics: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _rate(value: object, label: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"metrics.json: {label} is {value!r}; expected a number in [0, 1]")
    return float(value)


def decide(metrics: dict, gate: dict, production_accuracy: float | None = None) -> GateDecision:
    """Apply every rule and keep a reason for each, whether it passed or failed."""
    fine_tuned = metrics.get("fine_tuned")
    if not isinstance(fine_tuned, dict):
        raise ValueError("metrics.json has no fine_tuned object; evaluate.py writes one")
    reasons: list[str] = []
    failures = 0

    def rule(ok: bool, text: str) -> None:
        nonlocal failures
        failures += not ok
        reasons.append(("pass: " if ok else "FAIL: ") + text)

    count = fine_tuned.get("count", 0)
    rule(bool(count), f"{count} evaluation rows were scored")
    accuracy = _rate(fine_tuned.get("execution_accuracy"), "fine_tuned.execution_accuracy")
    minimum = gate["min_execution_accuracy"]
    rule(accuracy >= minimum, f"execution accuracy {accuracy:.4f} vs minimum {minimum:.4f}")

    improvement_needed = gate.get("min_improvement_over_base", 0.0)
    base = metrics.get("base")
    if isinstance(base, dict):
        base_accuracy = _rate(base.get("execution_accuracy"), "base.execution_accuracy")
        gain = accuracy - base_accuracy
        rule(gain >= improvement_needed - 1e-12,
             f"improvement over the base model {gain:+.4f} ({base_accuracy:.4f} to {accuracy:.4f}) "
             f"vs minimum {improvement_needed:+.4f}")
    elif improvement_needed > 0:
        rule(False, f"the base model was not evaluated, so the required improvement "
                    f"{improvement_needed:+.4f} cannot be shown")

    if gate.get("min_exact_match") is not None:
        exact = _rate(fine_tuned.get("exact_match"), "fine_tuned.exact_match")
        rule(exact >= gate["min_exact_match"], f"exact match {exact:.4f} vs minimum {gate['min_exact_match']:.4f}")

    if gate.get("compare_to_production", True) and production_accuracy is not None:
        rule(accuracy >= production_accuracy,
             f"execution accuracy {accuracy:.4f} vs the production model's {production_accuracy:.4f}")

    summary = {"fine_tuned": fine_tuned, "base": base}
    if production_accuracy is not None:
        summary["production"] = {"execution_accuracy": production_accuracy}
    return GateDecision(passed=failures == 0, reasons=reasons, metrics=summary)
