"""The hyperparameters' schema, docs and options come from the model, and say what the model does."""

import argparse

import hyperparameters_contract as contract
import jsonschema
import pytest
from hyperparameters import Hyperparameters, add_hyperparameter_options, bounds, build_hyperparameters, choices

FIELDS = Hyperparameters.model_fields
GIVEN_BY_INPUT = list(contract.hyperparameters_schema()["properties"])


@pytest.mark.parametrize("path", [contract.SCHEMA, contract.TRAINING_DOC, contract.CONTRACT_DOC], ids=lambda p: p.name)
def test_generated_files_are_up_to_date(path):
    committed = path.read_text(encoding="utf-8")
    assert contract.generated(path, committed) == committed, (
        f"{path.relative_to(contract.REPO_ROOT)} is stale: run `{contract.COMMAND}` "
        "(python training/hyperparameters_contract.py --write)"
    )


def test_regenerating_the_schema_touches_only_its_hyperparameters():
    committed = contract.SCHEMA.read_text(encoding="utf-8")
    drifted = committed.replace(
        '"lora_alpha": {\n              "type": "number"', '"lora_alpha": {"type": "integer"', 1
    )
    assert drifted != committed
    assert contract.updated_schema(drifted) == committed


def test_a_marked_block_is_replaced_and_nothing_else():
    document = f"intro\n{contract.BEGIN}\nold\n{contract.END}\noutro\n"
    assert contract.replace_block(document, "new", contract.TRAINING_DOC) == (
        f"intro\n{contract.BEGIN}\nnew\n{contract.END}\noutro\n"
    )
    with pytest.raises(ValueError, match="expected one"):
        contract.replace_block("no markers", "new", contract.TRAINING_DOC)


def test_check_says_which_command_to_run(monkeypatch, capsys):
    monkeypatch.setattr(contract, "_read", lambda path: "stale\n" + path.read_text(encoding="utf-8"))
    monkeypatch.setattr(contract, "generated", lambda path, text: text.removeprefix("stale\n"))
    assert contract.main(["--check"]) == 1
    assert f"run `{contract.COMMAND}`" in capsys.readouterr().err


def test_the_input_sets_every_field_but_the_workflows_own():
    assert set(FIELDS) - set(GIVEN_BY_INPUT) == {"model_id", "model_revision", "hf_token_secret_arn"}


def test_the_schemas_defaults_as_the_workflow_sends_them_are_the_models():
    properties = contract.hyperparameters_schema()["properties"]
    # As lambdas/common/job_requests.py passes them: every value a string, booleans lower-case.
    as_sent = {
        name: str(spec["default"]).lower() if isinstance(spec["default"], bool) else str(spec["default"])
        for name, spec in properties.items()
    }
    assert set(as_sent) == set(GIVEN_BY_INPUT)
    assert build_hyperparameters(as_sent) == Hyperparameters()


def _schema_accepts(name, value) -> bool:
    field_schema = contract.hyperparameters_schema()["properties"][name]
    return jsonschema.Draft202012Validator(field_schema).is_valid(value)


def _model_accepts(name, value) -> bool:
    try:
        build_hyperparameters({name: value})
    except ValueError:
        return False
    return True


def _probes(name):
    """Values at and just beyond the field's bounds, its choices and a wrong one."""
    field = FIELDS[name]
    if choices(field):
        return [*choices(field), "bogus"]
    step = 1 if field.annotation is int else 1e-9
    values = []
    for key, value in bounds(field).items():
        values += [value, value - step if key in ("ge", "gt") else value + step]
    return values


@pytest.mark.parametrize("name", GIVEN_BY_INPUT)
def test_the_schema_and_the_model_agree_at_the_bounds_and_choices(name):
    probes = _probes(name)
    for value in probes:
        assert _schema_accepts(name, value) == _model_accepts(name, value), (name, value)


def test_the_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(contract.hyperparameters_schema())


def test_train_pys_options_are_the_models_fields():
    parser = argparse.ArgumentParser()
    add_hyperparameter_options(parser)
    options = {action.dest: action for action in parser._actions if action.dest != "help"}
    assert list(options) == list(FIELDS)
    for name, action in options.items():
        assert f"--{name}" in action.option_strings
        assert FIELDS[name].description in action.help, name
    assert options["lora_alpha"].metavar == "NUMBER" and options["quantization"].metavar == "CHOICE"
