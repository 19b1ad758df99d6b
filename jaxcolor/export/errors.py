"""Export and inference errors; like jaxcolor.errors, the message alone says what to change.

Kept apart from jaxcolor/errors.py (no JAX either way) so the two modules evolve separately.
"""


class ExportError(ValueError):
    """A checkpoint or an exported model that cannot be read or written; names the path."""


class InputError(ValueError):
    """An inference input that cannot be used; names the file and what is wrong with it."""
