"""Security controls of the synthesized stack (docs/security.md)."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match, Template

CONTRACT_ENVIRONMENT = {
    "ARTIFACTS_BUCKET",
    "DATA_BUCKET",
    "KMS_KEY_ARN",
    "SAGEMAKER_ROLE_ARN",
    "TRAINING_IMAGE_URI",
    "INFERENCE_IMAGE_URI",
    "VLLM_IMAGE_URI",
    "STACK_TAG",
    "INPUT_BUCKETS",
    "STATE_MACHINE_TIMEOUT_SECONDS",
    "CODE_S3_URI",
    "MODEL_PACKAGE_GROUP_NAME",
    "TOPIC_ARN",
    "DEFAULTS_JSON",
    "SUBNET_IDS",
    "SECURITY_GROUP_IDS",
    "HF_TOKEN_SECRET_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
}
# What local mode can resolve without CloudFormation.
RESOLVABLE_INTRINSICS = {"Ref", "Fn::GetAtt", "Fn::FindInMap", "Fn::Join", "Fn::Sub"}
PSEUDO_PARAMETERS = {
    "AWS::Region",
    "AWS::Partition",
    "AWS::AccountId",
    "AWS::StackName",
    "AWS::StackId",
    "AWS::URLSuffix",
}


def statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return resource["Properties"]["PolicyDocument"]["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(synthesized, role_logical_id: str) -> list[dict[str, Any]]:
    found = []
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"].get("Roles", []):
            found.extend(statements(policy))
    return found


def actions_of(statement_list: list[dict[str, Any]], prefix: str = "") -> set[str]:
    return {action for s in statement_list for action in as_list(s["Action"]) if action.startswith(prefix)}


def intrinsics(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.startswith("Fn::") or key == "Ref":
                found.add(key)
            found |= intrinsics(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= intrinsics(inner)
    return found


def test_key_rotates(synthesized):
    Template.from_json(synthesized.template).has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_buckets_block_public_access_are_versioned_logged_encrypted_and_retained(synthesized):
    key_id, _ = synthesized.only("AWS::KMS::Key")
    buckets = synthesized.resources("AWS::S3::Bucket")
    assert len(buckets) == 3
    log_buckets = [name for name, b in buckets.items() if "LoggingConfiguration" not in b["Properties"]]
    assert len(log_buckets) == 1
    [log_bucket] = log_buckets
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain", name
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, name
        [encryption] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        sse = encryption["ServerSideEncryptionByDefault"]
        if name == log_bucket:
            assert sse == {"SSEAlgorithm": "AES256"}
        else:
            assert sse == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_bucket}


def test_buckets_and_topic_deny_requests_without_tls(synthesized):
    def denies_insecure(policy_statements):
        return any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy_statements
        )

    policies = synthesized.resources("AWS::S3::BucketPolicy")
    covered = {p["Properties"]["Bucket"]["Ref"] for p in policies.values() if denies_insecure(statements(p))}
    assert covered == set(synthesized.resources("AWS::S3::Bucket"))
    [topic_policy] = synthesized.resources("AWS::SNS::TopicPolicy").values()
    assert denies_insecure(statements(topic_policy))


def test_topic_and_every_log_group_are_encrypted_with_the_key(synthesized):
    key_id, _ = synthesized.only("AWS::KMS::Key")
    key_arn = {"Fn::GetAtt": [key_id, "Arn"]}
    _, topic = synthesized.only("AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == key_arn
    log_groups = synthesized.resources("AWS::Logs::LogGroup")
    assert len(log_groups) == 14  # twelve functions, the state machine, the code deployment
    for name, group in log_groups.items():
        assert group["Properties"]["KmsKeyId"] == key_arn, name


def test_key_lets_cloudwatch_logs_use_it_only_for_log_groups(synthesized):
    _, key = synthesized.only("AWS::KMS::Key")
    [logs_statement] = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowCloudWatchLogs"]
    assert "ArnLike" in logs_statement["Condition"]
    assert "kms:EncryptionContext:aws:logs:arn" in logs_statement["Condition"]["ArnLike"]


def test_no_managed_full_access_policies(synthesized):
    for name, role in synthesized.resources("AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert "FullAccess" not in json.dumps(arn), name
            # Only the CDK's BucketDeployment provider has a managed policy: basic Lambda logging.
            assert "AWSLambdaBasicExecutionRole" in json.dumps(arn), name


def test_pass_role_only_for_the_sagemaker_role_and_only_to_sagemaker(synthesized):
    sagemaker_role = next(
        name
        for name, role in synthesized.resources("AWS::IAM::Role").items()
        if "sagemaker.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    )
    holders = set()
    for name, policy in synthesized.resources("AWS::IAM::Policy").items():
        for statement in statements(policy):
            if as_list(statement["Action"]) == ["iam:SimulatePrincipalPolicy"]:
                # The preflight asks IAM whether the SageMaker role may read the run's inputs.
                assert statement["Resource"] == {"Fn::GetAtt": [sagemaker_role, "Arn"]}, name
                continue
            if as_list(statement["Action"]) == ["iam:CreateServiceLinkedRole"]:
                # Only Application Auto Scaling's role for SageMaker endpoints, only for that service.
                assert statement["Condition"] == {
                    "StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
                }, name
                assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in json.dumps(
                    statement["Resource"]
                ), name
                continue
            if any(a.startswith("iam:") or a == "*" for a in as_list(statement["Action"])):
                assert as_list(statement["Action"]) == ["iam:PassRole"], name
                assert statement["Resource"] == {"Fn::GetAtt": [sagemaker_role, "Arn"]}, name
                assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}, (
                    name
                )
                holders.update(r["Ref"] for r in policy["Properties"]["Roles"])
    functions = synthesized.functions()
    assert holders == {functions[v]["Properties"]["Role"]["Fn::GetAtt"][0] for v in ("start_job", "deploy")}


def test_each_function_has_only_the_sagemaker_actions_it_needs(synthesized):
    expected = {
        "validate": set(),
        "preflight": {"DescribeEndpoint"},
        "start_job": {
            "CreateProcessingJob",
            "CreateTrainingJob",
            "AddTags",
            "DescribeProcessingJob",
            "DescribeTrainingJob",
            "ListTags",
        },
        "describe_job": {"DescribeProcessingJob", "DescribeTrainingJob"},
        "gate": {"ListModelPackages", "DescribeModelPackage", "DescribeEndpoint", "ListTags"},
        "register": {
            "CreateModelPackage",
            "AddTags",
            "DescribeModelPackage",
            "ListModelPackages",
            "UpdateModelPackage",
            "DescribeModelPackageGroup",
        },
        "deploy": {
            "CreateModel",
            "CreateEndpointConfig",
            "CreateEndpoint",
            "AddTags",
            "UpdateEndpoint",
            "DescribeModel",
            "DescribeEndpointConfig",
            "DescribeEndpoint",
            "ListTags",
        },
        "describe_endpoint": {"DescribeEndpoint"},
        "configure_scaling": {"DescribeEndpoint", "UpdateEndpointWeightsAndCapacities"},
        "check_endpoint": {"InvokeEndpoint", "DescribeEndpoint", "AddTags"},
        "notify": set(),
        "cleanup": {
            "DescribeProcessingJob",
            "DescribeTrainingJob",
            "DescribeModel",
            "DescribeEndpointConfig",
            "DescribeEndpoint",
            "StopProcessingJob",
            "StopTrainingJob",
            "DeleteEndpoint",
            "DeleteEndpointConfig",
            "DeleteModel",
            "UpdateEndpoint",
            "ListTags",
            "UpdateEndpointWeightsAndCapacities",
            "UpdateModelPackage",
        },
    }
    functions = synthesized.functions()
    assert set(functions) == set(expected)
    for verb, function in functions.items():
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        granted = {a.removeprefix("sagemaker:") for a in actions_of(role_statements(synthesized, role), "sagemaker:")}
        assert granted == expected[verb], verb
        for statement in role_statements(synthesized, role):
            assert "*" not in as_list(statement["Action"]), verb
            if any(
                a.startswith(
                    (
                        "application-autoscaling:Register",
                        "application-autoscaling:Put",
                        "application-autoscaling:Deregister",
                    )
                )
                for a in as_list(statement["Action"])
            ):
                assert (
                    statement["Condition"]["StringEquals"]["application-autoscaling:service-namespace"] == "sagemaker"
                ), (verb, statement)
            actions = as_list(statement["Action"])
            stack_id = {"Ref": "AWS::StackId"}
            if any(a.startswith("sagemaker:Create") for a in actions) and "ModelPackage" not in json.dumps(statement):
                # Creating needs the run's tag and this stack's value of the stack tag.
                assert statement["Condition"]["Null"] == {"aws:RequestTag/fine-tune:run-id": "false"}, verb
                assert statement["Condition"]["StringEquals"] == {"aws:RequestTag/fine-tune:stack": stack_id}, verb
            elif any(
                a.startswith(
                    ("sagemaker:Stop", "sagemaker:Delete", "sagemaker:UpdateEndpoint", "sagemaker:InvokeEndpoint")
                )
                for a in actions
            ) and "ModelPackage" not in json.dumps(statement):
                # Changing, stopping, invoking or deleting needs a resource this stack tagged.
                assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/fine-tune:stack": stack_id}}, (
                    verb,
                    statement,
                )
    # S3: exact actions, writes only by validate, everything under runs/.
    s3_actions = {
        verb: actions_of(role_statements(synthesized, f["Properties"]["Role"]["Fn::GetAtt"][0]), "s3:")
        for verb, f in functions.items()
    }
    assert s3_actions["validate"] == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket"}
    assert s3_actions["deploy"] == {"s3:ListBucket"}
    # describe_job reads a finished prepare job's data report (a refused data set fails the run).
    for verb in ("gate", "register", "check_endpoint", "describe_job"):
        assert s3_actions[verb] == {"s3:GetObject", "s3:ListBucket"}, verb
    for verb in ("start_job", "describe_endpoint", "notify", "cleanup"):
        assert s3_actions[verb] == set(), verb
    # The preflight reads inputs wherever a run may take them from: the data bucket and run artifacts.
    assert s3_actions["preflight"] == {"s3:GetObject", "s3:ListBucket"}
    for verb, function in functions.items():
        if verb == "preflight":
            continue
        for statement in role_statements(synthesized, function["Properties"]["Role"]["Fn::GetAtt"][0]):
            if "s3:GetObject" in as_list(statement["Action"]):
                assert json.dumps(statement["Resource"]).endswith('"/runs/*"]]}'), verb
            if "s3:ListBucket" in as_list(statement["Action"]):
                assert statement["Condition"] == {"StringLike": {"s3:prefix": ["runs/*"]}}, verb
    notify_role = functions["notify"]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert "sns:Publish" in actions_of(role_statements(synthesized, notify_role))
    assert all(
        "sns:" not in json.dumps(role_statements(synthesized, f["Properties"]["Role"]["Fn::GetAtt"][0]))
        for verb, f in functions.items()
        if verb != "notify"
    )


def test_sagemaker_role_is_scoped_and_has_no_network_or_secret_access_by_default(synthesized):
    role_id = next(
        name
        for name, role in synthesized.resources("AWS::IAM::Role").items()
        if "sagemaker.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    )
    granted = role_statements(synthesized, role_id)
    actions = actions_of(granted)
    assert not any(a.startswith(("ec2:", "secretsmanager:")) for a in actions)
    assert {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "s3:GetObject",
        "s3:PutObject",
        "kms:Decrypt",
        "kms:CreateGrant",
        "logs:PutLogEvents",
        "cloudwatch:PutMetricData",
    } <= actions
    assert not any(a.startswith("sagemaker:") for a in actions)
    for statement in granted:
        if statement["Resource"] == "*":
            assert set(as_list(statement["Action"])) <= {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}
        if "cloudwatch:PutMetricData" in as_list(statement["Action"]):
            assert statement["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
        if "s3:PutObject" in as_list(statement["Action"]):
            assert json.dumps(statement["Resource"]).endswith('"/runs/*"]]}')


def test_vpc_and_token_secret_add_only_their_own_permissions(synthesized_in_vpc):
    role_id = next(
        name
        for name, role in synthesized_in_vpc.resources("AWS::IAM::Role").items()
        if "sagemaker.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    )
    granted = role_statements(synthesized_in_vpc, role_id)
    assert "ec2:CreateNetworkInterface" in actions_of(granted)
    [secret] = [s for s in granted if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert secret["Resource"] == "arn:aws:secretsmanager:us-east-1:111122223333:secret:hf-token-AbCdEf"
    env = synthesized_in_vpc.functions()["start_job"]["Properties"]["Environment"]["Variables"]
    assert env["SUBNET_IDS"] == "subnet-0123456789abcdef0,subnet-0fedcba9876543210"
    assert env["SECURITY_GROUP_IDS"] == "sg-0123456789abcdef0"
    assert env["HF_TOKEN_SECRET_ARN"] == secret["Resource"]
    Template.from_json(synthesized_in_vpc.template).has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-team@example.com"}
    )


def test_state_machine_logs_everything_encrypted_and_traces(synthesized):
    _, machine = synthesized.only("AWS::StepFunctions::StateMachine")
    props = machine["Properties"]
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_function_environments_are_encrypted_with_the_key_each_role_decrypts_through_lambda(synthesized):
    key_id, _ = synthesized.only("AWS::KMS::Key")
    key_arn = {"Fn::GetAtt": [key_id, "Arn"]}
    through_lambda = {
        "StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["lambda.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}
    }
    for verb, function in synthesized.functions().items():
        assert function["Properties"]["KmsKeyArn"] == key_arn, verb
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        assert {
            "Action": "kms:Decrypt",
            "Condition": through_lambda,
            "Effect": "Allow",
            "Resource": key_arn,
        } in role_statements(synthesized, role), verb


def test_only_cleanup_invoked_asynchronously_has_an_encrypted_tls_only_dead_letter_queue(synthesized):
    key_id, _ = synthesized.only("AWS::KMS::Key")
    queue_id, queue = synthesized.only("AWS::SQS::Queue")
    assert queue["Properties"] == {
        "KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
        "MessageRetentionPeriod": 14 * 86400,
    }
    [policy] = synthesized.resources("AWS::SQS::QueuePolicy").values()
    assert policy["Properties"]["Queues"] == [{"Ref": queue_id}]
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    } in statements(policy)
    # The ExecutionEnded rule is the one asynchronous caller, and it targets Cleanup.
    [rule] = synthesized.resources("AWS::Events::Rule").values()
    functions = synthesized.functions()
    cleanup_id = next(
        name for name, r in synthesized.resources("AWS::Lambda::Function").items() if r is functions["cleanup"]
    )
    assert [target["Arn"] for target in rule["Properties"]["Targets"]] == [{"Fn::GetAtt": [cleanup_id, "Arn"]}]
    for verb, function in functions.items():
        expected = {"TargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}} if verb == "cleanup" else None
        assert function["Properties"].get("DeadLetterConfig") == expected, verb
    cleanup_statements = role_statements(synthesized, functions["cleanup"]["Properties"]["Role"]["Fn::GetAtt"][0])
    assert {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": {"Fn::GetAtt": [queue_id, "Arn"]}} in (
        cleanup_statements
    )
    assert any(
        sorted(as_list(s["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
        and "sqs." in json.dumps(s.get("Condition"))
        for s in cleanup_statements
    )


def test_functions_trace_use_the_public_powertools_layer_and_their_own_log_group(synthesized):
    for verb, function in synthesized.functions().items():
        props = function["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}, verb
        assert props["Runtime"] == "python3.13", verb
        assert props["Handler"] == f"{verb}.handler"
        [layer] = props["Layers"]
        text = json.dumps(layer)
        assert ":017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:" in text
        assert {"Ref": "AWS::Region"} in layer["Fn::Join"][1]
        assert set(props["LoggingConfig"]["LogGroup"]) == {"Ref"}, verb
        assert 0 < props["Timeout"] <= 900


def test_lambda_environment_is_the_contract_and_resolvable_offline(synthesized):
    mapping_id = next(iter(synthesized.template["Mappings"]))
    for verb, function in synthesized.functions().items():
        env = function["Properties"]["Environment"]["Variables"]
        assert set(env) == CONTRACT_ENVIRONMENT, verb
        assert env["TRAINING_IMAGE_URI"] == {"Fn::FindInMap": [mapping_id, {"Ref": "AWS::Region"}, "TrainingImageUri"]}
        assert env["INFERENCE_IMAGE_URI"] == {
            "Fn::FindInMap": [mapping_id, {"Ref": "AWS::Region"}, "InferenceImageUri"]
        }
        assert env["VLLM_IMAGE_URI"] == {"Fn::FindInMap": [mapping_id, {"Ref": "AWS::Region"}, "VllmImageUri"]}
        defaults = json.loads(env["DEFAULTS_JSON"])
        assert defaults["orchestration"]["poll_interval_seconds"] == 60
        assert defaults["evaluation"]["gate"] == {
            "min_execution_accuracy": 0.6,
            "min_improvement_over_base": 0.05,
            "require_significance": False,
            "significance_level": 0.05,
        }
        assert intrinsics(env) <= RESOLVABLE_INTRINSICS, verb
        refs = re.findall(r'"Ref": "([^"]+)"', json.dumps(env))
        assert all(ref in synthesized.template["Resources"] or ref in PSEUDO_PARAMETERS for ref in refs)
    _, machine = synthesized.only("AWS::StepFunctions::StateMachine")
    assert intrinsics(machine["Properties"]["DefinitionString"]) <= RESOLVABLE_INTRINSICS


def test_image_mapping_covers_many_regions_with_the_huggingface_images(synthesized):
    [mapping] = synthesized.template["Mappings"].values()
    assert len(mapping) >= 25
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "cn-north-1"} <= set(mapping)
    for region, row in mapping.items():
        assert re.fullmatch(
            rf"\d{{12}}\.dkr\.ecr\.{region}\.[a-z.0-9]+/huggingface-pytorch-training:"
            r"2\.9\.0-transformers5\.3\.0-gpu-py312-[a-z0-9.-]+",
            row["TrainingImageUri"],
        ), region
        assert re.fullmatch(
            rf"\d{{12}}\.dkr\.ecr\.{region}\.[a-z.0-9]+/huggingface-pytorch-tgi-inference:"
            r"[0-9.]+-tgi3\.3\.6-gpu-[a-z0-9.-]+",
            row["InferenceImageUri"],
        ), region
        assert re.fullmatch(
            rf"\d{{12}}\.dkr\.ecr\.{region}\.[a-z.0-9]+/huggingface-vllm:"
            r"0\.29\.0-transformers[0-9.]+-gpu-py312-cu130-[a-z0-9.-]+",
            row["VllmImageUri"],
        ), region
        assert row["TrainingImageUri"].startswith(row["TrainingImageAccount"] + ".")
        assert row["VllmImageUri"].startswith(row["VllmImageAccount"] + ".")


def test_training_code_is_deployed_to_the_prefix_the_lambdas_use(synthesized):
    [deployment] = synthesized.resources("Custom::CDKBucketDeployment").values()
    prefix = deployment["Properties"]["DestinationBucketKeyPrefix"]
    assert re.fullmatch(r"code/[0-9a-f]{64}/", prefix)
    assert deployment["Properties"]["Prune"] is False
    env = synthesized.functions()["start_job"]["Properties"]["Environment"]["Variables"]
    bucket = deployment["Properties"]["DestinationBucketName"]
    assert env["CODE_S3_URI"] == {"Fn::Join": ["", ["s3://", bucket, "/" + prefix]]}
    assert env["ARTIFACTS_BUCKET"] == bucket
    assert "Docker" not in json.dumps(synthesized.template)


def test_outputs_name_what_local_mode_and_operators_need(synthesized):
    outputs = synthesized.template["Outputs"]
    assert {
        "StateMachineArn",
        "ArtifactsBucketName",
        "DataBucketName",
        "TopicArn",
        "KmsKeyArn",
        "SageMakerRoleArn",
        "ModelPackageGroupName",
        "CodeS3Uri",
    } <= set(outputs)
    machine_id, _ = synthesized.only("AWS::StepFunctions::StateMachine")
    assert outputs["StateMachineArn"]["Value"] == {"Ref": machine_id}
    Template.from_json(synthesized.template).has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": "llm-ft-models"}
    )
    assert Match is not None
