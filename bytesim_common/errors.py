"""User errors: one line, exit code 2, never a traceback (see `bytesim_common.cli`)."""


class UserError(Exception):
    """A problem with what the user asked for or gave us (bad argument, bad file)."""
