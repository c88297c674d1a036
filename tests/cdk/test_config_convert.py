"""How a value from code, the command line or cdk.json becomes a setting of the field's type."""

from pathlib import Path

import pytest

from cdk_app.config import Settings, SettingsError

CONSTRUCTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "constructs.md"


@pytest.mark.parametrize(
    "field, raw, expected",
    [
        ("input_bucket_names", " aaa, bbb ,,ccc", ("aaa", "bbb", "ccc")),
        ("input_bucket_names", ["aaa", "bbb"], ("aaa", "bbb")),
        ("input_bucket_names", ("xxx",), ("xxx",)),
        ("input_bucket_names", "", ()),
        ("require_significance", True, True),
        ("require_significance", " TRUE ", True),
        ("require_significance", "false", False),
        ("powertools_layer_version", "12", 12),
        ("powertools_layer_version", 7, 7),
        ("powertools_layer_version", 7.0, 7),
        ("powertools_layer_version", " 3 ", 3),
        ("min_execution_accuracy", "0.25", 0.25),
        ("min_execution_accuracy", 1, 1.0),
        ("base_model_id", " text ", "text"),
    ],
)
def test_converts_to_the_type_of_the_field(field, raw, expected):
    converted = getattr(Settings(**{field: raw}), field)
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(
    "field, raw, expected",
    [
        ("input_bucket_names", ["aaa", 1], "a list of strings or a comma-separated string"),
        ("input_bucket_names", 3, "a list of strings or a comma-separated string"),
        ("require_significance", "yes", "true or false"),
        ("require_significance", 1, "true or false"),
        ("powertools_layer_version", 7.5, "an integer"),
        ("powertools_layer_version", True, "an integer"),
        ("powertools_layer_version", "1.5", "an integer"),
        ("powertools_layer_version", None, "an integer"),
        ("log_retention_days", "a year", "an integer"),
        ("min_execution_accuracy", True, "a number"),
        ("min_execution_accuracy", "abc", "a number"),
        ("min_execution_accuracy", None, "a number"),
        ("base_model_id", 5, "a string"),
        ("base_model_id", None, "a string"),
    ],
)
def test_refuses_a_value_naming_what_was_expected(field, raw, expected):
    with pytest.raises(SettingsError) as raised:
        Settings(**{field: raw})
    assert str(raised.value) == f"context fine-tune:{field}: {raw!r} is not allowed; expected {expected}"


def test_every_problem_is_listed_one_a_line():
    with pytest.raises(SettingsError) as raised:
        Settings(poll_interval_seconds=0, subnet_ids="vpc-123", notification_email="nobody")
    assert str(raised.value).splitlines() == [
        "context fine-tune:poll_interval_seconds: 0 is not allowed; expected 1..3600",
        "context fine-tune:subnet_ids: 'vpc-123' is not allowed; expected subnet ids like subnet-0123abcd",
        "context fine-tune:notification_email: 'nobody' is not allowed; expected empty or an e-mail address",
    ]


def test_unknown_fields_are_refused():
    with pytest.raises(SettingsError) as raised:
        Settings(poll_interval=5)
    assert str(raised.value).startswith("context fine-tune:poll_interval: 5 is not allowed; expected a known setting")


def test_settings_are_frozen_hashable_and_compared_by_value():
    settings = Settings(subnet_ids=["subnet-0123abcd"], security_group_ids="sg-0123abcd")
    with pytest.raises(AttributeError):
        settings.poll_interval_seconds = 5
    assert settings == Settings(subnet_ids="subnet-0123abcd", security_group_ids=("sg-0123abcd",))
    assert len({settings, Settings(subnet_ids="subnet-0123abcd", security_group_ids="sg-0123abcd"), Settings()}) == 2


def test_every_field_is_described_and_documented():
    documented = CONSTRUCTS_DOC.read_text().partition("### Settings")[2].partition("###")[0]
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"`{name}`" in documented, f"{name} is missing from the Settings table of docs/constructs.md"
