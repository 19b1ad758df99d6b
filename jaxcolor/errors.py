"""Exceptions whose message alone tells the user what to change."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""
