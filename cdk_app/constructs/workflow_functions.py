"""The orchestration Lambdas: one function per verb, each with its own least-privilege role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_app.constructs.dead_letters import dead_letter_queue, grant_dead_letter_key
from cdk_app.constructs.nag import acknowledge_runtime
from cdk_app.constructs.notification import NotificationTopic
from cdk_app.constructs.sagemaker_role import SageMakerExecutionRole
from cdk_app.constructs.scanner_exemptions import exempt
from cdk_app.constructs.storage import FineTuningStorage
from cdk_app.contract import JOB_APIS, NAME_SUFFIXES, RUN_ID_TAG, RUNS_PREFIX, STACK_TAG

# Verb -> one line on what it does (the function's description).
VERBS: Mapping[str, str] = {
    "validate": "Checks the execution input and resolves names, paths and defaults",
    "preflight": "Finds every problem of the run (quotas, inputs, base model, time) before a job starts",
    "start_job": "Starts (or adopts) a prepare, train, evaluate or serving check SageMaker job",
    "describe_job": "Reports the status of a SageMaker job (and a refused data set)",
    "gate": "Compares evaluation metrics with the gate's thresholds",
    "register": "Registers the model package as Approved or Rejected",
    "deploy": "Creates or updates the serving endpoint (TGI or vLLM) and its alarms",
    "describe_endpoint": "Reports the status of the endpoint",
    "configure_scaling": "Registers the endpoint's variant for auto scaling once it is InService",
    "check_endpoint": "Compares live endpoint answers with the evaluated predictions",
    "notify": "Publishes the run's outcome to the notification topic",
    "cleanup": "Stops this run's jobs and removes endpoint resources that never served",
}

# Verbs a caller invokes asynchronously: the ExecutionEnded rule (workflow.py) hands Cleanup every
# execution that did not succeed. Their events that still fail after Lambda's retries go to the
# dead-letter queue; Step Functions invokes every other verb synchronously and handles its errors.
ASYNCHRONOUS_VERBS = frozenset({"cleanup"})

# Name suffixes of the SageMaker resources a run creates (docs/workflow-contract.md, "Names").
JOB_SUFFIXES = {
    f"{api}-job": [f"*{NAME_SUFFIXES[kind]}" for kind, kind_api in JOB_APIS.items() if kind_api == api]
    for api in ("processing", "training")
}
# Every resource a run creates carries its run id and the stack that owns it (RUN_ID_TAG,
# STACK_TAG); IAM holds each function to resources of its own stack (docs/workflow-contract.md, "Names").
RUNS = RUNS_PREFIX + "*"
# The endpoint alarms Deploy creates (lambdas/common/alarms.py) and those target tracking creates.
ALARM_NAMES = ["*-invocation-5xx-errors", "*-model-latency"]
TARGET_TRACKING_ALARMS = "TargetTracking-endpoint/*"
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_ROLE = f"aws-service-role/{AUTOSCALING_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"

POWERTOOLS_ACCOUNT = "017000801446"


@dataclass
class WorkflowFunctionsProps:
    """`code`: the `lambdas/` folder as Lambda code. `environment`: the contract's Lambda environment."""

    code: lambda_.Code
    environment: Mapping[str, str]
    model_package_group_name: str
    stack_tag: str
    powertools_layer_version: int
    input_bucket_names: tuple[str, ...] = ()
    hf_token_secret_arn: str = ""
    timeout: Duration = Duration.minutes(5)  # noqa: RUF009 - a Duration is immutable, one shared default is safe
    memory_size: int = 512
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    runtime: lambda_.Runtime | None = None


class WorkflowFunctions(Construct):
    """Creates every handler of the workflow; `functions[verb]` is the function for that verb."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: FineTuningStorage,
        sagemaker_role: SageMakerExecutionRole,
        notification: NotificationTopic,
        props: WorkflowFunctionsProps,
    ) -> None:
        super().__init__(scope, construct_id)
        self._stack = Stack.of(self)
        self._group_name = props.model_package_group_name
        # Creating needs both tags, this stack's value for the stack tag; changing, stopping, invoking
        # or deleting needs a resource this stack tagged.
        self._creating = {
            "Null": {f"aws:RequestTag/{RUN_ID_TAG}": "false"},
            "StringEquals": {f"aws:RequestTag/{STACK_TAG}": props.stack_tag},
        }
        self._owned = {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": props.stack_tag}}
        layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            Stack.of(self).format_arn(
                service="lambda",
                account=POWERTOOLS_ACCOUNT,
                resource="layer",
                resource_name=f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{props.powertools_layer_version}",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
        )
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetterQueue", storage.key)
        self.functions: dict[str, lambda_.Function] = {}
        for verb, description in VERBS.items():
            self.functions[verb] = self._function(verb, description, props, layer, storage)

        fn = self.functions
        # S3: only what each handler reads or writes, and only under runs/.
        storage.grant_read_write_artifacts(fn["validate"])  # writes runs/<run_id>/input.json
        storage.grant_read_artifacts(fn["gate"], RUNS)  # metrics of this run and of production
        storage.grant_read_artifacts(fn["register"], RUNS)  # model data the package points to
        storage.grant_list_artifacts(fn["deploy"], RUNS)  # size of the merged model
        storage.grant_read_artifacts(fn["check_endpoint"], RUNS)  # evaluated predictions
        storage.grant_read_artifacts(fn["describe_job"], RUNS)  # the data report of a finished prepare job
        notification.grant_publish(fn["notify"])
        # Preflight: inputs exist (reads the data bucket, run artifacts and configured input buckets),
        # the SageMaker role may read them (IAM's simulation), quotas, the serving endpoint, the token.
        storage.grant_read_data(fn["preflight"])
        storage.grant_read_artifacts(fn["preflight"], RUNS)
        for bucket in props.input_bucket_names:
            self._allow(fn["preflight"], ["s3:GetObject"], [f"arn:{Aws.PARTITION}:s3:::{bucket}/*"])
            self._allow(fn["preflight"], ["s3:ListBucket"], [f"arn:{Aws.PARTITION}:s3:::{bucket}"])
        self._allow(fn["preflight"], ["servicequotas:ListServiceQuotas"], ["*"])
        self._allow(fn["preflight"], ["iam:SimulatePrincipalPolicy"], [sagemaker_role.role_arn])
        self._allow(fn["preflight"], ["sagemaker:DescribeEndpoint"], [self._arn("endpoint", "*")])
        if props.hf_token_secret_arn:
            self._allow(fn["preflight"], ["secretsmanager:GetSecretValue"], [props.hf_token_secret_arn])
        sagemaker_role.grant_pass_role(fn["start_job"])
        sagemaker_role.grant_pass_role(fn["deploy"])

        self._allow(
            fn["start_job"],
            ["sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob"],
            self._job_arns(),
            self._creating,
        )
        self._allow(fn["start_job"], ["sagemaker:AddTags"], self._job_arns(), self._creating)
        # A job found under the run's name is adopted only when its tags say it is this run's.
        self._allow(fn["start_job"], ["sagemaker:ListTags"], self._job_arns())
        self._allow(fn["start_job"], _DESCRIBE_JOBS, self._job_arns())
        self._allow(fn["describe_job"], _DESCRIBE_JOBS, self._job_arns())
        # Listing is authorized against no ARN (the group is a filter of the request, not its resource).
        self._allow(fn["gate"], ["sagemaker:ListModelPackages"], ["*"])
        self._allow(fn["gate"], ["sagemaker:DescribeModelPackage"], [self._package_arns()])
        # Production is the package the endpoint serves, recorded in a tag on the endpoint.
        self._allow(fn["gate"], ["sagemaker:DescribeEndpoint", "sagemaker:ListTags"], [self._arn("endpoint", "*")])
        self._allow(
            fn["register"],
            ["sagemaker:CreateModelPackage", "sagemaker:AddTags"],
            [self._group_arn(), self._package_arns()],
        )
        self._allow(
            fn["register"],
            ["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage", "sagemaker:DescribeModelPackageGroup"],
            [self._group_arn(), self._package_arns()],
        )
        self._allow(fn["register"], ["sagemaker:ListModelPackages"], ["*"])
        self._allow(
            fn["deploy"],
            ["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint"],
            self._serving_arns(),
            self._creating,
        )
        self._allow(fn["deploy"], ["sagemaker:AddTags"], self._serving_arns(), self._creating)
        # UpdateEndpoint authorizes the endpoint and the endpoint config it names.
        self._allow(fn["deploy"], ["sagemaker:UpdateEndpoint"], self._endpoint_and_config_arns(), self._owned)
        self._allow(fn["deploy"], _DESCRIBE_SERVING, self._serving_arns())
        self._allow(fn["deploy"], ["sagemaker:ListTags"], [self._arn("endpoint", "*")])
        # Endpoint storage is encrypted with the key: SageMaker creates grants for its own resources.
        self._allow(
            fn["deploy"],
            ["kms:CreateGrant", "kms:DescribeKey"],
            [storage.key.key_arn],
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )
        self._allow(fn["describe_endpoint"], ["sagemaker:DescribeEndpoint"], [self._arn("endpoint", "*")])
        self._allow(fn["check_endpoint"], ["sagemaker:InvokeEndpoint"], [self._arn("endpoint", "*")], self._owned)
        self._allow(fn["check_endpoint"], ["sagemaker:DescribeEndpoint"], [self._arn("endpoint", "*")])
        # A checked endpoint records the package it now serves (the gate's production).
        self._allow(fn["check_endpoint"], ["sagemaker:AddTags"], [self._arn("endpoint", "*")], self._owned)
        # A package approved by a run that then failed is set to Rejected.
        self._allow(fn["cleanup"], ["sagemaker:UpdateModelPackage"], [self._package_arns()])
        self._allow(fn["cleanup"], _DESCRIBE_JOBS + _DESCRIBE_SERVING, self._job_arns() + self._serving_arns())
        self._allow(
            fn["cleanup"], ["sagemaker:StopProcessingJob", "sagemaker:StopTrainingJob"], self._job_arns(), self._owned
        )
        self._allow(
            fn["cleanup"],
            ["sagemaker:DeleteEndpoint", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
            self._serving_arns(),
            self._owned,
        )
        # Returns an endpoint this run was updating to the config it served before.
        self._allow(fn["cleanup"], ["sagemaker:UpdateEndpoint"], self._endpoint_and_config_arns(), self._owned)
        self._allow(fn["cleanup"], ["sagemaker:ListTags"], [self._arn("endpoint", "*")])

        # Alarms on each endpoint (Deploy creates them; Cleanup deletes those of endpoints it deletes).
        self._allow(fn["deploy"], ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"], self._alarm_arns())
        self._allow(fn["cleanup"], ["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"], self._alarm_arns())
        # Auto scaling: ConfigureScaling registers the variant; Deploy removes it before an update that
        # changes the instance type; Cleanup removes it with an endpoint it deletes, or restores it.
        self._allow_autoscaling(fn["configure_scaling"], ["RegisterScalableTarget", "PutScalingPolicy"])
        self._allow_autoscaling(fn["deploy"], ["DeregisterScalableTarget"])
        self._allow_autoscaling(
            fn["cleanup"], ["DeregisterScalableTarget", "RegisterScalableTarget", "PutScalingPolicy"]
        )

    def _allow_autoscaling(self, function: lambda_.Function, writes: list[str]) -> None:
        """Application Auto Scaling of SageMaker variants, and what it checks on the caller's behalf."""
        self._allow(
            function,
            [f"application-autoscaling:{action}" for action in writes],
            ["*"],
            {
                "StringEquals": {
                    "application-autoscaling:service-namespace": "sagemaker",
                    "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
                }
            },
        )
        self._allow(
            function,
            ["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies"],
            ["*"],
        )
        # Target tracking policies create and delete their own CloudWatch alarms as the caller.
        self._allow(
            function,
            ["cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
            [self._alarm_arn(TARGET_TRACKING_ALARMS)],
        )
        if "RegisterScalableTarget" in writes:
            self._allow(function, ["sagemaker:DescribeEndpoint"], [self._arn("endpoint", "*")])
            self._allow(
                function, ["sagemaker:UpdateEndpointWeightsAndCapacities"], [self._arn("endpoint", "*")], self._owned
            )
            # The first registration creates Application Auto Scaling's service-linked role.
            self._allow(
                function,
                ["iam:CreateServiceLinkedRole"],
                [self._stack.format_arn(service="iam", region="", resource="role", resource_name=AUTOSCALING_ROLE)],
                {"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
            )

    def _function(
        self,
        verb: str,
        description: str,
        props: WorkflowFunctionsProps,
        layer: lambda_.ILayerVersion,
        storage: FineTuningStorage,
    ) -> lambda_.Function:
        name = "".join(part.capitalize() for part in verb.split("_"))
        asynchronous = verb in ASYNCHRONOUS_VERBS
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            encryption_key=storage.key,
            retention=props.log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the {verb} step of the fine-tuning workflow",
        )
        function = lambda_.Function(
            self,
            name,
            description=description,
            runtime=props.runtime or lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.X86_64,
            handler=f"{verb}.handler",
            code=props.code,
            role=role,
            layers=[layer],
            timeout=props.timeout,
            memory_size=props.memory_size,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment=dict(props.environment),
            environment_encryption=storage.key,
            dead_letter_queue=self.dead_letter_queue if asynchronous else None,
        )
        # Logs go only to the function's own group (no AWSLambdaBasicExecutionRole).
        log_group.grant_write(role)
        self._grant_environment_key(role, storage.key)
        if asynchronous:
            grant_dead_letter_key(role, storage.key)
        acknowledge_runtime(function)
        exempt(function, "CKV_AWS_115", "CKV_AWS_117", *(() if asynchronous else ("CKV_AWS_116",)))
        return function

    @staticmethod
    def _grant_environment_key(role: iam.IGrantable, key: kms.IKey) -> None:
        """Decrypt the function's environment, only through Lambda.

        Lambda also makes a KMS grant for the role when the function is deployed; with this policy the
        function does not depend on that grant (one that a re-created role no longer matches).
        """
        iam.Grant.add_to_principal(
            grantee=role,
            actions=["kms:Decrypt"],
            resource_arns=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"lambda.{Aws.REGION}.amazonaws.com"}},
        )

    # --- SageMaker ARNs this workflow's functions may touch -------------------------------------

    def _arn(self, resource: str, name: str) -> str:
        return self._stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    def _job_arns(self) -> list[str]:
        return [self._arn(kind, suffix) for kind, suffixes in JOB_SUFFIXES.items() for suffix in suffixes]

    def _serving_arns(self) -> list[str]:
        return [self._arn("model", "*-model"), self._arn("endpoint-config", "*-cfg"), self._arn("endpoint", "*")]

    def _alarm_arn(self, name: str) -> str:
        return self._stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )

    def _alarm_arns(self) -> list[str]:
        return [self._alarm_arn(name) for name in ALARM_NAMES]

    def _endpoint_and_config_arns(self) -> list[str]:
        return [self._arn("endpoint", "*"), self._arn("endpoint-config", "*-cfg")]

    # SageMaker writes model package group names in lower case in ARNs.
    def _group_arn(self) -> str:
        return self._arn("model-package-group", self._group_name.lower())

    def _package_arns(self) -> str:
        return self._arn("model-package", f"{self._group_name.lower()}/*")

    @staticmethod
    def _allow(
        function: lambda_.Function, actions: list[str], resources: list[str], conditions: dict | None = None
    ) -> None:
        function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions))

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        for function in self.functions.values():
            function.grant_invoke(grantee)


_DESCRIBE_JOBS = ["sagemaker:DescribeProcessingJob", "sagemaker:DescribeTrainingJob"]
_DESCRIBE_SERVING = ["sagemaker:DescribeModel", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeEndpoint"]
