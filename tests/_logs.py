"""Capturing one logger's messages in a test (the CLI's loggers do not propagate to the root
logger that pytest's ``caplog`` listens on)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class Lines(logging.Handler):
    """The messages a logger emitted, in order."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def logged(name: str) -> Iterator[Lines]:
    """Within the block, logger ``name`` at INFO records every message into the handler."""
    logger, handler = logging.getLogger(name), Lines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
