"""Strict validation of AWS request parameters against botocore's service models.

botocore's own client-side validation checks required members, types and `min` constraints only.
The services themselves also enforce `max` lengths and values, `pattern`s, enum values and list
lengths, so a request that passes botocore (and moto) can still be rejected by AWS. This module
enforces those constraints locally, so tests and local mode fail exactly where AWS would.

Use it as a botocore event hook on a session or a client, before clients are created:

    install(boto3.DEFAULT_SESSION)                 # all services listed in DEFAULT_SERVICES
    install(client.meta.events, services=("sagemaker",))

The service models write patterns in Java's regex dialect (`\\p{L}`, `\\z`, surrogate pairs);
`java_pattern_to_python` translates them for the `regex` package, which knows Unicode's general
categories (`\\p{L}`, `\\p{N}`, `\\p{P}`, ...) exactly as Java does. Java's POSIX classes
(`\\p{Alpha}`, `\\p{Punct}`, ...) are ASCII-only by default, unlike `regex`'s, so they are
written out as their ASCII ranges.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import regex
from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel, Shape

DEFAULT_SERVICES = ("sagemaker", "sagemaker-runtime", "s3", "sns", "secretsmanager", "kms", "sts")

# Java's POSIX character classes, which match ASCII only (Java's default, without UNICODE_CHARACTER_CLASS).
# Each is a fragment that is valid inside a character class.
_POSIX_CLASSES = {
    "Space": r" \t\n\x0b\f\r",
    "Upper": r"A-Z",
    "Lower": r"a-z",
    "XDigit": r"0-9a-fA-F",
    "Cntrl": r"\x00-\x1f\x7f",
    "Alnum": r"a-zA-Z0-9",
    "Alpha": r"a-zA-Z",
    "Digit": r"0-9",
    "ASCII": r"\x00-\x7f",
    "Print": r"\x20-\x7e",
    "Graph": r"\x21-\x7e",
    "Punct": r"!-/:-@\[-`{-~",
}
# Unicode general categories, which `regex` matches as Java does: L, Lu, M, N, Nd, P, S, Z, Zs, ...
_GENERAL_CATEGORY = re.compile(r"^(?:[LMNPSZC][a-z]?)$")

_PROPERTY = re.compile(r"\\p\{(\w+)\}")
_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)
_QUANTIFIED_ANCHOR = re.compile(r"(?<!\\)\$\{\d+(,\d*)?\}")


def _property_class(name: str, pattern: str) -> str | None:
    """The ASCII range of a POSIX class; None for a general category, which `regex` reads itself."""
    if name in _POSIX_CLASSES:
        return _POSIX_CLASSES[name]
    if _GENERAL_CATEGORY.match(name):
        return None
    raise ValueError(
        f"pattern {pattern!r} uses \\p{{{name}}}, which has no translation; known: Unicode general "
        f"categories and {sorted(_POSIX_CLASSES)}"
    )


def _combine_surrogates(match: re.Match) -> str:
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return "\\U%08x" % (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def java_pattern_to_python(pattern: str) -> str:
    """Translate one AWS model pattern (Java dialect) into an equivalent pattern for the `regex` package."""
    translated = _SURROGATE_PAIR.sub(_combine_surrogates, pattern)
    translated = _QUANTIFIED_ANCHOR.sub("$", translated)  # Java accepts `${1,128}`; it means `$`
    translated = translated.replace("\\z", "\\Z")
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(translated):
        char = translated[i]
        if char == "\\" and i + 1 < len(translated):
            prop = _PROPERTY.match(translated, i)
            if prop:
                body = _property_class(prop.group(1), pattern)
                if body is None:
                    out.append(prop.group(0))
                else:
                    out.append(body if in_class else f"[{body}]")
                i = prop.end()
                continue
            out.append(translated[i : i + 2])
            i += 2
            if in_class and out[-1][1] in "wdsWDS" and translated[i : i + 1] == "-":
                out.append("\\-")  # Java reads `[\w-_]` as a literal hyphen
                i += 1
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] != "[":
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@functools.cache
def compiled_pattern(pattern: str) -> regex.Pattern:
    """The compiled regex for a model pattern; AWS requires the whole value to match."""
    return regex.compile(java_pattern_to_python(pattern), regex.VERSION0)


@dataclass(frozen=True)
class Problem:
    """One constraint a request parameter breaks."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ServiceModelValidationError(ParamValidationError):
    """A request the service would reject; raised before anything is sent."""

    def __init__(self, operation: str, problems: list[Problem]):
        self.operation = operation
        self.problems = problems
        report = f"{operation} would be rejected by AWS:\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(report=report)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_range(path: str, shape: Shape, size: int | float, what: str) -> Iterable[Problem]:
    minimum, maximum = shape.metadata.get("min"), shape.metadata.get("max")
    if minimum is not None and size < minimum:
        yield Problem(path, f"{what} ({size}) is below the minimum {minimum}")
    if maximum is not None and size > maximum:
        yield Problem(path, f"{what} ({size}) is above the maximum {maximum}")


def _check_string(path: str, shape: Shape, value: str) -> Iterable[Problem]:
    yield from _check_range(path, shape, len(value), f"length of {_short(value)}")
    enum = shape.enum
    if enum and value not in enum:
        allowed = ", ".join(enum[:12]) + (f", ... ({len(enum)} in all)" if len(enum) > 12 else "")
        yield Problem(path, f"{_short(value)} is not one of the allowed values: {allowed}")
    pattern = shape.metadata.get("pattern")
    if pattern and not compiled_pattern(pattern).fullmatch(value):
        yield Problem(path, f"{_short(value)} does not match the pattern {pattern}")


def _check_structure(path: str, shape: Shape, value: dict) -> Iterable[Problem]:
    for name in shape.required_members:
        if value.get(name) is None:
            yield Problem(f"{path}.{name}", "is required")
    for name, member_value in value.items():
        member = shape.members.get(name)
        if member is None:
            yield Problem(f"{path}.{name}", f"is not a parameter; known: {', '.join(shape.members)}")
        elif member_value is not None:
            yield from check_value(f"{path}.{name}", member, member_value)


def _check_list(path: str, shape: Shape, value: list | tuple) -> Iterable[Problem]:
    yield from _check_range(path, shape, len(value), "number of items")
    for index, item in enumerate(value):
        yield from check_value(f"{path}[{index}]", shape.member, item)


def _check_map(path: str, shape: Shape, value: dict) -> Iterable[Problem]:
    yield from _check_range(path, shape, len(value), "number of entries")
    for key, item in value.items():
        yield from check_value(f"{path} key", shape.key, key)
        yield from check_value(f"{path}[{key!r}]", shape.value, item)


def _check_number(path: str, shape: Shape, value: int | float) -> Iterable[Problem]:
    yield from _check_range(path, shape, value, "value")


def _check_blob(path: str, shape: Shape, value: bytes | bytearray | str) -> Iterable[Problem]:
    yield from _check_range(path, shape, len(value), "size in bytes")


_NUMBER = (int, float)

# Shape type -> the Python types checked against it, and the check. A value of another type is
# left alone (botocore reports it); booleans are never numbers here, though Python says they are.
_CHECKS: dict[str, tuple[tuple[type, ...], Callable[[str, Shape, Any], Iterable[Problem]]]] = {
    "structure": ((dict,), _check_structure),
    "list": ((list, tuple), _check_list),
    "map": ((dict,), _check_map),
    "string": ((str,), _check_string),
    **dict.fromkeys(("integer", "long", "float", "double"), (_NUMBER, _check_number)),
    "blob": ((bytes, bytearray, str), _check_blob),
}


def check_value(path: str, shape: Shape, value: Any) -> Iterable[Problem]:
    """Every constraint `value` breaks. Type errors are left to botocore's own validator."""
    types, check = _CHECKS.get(shape.type_name, ((), None))
    if check is not None and isinstance(value, types) and not isinstance(value, bool):
        yield from check(path, shape, value)


def validate_request(operation: OperationModel, params: dict) -> None:
    """Raise ServiceModelValidationError listing every broken constraint of one request."""
    if operation.input_shape is None:
        return
    problems = list(check_value(operation.name, operation.input_shape, params))
    if problems:
        raise ServiceModelValidationError(operation.name, problems)


def _before_parameter_build(params: dict, model: OperationModel, **_: Any) -> None:
    validate_request(model, params)


def install(target: Any, services: Iterable[str] = DEFAULT_SERVICES) -> None:
    """Register the validator on a boto3/botocore session, a client, or an event emitter.

    Clients copy their session's handlers when created: install before creating clients.
    """
    events = getattr(target, "events", None) or getattr(getattr(target, "meta", None), "events", None)
    if events is None:
        events = target  # already an event emitter
    for service in services:
        events.register(
            f"before-parameter-build.{service}", _before_parameter_build, unique_id=f"aws-model-validation-{service}"
        )
