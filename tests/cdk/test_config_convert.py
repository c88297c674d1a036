"""How a context value from the command line or cdk.json becomes a setting of the field's type."""

import pytest

from cdk_app.config import SettingsError, _convert


@pytest.mark.parametrize(
    "default, raw, expected",
    [
        ((), " a, b ,,c", ("a", "b", "c")),
        ((), ["a", "b"], ("a", "b")),
        ((), ("x",), ("x",)),
        ((), "", ()),
        (False, True, True),
        (False, " TRUE ", True),
        (True, "false", False),
        (0, "12", 12),
        (0, 7, 7),
        (0, 7.0, 7),
        (0, " 3 ", 3),
        (0.5, "0.25", 0.25),
        (0.5, 2, 2.0),
        ("s", " text ", "text"),
    ],
)
def test_converts_to_the_type_of_the_default(default, raw, expected):
    converted = _convert("field", raw, default)
    assert converted == expected and type(converted) is type(default)


@pytest.mark.parametrize(
    "default, raw, expected",
    [
        ((), ["a", 1], "a list of strings or a comma-separated string"),
        ((), 3, "a list of strings or a comma-separated string"),
        (False, "yes", "true or false"),
        (False, 1, "true or false"),
        (0, 7.5, "an integer"),
        (0, True, "an integer"),
        (0, "1.5", "an integer"),
        (0, None, "an integer"),
        (0.5, True, "a number"),
        (0.5, "abc", "a number"),
        (0.5, None, "a number"),
        ("s", 5, "a string"),
        ("s", None, "a string"),
    ],
)
def test_refuses_a_value_naming_what_was_expected(default, raw, expected):
    with pytest.raises(SettingsError) as raised:
        _convert("field", raw, default)
    assert str(raised.value) == f"context fine-tune:field: {raw!r} is not allowed; expected {expected}"


def test_a_default_of_no_known_type_is_a_programming_error():
    with pytest.raises(KeyError):
        _convert("field", "x", None)
