"""User-facing errors.

Every problem a user can fix (bad flag, missing data, corrupt config) is raised as :class:`UserError`
with a one-line message naming the problem and the fix. The CLI turns it into exit code 2 without a
traceback; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input, reported as one line and exit code 2."""


class Interrupted(Exception):
    """Training stopped on a signal after saving its checkpoint; the CLI prints the message (which says how
    to resume) and exits with ``exit_code`` (128 + the signal number: 130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
