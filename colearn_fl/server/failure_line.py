"""One line, not a traceback, when a run stops on a ``ColearnError``.

A ServerApp that raises is logged by Flower as "ServerApp raised an exception" with the
traceback, which ``flwr run --stream`` prints last. For colearn-fl's own errors (a bad key, a
run folder in use, a site's data) the message already says what is wrong and how to fix it,
so the traceback only buries it: this filter turns that record into ``[colearn] FAILED: <the
message>``, or drops it when the run already logged that line. Any other exception keeps
Flower's traceback.

In a simulation, Flower's runtime also logs every site exception with its whole Ray traceback
(about 55 lines per site and round) in the ServerApp's process. When the site raised one of
colearn-fl's own errors, its message already says what to change and the server names it in
one line per site (and in ``run-log.json``): those runtime records are left out too.
"""

from __future__ import annotations

import functools
import logging

from colearn_fl.errors import ColearnError, ConfigError, DataError
from strategies.query import site_exception

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


# How a colearn-fl error looks in the Ray traceback a site's exception carries.
SITE_ERRORS = tuple(f"{cls.__module__}.{cls.__name__}" for cls in (ConfigError, DataError,
                                                                     ColearnError))


class _SitesSayIt(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = site_exception(record)
        return not (error is not None and any(name in str(error) for name in SITE_ERRORS))


@functools.cache
def one_line_failures() -> None:
    """Install the filters on Flower's logger (once per process)."""
    logging.getLogger("flwr").addFilter(_OneLine())
    logging.getLogger("flwr").addFilter(_SitesSayIt())
