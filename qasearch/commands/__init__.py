"""Subcommands of the ``qasearch`` CLI, one module each (see :mod:`qasearch.cli`)."""
