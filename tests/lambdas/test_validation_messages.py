"""How each kind of schema error reads: the exact wording users see for bad execution input."""

import json
from pathlib import Path

import jsonschema
import pytest
from common.validation import _describe, semantic_problems


@pytest.mark.parametrize(
    "schema, instance, expected",
    [
        (
            {"type": "object", "additionalProperties": False, "properties": {"a": {}, "b": {}}},
            {"a": 1, "z": 2, "y": 3},
            ["y: unknown key; allowed keys here: a, b", "z: unknown key; allowed keys here: a, b"],
        ),
        (
            {
                "type": "object",
                "properties": {"o": {"type": "object", "additionalProperties": False, "properties": {"k": {}}}},
            },
            {"o": {"x": 1}},
            ["o.x: unknown key; allowed keys here: k"],
        ),
        (
            {"oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
            {"a": 1, "b": 2},
            ["(input): exactly one of a or b is required; got a, b"],
        ),
        (
            {"oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
            {},
            ["(input): exactly one of a or b is required; got none"],
        ),
        (
            {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            1.5,
            ["(input): 1.5: 1.5 is not valid under any of the given schemas"],
        ),
        ({"required": ["a", "b"]}, {"b": 1}, ["a: is required"]),
        (
            {"properties": {"o": {"required": ["a", "b"]}}},
            {"o": {}},
            ["o.a: is required", "o.b: is required", "o.a: is required", "o.b: is required"],
        ),
        (
            {"properties": {"e": {"enum": ["red", "green", "blue"]}}},
            {"e": "rde"},
            ['e: "rde" is not allowed; allowed: red, green, blue'],
        ),
        (
            {
                "properties": {
                    "e": {
                        "enum": [
                            "ml.g5.0xlarge",
                            "ml.g5.1xlarge",
                            "ml.g5.2xlarge",
                            "ml.g5.3xlarge",
                            "ml.g5.4xlarge",
                            "ml.g5.5xlarge",
                            "ml.g5.6xlarge",
                            "ml.g5.7xlarge",
                            "ml.g5.8xlarge",
                            "ml.g5.9xlarge",
                            "ml.g5.10xlarge",
                            "ml.g5.11xlarge",
                            "ml.g5.12xlarge",
                        ],
                        "description": "an instance type",
                    }
                }
            },
            {"e": "ml.g5.1xlarg"},
            [
                'e: "ml.g5.1xlarg" is not allowed; allowed: 13 values (an instance type); '
                "did you mean ml.g5.1xlarge, ml.g5.12xlarge, ml.g5.11xlarge?"
            ],
        ),
        (
            {
                "properties": {
                    "e": {"enum": ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12"]}
                }
            },
            {"e": "zzzz"},
            ['e: "zzzz" is not allowed; allowed: 13 values'],
        ),
        ({"properties": {"t": {"type": "integer"}}}, {"t": "3"}, ['t: "3" has the wrong type; expected integer']),
        ({"properties": {"n": {"minimum": 1}}}, {"n": 0}, ["n: 0 is out of range; must be at least 1"]),
        ({"properties": {"n": {"maximum": 1}}}, {"n": 2}, ["n: 2 is out of range; must be at most 1"]),
        ({"properties": {"n": {"exclusiveMinimum": 0}}}, {"n": 0}, ["n: 0 is out of range; must be greater than 0"]),
        ({"properties": {"n": {"exclusiveMaximum": 1}}}, {"n": 1}, ["n: 1 is out of range; must be less than 1"]),
        (
            {"properties": {"s": {"maxLength": 3}}},
            {"s": "abcdef"},
            ['s: "abcdef" has 6 characters; must have at most 3'],
        ),
        ({"properties": {"s": {"minLength": 2}}}, {"s": "a"}, ['s: "a" has 1 characters; must have at least 2']),
        (
            {"properties": {"s": {"pattern": "^a+$", "description": "only a"}}},
            {"s": "b"},
            ['s: "b" does not match ^a+$ (only a)'],
        ),
        ({"properties": {"s": {"pattern": "^a+$"}}}, {"s": "b"}, ['s: "b" does not match ^a+$']),
        ({"properties": {"l": {"maxItems": 1}}}, {"l": [1, 2]}, ["l: [1, 2] breaks maxItems=1"]),
        ({"properties": {"l": {"minItems": 2}}}, {"l": [1]}, ["l: [1] breaks minItems=2"]),
        (
            {"properties": {"l": {"items": {"uniqueItems": True}}}},
            {"l": [[1, 1]]},
            ["l[0]: [1, 1] breaks uniqueItems=True"],
        ),
        (
            {"properties": {"c": {"const": 5}}},
            {"c": "x" * 200},
            ['c: "' + "x" * 96 + "...: 5 was expected"],
        ),
    ],
)
def test_describes_each_kind_of_schema_error(schema, instance, expected):
    errors = jsonschema.Draft202012Validator(schema).iter_errors(instance)
    assert [line for error in errors for line in _describe(error)] == expected


SEMANTIC_CASES = json.loads(Path(__file__).with_name("semantic_problems_cases.json").read_text())


@pytest.mark.parametrize("case", SEMANTIC_CASES, ids=range(len(SEMANTIC_CASES)))
def test_cross_field_rules_report_in_a_fixed_order(case):
    assert list(semantic_problems(case["config"])) == case["problems"]
