"""The package logger's fallback handler (no heavy imports: ``import rtsource`` loads it)."""

from __future__ import annotations

import logging

__all__ = ["FallbackHandler"]


class FallbackHandler(logging.StreamHandler):
    """Warnings reach a user who configured no logging, each message once.

    Attached to the package logger instead of a ``NullHandler``: while the root logger has
    no handler (nobody configured logging), records at WARNING and above are written to
    stderr, and a message already written is not repeated. Once the application configures
    logging (``logging.basicConfig``, the CLI, pytest), this handler stays silent and the
    application's handlers decide.
    """

    MAX_REMEMBERED = 2000

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter("rtsource: %(levelname)s: %(message)s"))
        self._seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return  # the application configured logging: its handlers have it
        msg = record.getMessage()
        if msg in self._seen:
            return
        if len(self._seen) < self.MAX_REMEMBERED:
            self._seen.add(msg)
        super().emit(record)
