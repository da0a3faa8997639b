"""Errors a user can fix (bad arguments, missing settings). The CLI prints them as one line and exits 2."""


class UserError(Exception):
    """A problem with what the user asked for, explained in the message."""
