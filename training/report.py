"""The evaluation report: one self-contained HTML page (inline CSS and SVG, no external assets).

It shows the metrics of both models side by side, the training loss curve (when the trainer's log
history is given) and example predictions marked right or wrong. Every piece of model output or
data is HTML-escaped: predictions are untrusted text.
"""
from __future__ import annotations

from html import escape

EXAMPLES_SHOWN = 30
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.35rem .6rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}code,pre{font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap;margin:0}
.ok{color:#137333;font-weight:bold}.bad{color:#b3261e;font-weight:bold}.err{color:#b3261e;font-size:.8rem}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""
_COLORS = {"fine_tuned": "#1a73e8", "base": "#9aa0a6", "loss": "#1a73e8", "eval_loss": "#e8711a"}
_METRIC_LABELS = (("execution_accuracy", "Execution accuracy"), ("exact_match", "Exact match"),
                  ("count", "Rows"), ("execution_errors", "Execution errors"), ("seconds", "Seconds"),
                  ("prompts_per_second", "Prompts / second"))


def _number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def metrics_table(metrics: dict) -> str:
    models = [name for name in ("fine_tuned", "base") if metrics.get(name)]
    head = "".join(f"<th>{escape(name.replace('_', '-'))}</th>" for name in models)
    body = "".join(
        f"<tr><th>{escape(label)}</th>" + "".join(f"<td>{_number(metrics[name].get(key))}</td>" for name in models) + "</tr>"
        for key, label in _METRIC_LABELS)
    return f"<table><tr><th>Metric</th>{head}</tr>{body}</table>"


def accuracy_chart(metrics: dict) -> str:
    """Grouped bars: execution accuracy and exact match, per model (0..1)."""
    models = [name for name in ("fine_tuned", "base") if metrics.get(name)]
    width, height, bar, gap = 420, 200, 40, 20
    bars, x = [], 50
    for key, label in (("execution_accuracy", "execution accuracy"), ("exact_match", "exact match")):
        group_start = x
        for name in models:
            value = metrics[name].get(key)
            size = (value or 0) * (height - 40)
            bars.append(f'<rect x="{x}" y="{height - 20 - size:.1f}" width="{bar}" height="{size:.1f}" '
                        f'fill="{_COLORS[name]}"><title>{escape(name)} {escape(label)}: {_number(value)}</title></rect>'
                        f'<text x="{x + bar / 2}" y="{height - 24 - size:.1f}" text-anchor="middle">{_number(value)}</text>')
            x += bar
        bars.append(f'<text x="{(group_start + x) / 2}" y="{height - 5}" text-anchor="middle">{escape(label)}</text>')
        x += gap * 2
    legend = "".join(f'<rect x="{width - 110}" y="{10 + 16 * i}" width="10" height="10" fill="{_COLORS[name]}"/>'
                     f'<text x="{width - 95}" y="{19 + 16 * i}">{escape(name.replace("_", "-"))}</text>'
                     for i, name in enumerate(models))
    axis = f'<line x1="45" y1="{height - 20}" x2="{width - 120}" y2="{height - 20}" stroke="#666"/>'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="accuracy per model">{axis}{"".join(bars)}{legend}</svg>')


def loss_chart(log_history: list[dict]) -> str:
    """Line chart of training loss (and evaluation loss, when logged) over steps."""
    series = {}
    for key in ("loss", "eval_loss"):
        points = [(float(entry["step"]), float(entry[key])) for entry in log_history
                  if isinstance(entry.get(key), (int, float)) and isinstance(entry.get("step"), (int, float))]
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

    lines = "".join(f'<polyline fill="none" stroke="{_COLORS[key]}" stroke-width="2" '
                    f'points="{" ".join(xy(p) for p in points)}"><title>{escape(key)}</title></polyline>'
                    for key, points in series.items())
    legend = "".join(f'<rect x="{width - right + 10}" y="{12 + 16 * i}" width="10" height="10" fill="{_COLORS[key]}"/>'
                     f'<text x="{width - right + 25}" y="{21 + 16 * i}">{escape(key.replace("_", " "))}</text>'
                     for i, key in enumerate(series))
    axes = (f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#666"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#666"/>'
            f'<text x="{left - 5}" y="{top + 10}" text-anchor="end">{y_high:.3g}</text>'
            f'<text x="{left - 5}" y="{height - bottom}" text-anchor="end">{y_low:.3g}</text>'
            f'<text x="{left}" y="{height - 10}">step {x_low:g}</text>'
            f'<text x="{width - right}" y="{height - 10}" text-anchor="end">step {x_high:g}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="training loss">{axes}{lines}{legend}</svg>')


def _mark(verdict: dict | None) -> str:
    if verdict is None:
        return "<td>–</td>"
    right = verdict.get("execution_match")
    if right is None:
        right = verdict.get("exact_match")
    mark = '<span class="ok">✓</span>' if right else '<span class="bad">✗</span>'
    error = f'<div class="err">{escape(verdict["error"])}</div>' if verdict.get("error") else ""
    return f"<td>{mark} <code>{escape(verdict.get('prediction', ''))}</code>{error}</td>"


def examples_table(predictions: list[dict], limit: int = EXAMPLES_SHOWN) -> str:
    has_base = any(row.get("base") for row in predictions)
    head = "<tr><th>#</th><th>Question</th><th>Gold</th><th>Fine-tuned</th>" + ("<th>Base</th>" if has_base else "") + "</tr>"
    body = []
    for row in predictions[:limit]:
        question = next((m.get("content", "") for m in reversed(row.get("messages", [])) if m.get("role") == "user"), "")
        cells = (f"<td>{escape(str(row.get('id', '')))}</td><td>{escape(question)}</td>"
                 f"<td><code>{escape(row.get('gold', ''))}</code></td>{_mark(row.get('fine_tuned'))}")
        if has_base:
            cells += _mark(row.get("base"))
        body.append(f"<tr>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def render_report(metrics: dict, predictions: list[dict], log_history: list[dict]) -> str:
    """The whole report page as a string."""
    settings = metrics.get("settings", {})
    settings_text = ", ".join(f"{escape(str(key))}={escape(str(value))}" for key, value in settings.items())
    shown = min(len(predictions), EXAMPLES_SHOWN)
    loss = loss_chart(log_history) if log_history else "<p>No training metrics were given.</p>"
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Evaluation report</title><style>{_STYLE}</style></head><body>"
        "<h1>Evaluation report</h1>"
        f"<p>Generation settings: {settings_text}.</p>"
        f"<h2>Metrics</h2>{metrics_table(metrics)}{accuracy_chart(metrics)}"
        f"<h2>Training loss</h2>{loss}"
        f"<h2>Example predictions</h2><p>The first {shown} of {len(predictions)} test rows; "
        "✓ marks a prediction whose result equals the gold query's (or, without a schema, whose text matches).</p>"
        f"{examples_table(predictions)}"
        "</body></html>\n"
    )
