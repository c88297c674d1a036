"""Exit codes and the one error type every command raises for a problem the user can fix."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a script calling the CLI can rely on; docs/deploy.md lists the same table."""

    SUCCEEDED = 0  # the command did what it was asked; for start --watch and watch: the execution SUCCEEDED
    FAILED = 1  # the execution FAILED (a step's error, the evaluation gate, the preflight of a dry run)
    USAGE = 2  # bad arguments, or an input file that is not a JSON object
    ABORTED = 3  # the execution was stopped
    TIMED_OUT = 4  # the execution ran past the state machine's timeout
    NOT_FOUND = 5  # no such stack, execution or job, or no local account running
    AWS_ERROR = 6  # credentials, permissions, or another error AWS answered with
    INTERRUPTED = 130  # Ctrl-C while watching: the execution itself keeps running


EXECUTION_EXIT_CODES = {
    "SUCCEEDED": ExitCode.SUCCEEDED,
    "FAILED": ExitCode.FAILED,
    "ABORTED": ExitCode.ABORTED,
    "TIMED_OUT": ExitCode.TIMED_OUT,
}
TERMINAL_STATUSES = frozenset(EXECUTION_EXIT_CODES)


def exit_code_for(status: str) -> ExitCode:
    """The exit code of a command that followed an execution to `status`."""
    return EXECUTION_EXIT_CODES.get(status, ExitCode.FAILED)


class CliError(Exception):
    """A problem stated so the user can act on it: what was wrong, the value, what is expected."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE):
        super().__init__(message)
        self.code = code
