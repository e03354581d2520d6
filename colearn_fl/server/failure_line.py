"""One line, not a traceback, when a run stops on a ``ColearnError``.

A ServerApp that raises is logged by Flower as "ServerApp raised an exception" with the
traceback, which ``flwr run --stream`` prints last. For colearn-fl's own errors (a bad key, a
run folder in use, a site's data) the message already says what is wrong and how to fix it,
so the traceback only buries it: this filter turns that record into ``[colearn] FAILED: <the
message>``, or drops it when the run already logged that line. Any other exception keeps
Flower's traceback.
"""

from __future__ import annotations

import functools
import logging

from colearn_fl.errors import ColearnError

LOGGED = "colearn_logged"  # set on an error whose FAILED line the run has logged itself


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, ColearnError) or "raised an exception" not in str(record.msg):
            return True
        if getattr(error, LOGGED, False):
            return False
        record.msg, record.args = "[colearn] FAILED: %s", (str(error),)
        record.exc_info, record.exc_text = None, None
        return True


@functools.cache
def one_line_failures() -> None:
    """Install the filter on Flower's logger (once per process)."""
    logging.getLogger("flwr").addFilter(_OneLine())
