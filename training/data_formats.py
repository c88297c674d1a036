"""Turn one row of a supported data set format into a chat conversation ("messages").

Every format ends up as ``[{"role": ..., "content": ...}, ...]``: an optional system message, then
user and assistant turns alternating, ending with the assistant's answer. A row that cannot be
converted raises ``RowError`` naming the field, what it holds and what is allowed. Whatever the
conversion drops or changes in a row that is kept (fields the format does not use, a null read as
empty text, turns with weight 0, an unwrapped ``[SQL]`` answer) is noted as a ``Change``, so the
report can count it.

Text holding a lone surrogate (``"\\udc80"`` in JSON: half of a UTF-16 pair, usually the trace of
bytes decoded with the wrong encoding) is refused rather than repaired: it is not Unicode text,
and a silent replacement would train on text nobody wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sql_execution import schema_statements

# The system message of sql-create-context rows: the schema follows it verbatim, so evaluation
# finds the CREATE TABLE statements again (sql_execution.extract_schema).
SQL_SYSTEM_PROMPT = (
    "You are a text-to-SQL assistant. Answer the question with one SQLite query that uses only the tables below."
)
_SQL_WRAPPER_RE = re.compile(r"^\s*\[SQL\](.*?)\[/SQL\]\s*$", re.DOTALL | re.IGNORECASE)
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = ("role", "content", "weight")


class RowError(ValueError):
    """One row that cannot be used; the message says why, ``kind`` names the category."""

    kind = "format"


class LoneSurrogate(RowError):
    """Text that is not Unicode: half of a UTF-16 surrogate pair."""

    kind = "lone_surrogate"


class RowTooLong(RowError):
    """A row longer than the character limit (--max-chars)."""

    kind = "too_long"


Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Change:
    """Something dropped or changed in a kept row: ``kind`` (e.g. unknown_field), ``detail`` (e.g. 'id')."""

    kind: str
    detail: str = ""


@dataclass
class _Conversion:
    """What one conversion needs besides the row: the length limit and where changes are noted."""

    max_chars: int | None = None
    changes: list[Change] = field(default_factory=list)

    def note(self, kind: str, detail: str = "") -> None:
        self.changes.append(Change(kind, detail))


@dataclass(frozen=True)
class Converted:
    messages: Messages
    changes: list[Change]


def check_text(text: str, where: str) -> None:
    """Refuse text that cannot be written as UTF-8 (a lone surrogate), naming where it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise LoneSurrogate(
            f"{where} holds a lone surrogate U+{ord(text[error.start]):04X} at character "
            f"{error.start + 1}: not valid Unicode text (often bytes decoded with the wrong "
            "encoding); fix the text at its source"
        ) from None


def _fields(row: dict) -> str:
    return ", ".join(sorted(_short(name, 40).strip("'") for name in row)) or "none"


def _text_field(row: dict, name: str, context: _Conversion, required: bool = True) -> str:
    if name not in row or row[name] is None:
        if required:
            raise RowError(f"missing field {name!r} (fields present: {_fields(row)})")
        if name in row:
            context.note("null_read_as_empty", name)
        return ""
    value = row[name]
    if not isinstance(value, str):
        raise RowError(f"field {name!r} must be a string, got {type(value).__name__}: {_short(value)}")
    if context.max_chars is not None and len(value) > context.max_chars:
        raise RowTooLong(
            f"field {name!r} is {len(value):,} characters, over the limit of "
            f"{context.max_chars:,} for a whole conversation (--max-chars)"
        )
    check_text(value, f"field {name!r}")
    if required and not value.strip():
        raise RowError(f"field {name!r} is empty")
    return value


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = ascii(value) if isinstance(value, str) and not value.isprintable() else repr(value)
    except RecursionError:
        text = f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= limit else text[:limit] + "..."


def _weight(message: dict, where: str, role: str, context: _Conversion) -> int:
    """1 unless an assistant message says weight 0 (that turn is not to be learned)."""
    if "weight" not in message:
        return 1
    weight = message["weight"]
    if role != "assistant":
        context.note("message_field_dropped", "weight (on a non-assistant turn)")
        return 1
    if weight is None:
        context.note("null_read_as_empty", "weight (read as 1)")
        return 1
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight not in (0, 1):
        raise RowError(f"{where}.weight is {_short(weight)}; allowed: 0 or 1")
    return int(weight)


def _apply_weights(cleaned: Messages, weights: list[int], context: _Conversion) -> Messages:
    """Training learns every assistant turn it sees, so only weight-0 turns at the end can be left out:
    the conversation ends at its last weighted answer. A weight-0 turn before it stays, and is learned."""
    answers = [index for index, message in enumerate(cleaned) if message["role"] == "assistant"]
    weighted = [index for index in answers if weights[index]]
    if not weighted:
        raise RowError(f"every assistant turn has weight 0 ({len(answers)} turn(s)): the row teaches nothing")
    last = weighted[-1]
    for index in answers:
        if not weights[index]:
            context.note("weight_0_turn_removed" if index > last else "weight_0_turn_learned")
    return cleaned[: last + 1]


def validate_messages(messages: Any, context: _Conversion | None = None) -> Messages:
    """Check roles, order and content of a conversation; return it with only role and content kept."""
    context = context if context is not None else _Conversion()
    cleaned: Messages = []
    weights: list[int] = []
    for index, message in enumerate(_message_list(messages)):
        kept, weight = _checked_message(message, f"messages[{index}]", context)
        weights.append(weight)
        cleaned.append(kept)
    _check_turn_order([message["role"] for message in cleaned])
    return _apply_weights(cleaned, weights, context)


def _message_list(messages: Any) -> list:
    """The `messages` field as a non-empty list (CSV and some Parquet files hold it as JSON text)."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as error:
            raise RowError(f"field 'messages' is text but not JSON ({error.msg})") from error
        except RecursionError:
            raise RowError("field 'messages' is JSON nested too deeply to read") from None
    if not isinstance(messages, list):
        raise RowError(f"field 'messages' must be a list of {{role, content}} objects, got {type(messages).__name__}")
    if not messages:
        raise RowError("field 'messages' is an empty list")
    return messages


def _checked_message(message: Any, where: str, context: _Conversion) -> tuple[dict[str, str], int]:
    """({role, content}, the turn's weight) of one message; other keys are noted as dropped."""
    if not isinstance(message, dict):
        raise RowError(f"{where} must be an object with role and content, got {type(message).__name__}")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise RowError(f"{where}.role is {_short(role)}; allowed: {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise RowError(f"{where}.content must be a string, got {type(content).__name__}")
    check_text(content, f"{where}.content")
    if not content.strip():
        raise RowError(f"{where}.content is empty")
    for key in message:
        if key not in MESSAGE_KEYS:
            context.note("message_field_dropped", _short(key, 40).strip("'"))
    return {"role": role, "content": content}, _weight(message, where, role, context)


def _check_turn_order(roles: list[str]) -> None:
    """An optional system message, then user and assistant alternating, ending with the assistant."""
    turns = roles[1:] if roles[0] == "system" else roles
    for index, role in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            position = index + (len(roles) - len(turns))
            raise RowError(
                f"messages[{position}].role is {role!r} where {expected!r} was expected "
                f"(roles must be: optional system, then user and assistant alternating; got {roles})"
            )
    if not turns or turns[-1] != "assistant":
        raise RowError(f"the last message must be the assistant's answer; roles are {roles}")


def from_messages(row: dict, context: _Conversion) -> Messages:
    if "messages" not in row:
        raise RowError(f"missing field 'messages' (fields present: {_fields(row)})")
    return validate_messages(row["messages"], context)


def from_prompt_completion(row: dict, context: _Conversion) -> Messages:
    return [
        {"role": "user", "content": _text_field(row, "prompt", context)},
        {"role": "assistant", "content": _text_field(row, "completion", context)},
    ]


def from_alpaca(row: dict, context: _Conversion) -> Messages:
    instruction = _text_field(row, "instruction", context)
    extra = _text_field(row, "input", context, required=False).strip()
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return [{"role": "user", "content": user}, {"role": "assistant", "content": _text_field(row, "output", context)}]


def strip_sql_wrapper(answer: str) -> str:
    """'[SQL] SELECT 1 [/SQL]' -> 'SELECT 1' (some data sets wrap their answers so)."""
    match = _SQL_WRAPPER_RE.match(answer)
    return (match.group(1) if match else answer).strip()


def sql_system_message(context: str) -> str:
    return f"{SQL_SYSTEM_PROMPT}\n\n{context.strip()}"


def from_sql_create_context(row: dict, conversion: _Conversion) -> Messages:
    question = _text_field(row, "question", conversion)
    context = _text_field(row, "context", conversion)
    raw_answer = _text_field(row, "answer", conversion)
    answer = strip_sql_wrapper(raw_answer)
    if _SQL_WRAPPER_RE.match(raw_answer):
        conversion.note("sql_wrapper_removed")
    if not schema_statements(context):
        raise RowError(f"field 'context' holds no complete CREATE TABLE statement: {_short(context)}")
    if not answer:
        raise RowError("field 'answer' is empty inside its [SQL] ... [/SQL] wrapper")
    return [
        {"role": "system", "content": sql_system_message(context)},
        {"role": "user", "content": question.strip()},
        {"role": "assistant", "content": answer},
    ]


CONVERTERS: dict[str, Callable[[dict, _Conversion], Messages]] = {
    "messages": from_messages,
    "prompt-completion": from_prompt_completion,
    "alpaca": from_alpaca,
    "sql-create-context": from_sql_create_context,
}
FIELDS = {
    "messages": ("messages",),
    "prompt-completion": ("prompt", "completion"),
    "alpaca": ("instruction", "input", "output"),
    "sql-create-context": ("question", "context", "answer"),
}
FORMATS = tuple(CONVERTERS)


def convert(row: Any, data_format: str, max_chars: int | None = None) -> Converted:
    """Convert one row, noting what was dropped or changed; raises RowError for a row that is not an
    object, does not fit the format, or is longer than ``max_chars`` characters in all."""
    if data_format not in CONVERTERS:
        raise ValueError(f"format {data_format!r} is not supported; allowed: {', '.join(FORMATS)}")
    if not isinstance(row, dict):
        raise RowError(f"row must be an object, got {type(row).__name__}: {_short(row)}")
    context = _Conversion(max_chars=max_chars)
    messages = CONVERTERS[data_format](row, context)
    total = sum(len(message["content"]) for message in messages)
    if max_chars is not None and total > max_chars:
        raise RowTooLong(f"the conversation is {total:,} characters, over the limit of {max_chars:,} (--max-chars)")
    for name in row:
        if name not in FIELDS[data_format]:
            context.note("unknown_field_dropped", _short(name, 40).strip("'"))
    return Converted(messages, context.changes)


def to_messages(row: Any, data_format: str) -> Messages:
    """Convert one row; raises RowError for a row that is not an object or does not fit the format."""
    return convert(row, data_format).messages
