"""Template resolution and deployment into the emulated account, on a small CDK-free template."""

import json

import boto3
import pytest
from moto import mock_aws

from local_mode.stack import deploy
from local_mode.template import Physical, Resolver, TemplateError

TEMPLATE = {
    "Parameters": {"BootstrapVersion": {"Type": "String", "Default": "/cdk-bootstrap/hnb659fds/version"}},
    "Mappings": {"Images": {"us-east-1": {"training": "111.dkr.ecr.us-east-1.amazonaws.com/train:1"}}},
    "Conditions": {"HasSecret": {"Fn::Not": [{"Fn::Equals": ["", ""]}]}},
    "Resources": {
        "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
        "Artifacts": {"Type": "AWS::S3::Bucket", "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}},
        "Named": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketName": {"Fn::Join": ["-", ["data", {"Ref": "AWS::AccountId"}]]}},
        },
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17"}}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]}}},
        "Group": {"Type": "AWS::SageMaker::ModelPackageGroup", "Properties": {"ModelPackageGroupName": "models"}},
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Handler": "validate.handler",
                "Runtime": "python3.12",
                "Timeout": 30,
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Environment": {
                    "Variables": {
                        "ARTIFACTS_BUCKET": {"Ref": "Artifacts"},
                        "TOPIC_ARN": {"Ref": "Topic"},
                        "IMAGE": {"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "training"]},
                        "CODE": {"Fn::Sub": "s3://${Artifacts}/code/abc/"},
                        "KEY": {"Fn::Sub": ["${K}", {"K": {"Fn::GetAtt": ["Key", "Arn"]}}]},
                        "SECRET": {"Fn::If": ["HasSecret", "yes", {"Ref": "AWS::NoValue"}]},
                        "GROUP": {"Fn::GetAtt": ["Group", "ModelPackageGroupName"]},
                    }
                },
            },
        },
        "Deploy": {
            "Type": "Custom::CDKBucketDeployment",
            "Properties": {"DestinationBucketName": {"Ref": "Artifacts"}, "DestinationBucketKeyPrefix": "code/abc/"},
        },
        "Machine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                "DefinitionString": {
                    "Fn::Join": [
                        "",
                        [
                            '{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:',
                            {"Ref": "AWS::Partition"},
                            ':states:::lambda:invoke","Parameters":{"FunctionName":"',
                            {"Fn::GetAtt": ["Fn", "Arn"]},
                            '"},"End":true}}}',
                        ],
                    ]
                },
            },
        },
        "Policy": {"Type": "AWS::IAM::Policy", "Properties": {}},
        "Dashboard": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}},
    },
    "Outputs": {"Bucket": {"Value": {"Ref": "Artifacts"}}, "Machine": {"Value": {"Ref": "Machine"}}},
}


def test_resolver_functions():
    physical = {"B": Physical("bucket-1", {"Arn": "arn:aws:s3:::bucket-1"})}
    resolver = Resolver({"Resources": {"B": {"Type": "AWS::S3::Bucket"}}}, physical, "eu-west-1", "123", "S")
    assert (
        resolver.resolve({"Fn::Sub": "${B}/${AWS::Region}/${B.Arn}/${!Literal}"})
        == "bucket-1/eu-west-1/arn:aws:s3:::bucket-1/${Literal}"
    )
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert resolver.resolve({"k": {"Ref": "AWS::NoValue"}, "j": 1}) == {"j": 1}
    with pytest.raises(TemplateError, match="Missing"):
        resolver.resolve({"Ref": "Missing"}, "Resources.X")
    with pytest.raises(TemplateError, match="Nope"):
        resolver.resolve({"Fn::GetAtt": ["B", "Nope"]})


def test_deploy_creates_resources_with_resolved_environment(tmp_path):
    training = tmp_path / "training"
    training.mkdir()
    (training / "launch.py").write_text("print('hi')\n")
    with mock_aws():
        stack = deploy(TEMPLATE, "Stack", "us-east-1", training_dir=training)
        s3 = boto3.client("s3", region_name="us-east-1")
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert {"stack-artifacts", f"data-{stack.account}"} <= buckets
        assert s3.get_bucket_versioning(Bucket="stack-artifacts")["Status"] == "Enabled"
        assert s3.get_object(Bucket="stack-artifacts", Key="code/abc/launch.py")["Body"].read() == b"print('hi')\n"
        config = boto3.client("lambda", region_name="us-east-1").get_function_configuration(FunctionName="Stack-Fn")
        env = config["Environment"]["Variables"]
        assert env["ARTIFACTS_BUCKET"] == "stack-artifacts"
        assert env["TOPIC_ARN"] == f"arn:aws:sns:us-east-1:{stack.account}:Stack-Topic"
        assert env["IMAGE"].endswith("train:1") and env["CODE"] == "s3://stack-artifacts/code/abc/"
        assert env["KEY"].startswith("arn:aws:kms:") and env["GROUP"] == "models"
        assert "SECRET" not in env
        machine = boto3.client("stepfunctions", region_name="us-east-1").describe_state_machine(
            stateMachineArn=stack.state_machine_arn
        )
        assert json.loads(machine["definition"])["States"]["A"]["Parameters"]["FunctionName"].endswith(
            ":function:Stack-Fn"
        )
        assert stack.outputs == {"Bucket": "stack-artifacts", "Machine": stack.state_machine_arn}
        # Policies are enforced by local mode's IAM; a type it has no emulation for is listed.
        assert stack.not_emulated == ["AWS::CloudWatch::Dashboard"]
        boto3.client("sagemaker", region_name="us-east-1").describe_model_package_group(ModelPackageGroupName="models")
