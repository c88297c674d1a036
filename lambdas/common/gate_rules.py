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


def _rate(value: object, label: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"metrics.json: {label} is {value!r}; expected a number in [0, 1] or null")
    return float(value)


def decide(metrics: dict, gate: dict, production_accuracy: float | None = None) -> GateDecision:
    """Apply every rule and keep a reason for each, whether it passed or failed.

    Execution accuracy is null when no test row carries a CREATE TABLE schema; the accuracy rules
    then use exact match instead, and the reasons say so.
    """
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
    key, label = "execution_accuracy", "execution accuracy"
    score = _rate(fine_tuned.get(key), f"fine_tuned.{key}")
    if score is None:
        key, label = "exact_match", "exact match (no row has a schema for execution accuracy)"
        score = _rate(fine_tuned.get(key), f"fine_tuned.{key}")
    if score is None:
        rule(False, "metrics.json has neither execution accuracy nor exact match for the fine-tuned model")
        return GateDecision(False, reasons, {"fine_tuned": fine_tuned, "base": metrics.get("base")})
    minimum = gate["min_execution_accuracy"]
    rule(score >= minimum, f"{label} {score:.4f} vs minimum {minimum:.4f}")

    improvement_needed = gate.get("min_improvement_over_base", 0.0)
    base = metrics.get("base")
    base_score = _rate(base.get(key), f"base.{key}") if isinstance(base, dict) else None
    if base_score is not None:
        gain = score - base_score
        rule(gain >= improvement_needed - 1e-12,
             f"improvement over the base model {gain:+.4f} ({base_score:.4f} to {score:.4f}) "
             f"vs minimum {improvement_needed:+.4f}")
    elif improvement_needed > 0:
        rule(False, f"the base model was not evaluated, so the required improvement "
                    f"{improvement_needed:+.4f} cannot be shown")

    if gate.get("min_exact_match") is not None:
        exact = _rate(fine_tuned.get("exact_match"), "fine_tuned.exact_match")
        rule(exact is not None and exact >= gate["min_exact_match"],
             f"exact match {'not available' if exact is None else f'{exact:.4f}'} "
             f"vs minimum {gate['min_exact_match']:.4f}")

    if gate.get("compare_to_production", True) and production_accuracy is not None \
            and key == "execution_accuracy":
        rule(score >= production_accuracy,
             f"execution accuracy {score:.4f} vs the production model's {production_accuracy:.4f}")

    summary = {"fine_tuned": fine_tuned, "base": base}
    if production_accuracy is not None:
        summary["production"] = {"execution_accuracy": production_accuracy}
    return GateDecision(passed=failures == 0, reasons=reasons, metrics=summary)
