"""Where build_store files each kind of policy in a template: by role, or by the resource it protects."""

from local_mode.iam.store import build_store
from local_mode.template import Physical, Resolver, physical_for

REGION, ACCOUNT, STACK = "us-east-1", "123456789012", "st"


def _doc(action: str, effect: str = "Allow") -> dict:
    return {"Statement": [{"Effect": effect, "Action": action, "Resource": "*"}]}


TEMPLATE = {
    "Resources": {
        "Worker": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Policies": [{"PolicyName": "inline", "PolicyDocument": _doc("s3:GetObject")}],
                "ManagedPolicyArns": [{"Ref": "Shared"}, "arn:aws:iam::aws:policy/ReadOnlyAccess"],
            },
        },
        "Other": {"Type": "AWS::IAM::Role", "Properties": {}},
        "Shared": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"PolicyDocument": _doc("sns:Publish"), "Roles": [{"Ref": "Other"}]},
        },
        "Extra": {
            "Type": "AWS::IAM::Policy",
            "Properties": {"PolicyDocument": _doc("sqs:*", "Deny"), "Roles": [{"Ref": "Worker"}, "outside-role"]},
        },
        "Data": {"Type": "AWS::S3::Bucket"},
        "DataPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Data"},
                "PolicyDocument": {
                    "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}]
                },
            },
        },
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeyPolicy": {
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*"}
                    ]
                }
            },
        },
        "Bare": {"Type": "AWS::KMS::Key", "Properties": {}},
        "Alerts": {"Type": "AWS::SNS::Topic"},
        "Alarms": {"Type": "AWS::SNS::Topic"},
        "AlertsPolicy": {
            "Type": "AWS::SNS::TopicPolicy",
            "Properties": {
                "Topics": [{"Ref": "Alerts"}, {"Ref": "Alarms"}],
                "PolicyDocument": {
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish"}
                    ]
                },
            },
        },
        "Fn": {"Type": "AWS::Lambda::Function"},
        "FromEvents": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]},
                "Action": "lambda:InvokeFunction",
                "Principal": "events.amazonaws.com",
                "SourceArn": "arn:aws:events:us-east-1:123456789012:rule/r",
                "SourceAccount": "123456789012",
            },
        },
        "FromAccount": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": "plain-name",
                "Action": "lambda:InvokeFunction",
                "Principal": "123456789012",
            },
        },
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "ignored"}},
    }
}


def _store():
    physical = {
        logical_id: physical_for(resource["Type"], f"{STACK}-{logical_id.lower()}", REGION, ACCOUNT)
        for logical_id, resource in TEMPLATE["Resources"].items()
    }
    for key in ("Key", "Bare"):  # keys get their ids from KMS when the stack is deployed
        physical[key] = Physical(f"{key}-id", {"Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}-id"})
    return build_store(TEMPLATE, Resolver(TEMPLATE, physical, REGION, ACCOUNT, STACK), physical), physical


def _summary(statements):
    return [(s.label, s.effect, s.actions, s.principals, s.conditions) for s in statements]


def test_identity_policies_are_filed_by_role_and_aws_managed_ones_recorded():
    store, physical = _store()
    worker, other = physical["Worker"].attributes["Arn"], physical["Other"].attributes["Arn"]
    assert store.role_arns == {"Worker": worker, "Other": other}
    assert list(store.identity) == [worker, other, "outside-role"]
    assert _summary(store.identity[worker]) == [
        ("Worker/inline", "Allow", ("s3:GetObject",), None, None),
        ("Shared", "Allow", ("sns:Publish",), None, None),
        ("Extra", "Deny", ("sqs:*",), None, None),
    ]
    assert _summary(store.identity[other]) == [("Shared", "Allow", ("sns:Publish",), None, None)]
    assert _summary(store.identity["outside-role"]) == [("Extra", "Deny", ("sqs:*",), None, None)]
    assert store.managed_policy_arns == {worker: ["arn:aws:iam::aws:policy/ReadOnlyAccess"]}


def test_resource_policies_are_filed_by_the_resource_they_protect():
    store, physical = _store()
    function_arn = physical["Fn"].attributes["Arn"]
    assert list(store.resources) == [
        f"arn:aws:s3:::{physical['Data'].ref}",
        physical["Key"].attributes["Arn"],
        physical["Bare"].attributes["Arn"],
        physical["Alerts"].ref,
        physical["Alarms"].ref,
        function_arn,
        "plain-name",
    ]
    summaries = {owner: _summary(statements) for owner, statements in store.resources.items()}
    assert summaries[physical["Bare"].attributes["Arn"]] == []
    assert summaries[physical["Alarms"].ref] == [
        ("topic policy AlertsPolicy", "Allow", ("sns:Publish",), {"Service": ("events.amazonaws.com",)}, None)
    ]
    assert summaries[function_arn] == [
        (
            "permission FromEvents",
            "Allow",
            ("lambda:InvokeFunction",),
            {"Service": ("events.amazonaws.com",)},
            {
                "ArnLike": {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/r"},
                "StringEquals": {"aws:SourceAccount": "123456789012"},
            },
        )
    ]
    assert summaries["plain-name"] == [
        ("permission FromAccount", "Allow", ("lambda:InvokeFunction",), {"AWS": ("123456789012",)}, None)
    ]
