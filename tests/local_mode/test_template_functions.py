"""Each intrinsic function the resolver supports, and the errors it gives for the ones it cannot resolve."""

import base64

import pytest

from local_mode.template import Physical, Resolver, TemplateError

TEMPLATE = {
    "Resources": {"B": {"Type": "AWS::S3::Bucket"}},
    "Mappings": {"Images": {"eu-west-1": {"training": "img:1"}}},
    "Conditions": {"Yes": {"Fn::Equals": ["a", "a"]}, "No": {"Fn::Equals": ["a", "b"]}},
}


@pytest.fixture
def resolver():
    physical = {"B": Physical("bucket-1", {"Arn": "arn:aws:s3:::bucket-1"})}
    return Resolver(TEMPLATE, physical, "eu-west-1", "123", "S")


@pytest.mark.parametrize(
    "expression, expected",
    [
        ({"Fn::GetAtt": "B.Arn"}, "arn:aws:s3:::bucket-1"),
        ({"Fn::GetAtt": ["B", {"Fn::Join": ["", ["A", "rn"]]}]}, "arn:aws:s3:::bucket-1"),
        ({"Fn::Join": [":", ["a", {"Ref": "AWS::NoValue"}, 3, {"Ref": "B"}]]}, "a:3:bucket-1"),
        ({"Fn::Sub": ["${X}-${B}", {"X": {"Ref": "AWS::Region"}}]}, "eu-west-1-bucket-1"),
        ({"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "training"]}, "img:1"),
        ({"Fn::FindInMap": ["Images", "us-east-1", "training", {"DefaultValue": {"Ref": "B"}}]}, "bucket-1"),
        ({"Fn::Select": ["2", ["a", "b", "c"]]}, "c"),
        ({"Fn::Split": ["/", {"Ref": "AWS::StackName"}]}, ["S"]),
        ({"Fn::If": ["Yes", {"Ref": "B"}, "other"]}, "bucket-1"),
        ({"Fn::If": ["No", {"Ref": "B"}, "other"]}, "other"),
        ({"Fn::Equals": [{"Ref": "B"}, "bucket-1"]}, True),
        ({"Fn::Not": [{"Condition": "No"}]}, True),
        ({"Fn::And": [{"Condition": "Yes"}, {"Condition": "No"}]}, False),
        ({"Fn::And": []}, True),
        ({"Fn::Or": [{"Condition": "No"}, {"Condition": "Yes"}]}, True),
        ({"Fn::Or": []}, False),
        ({"Fn::Base64": {"Ref": "B"}}, base64.b64encode(b"bucket-1").decode()),
        ({"Fn::GetAZs": ""}, ["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
        ({"Fn::ToJsonString": {"k": [1, {"Ref": "B"}]}}, '{"k":[1,"bucket-1"]}'),
    ],
)
def test_intrinsic_functions(resolver, expression, expected):
    assert resolver.resolve(expression, "Here") == expected


@pytest.mark.parametrize(
    "expression, message",
    [
        ({"Fn::GetAtt": ["Gone", "Arn"]}, "Here: Fn::GetAtt names unknown resource 'Gone'"),
        (
            {"Fn::FindInMap": ["Images", "us-east-1", "training"]},
            "Here: Fn::FindInMap Images/us-east-1/training is not",
        ),
        ({"Fn::FindInMap": ["Images", "x", "y", {"Other": 1}]}, "Here: Fn::FindInMap Images/x/y is not in the"),
        ({"Fn::Join": ["", [["nested"]]]}, "cannot join a non-string value"),
        ({"Fn::If": ["Missing", 1, 2]}, "condition 'Missing' is not defined in the template"),
        ({"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, "Here: Fn::Cidr is not supported by local mode"),
    ],
)
def test_intrinsic_function_errors(resolver, expression, message):
    with pytest.raises(TemplateError) as raised:
        resolver.resolve(expression, "Here")
    assert str(raised.value).startswith(message)
