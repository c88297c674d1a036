"""The hyperparameters' copies outside the model, generated from it so they cannot drift.

- the execution input schema's `training.hyperparameters` (lambdas/common/execution_input.schema.json),
  the rest of the file kept as it is;
- docs/training.md's hyperparameter table and docs/workflow-contract.md's list, between
  `<!-- hyperparameters:begin -->` and `<!-- hyperparameters:end -->`.

    python training/hyperparameters_contract.py --write    (make contract)
    python training/hyperparameters_contract.py --check    (exit 1 when a committed copy is stale)
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from hyperparameters import Hyperparameters, allowed, choices, type_word, wire
from pydantic.fields import FieldInfo

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA = REPO_ROOT / "lambdas" / "common" / "execution_input.schema.json"
TRAINING_DOC = REPO_ROOT / "docs" / "training.md"
CONTRACT_DOC = REPO_ROOT / "docs" / "workflow-contract.md"
COMMAND = "make contract"
BEGIN, END = "<!-- hyperparameters:begin -->", "<!-- hyperparameters:end -->"
SCHEMA_DESCRIPTION = "passed to train.py as SageMaker hyperparameters (strings)"
# The order of a field's keys in the schema file, as it was written by hand.
_KEY_ORDER = (
    "type",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "pattern",
    "maxLength",
    "enum",
    "default",
    "description",
)


def _fields() -> dict[str, FieldInfo]:
    return dict(Hyperparameters.model_fields)


def _plain(value: Any) -> Any:
    """A whole float as an integer (3.0 -> 3): the JSON number the execution input has always had."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# ---------------------------------------------------------------- the execution input schema


def field_schema(name: str, generated: dict[str, Any]) -> dict[str, Any]:
    """One field as the execution input takes it: the model's JSON Schema, widened by its Wire."""
    spec = {key: _plain(value) for key, value in generated.items() if key != "title"}
    spec.update(wire(_fields()[name]).accepts or {})
    unknown = set(spec) - set(_KEY_ORDER)
    if unknown:
        raise ValueError(f"{name}: schema keys this generator does not place: {', '.join(sorted(unknown))}")
    return {key: spec[key] for key in _KEY_ORDER if key in spec}


def hyperparameters_schema() -> dict[str, Any]:
    """The execution input's `training.hyperparameters` object: every field the workflow lets an input set."""
    generated = Hyperparameters.model_json_schema()["properties"]
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: field_schema(name, generated[name])
            for name, field in _fields().items()
            if not wire(field).from_workflow
        },
        "description": SCHEMA_DESCRIPTION,
    }


def _render(value: Any, level: int) -> str:
    """JSON as the schema file writes it: objects one key a line, two spaces a level, short lists on one line."""
    if isinstance(value, dict) and value:
        pad = "  " * (level + 1)
        items = [f"{pad}{json.dumps(key)}: {_render(item, level + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    return json.dumps(value)


def updated_schema(text: str) -> str:
    """`text` (the schema file) with its training.hyperparameters object regenerated, nothing else touched."""
    current = json.loads(text)["properties"]["training"]["properties"]["hyperparameters"]
    decoder = json.JSONDecoder()
    key = '"hyperparameters": '
    start = text.find(key)
    while start != -1:
        brace = start + len(key)
        value, end = decoder.raw_decode(text, brace)
        if value == current:
            line_start = text.rfind("\n", 0, start) + 1
            level = (start - line_start) // 2
            return text[:brace] + _render(hyperparameters_schema(), level) + text[end:]
        start = text.find(key, start + 1)
    raise ValueError(f"{SCHEMA}: training.hyperparameters not found")


# ---------------------------------------------------------------- the docs


def _code(text: str) -> str:
    return f"`{text}`"


def _default(field: FieldInfo) -> str:
    value = field.default
    if value == "":
        return "empty"
    if isinstance(value, float):
        return f"{value:g}"
    return _code(value) if isinstance(value, str) else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def training_table() -> str:
    """docs/training.md's table: one row per field, as train.py reads them."""
    rows = ["| name | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for name, field in _fields().items():
        cells = [_code(name), type_word(field), _default(field), allowed(field, code=_code), field.description or ""]
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows)


def contract_list() -> str:
    """docs/workflow-contract.md's paragraph: the names an input may set, and those the workflow sets."""
    fields = _fields()
    given = [_code(name) for name, field in fields.items() if not wire(field).from_workflow]
    workflow = [_code(name) for name, field in fields.items() if wire(field).from_workflow]
    choice_names = [_code(name) for name, field in fields.items() if choices(field)]
    text = (
        f"Training hyperparameters the input may set (`training.hyperparameters`; types, defaults, limits "
        f"and meanings in docs/training.md): {', '.join(given)}; of these, {', '.join(choice_names)} are "
        f"choices. The workflow adds, for a Hub base model, {', '.join(workflow)}."
    )
    return textwrap.fill(text, width=100, break_on_hyphens=False, break_long_words=False)


def replace_block(text: str, body: str, where: Path) -> str:
    """`text` with what lies between the markers replaced by `body`."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{where}: expected one {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


# ---------------------------------------------------------------- all of them


def generated(path: Path, text: str) -> str:
    """What `path` should hold, given its current `text`."""
    if path == SCHEMA:
        return updated_schema(text)
    if path == TRAINING_DOC:
        return replace_block(text, training_table(), path)
    if path == CONTRACT_DOC:
        return replace_block(text, contract_list(), path)
    raise ValueError(f"{path}: not generated here")


def stale() -> list[Path]:
    """The generated files whose committed text differs from what the model gives."""
    return [path for path in (SCHEMA, TRAINING_DOC, CONTRACT_DOC) if generated(path, _read(path)) != _read(path)]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the files in place")
    mode.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"{path.relative_to(REPO_ROOT)} is stale: run `{COMMAND}`", file=sys.stderr)
        return 1 if outdated else 0
    for path in (SCHEMA, TRAINING_DOC, CONTRACT_DOC):
        text = _read(path)
        new = generated(path, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
