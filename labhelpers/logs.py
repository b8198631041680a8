"""The library reports through ``logging``: logger ``labhelpers`` and one child per module.

Out of the box one handler shows each message exactly as written, INFO to ``sys.stdout`` and
WARNING and above to ``sys.stderr``, looked up when the message is written (so a notebook's
cell output, a test's captured output or a background process's log file gets it), and the
notebooks' progress lines read as they always have. To route the messages elsewhere::

    lab_log = logging.getLogger("labhelpers")
    lab_log.handlers.clear()
    lab_log.propagate = True   # now your logging configuration decides
"""

from __future__ import annotations

import logging
import sys

ROOT = "labhelpers"


class ProgressHandler(logging.Handler):
    """Writes the bare message to the current stdout (INFO and below) or stderr, flushed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # logging must never break the lab
            self.handleError(record)


_installed = False


def logger(name: str) -> logging.Logger:
    """The logger of module ``name``; the first call in a process gives ``labhelpers`` its
    handler (once: a configuration made after it is left alone)."""
    global _installed
    if not _installed:
        _installed = True
        root = logging.getLogger(ROOT)
        if not any(isinstance(h, ProgressHandler) for h in root.handlers):
            root.addHandler(ProgressHandler())
        if root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        root.propagate = False  # shown once, by the handler above
    # a module run as a program (python -m labhelpers.analytics.runner) is "__main__": its
    # logger must still be under "labhelpers", or its INFO lines are dropped
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")
