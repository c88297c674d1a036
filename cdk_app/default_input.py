"""The stack's default execution input, checked at synth time by the same code ValidateInput runs.

A stack whose defaults ValidateInput refuses would fail every run it is given, so it is not
synthesized. The check runs the Lambdas' own validation (lambdas/common/validation.py) in a
separate Python process whose import root is the Lambda code folder, as the Lambda runtime's is,
so the app never imports the Lambdas' `common` package beside its own modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cdk_app.config import CONTEXT_PREFIX, DEFAULT_INPUT_FIELDS, Settings, SettingsError

_CHECK = """
import json, sys
from common.errors import InvalidInput
from common.validation import resolve
try:
    resolve({}, json.loads(sys.argv[1]))
except InvalidInput as error:
    print(json.dumps(error.problems))
    sys.exit(3)
"""


def check_default_input(settings: Settings, lambdas_dir: Path) -> None:
    """Raise SettingsError listing every problem ValidateInput finds in an empty input under these settings."""
    result = subprocess.run(
        [sys.executable, "-c", _CHECK, settings.defaults_json()],
        cwd=str(lambdas_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return
    if result.returncode == 3:
        problems = json.loads(result.stdout.strip().splitlines()[-1])
        listed = "\n".join(f"- {_with_context_key(problem)}" for problem in problems)
        raise SettingsError(
            f"the stack's default execution input (context {CONTEXT_PREFIX}*) would be refused by "
            f"ValidateInput for every run:\n{listed}"
        )
    raise SettingsError(
        f"the default execution input could not be checked with {lambdas_dir}: {result.stderr.strip()[-2000:]}"
    )


def _with_context_key(problem: str) -> str:
    """`training.instance_type (context fine-tune:train_instance_type): ...` where a setting gave the field."""
    field, _, rest = problem.partition(":")
    name = DEFAULT_INPUT_FIELDS.get(field)
    return f"{field} (context {CONTEXT_PREFIX}{name}):{rest}" if name else problem
