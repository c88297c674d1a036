"""CheckEndpoint: the live endpoint must answer the evaluation prompts as the evaluated model did."""

from __future__ import annotations

import json

from common import aws, model_registry
from common.errors import EndpointMismatch, translate_throttling
from common.observability import logger, tracer
from common.run import run_of
from common.s3_paths import read_json, read_text
from common.serving import RESPONSE_SHAPES, engine_of, generated_text, generation_request
from common.text_rules import postprocess_generation


def sample_rows(predictions_jsonl: str, count: int, needs_messages: bool = False) -> list[dict]:
    """The first `count` rows that have a prompt (and its messages, for engines that render them)
    and a fine-tuned prediction."""
    rows = []
    for number, line in enumerate(predictions_jsonl.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"predictions.jsonl line {number} is not JSON: {error}") from error
        prediction = (row.get("fine_tuned") or {}).get("prediction")
        has_messages = isinstance(row.get("messages"), list) or not needs_messages
        if isinstance(row.get("prompt"), str) and has_messages and isinstance(prediction, str):
            rows.append(row)
        if len(rows) == count:
            break
    return rows


def expected_text(row: dict) -> str:
    """What the evaluated model generated: the raw `output` when the row keeps it, else `prediction`."""
    fine_tuned = row["fine_tuned"]
    return fine_tuned["output"] if isinstance(fine_tuned.get("output"), str) else fine_tuned["prediction"]


def live_text(engine: str, body: bytes) -> str:
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        answer = None
    text = generated_text(engine, answer)
    if text is None:
        raise EndpointMismatch(f"the endpoint answered {body[:200]!r}; expected {RESPONSE_SHAPES[engine]}")
    return text


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    run = run_of(event)
    deployment = event["state"]["deployment"]
    check = run["config"]["deployment"]["check"]
    name = deployment["endpoint_name"]
    url = f"https://runtime.sagemaker.{aws.region()}.amazonaws.com/endpoints/{name}/invocations"
    if check["samples"] == 0:  # nothing compared, but the endpoint serves this run's package now
        return _record_serving(event, name, {"passed": True, "compared": 0, "matches": 0, "url": url, "mismatches": []})
    try:
        settings = read_json(run["paths"]["metrics"]).get("settings") or {}
    except Exception:
        settings = {}
    max_new_tokens = int(settings.get("max_new_tokens") or run["config"]["evaluation"]["max_new_tokens"])
    engine = engine_of(run["config"]["deployment"])
    rows = sample_rows(read_text(run["paths"]["predictions"]), check["samples"], needs_messages=engine == "vllm")
    if not rows:
        raise EndpointMismatch(f"{run['paths']['predictions']} has no row with a prompt and a prediction")
    runtime = aws.client("sagemaker-runtime")
    matches, mismatches = 0, []
    for row in rows:
        response = runtime.invoke_endpoint(
            EndpointName=name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(generation_request(engine, row, max_new_tokens)),
        )
        live = postprocess_generation(live_text(engine, response["Body"].read()))
        expected = postprocess_generation(expected_text(row))
        if live == expected:
            matches += 1
        else:
            mismatches.append({"id": row.get("id"), "expected": expected[:200], "live": live[:200]})
    needed = check["min_match_fraction"]
    passed = matches / len(rows) >= needed - 1e-12
    result = {
        "passed": passed,
        "compared": len(rows),
        "matches": matches,
        "url": url,
        "mismatches": mismatches,
        "engine": engine,
    }
    logger.info("endpoint checked", extra={"run_id": run["run_id"], **result})
    if passed:
        _record_serving(event, name, result)
    else:
        first = mismatches[0]
        raise EndpointMismatch(
            f"endpoint {name} matched {matches} of {len(rows)} evaluation prompts (need {needed:.0%}); "
            f"row {first['id']}: expected {first['expected']!r}, got {first['live']!r}"
        )
    return result


def _record_serving(event: dict, name: str, result: dict) -> dict:
    """Tag the endpoint with the package it now serves: the next run's Gate compares against it."""
    package = (event["state"].get("model_package") or {}).get("arn")
    if package:
        endpoint_arn = aws.client("sagemaker").describe_endpoint(EndpointName=name)["EndpointArn"]
        model_registry.record_serving(endpoint_arn, package)
        result["serving_package"] = package
    return result
