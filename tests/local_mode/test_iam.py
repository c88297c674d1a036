"""The IAM evaluator: conditions, explicit denies, KMS key policies, request mapping, loud gaps."""

import re

import pytest

from local_mode.iam import catalog
from local_mode.iam.conditions import UnmodeledConditionKey, UnsupportedConditionOperator, evaluate_block
from local_mode.iam.evaluator import PolicyEvaluator
from local_mode.iam.policy import Principal, Request, parse_document
from local_mode.iam.requests import UnmodeledRequest, authorizations
from local_mode.iam.store import build_store, policy_owner

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/other"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111"
ENDPOINT = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/sql"


def session(role=ROLE):
    return Principal.role_session(role, "fn")


def evaluator(identity=None, resources=None):
    return PolicyEvaluator(
        {ROLE: parse_document({"Statement": identity or []}, "identity")},
        {
            owner: parse_document({"Statement": statements}, f"policy of {owner}", resource_policy=True)
            for owner, statements in (resources or {}).items()
        },
        policy_owner,
    )


class FakeView:
    account, region, partition = ACCOUNT, REGION, "aws"

    def __init__(self, tags=None, bucket_key=KEY):
        self.tags = tags or {}
        self.bucket_key = bucket_key

    def sagemaker_tags(self, resource_type, name):
        return self.tags.get((resource_type, name))

    def bucket_kms_key(self, bucket):
        return self.bucket_key

    def object_kms_key(self, bucket, key):
        return self.bucket_key

    def topic_kms_key(self, topic_arn):
        return KEY

    def secret_kms_key(self, secret_id):
        return None

    def secret_arn(self, secret_id):
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}"

    def key_arn(self, key_id):
        return key_id if key_id.startswith("arn:") else f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"

    def function_arn(self, name):
        return name

    def next_model_package_version(self, group):
        return 3


# ---- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block, context, expected",
    [
        (
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            {"iam:PassedToService": "sagemaker.amazonaws.com"},
            True,
        ),
        (
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            {"iam:PassedToService": "lambda.amazonaws.com"},
            False,
        ),
        ({"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}, {}, False),
        ({"StringNotEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}, {}, True),
        ({"StringLike": {"s3:prefix": ["runs/*"]}}, {"s3:prefix": "runs/r1/eval/"}, True),
        ({"StringLike": {"s3:prefix": ["runs/*"]}}, {"s3:prefix": "code/x"}, False),
        ({"Null": {"aws:RequestTag/fine-tune:run-id": "false"}}, {"aws:RequestTag/fine-tune:run-id": "r1"}, True),
        ({"Null": {"aws:RequestTag/fine-tune:run-id": "false"}}, {}, False),
        ({"Null": {"aws:ResourceTag/fine-tune:run-id": "true"}}, {}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": False}, True),
        ({"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}, {}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a"]}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["a", "c"]}, False),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["c"]}}, {"aws:TagKeys": ["a", "c"]}, True),
        (
            {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:1:log-group:*"}},
            {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:1:log-group:/x/y"},
            True,
        ),
        ({"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}, {"cloudwatch:namespace": "Custom"}, False),
    ],
)
def test_condition_operators(block, context, expected):
    assert evaluate_block(block, context) is expected


def test_a_key_local_mode_does_not_model_is_an_error_not_a_pass():
    with pytest.raises(UnmodeledConditionKey, match="aws:SourceIp"):
        evaluate_block({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {})
    with pytest.raises(UnmodeledConditionKey):
        evaluate_block({"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}, {})
    with pytest.raises(UnsupportedConditionOperator):
        evaluate_block({"DateGreaterThan": {"aws:PrincipalArn": "x"}}, {})


# ---- decisions ------------------------------------------------------------------------------------


def test_an_explicit_deny_wins_over_an_allow():
    policies = evaluator(
        identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        resources={
            "arn:aws:s3:::data": [
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "s3:*",
                    "Resource": "arn:aws:s3:::data/*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ]
        },
    )
    secure = policies.decide(Request(session(), "s3:GetObject", "arn:aws:s3:::data/k", {"aws:SecureTransport": True}))
    plain = policies.decide(Request(session(), "s3:GetObject", "arn:aws:s3:::data/k", {"aws:SecureTransport": False}))
    assert secure.allowed
    assert not plain.allowed and plain.explicit_deny and "explicit deny in a resource-based policy" in plain.message


def test_an_implicit_denial_names_principal_action_and_resource():
    decision = evaluator().decide(Request(session(), "sagemaker:UpdateEndpoint", ENDPOINT))
    assert not decision.allowed and not decision.explicit_deny
    assert decision.message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/deploy/fn is not authorized to perform: "
        f"sagemaker:UpdateEndpoint on resource: {ENDPOINT} because no identity-based policy "
        "allows the sagemaker:UpdateEndpoint action"
    )


def test_actions_match_without_case_and_resources_with_it():
    policies = evaluator(
        identity=[
            {
                "Effect": "Allow",
                "Action": "sagemaker:describe*",
                "Resource": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/sql",
            }
        ]
    )
    assert policies.decide(Request(session(), "sagemaker:DescribeEndpoint", ENDPOINT)).allowed
    assert not policies.decide(Request(session(), "sagemaker:DescribeEndpoint", ENDPOINT.upper())).allowed


def test_kms_needs_the_key_policy_to_delegate_to_iam():
    identity = [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY}]
    root = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
    direct = {"Effect": "Allow", "Principal": {"AWS": OTHER_ROLE}, "Action": "kms:Decrypt", "Resource": "*"}
    request = Request(session(), "kms:Decrypt", KEY)
    assert evaluator(identity, {KEY: [root]}).decide(request).allowed
    assert not evaluator([], {KEY: [root]}).decide(request).allowed  # delegated, but IAM grants nothing
    refused = evaluator(identity, {KEY: [direct]}).decide(request)  # IAM allows, the key policy does not
    assert not refused.allowed and "no resource-based policy allows" in refused.message
    assert evaluator([], {KEY: [direct]}).decide(Request(session(OTHER_ROLE), "kms:Decrypt", KEY)).allowed


def test_a_service_principal_is_allowed_only_by_a_statement_naming_it():
    logs = Principal.service_principal("logs.us-east-1.amazonaws.com", ACCOUNT)
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
        "Action": "kms:GenerateDataKey*",
        "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:*"}},
    }
    policies = evaluator(resources={KEY: [statement]})
    context = {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:1:log-group:g"}
    assert policies.decide(Request(logs, "kms:GenerateDataKey", KEY, context)).allowed
    assert not policies.decide(Request(session(), "kms:GenerateDataKey", KEY, context)).allowed


# ---- request mapping --------------------------------------------------------------------------------


def test_update_endpoint_authorizes_the_endpoint_and_the_config():
    view = FakeView(
        tags={
            ("endpoint", "sql"): {"fine-tune:run-id": "r0"},
            ("endpoint-config", "r1-cfg"): {"fine-tune:run-id": "r1"},
        }
    )
    checks = authorizations(
        "sagemaker", "UpdateEndpoint", {"EndpointName": "sql", "EndpointConfigName": "r1-cfg"}, view
    )
    assert [(c.action, c.resource.rsplit(":", 1)[-1]) for c in checks] == [
        ("sagemaker:UpdateEndpoint", "endpoint/sql"),
        ("sagemaker:UpdateEndpoint", "endpoint-config/r1-cfg"),
    ]
    assert checks[1].context["aws:ResourceTag/fine-tune:run-id"] == "r1"


def test_a_create_with_tags_and_a_role_checks_pass_role_and_add_tags():
    params = {"TrainingJobName": "r1-train", "RoleArn": ROLE, "Tags": [{"Key": "fine-tune:run-id", "Value": "r1"}]}
    checks = authorizations("sagemaker", "CreateTrainingJob", params, FakeView())
    actions = [(c.action, c.resource) for c in checks]
    job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/r1-train"
    assert actions == [("sagemaker:CreateTrainingJob", job), ("iam:PassRole", ROLE), ("sagemaker:AddTags", job)]
    assert checks[1].context["iam:PassedToService"] == "sagemaker.amazonaws.com"
    assert checks[0].context["aws:TagKeys"] == ["fine-tune:run-id"]


def test_sse_kms_reads_and_writes_check_the_key_through_s3():
    write = authorizations("s3", "PutObject", {"Bucket": "art", "Key": "runs/a"}, FakeView())
    read = authorizations("s3", "GetObject", {"Bucket": "art", "Key": "runs/a"}, FakeView())
    plain = authorizations("s3", "GetObject", {"Bucket": "logs", "Key": "x"}, FakeView(bucket_key=None))
    assert [c.action for c in write] == ["s3:PutObject", "kms:GenerateDataKey"]
    assert [c.action for c in read] == ["s3:GetObject", "kms:Decrypt"]
    assert read[1].context["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert [c.action for c in plain] == ["s3:GetObject"]
    listing = authorizations("s3", "ListObjectsV2", {"Bucket": "art", "Prefix": "runs/r1/"}, FakeView())
    assert listing[0].context["s3:prefix"] == "runs/r1/"


def test_publishing_to_an_encrypted_topic_needs_the_key():
    checks = authorizations("sns", "Publish", {"TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "m"}, FakeView())
    assert [c.action for c in checks] == ["sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"]


def test_listing_model_packages_authorizes_no_arn_and_a_new_package_its_own():
    listing = authorizations("sagemaker", "ListModelPackages", {"ModelPackageGroupName": "g"}, FakeView())
    assert [(c.action, c.resource) for c in listing] == [("sagemaker:ListModelPackages", "*")]
    create = authorizations(
        "sagemaker",
        "CreateModelPackage",
        {"ModelPackageGroupName": "G", "Tags": [{"Key": "k", "Value": "v"}]},
        FakeView(),
    )
    resources = [(c.action, c.resource.rsplit(":", 1)[-1]) for c in create]
    assert ("sagemaker:CreateModelPackage", "model-package/g/3") in resources
    assert ("sagemaker:CreateModelPackage", "model-package-group/G") in resources
    assert ("sagemaker:AddTags", "model-package/g/3") in resources


def test_an_operation_local_mode_cannot_map_is_an_error():
    with pytest.raises(UnmodeledRequest, match="dynamodb"):
        authorizations("dynamodb", "GetItem", {}, FakeView())
    with pytest.raises(UnmodeledRequest, match=re.escape("s3.PutBucketPolicy")):
        authorizations("s3", "PutBucketPolicy", {"Bucket": "b"}, FakeView())


def test_the_catalog_knows_the_reference():
    entry = catalog.action("sagemaker:createendpoint")
    assert entry.full_name == "sagemaker:CreateEndpoint"
    assert {t.name for t in entry.required_types} == {"endpoint", "endpoint-config"}
    assert "aws:RequestTag/${TagKey}" in entry.condition_keys
    with pytest.raises(catalog.UnknownAction):
        catalog.action("sagemaker:CreateTrainingJobs")
    assert "s3:GetObject" in catalog.actions_matching("s3:Get*")


# ---- the stack's own policies ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed_store(stack_template):
    from moto import mock_aws

    from local_mode.stack import deploy

    stack_name, template = stack_template
    with mock_aws():
        stack = deploy(template, stack_name, REGION)
        return build_store(template, stack.resolver, stack.physical)


@pytest.fixture(scope="module")
def stack_template():
    from pathlib import Path

    from local_mode.stack import synthesize

    return synthesize(cache_dir=Path(__file__).resolve().parents[2] / ".cache" / "local-mode" / "templates")


def test_every_action_in_the_stack_policies_exists(deployed_store):
    assert deployed_store.unknown_actions() == []


def test_every_condition_key_in_the_stack_policies_is_modeled(deployed_store):
    from local_mode.iam.conditions import is_modeled

    keys = {
        key
        for statements in list(deployed_store.identity.values()) + list(deployed_store.resources.values())
        for statement in statements
        for entries in (statement.conditions or {}).values()
        for key in entries
    }
    assert keys and all(is_modeled(key) for key in keys), sorted(key for key in keys if not is_modeled(key))


# ---- a function's environment under the stack's key ----------------------------------------------


def _function_id(template, verb):
    [function_id] = [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("Handler") == f"{verb}.handler"
    ]
    return function_id


def _without_environment_grant(template, verb):
    """The template with the statement that lets `verb`'s role decrypt its environment removed."""
    import copy

    template = copy.deepcopy(template)
    role_id = template["Resources"][_function_id(template, verb)]["Properties"]["Role"]["Fn::GetAtt"][0]
    removed = 0
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy" or {"Ref": role_id} not in resource["Properties"]["Roles"]:
            continue
        statements = resource["Properties"]["PolicyDocument"]["Statement"]
        kept = [s for s in statements if not (s["Action"] == "kms:Decrypt" and "lambda." in str(s.get("Condition")))]
        removed += len(statements) - len(kept)
        resource["Properties"]["PolicyDocument"]["Statement"] = kept
    assert removed == 1
    return template


def _invoke_deployed(template, stack_name, verb):
    """Deploy `template` in moto and invoke `verb`'s function as Step Functions would (one attempt)."""
    import boto3
    from botocore.config import Config
    from moto import mock_aws

    from local_mode import moto_patches
    from local_mode.iam import AccountIam
    from local_mode.lambda_invoker import LambdaInvoker
    from local_mode.stack import deploy

    with mock_aws():
        stack = deploy(template, stack_name, REGION)
        account_iam = AccountIam(template, stack)
        invoker = LambdaInvoker(
            REGION, identity=account_iam.lambda_identity, environment_denial=account_iam.environment_denial
        )
        with moto_patches.installed(invoker, jobs=None, endpoints=None), invoker:
            # One attempt: botocore retries a 502 as a server error.
            client = boto3.client("lambda", region_name=REGION, config=Config(retries={"total_max_attempts": 1}))
            name = stack.physical[_function_id(template, verb)].name
            response = client.invoke(FunctionName=name, Payload=b'{"endpoint_name": "sql"}')
        return response, invoker.invocations, account_iam.summary()


def test_every_function_role_may_decrypt_its_environment(stack_template):
    from moto import mock_aws
    from moto.awslambda.models import lambda_backends

    from local_mode.iam import AccountIam
    from local_mode.stack import deploy

    stack_name, template = stack_template
    with mock_aws():
        stack = deploy(template, stack_name, REGION)
        account_iam = AccountIam(template, stack)
        encrypted = [info for info in stack.functions.values() if info.kms_key_arn]
        assert len(encrypted) == 12  # every workflow function (the CDK's provider keeps Lambda's key)
        backend = lambda_backends[stack.account][REGION]
        for info in encrypted:
            assert account_iam.environment_denial(backend.get_function(info.name)) is None, info.name


def test_a_role_that_cannot_decrypt_the_environment_fails_the_invocation(stack_template):
    from botocore.exceptions import ClientError

    stack_name, template = stack_template
    with pytest.raises(ClientError) as raised:
        _invoke_deployed(_without_environment_grant(template, "describe_endpoint"), stack_name, "describe_endpoint")
    error = raised.value.response["Error"]
    assert error["Code"] == "KMSAccessDeniedException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert "unable to decrypt the environment variables" in error["Message"]
    assert "is not authorized to perform: kms:Decrypt" in error["Message"]


# ---- Cleanup's dead-letter queue -------------------------------------------------------------------


def _without_statement(template, verb, action):
    """The template without the statements of `verb`'s role policy that allow `action`."""
    import copy

    template = copy.deepcopy(template)
    role_id = template["Resources"][_function_id(template, verb)]["Properties"]["Role"]["Fn::GetAtt"][0]
    removed = 0
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]:
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            kept = [
                s for s in statements if action not in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
            ]
            removed += len(statements) - len(kept)
            resource["Properties"]["PolicyDocument"]["Statement"] = kept
    assert removed == 1
    return template


def _failed_ending_delivered(template, stack_name, tmp_path):
    """Deliver a FAILED execution's event to the stack's rules, with a Cleanup handler that raises.

    Returns the deliveries and the messages found in the dead-letter queue.
    """
    import boto3
    from moto import mock_aws

    from local_mode import moto_patches
    from local_mode.eventbridge import ExecutionEndings, status_change_event
    from local_mode.iam import AccountIam
    from local_mode.lambda_invoker import LambdaInvoker
    from local_mode.stack import deploy

    (tmp_path / "cleanup.py").write_text("def handler(event, context):\n    raise RuntimeError('cleanup broke')\n")
    with mock_aws():
        stack = deploy(template, stack_name, REGION)
        account_iam = AccountIam(template, stack)
        invoker = LambdaInvoker(
            REGION,
            lambdas_dir=tmp_path,
            identity=account_iam.lambda_identity,
            environment_denial=account_iam.environment_denial,
        )
        with moto_patches.installed(invoker, jobs=None, endpoints=None), invoker:
            endings = ExecutionEndings(REGION, stack.account, stack.state_machine_arn, stack.rules, account_iam)
            endings.start()
            try:
                description = {
                    "executionArn": stack.state_machine_arn.replace(":stateMachine:", ":execution:") + ":run-1",
                    "stateMachineArn": stack.state_machine_arn,
                    "name": "run-1",
                    "status": "FAILED",
                }
                deliveries = endings.deliver(status_change_event(description, stack.account, REGION))
            finally:
                endings.stop()
        [queue_id] = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"]
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.get_queue_url(QueueName=stack.physical[queue_id].attributes["QueueName"])["QueueUrl"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        return deliveries, messages.get("Messages", [])


def test_a_failed_asynchronous_cleanup_lands_in_the_dead_letter_queue(stack_template, tmp_path):
    import json

    stack_name, template = stack_template
    [delivery], messages = _failed_ending_delivered(template, stack_name, tmp_path)
    assert delivery["error"] and "queue" in delivery["dead_letter"]  # the invocation failed
    assert "error" not in delivery["dead_letter"]
    [message] = messages
    assert json.loads(message["Body"])["detail"]["status"] == "FAILED"
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"] == "cleanup broke"


def test_a_role_that_may_not_send_to_the_dead_letter_queue_loses_the_event(stack_template, tmp_path):
    stack_name, template = stack_template
    [delivery], messages = _failed_ending_delivered(
        _without_statement(template, "cleanup", "sqs:SendMessage"), stack_name, tmp_path
    )
    assert "is not authorized to perform: sqs:SendMessage" in delivery["dead_letter"]["error"]
    assert messages == []
