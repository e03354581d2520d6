"""Talking to sites outside the training rounds: waiting for them to join, and queries
(data check, SWA statistics, LR range test) whose replies come back in a canonical order.

A query's caller reports each site's error in one line of its own. In a simulation, Flower's
runtime would also log every failed site's whole Ray traceback (about 55 lines, three ERROR
records: flwr 1.41's ``raybackend.py`` and ``vce_api.py``), in the process that runs the
ServerApp; while a query is out those records are left out (``QuietQueries``). A stock Flower
ClientApp has no query functions (``unhandled``): it is not a colearn-fl site, and says so
with an error reply, which is no fault of its own.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from flwr.app import Message, RecordDict
from flwr.clientapp.client_app import ClientAppException
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from strategies.canonical import canonical_order

# What a ClientApp without the query's function raises (flwr 1.41): the Message API's
# (flwr/clientapp/client_app.py) and a legacy ClientApp(client_fn=...)'s
# (flwr/client/message_handler/message_handler.py).
UNHANDLED_QUERY = ("No query function registered with name ", "Invalid message type: query.")
# Where the simulation runtime logs a simulated site's exception, three times per site.
SIMULATION_RUNTIME = ("raybackend", "vce_api")


def unhandled(reply: Message) -> bool:
    """Whether an error reply says the site's ClientApp has no function for the query (a
    stock Flower ClientApp: not a colearn-fl site)."""
    return (reply.has_error() and reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
            and any(text in reply.error.reason for text in UNHANDLED_QUERY))


class QuietQueries(logging.Filter):
    """Drops the simulation runtime's ERROR records of a site's exception while a query is
    out (those records are logged inside the runtime's ``except`` blocks, so the exception
    being handled tells them apart); every other record passes."""

    def __init__(self) -> None:
        super().__init__()
        self.out, self._lock = 0, threading.Lock()  # queries out now

    @contextmanager
    def query(self) -> Iterator[None]:
        with self._lock:
            self.out += 1
        try:
            yield
        finally:
            with self._lock:
                self.out -= 1

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.out and site_exception(record) is not None)


def site_exception(record: logging.LogRecord) -> ClientAppException | None:
    """The site's exception when ``record`` is one of the simulation runtime's ERROR records
    of it (logged inside the runtime's ``except`` block, so the exception being handled is
    the site's); else ``None``."""
    error = sys.exc_info()[1]
    if (record.levelno >= logging.ERROR and record.module in SIMULATION_RUNTIME
            and isinstance(error, ClientAppException)):
        return error
    return None


@functools.cache
def quiet_queries() -> QuietQueries:
    """The filter on Flower's logger (installed once per process)."""
    quiet = QuietQueries()
    logging.getLogger("flwr").addFilter(quiet)
    return quiet


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> list[int]:
    """The connected nodes once at least ``count`` are (polled every second), or all that
    are connected after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= count or time.monotonic() >= deadline:
            return nodes
        time.sleep(1.0)


def short_reason(reason: str) -> str:
    """The site's own error message out of a reply's error reason (which may hold a trace)."""
    marker = "Message: "
    text = reason.rsplit(marker, 1)[-1] if marker in reason else reason
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return reason
    return (lines[0] if marker in reason else lines[-1]).rstrip("'>")


def query_sites(grid: Grid, message_type: str, content: RecordDict, nodes: Sequence[int],
                timeout: float) -> Iterator[tuple[int, Message, str | None]]:
    """Send ``content`` as a ``message_type`` message to each of ``nodes``; once every reply
    came (or ``timeout`` passed), yield them in their canonical order (``strategies.canonical``:
    set by content, not arrival) with each sender and, for an error reply, the site's own
    reason (which the caller reports: the runtime's tracebacks are left out meanwhile)."""
    messages = [Message(content=content, message_type=message_type, dst_node_id=node)
                for node in nodes]
    with quiet_queries().query():  # (send_and_receive may be lazy: wait for every reply here)
        replies = list(grid.send_and_receive(messages, timeout=timeout))
    for reply in canonical_order(replies):
        reason = short_reason(reply.error.reason) if reply.has_error() else None
        yield reply.metadata.src_node_id, reply, reason
