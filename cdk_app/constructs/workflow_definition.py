"""The Step Functions definition of a fine-tuning run (docs/workflow-contract.md, payloads).

ValidateInput -> Preflight -> DryRun? (stop here when asked) -> prepare, train and evaluate jobs (start, then
wait/describe until Completed; DescribePrepare also fails a refused data set) -> the serving check job (the
merged model read by the serving image's own software) -> Gate -> Register -> GatePassed? -> Deploy ->
wait/describe until InService -> ConfigureScaling
-> CheckEndpoint -> Notify -> Succeed. A rejected model goes to Notify -> Fail("EvaluationGateFailed"); any error
goes to Cleanup -> Notify -> Fail(error, cause from the cleanup's result).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from cdk_app.contract import JOB_KINDS

# Errors retried with backoff on every Lambda task: Lambda's own transient errors and the
# throttling errors the handlers raise when an AWS API throttles them.
RETRYABLE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "ThrottlingException",
    "Throttled",
]

# Each job kind and the title of its states (serving_check: StartServingCheck, WaitServingCheck ...).
JOB_STAGES = tuple((kind, kind.title().replace("_", "")) for kind in JOB_KINDS)
GATE_FAILED_ERROR = "EvaluationGateFailed"


@dataclass
class DefinitionProps:
    """Timeouts and retry policy of the Lambda tasks."""

    task_timeout: Duration = Duration.minutes(5)  # noqa: RUF009 - a Duration is immutable, one shared default is safe
    retry_interval: Duration = Duration.seconds(2)  # noqa: RUF009 - a Duration is immutable, one shared default is safe
    retry_attempts: int = 6
    retry_backoff_rate: float = 2.0


class WorkflowDefinition(Construct):
    """Builds the states; `start` is the first state, for `DefinitionBody.from_chainable`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        functions: Mapping[str, lambda_.IFunction],
        props: DefinitionProps | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._functions = functions
        self._props = props or DefinitionProps()

        # Failure path: Cleanup -> NotifyFailure -> RunFailed.
        run_failed = sfn.Fail(
            self,
            "RunFailed",
            comment="The run failed; error and cause from Cleanup",
            error_path="$.cleanup.error",
            cause_path="$.cleanup.cause",
        )
        cleanup_failed = sfn.Fail(
            self,
            "CleanupFailed",
            comment="Cleanup itself failed",
            error_path="$.cleanup_failure.Error",
            cause_path="$.cleanup_failure.Cause",
        )
        self.cleanup = self._task("Cleanup", "cleanup", "$.cleanup", catch_to_cleanup=False)
        self.cleanup.add_catch(cleanup_failed, errors=[sfn.Errors.ALL], result_path="$.cleanup_failure")
        notify_failure = self._task(
            "NotifyFailure",
            "notify",
            "$.notification",
            extra={"outcome": "failed"},
            step="Notify",
            catch_to_cleanup=False,
        )
        notify_failure.add_catch(run_failed, errors=[sfn.Errors.ALL], result_path="$.notification_error")
        self.cleanup.next(notify_failure)
        notify_failure.next(run_failed)

        # Success path.
        succeeded = sfn.Succeed(self, "Succeeded")
        notify_success = self._task(
            "NotifySuccess", "notify", "$.notification", extra={"outcome": "succeeded"}, step="Notify"
        )
        notify_success.next(succeeded)

        # Rejected by the gate.
        gate_failure_cause = sfn.Pass(
            self,
            "DescribeGateFailure",
            parameters={"cause": sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.gate.reasons"))},
            result_path="$.gate_failure",
        )
        rejected = sfn.Fail(self, "RejectedByGate", error=GATE_FAILED_ERROR, cause_path="$.gate_failure.cause")
        notify_rejected = self._task(
            "NotifyRejected", "notify", "$.notification", extra={"outcome": "rejected"}, step="Notify"
        )
        notify_rejected.next(gate_failure_cause)
        gate_failure_cause.next(rejected)

        # Deployment, reachable only through GatePassed.
        deploy = self._task("Deploy", "deploy", "$.deployment")
        # Waits grow with the time a stage has taken (lambdas/common/polling.py), so the history stays bounded.
        wait_endpoint = sfn.Wait(self, "WaitForEndpoint", time=sfn.WaitTime.seconds_path("$.deployment.poll_seconds"))
        describe_endpoint = self._task("DescribeEndpoint", "describe_endpoint", "$.deployment")
        configure_scaling = self._task("ConfigureScaling", "configure_scaling", "$.scaling")
        check_endpoint = self._task("CheckEndpoint", "check_endpoint", "$.endpoint_check")
        endpoint_ready = sfn.Choice(self, "EndpointInService")
        deploy.next(wait_endpoint)
        wait_endpoint.next(describe_endpoint)
        describe_endpoint.next(endpoint_ready)
        endpoint_ready.when(sfn.Condition.string_equals("$.deployment.status", "InService"), configure_scaling)
        endpoint_ready.otherwise(wait_endpoint)
        configure_scaling.next(check_endpoint)
        check_endpoint.next(notify_success)

        deployment_enabled = sfn.Choice(self, "DeploymentEnabled")
        deployment_enabled.when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.run.config.deployment.enabled"),
                sfn.Condition.boolean_equals("$.run.config.deployment.enabled", False),
            ),
            notify_success,
        )
        deployment_enabled.otherwise(deploy)

        gate_passed = sfn.Choice(self, "GatePassed")
        gate_passed.when(sfn.Condition.boolean_equals("$.gate.passed", True), deployment_enabled)
        gate_passed.otherwise(notify_rejected)

        gate = self._task("Gate", "gate", "$.gate")
        register = self._task("Register", "register", "$.model_package")
        gate.next(register)
        register.next(gate_passed)

        # Jobs, in reverse so each stage knows the next one.
        after: sfn.IChainable = gate
        for kind, title in reversed(JOB_STAGES):
            after = self._job_stage(kind, title, after)

        validate = self._task("ValidateInput", "validate", "$.run")
        preflight = self._task("Preflight", "preflight", "$.preflight")
        dry_run = sfn.Choice(self, "DryRun")
        dry_run.when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.run.config.orchestration.dry_run"),
                sfn.Condition.boolean_equals("$.run.config.orchestration.dry_run", True),
            ),
            sfn.Succeed(self, "DryRunSucceeded", comment="Only validation and the preflight were asked for"),
        )
        dry_run.otherwise(after)
        validate.next(preflight)
        preflight.next(dry_run)
        self.start: sfn.IChainable = validate

    def _job_stage(self, kind: str, title: str, next_state: sfn.IChainable) -> sfn.IChainable:
        start = self._task(f"Start{title}", "start_job", f"$.jobs.{kind}", extra={"kind": kind})
        wait = sfn.Wait(self, f"WaitFor{title}", time=sfn.WaitTime.seconds_path(f"$.jobs.{kind}.poll_seconds"))
        describe = self._task(f"Describe{title}", "describe_job", f"$.jobs.{kind}", extra={"kind": kind})
        complete = sfn.Choice(self, f"{title}Complete")
        start.next(wait)
        wait.next(describe)
        describe.next(complete)
        complete.when(sfn.Condition.string_equals(f"$.jobs.{kind}.status", "Completed"), next_state)
        complete.when(sfn.Condition.string_equals(f"$.jobs.{kind}.status", "InProgress"), wait)
        complete.otherwise(wait)
        return start

    def _task(
        self,
        state_id: str,
        verb: str,
        result_path: str,
        *,
        extra: Mapping[str, Any] | None = None,
        step: str | None = None,
        catch_to_cleanup: bool = True,
    ) -> tasks.LambdaInvoke:
        payload = {
            "step": step or state_id,
            **(extra or {}),
            "state": sfn.JsonPath.entire_payload,
            "execution_name": sfn.JsonPath.string_at("$$.Execution.Name"),
        }
        task = tasks.LambdaInvoke(
            self,
            state_id,
            lambda_function=self._functions[verb],
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
            task_timeout=sfn.Timeout.duration(self._props.task_timeout),
        )
        task.add_retry(
            errors=RETRYABLE_ERRORS,
            interval=self._props.retry_interval,
            max_attempts=self._props.retry_attempts,
            backoff_rate=self._props.retry_backoff_rate,
        )
        if catch_to_cleanup:
            task.add_catch(self.cleanup, errors=[sfn.Errors.ALL], result_path="$.error")
        return task
