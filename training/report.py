"""The evaluation report: one self-contained HTML page (inline CSS and SVG, no external assets).

It shows the metrics of both models side by side with their bootstrap intervals, the paired
comparison of the fine-tuned model with the base model, the training loss curve (when the trainer's
log history is given) and example predictions marked right or wrong. Every piece of model output or
data is HTML-escaped: predictions are untrusted text.
"""

from __future__ import annotations

import json
from html import escape

EXAMPLES_SHOWN = 30
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1rem 0}\
td,th{border:1px solid #ccc;padding:.35rem .6rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}code,pre{font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap;margin:0}
.ok{color:#137333;font-weight:bold}.bad{color:#b3261e;font-weight:bold}.err{color:#b3261e;font-size:.8rem}
.ci{color:#555;font-size:.8rem}.alert{border:2px solid #b3261e;background:#fdecea;padding:.6rem 1rem}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""
_COLORS = {"fine_tuned": "#1a73e8", "base": "#9aa0a6", "loss": "#1a73e8", "eval_loss": "#e8711a"}
_METRIC_LABELS = (
    ("execution_accuracy", "Execution accuracy"),
    ("exact_match", "Exact match"),
    ("count", "Rows"),
    ("execution_errors", "Execution errors"),
    ("unscored", "Unscored rows"),
    ("seconds", "Seconds"),
    ("prompts_per_second", "Prompts / second"),
)


def _number(value) -> str:
    if value is None:
        return "–"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def _models(metrics: dict) -> list[str]:
    return [name for name in ("fine_tuned", "base") if isinstance(metrics.get(name), dict)]


def _interval(entry: dict, key: str) -> dict | None:
    interval = (entry.get("intervals") or {}).get(key) if isinstance(entry.get("intervals"), dict) else None
    if isinstance(interval, dict) and all(isinstance(interval.get(end), (int, float)) for end in ("low", "high")):
        return interval
    return None


def _level(metrics: dict) -> str:
    confidence = (metrics.get("statistics") or {}).get("confidence")
    return f"{confidence:.0%}" if isinstance(confidence, (int, float)) else "95%"


def metrics_table(metrics: dict) -> str:
    models = _models(metrics)
    level = _level(metrics)
    head = "".join(f"<th>{escape(name.replace('_', '-'))}</th>" for name in models)

    def cell(name: str, key: str) -> str:
        interval = _interval(metrics[name], key)
        shown = (
            f'<br><span class="ci">{level}: {_number(interval["low"])}–{_number(interval["high"])}</span>'  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
            if interval
            else ""
        )
        return f"<td>{_number(metrics[name].get(key))}{shown}</td>"

    body = "".join(
        f"<tr><th>{escape(label)}</th>" + "".join(cell(name, key) for name in models) + "</tr>"
        for key, label in _METRIC_LABELS
    )
    return f"<table><tr><th>Metric</th>{head}</tr>{body}</table>"


def comparison_table(metrics: dict) -> str:
    """The paired comparison: difference, its interval, the discordant rows and McNemar's p-value."""
    comparison = metrics.get("comparison")
    if not isinstance(comparison, dict):
        reason = (
            "the base model was not evaluated"
            if not isinstance(metrics.get("base"), dict)
            else "metrics.json has no paired comparison"
        )
        return f"<p>No paired comparison: {reason}.</p>"
    level = _level(metrics)
    head = (
        "<tr><th>Metric</th><th>Fine-tuned − base</th><th>" + level + " interval</th><th>Rows compared</th>"  # noqa: RUF001 - the heading prints a true minus sign
        "<th>Only fine-tuned right</th><th>Only base right</th><th>McNemar exact p</th></tr>"
    )
    body = []
    for key, label in _METRIC_LABELS[:2]:
        result = comparison.get(key)
        if not isinstance(result, dict):
            body.append(f'<tr><th>{escape(label)}</th><td colspan="6">not available (no row to compare)</td></tr>')
            continue
        difference, low, high = (result.get(name) for name in ("difference", "low", "high"))
        cells = [
            f"{difference:+.3f}" if isinstance(difference, (int, float)) else "–",  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
            f"{low:+.3f} to {high:+.3f}" if all(isinstance(v, (int, float)) for v in (low, high)) else "–",  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
            _number(result.get("rows")),
            _number(result.get("fine_tuned_only")),
            _number(result.get("base_only")),
            f"{result['p_value']:.3g}" if isinstance(result.get("p_value"), (int, float)) else "–",  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
        ]
        body.append(f"<tr><th>{escape(label)}</th>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return (
        f'<table>{head}{"".join(body)}</table><p class="ci">The interval is a paired bootstrap over the '
        "test rows; McNemar's exact test asks whether the rows only one model got right split more unevenly "
        "than chance would.</p>"
    )


def accuracy_chart(metrics: dict) -> str:
    """Grouped bars: execution accuracy and exact match, per model (0..1)."""
    models = _models(metrics)
    width, height, bar, gap = 420, 200, 40, 20
    bars, x = [], 50
    for key, label in (("execution_accuracy", "execution accuracy"), ("exact_match", "exact match")):
        group_start = x
        for name in models:
            value = metrics[name].get(key)
            value = value if isinstance(value, (int, float)) else None
            size = (value or 0) * (height - 40)
            bars.append(
                f'<rect x="{x}" y="{height - 20 - size:.1f}" width="{bar}" height="{size:.1f}" '
                f'fill="{_COLORS[name]}"><title>{escape(name)} {escape(label)}: {_number(value)}</title></rect>'
                f'<text x="{x + bar / 2}" y="{height - 24 - size:.1f}" text-anchor="middle">{_number(value)}</text>'
            )
            interval = _interval(metrics[name], key)
            if interval:
                low_y, high_y = (height - 20 - interval[end] * (height - 40) for end in ("low", "high"))
                middle = x + bar / 2
                bars.append(
                    f'<path d="M{middle},{low_y:.1f}V{high_y:.1f}M{middle - 5},{low_y:.1f}h10'
                    f'M{middle - 5},{high_y:.1f}h10" stroke="#222" fill="none"/>'
                )
            x += bar
        bars.append(f'<text x="{(group_start + x) / 2}" y="{height - 5}" text-anchor="middle">{escape(label)}</text>')
        x += gap * 2
    legend = "".join(
        f'<rect x="{width - 110}" y="{10 + 16 * i}" width="10" height="10" fill="{_COLORS[name]}"/>'
        f'<text x="{width - 95}" y="{19 + 16 * i}">{escape(name.replace("_", "-"))}</text>'
        for i, name in enumerate(models)
    )
    axis = f'<line x1="45" y1="{height - 20}" x2="{width - 120}" y2="{height - 20}" stroke="#666"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="accuracy per model">{axis}{"".join(bars)}{legend}</svg>'
    )


def loss_chart(log_history: list[dict]) -> str:
    """Line chart of training loss (and evaluation loss, when logged) over steps."""
    series = {}
    for key in ("loss", "eval_loss"):
        points = [
            (float(entry["step"]), float(entry[key]))
            for entry in log_history
            if isinstance(entry.get(key), (int, float)) and isinstance(entry.get("step"), (int, float))
        ]
        if points:
            series[key] = sorted(points)
    if not series:
        return "<p>No loss values were logged.</p>"
    width, height, left, bottom, top, right = 640, 260, 50, 30, 10, 110
    all_points = [point for points in series.values() for point in points]
    x_low, x_high = min(p[0] for p in all_points), max(p[0] for p in all_points)
    y_low, y_high = min(p[1] for p in all_points), max(p[1] for p in all_points)
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0

    def xy(point: tuple[float, float]) -> str:
        x = left + (point[0] - x_low) / x_span * (width - left - right)
        y = top + (1 - (point[1] - y_low) / y_span) * (height - top - bottom)
        return f"{x:.1f},{y:.1f}"

    lines = "".join(
        f'<polyline fill="none" stroke="{_COLORS[key]}" stroke-width="2" '
        f'points="{" ".join(xy(p) for p in points)}"><title>{escape(key)}</title></polyline>'
        for key, points in series.items()
    )
    legend = "".join(
        f'<rect x="{width - right + 10}" y="{12 + 16 * i}" width="10" height="10" fill="{_COLORS[key]}"/>'
        f'<text x="{width - right + 25}" y="{21 + 16 * i}">{escape(key.replace("_", " "))}</text>'
        for i, key in enumerate(series)
    )
    axes = (
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#666"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#666"/>'
        f'<text x="{left - 5}" y="{top + 10}" text-anchor="end">{y_high:.3g}</text>'
        f'<text x="{left - 5}" y="{height - bottom}" text-anchor="end">{y_low:.3g}</text>'
        f'<text x="{left}" y="{height - 10}">step {x_low:g}</text>'
        f'<text x="{width - right}" y="{height - 10}" text-anchor="end">step {x_high:g}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="training loss">{axes}{lines}{legend}</svg>'
    )


def _mark(verdict: dict | None) -> str:
    if verdict is None:
        return "<td>–</td>"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
    right = verdict.get("execution_match")
    if right is None:
        right = verdict.get("exact_match")
    mark = '<span class="ok">✓</span>' if right else '<span class="bad">✗</span>'
    error = f'<div class="err">{escape(str(verdict["error"]))}</div>' if verdict.get("error") else ""
    if verdict.get("unscored"):
        error += f'<div class="err">unscored: {escape(str(verdict["unscored"]))}</div>'
    return f"<td>{mark} <code>{escape(str(verdict.get('prediction') or ''))}</code>{error}</td>"


def examples_table(predictions: list[dict], limit: int = EXAMPLES_SHOWN) -> str:
    has_base = any(row.get("base") for row in predictions)
    head = (
        "<tr><th>#</th><th>Question</th><th>Gold</th><th>Fine-tuned</th>"
        + ("<th>Base</th>" if has_base else "")
        + "</tr>"
    )
    body = []
    for row in predictions[:limit]:
        question = next(
            (m.get("content", "") for m in reversed(row.get("messages", [])) if m.get("role") == "user"), ""
        )
        cells = (
            f"<td>{escape(str(row.get('id', '')))}</td><td>{escape(str(question))}</td>"
            f"<td><code>{escape(str(row.get('gold', '')))}</code></td>{_mark(row.get('fine_tuned'))}"
        )
        if has_base:
            cells += _mark(row.get("base"))
        body.append(f"<tr>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _notices(metrics: dict) -> str:
    """The evaluation's error, skipped test lines and unscored rows, before anything else."""
    parts = []
    if metrics.get("error"):
        parts.append(
            f'<div class="alert"><strong>The evaluation did not finish:</strong> '
            f"{escape(str(metrics['error']))}. What was done before is shown below.</div>"
        )
    test_rows = metrics.get("test_rows")
    if isinstance(test_rows, dict) and test_rows.get("skipped"):
        listed = "".join(
            f"<li>line {escape(str(p.get('line')))}: {escape(str(p.get('reason')))}</li>"
            for p in test_rows.get("problems") or []
            if isinstance(p, dict)
        )
        parts.append(
            f"<p>{escape(str(test_rows['skipped']))} of {escape(str(test_rows.get('lines')))} test lines "
            f"were skipped:</p><ul>{listed}</ul>"
        )
    for name in _models(metrics):
        if metrics[name].get("unscored"):
            parts.append(
                f"<p>{escape(str(metrics[name]['unscored']))} rows of the {escape(name.replace('_', '-'))} "
                "model could not be scored and count as wrong; predictions.jsonl says why.</p>"
            )
    return "".join(parts)


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Evaluation report</title><style>{_STYLE}</style></head><body>"
        f"<h1>Evaluation report</h1>{body}</body></html>\n"
    )


def render_error_report(metrics: dict, message: str) -> str:
    """A plain page with the metrics as JSON, for when the full report cannot be drawn."""
    text = json.dumps(metrics, indent=2, default=str)
    return _page(f'<div class="alert">{escape(message)}</div><h2>metrics.json</h2><pre>{escape(text)}</pre>')


def render_report(metrics: dict, predictions: list[dict], log_history: list[dict]) -> str:
    """The whole report page as a string."""
    settings = metrics.get("settings") or {}
    settings_text = ", ".join(f"{escape(str(key))}={escape(str(value))}" for key, value in settings.items())
    shown = min(len(predictions), EXAMPLES_SHOWN)
    loss = loss_chart(log_history) if log_history else "<p>No training metrics were given.</p>"
    statistics = metrics.get("statistics") or {}
    how = (
        f'<p class="ci">Intervals: {escape(_level(metrics))} {escape(str(statistics.get("interval")))}, '
        f"{escape(str(statistics.get('resamples')))} resamples, seed {escape(str(statistics.get('seed')))}.</p>"
        if statistics
        else ""
    )
    return _page(
        f"{_notices(metrics)}"
        f"<p>Generation settings: {settings_text}.</p>"
        f"<h2>Metrics</h2>{metrics_table(metrics)}{accuracy_chart(metrics)}{how}"
        f"<h2>Fine-tuned vs base, row by row</h2>{comparison_table(metrics)}"
        f"<h2>Training loss</h2>{loss}"
        f"<h2>Example predictions</h2><p>The first {shown} of {len(predictions)} test rows; "
        "✓ marks a prediction whose result equals the gold query's (or, without a schema, whose text matches).</p>"
        f"{examples_table(predictions)}"
    )
