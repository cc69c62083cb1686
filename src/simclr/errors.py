"""User-facing errors.

Every problem a user can fix (bad flag, missing data, corrupt config) is raised as :class:`UserError`
with a one-line message naming the problem and the fix. The CLI turns it into exit code 2 without a
traceback; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input, reported as one line and exit code 2."""
