"""Turn one row of a supported data set format into a chat conversation ("messages").

Every format ends up as ``[{"role": ..., "content": ...}, ...]``: an optional system message, then
user and assistant turns alternating, ending with the assistant's answer. A row that cannot be
converted raises ``RowError`` naming the field, what it holds and what is allowed.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

from sql_execution import schema_statements

# The system message of sql-create-context rows: the schema follows it verbatim, so evaluation
# finds the CREATE TABLE statements again (sql_execution.extract_schema).
SQL_SYSTEM_PROMPT = ("You are a text-to-SQL assistant. Answer the question with one SQLite query "
                     "that uses only the tables below.")
_SQL_WRAPPER_RE = re.compile(r"^\s*\[SQL\](.*?)\[/SQL\]\s*$", re.DOTALL | re.IGNORECASE)
ROLES = ("system", "user", "assistant")


class RowError(ValueError):
    """One row that cannot be used; the message says why."""


Messages = list[dict[str, str]]


def _text_field(row: dict, name: str, required: bool = True) -> str:
    if name not in row or row[name] is None:
        if required:
            raise RowError(f"missing field {name!r} (fields present: {', '.join(sorted(map(str, row))) or 'none'})")
        return ""
    value = row[name]
    if not isinstance(value, str):
        raise RowError(f"field {name!r} must be a string, got {type(value).__name__}: {_short(value)}")
    text = value
    if required and not text.strip():
        raise RowError(f"field {name!r} is empty")
    return text


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def validate_messages(messages: Any) -> Messages:
    """Check roles, order and content of a conversation; return it with only role and content kept."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)  # CSV and some Parquet files hold the list as JSON text
        except json.JSONDecodeError as error:
            raise RowError(f"field 'messages' is text but not JSON ({error.msg})") from error
    if not isinstance(messages, list):
        raise RowError(f"field 'messages' must be a list of {{role, content}} objects, got {type(messages).__name__}")
    if not messages:
        raise RowError("field 'messages' is an empty list")
    cleaned: Messages = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RowError(f"{where} must be an object with role and content, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RowError(f"{where}.role is {_short(role)}; allowed: {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise RowError(f"{where}.content must be a string, got {type(content).__name__}")
        if not content.strip():
            raise RowError(f"{where}.content is empty")
        cleaned.append({"role": role, "content": content})
    roles = [message["role"] for message in cleaned]
    turns = roles[1:] if roles[0] == "system" else roles
    for index, role in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            position = index + (len(roles) - len(turns))
            raise RowError(f"messages[{position}].role is {role!r} where {expected!r} was expected "
                           f"(roles must be: optional system, then user and assistant alternating; got {roles})")
    if not turns or turns[-1] != "assistant":
        raise RowError(f"the last message must be the assistant's answer; roles are {roles}")
    return cleaned


def from_messages(row: dict) -> Messages:
    if "messages" not in row:
        raise RowError(f"missing field 'messages' (fields present: {', '.join(sorted(map(str, row))) or 'none'})")
    return validate_messages(row["messages"])


def from_prompt_completion(row: dict) -> Messages:
    return [{"role": "user", "content": _text_field(row, "prompt")},
            {"role": "assistant", "content": _text_field(row, "completion")}]


def from_alpaca(row: dict) -> Messages:
    instruction = _text_field(row, "instruction")
    extra = _text_field(row, "input", required=False).strip()
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return [{"role": "user", "content": user},
            {"role": "assistant", "content": _text_field(row, "output")}]


def strip_sql_wrapper(answer: str) -> str:
    """'[SQL] SELECT 1 [/SQL]' -> 'SELECT 1' (some data sets wrap their answers so)."""
    match = _SQL_WRAPPER_RE.match(answer)
    return (match.group(1) if match else answer).strip()


def sql_system_message(context: str) -> str:
    return f"{SQL_SYSTEM_PROMPT}\n\n{context.strip()}"


def from_sql_create_context(row: dict) -> Messages:
    question = _text_field(row, "question")
    context = _text_field(row, "context")
    answer = strip_sql_wrapper(_text_field(row, "answer"))
    if not schema_statements(context):
        raise RowError(f"field 'context' holds no complete CREATE TABLE statement: {_short(context)}")
    if not answer:
        raise RowError("field 'answer' is empty inside its [SQL] ... [/SQL] wrapper")
    return [{"role": "system", "content": sql_system_message(context)},
            {"role": "user", "content": question.strip()},
            {"role": "assistant", "content": answer}]


CONVERTERS: dict[str, Callable[[dict], Messages]] = {
    "messages": from_messages,
    "prompt-completion": from_prompt_completion,
    "alpaca": from_alpaca,
    "sql-create-context": from_sql_create_context,
}
FORMATS = tuple(CONVERTERS)


def to_messages(row: Any, data_format: str) -> Messages:
    """Convert one row; raises RowError for a row that is not an object or does not fit the format."""
    if data_format not in CONVERTERS:
        raise ValueError(f"format {data_format!r} is not supported; allowed: {', '.join(FORMATS)}")
    if not isinstance(row, dict):
        raise RowError(f"row must be an object, got {type(row).__name__}: {_short(row)}")
    return CONVERTERS[data_format](row)
