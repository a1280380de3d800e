"""The one exception type for user mistakes.

Anything a user can get wrong (a missing folder, a corrupt file, an absurd
hyper-parameter) raises ``ColorkitError`` with a single, complete sentence that
says what was expected. The CLI prints that sentence on one line and exits
non-zero; the HTTP API turns it into a 4xx. Programming errors stay ordinary
exceptions so their tracebacks are not hidden.
"""


class ColorkitError(ValueError):
    """A user-facing error whose message is shown as is, on one line."""
