"""User-facing errors: each one is shown as a single line by the CLI."""


class AekitError(Exception):
    """A problem with the user's input (file, option, config); the message names it."""


class ConfigError(AekitError):
    """An invalid configuration file or option."""


class DataError(AekitError):
    """Data that cannot be found, read or used."""
