"""docs/architecture.md shows the state machine that is synthesized now."""

from __future__ import annotations

from cdk_app.diagram import ARCHITECTURE_DOC, END_MARKER, START_MARKER, mermaid, updated_document


def test_architecture_diagram_is_up_to_date(definition):
    current = ARCHITECTURE_DOC.read_text()
    assert updated_document(current, definition) == current, "run `python -m cdk_app.diagram`"


def test_diagram_draws_every_state_and_transition(definition):
    chart = mermaid(definition)
    for name in definition["States"]:
        assert f"    {name}" in chart
    assert '    GatePassed -- "$.gate.passed == true" --> DeploymentEnabled' in chart
    assert '    ValidateInput -. "States.ALL" .-> Cleanup' in chart
    assert "    Start((Start)) --> ValidateInput" in chart


def test_update_replaces_only_the_marked_block(definition):
    document = f"intro\n{START_MARKER}\nold\n{END_MARKER}\noutro\n"
    updated = updated_document(document, definition)
    assert updated.startswith("intro\n") and updated.endswith("\noutro\n")
    assert "old" not in updated and "flowchart TD" in updated
