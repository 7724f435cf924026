"""The one exception type for problems the user can fix (bad data, bad arguments)."""


class UserError(Exception):
    """A clear, actionable problem with the user's input.

    The CLI prints the message (no traceback) and exits with code 2.
    """

    exit_code = 2
