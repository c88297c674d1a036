"""The evaluation gate: metrics.json against the input's thresholds (and the production model).

With ``require_significance`` the gate also asks whether the gains are more than the luck of the
test sample: over the base model, McNemar's exact test on the rows only one of the two models got
right (evaluate.py's paired comparison) must fall below ``significance_level``; over the production
model, whose accuracy is known only as a number, the fine-tuned model's whole interval must lie
above that number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DEFAULT_SIGNIFICANCE_LEVEL = 0.05


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


def _paired(metrics: dict, key: str) -> dict | None:
    comparison = metrics.get("comparison")
    result = comparison.get(key) if isinstance(comparison, dict) else None
    needed = ("difference", "p_value", "fine_tuned_only", "base_only")
    if isinstance(result, dict) and all(isinstance(result.get(name), (int, float)) for name in needed):
        return result
    return None


def _confidence(metrics: dict) -> float | None:
    confidence = (
        (metrics.get("statistics") or {}).get("confidence") if isinstance(metrics.get("statistics"), dict) else None
    )
    return float(confidence) if isinstance(confidence, (int, float)) and 0 < confidence < 1 else None


def significance_rules(
    metrics: dict, key: str, label: str, level: float, production_accuracy: float | None
) -> list[tuple[bool, str]]:
    """(passed, reason) for the improvement over the base model and, when given, over production."""
    rules: list[tuple[bool, str]] = []
    base = metrics.get("base")
    paired = _paired(metrics, key)
    if not isinstance(base, dict):
        rules.append(
            (
                False,
                "the base model was not evaluated, so no improvement over it can be shown "
                f"significant at level {level:g}",
            )
        )
    elif paired is None:
        rules.append(
            (
                False,
                f"metrics.json has no paired comparison; evaluate.py writes one (needed for {label}: "
                "the improvement over the base model cannot be shown significant without it)",
            )
        )
    else:
        difference, p_value = paired["difference"], paired["p_value"]
        interval = (
            f", {_level(metrics)} interval {paired['low']:+.4f} to {paired['high']:+.4f}"
            if all(isinstance(paired.get(end), (int, float)) for end in ("low", "high"))
            else ""
        )
        ok = difference > 0 and p_value < level
        rules.append(
            (
                ok,
                f"improvement over the base model {difference:+.4f}{interval} is "
                f"{'' if ok else 'not '}significant: McNemar exact p={p_value:.4g} vs level {level:g} "
                f"({paired['fine_tuned_only']} rows only the fine-tuned model got right, "
                f"{paired['base_only']} only the base model)",
            )
        )
    if production_accuracy is not None:
        rules.append(_above_production(metrics, key, label, level, production_accuracy))
    return rules


def _level(metrics: dict) -> str:
    confidence = _confidence(metrics)
    return f"{confidence:.0%}" if confidence is not None else "the"


def _above_production(
    metrics: dict, key: str, label: str, level: float, production_accuracy: float
) -> tuple[bool, str]:
    """The production model's accuracy is one number: the fine-tuned interval must lie above it."""
    intervals = metrics["fine_tuned"].get("intervals")
    interval = intervals.get(key) if isinstance(intervals, dict) else None
    confidence = _confidence(metrics)
    if not isinstance(interval, dict) or not isinstance(interval.get("low"), (int, float)) or confidence is None:
        return False, (
            f"metrics.json has no interval for the fine-tuned model's {label}; evaluate.py writes one, "
            "needed to show the gain over the production model significant"
        )
    if 1 - confidence > level + 1e-9:
        return False, (
            f"metrics.json's intervals are {confidence:.0%}; level {level:g} needs at least "
            f"{1 - level:.0%} (evaluate.py --confidence {1 - level:g}) to compare with the production model"
        )
    low = interval["low"]
    ok = low > production_accuracy
    return ok, (
        f"{label} {confidence:.0%} interval lower bound {low:.4f} "
        f"{'exceeds' if ok else 'does not exceed'} the production model's {production_accuracy:.4f}"
    )


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
    if metrics.get("error"):
        rule(False, f"the evaluation did not finish: {metrics['error']}")
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
        rule(
            gain >= improvement_needed - 1e-12,
            f"improvement over the base model {gain:+.4f} ({base_score:.4f} to {score:.4f}) "
            f"vs minimum {improvement_needed:+.4f}",
        )
    elif improvement_needed > 0:
        rule(
            False,
            f"the base model was not evaluated, so the required improvement {improvement_needed:+.4f} cannot be shown",
        )

    if gate.get("min_exact_match") is not None:
        exact = _rate(fine_tuned.get("exact_match"), "fine_tuned.exact_match")
        rule(
            exact is not None and exact >= gate["min_exact_match"],
            f"exact match {'not available' if exact is None else f'{exact:.4f}'} "
            f"vs minimum {gate['min_exact_match']:.4f}",
        )

    production_applies = (
        gate.get("compare_to_production", True) and production_accuracy is not None and key == "execution_accuracy"
    )
    if production_applies and production_accuracy is not None:
        rule(
            score >= production_accuracy,
            f"execution accuracy {score:.4f} vs the production model's {production_accuracy:.4f}",
        )

    if gate.get("require_significance", False):
        level = gate.get("significance_level", DEFAULT_SIGNIFICANCE_LEVEL)
        for ok, text in significance_rules(
            metrics, key, label, level, production_accuracy if production_applies else None
        ):
            rule(ok, text)

    summary = {"fine_tuned": fine_tuned, "base": base}
    if isinstance(metrics.get("comparison"), dict):
        summary["comparison"] = metrics["comparison"]
    if production_accuracy is not None:
        summary["production"] = {"execution_accuracy": production_accuracy}
    return GateDecision(passed=failures == 0, reasons=reasons, metrics=summary)
