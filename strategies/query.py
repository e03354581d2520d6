"""Talking to sites outside the training rounds: waiting for them to join, and queries
(data check, SWA statistics, LR range test) whose replies come back in a canonical order."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from strategies.canonical import canonical_order


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
    reason."""
    messages = [Message(content=content, message_type=message_type, dst_node_id=node)
                for node in nodes]
    for reply in canonical_order(grid.send_and_receive(messages, timeout=timeout)):
        reason = short_reason(reply.error.reason) if reply.has_error() else None
        yield reply.metadata.src_node_id, reply, reason
