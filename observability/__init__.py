"""Logs, metrics plumbing and traces shared by the API, the worker and the CLI.

Imports nothing of the project's, so every layer may use it (activities and workflows need not:
Temporal's own loggers carry their ids)."""
