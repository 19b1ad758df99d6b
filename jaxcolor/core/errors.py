"""Exceptions whose message alone tells the user what to change.

Entry points catch `JaxcolorError` and print its message as one line; anything else is a bug
and keeps its traceback.
"""


class JaxcolorError(Exception):
    """Base class: a problem the user can fix, described by the message."""


class ConfigError(JaxcolorError, ValueError):
    """A config value that cannot work; the message names the key and the fix."""


class WorkdirError(JaxcolorError, OSError):
    """The run directory cannot be created, written or filled (missing parent, no space)."""


class CheckpointMismatchError(JaxcolorError):
    """A checkpoint in the workdir was written by a run with an incompatible config."""


class NonFiniteError(JaxcolorError, FloatingPointError):
    """Training produced a NaN or Inf loss or gradient; nothing after it was saved."""


class ExportError(JaxcolorError, ValueError):
    """A checkpoint or an exported model that cannot be read or written; names the path."""


class InputError(JaxcolorError, ValueError):
    """An inference input that cannot be used; names the file and what is wrong with it."""
