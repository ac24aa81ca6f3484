"""The one exception type that the CLI turns into a one-line message and exit status 2."""


class SynthError(Exception):
    """Bad input or an unrecoverable condition the user can fix (shown without a traceback)."""
