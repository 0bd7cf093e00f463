"""User-facing errors.

A :class:`UserError` carries one paragraph that names what is wrong and how to fix it.
The command line prints it and exits with status 2, without a traceback, because
the problem is in the user's input (a model name, a yaml file, a data folder), not in our code.

A :class:`ServiceError` is the same kind of paragraph for an external service (an LLM or
embedding endpoint) that kept failing after its retries: the input is fine and so is our code,
so it gets its own exit status (3), and its message also says what was kept and how to resume.
"""


class UserError(Exception):
    """An error in the user's input; its message says what is wrong and how to fix it."""

    exit_code = 2


class ServiceError(UserError):
    """An external service failed after its retries; the message says what failed (endpoint, model,
    HTTP status or problem), what was kept (e.g. how many texts are cached) and how to continue."""

    exit_code = 3
