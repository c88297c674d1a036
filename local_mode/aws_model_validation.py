"""Strict validation of AWS request parameters against botocore's service models.

botocore's own client-side validation checks required members, types and `min` constraints only.
The services themselves also enforce `max` lengths and values, `pattern`s, enum values and list
lengths, so a request that passes botocore (and moto) can still be rejected by AWS. This module
enforces those constraints locally, so tests and local mode fail exactly where AWS would.

Use it as a botocore event hook on a session or a client, before clients are created:

    install(boto3.DEFAULT_SESSION)                 # all services listed in DEFAULT_SERVICES
    install(client.meta.events, services=("sagemaker",))

The service models write patterns in Java's regex dialect (`\\p{L}`, `\\z`, surrogate pairs);
`java_pattern_to_python` translates them to Python's `re`. Unicode categories other than
letters, digits and spaces are approximated by the common Latin, punctuation and symbol blocks.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable

from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel, Shape

DEFAULT_SERVICES = ("sagemaker", "sagemaker-runtime", "s3", "sns", "secretsmanager", "kms", "sts")

# Python equivalents of the Java character properties the AWS models use. Each is a fragment
# that is valid inside a character class.
_UNICODE_PROPERTIES = {
    "L": r"a-zA-Z\u00aa\u00b5\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u03ff\u0400-\u052f"
         r"\u0531-\u0587\u05d0-\u05ea\u0620-\u064a\u0900-\u0dff\u0e00-\u0e7f\u1100-\u11ff"
         r"\u1e00-\u1fff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff",
    "M": r"\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u064b-\u065f\u1ab0-\u1aff\u1dc0-\u1dff"
         r"\u20d0-\u20ff\ufe20-\ufe2f",
    "Z": r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000",
    "Zs": r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000",
    "Space": r" \t\n\x0b\f\r",
    "Upper": r"A-Z",
    "Lower": r"a-z",
    "XDigit": r"0-9a-fA-F",
    "Cntrl": r"\x00-\x1f\x7f",
    "N": r"0-9\u00b2\u00b3\u00b9\u00bc-\u00be\u0660-\u0669\u06f0-\u06f9\u0966-\u096f"
         r"\u2150-\u2189\u2460-\u249b\u24ea-\u24ff\u2776-\u2793\uff10-\uff19",
    "P": r"!-#%-*,-/:;?@\[-\]_{}\u00a1\u00a7\u00ab\u00b6\u00b7\u00bb\u00bf\u2010-\u2027"
         r"\u2030-\u2043\u2045-\u2051\u2053-\u205e\u3001-\u3003\u3008-\u3011",
    "S": r"$+<=>^`|~\u00a2-\u00a6\u00a8\u00a9\u00ac\u00ae-\u00b1\u00b4\u00b8\u00d7\u00f7"
         r"\u02c2-\u02c5\u20a0-\u20c0\u2100-\u214f\u2190-\u23ff\u2500-\u27bf\u2900-\u2bff",
    "Alnum": r"a-zA-Z0-9",
    "Alpha": r"a-zA-Z",
    "Digit": r"0-9",
    "ASCII": r"\x00-\x7f",
    "Print": r"\x20-\x7e",
    "Graph": r"\x21-\x7e",
    "Punct": r"!-/:-@\[-`{-~",
}

_PROPERTY = re.compile(r"\\p\{(\w+)\}")
_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)
_QUANTIFIED_ANCHOR = re.compile(r"(?<!\\)\$\{\d+(,\d*)?\}")


def _property_class(name: str, pattern: str) -> str:
    try:
        return _UNICODE_PROPERTIES[name]
    except KeyError:
        raise ValueError(f"pattern {pattern!r} uses \\p{{{name}}}, which has no translation; "
                         f"known: {sorted(_UNICODE_PROPERTIES)}") from None


def _combine_surrogates(match: re.Match) -> str:
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return "\\U%08x" % (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def java_pattern_to_python(pattern: str) -> str:
    """Translate one AWS model pattern (Java dialect) into an equivalent Python `re` pattern."""
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
                out.append(body if in_class else f"[{body}]")
                i = prop.end()
                continue
            out.append(translated[i:i + 2])
            i += 2
            if in_class and out[-1][1] in "wdsWDS" and translated[i:i + 1] == "-":
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


@functools.lru_cache(maxsize=None)
def compiled_pattern(pattern: str) -> re.Pattern:
    """The Python regex for a model pattern; AWS requires the whole value to match."""
    return re.compile(java_pattern_to_python(pattern))


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
    return text if len(text) <= limit else text[:limit - 3] + "..."


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


def check_value(path: str, shape: Shape, value: Any) -> Iterable[Problem]:
    """Every constraint `value` breaks. Type errors are left to botocore's own validator."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name in shape.required_members:
            if value.get(name) is None:
                yield Problem(f"{path}.{name}", "is required")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                yield Problem(f"{path}.{name}", f"is not a parameter; known: {', '.join(shape.members)}")
            elif member_value is not None:
                yield from check_value(f"{path}.{name}", member, member_value)
    elif kind == "list" and isinstance(value, (list, tuple)):
        yield from _check_range(path, shape, len(value), "number of items")
        for index, item in enumerate(value):
            yield from check_value(f"{path}[{index}]", shape.member, item)
    elif kind == "map" and isinstance(value, dict):
        yield from _check_range(path, shape, len(value), "number of entries")
        for key, item in value.items():
            yield from check_value(f"{path} key", shape.key, key)
            yield from check_value(f"{path}[{key!r}]", shape.value, item)
    elif kind == "string" and isinstance(value, str):
        yield from _check_string(path, shape, value)
    elif kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        yield from _check_range(path, shape, value, "value")
    elif kind == "blob" and isinstance(value, (bytes, bytearray, str)):
        yield from _check_range(path, shape, len(value), "size in bytes")


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
        events.register(f"before-parameter-build.{service}", _before_parameter_build,
                        unique_id=f"aws-model-validation-{service}")
