"""Errors shared across the command line."""


class CommandError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits with 2."""
