"""The one way an engine stops on an error that retrying cannot cure."""

from __future__ import annotations


class WorkerFailed(RuntimeError):
    """An error that retrying cannot cure: the worker stops with a non-zero status (the
    single worker's `CommitFailed`, a Faust service's failure)."""
