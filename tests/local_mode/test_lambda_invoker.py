"""Handlers run in process with the function's environment; exceptions become Lambda's error payload."""

import json
import os
import sys
from types import SimpleNamespace

import pytest

from local_mode.lambda_invoker import LambdaInvoker


@pytest.fixture
def lambdas_dir(tmp_path):
    (tmp_path / "probe_handler.py").write_text(
        "import os\n"
        "class JobFailed(Exception):\n    pass\n"
        "def handler(event, context):\n"
        "    print('handling', event['step'])\n"
        "    if event.get('fail'):\n"
        "        raise JobFailed('train job x failed: AlgorithmError')\n"
        "    return {'bucket': os.environ['ARTIFACTS_BUCKET'], 'function': context.function_name,\n"
        "            'remaining': context.get_remaining_time_in_millis() > 0}\n"
    )
    yield tmp_path
    sys.modules.pop("probe_handler", None)


def function(handler="probe_handler.handler"):
    return SimpleNamespace(
        handler=handler,
        function_name="Stack-Probe",
        memory_size=256,
        timeout=30,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:Stack-Probe",
        environment_vars={"ARTIFACTS_BUCKET": "stack-artifacts"},
        save_logs=lambda logs: None,
    )


def test_handler_result_environment_and_logs(lambdas_dir, tmp_path):
    os.environ.pop("ARTIFACTS_BUCKET", None)
    with LambdaInvoker("us-east-1", logs_dir=tmp_path / "logs", lambdas_dir=lambdas_dir) as invoker:
        payload, errored, logs = invoker.invoke(function(), {"step": "ValidateInput"})
    assert not errored
    assert json.loads(payload) == {"bucket": "stack-artifacts", "function": "Stack-Probe", "remaining": True}
    assert "handling ValidateInput" in logs
    assert "ARTIFACTS_BUCKET" not in os.environ  # restored after the call
    assert "handling ValidateInput" in (tmp_path / "logs" / "Stack-Probe.log").read_text()


def test_exception_becomes_lambda_error_payload(lambdas_dir):
    with LambdaInvoker("us-east-1", lambdas_dir=lambdas_dir) as invoker:
        payload, errored, _ = invoker.invoke(function(), {"step": "DescribeTrain", "fail": True})
    error = json.loads(payload)
    assert errored
    assert error["errorType"] == "JobFailed"
    assert error["errorMessage"] == "train job x failed: AlgorithmError"
    assert isinstance(error["stackTrace"], list) and error["stackTrace"]


def test_bad_handler_name_is_an_error_payload(lambdas_dir):
    with LambdaInvoker("us-east-1", lambdas_dir=lambdas_dir) as invoker:
        payload, errored, _ = invoker.invoke(function("nohandler"), {})
    assert errored and json.loads(payload)["errorType"] == "ImportError"


def test_a_role_that_cannot_decrypt_the_environment_fails_the_request_not_the_handler(lambdas_dir):
    from local_mode.lambda_invoker import KMSAccessDeniedException

    denial = "User: arn:aws:sts::123456789012:assumed-role/r/Stack-Probe is not authorized to perform: kms:Decrypt"
    invoker = LambdaInvoker("us-east-1", lambdas_dir=lambdas_dir, environment_denial=lambda fn: denial)
    with invoker, pytest.raises(KMSAccessDeniedException) as raised:
        invoker.invoke(function(), {"step": "ValidateInput"})
    assert raised.value.code == 502 and raised.value.error_type == "KMSAccessDeniedException"
    assert denial in raised.value.message
    assert invoker.invocations == []  # no handler code ran
    assert "probe_handler" not in sys.modules
