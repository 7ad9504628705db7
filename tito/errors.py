"""The one error class of the CLI: a command cannot go on, and the message says what to do.

`tito.cli.main` catches `TitoError` (and so every subclass: ProjectError, ExportError,
ReleaseError, SourceError), prints its message and exits with status 1.
"""


class TitoError(RuntimeError):
    """A tito command cannot go on; the message tells the learner why and what to do."""
