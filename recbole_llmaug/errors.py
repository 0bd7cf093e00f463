"""User-facing errors.

A :class:`UserError` carries one paragraph that names what is wrong and how to fix it.
The command line prints it and exits with status 2, without a traceback, because
the problem is in the user's input (a model name, a yaml file, a data folder), not in our code.
"""


class UserError(Exception):
    """An error in the user's input; its message says what is wrong and how to fix it."""

    exit_code = 2
