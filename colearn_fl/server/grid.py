"""A Grid that collects replies promptly.

Under ``flwr run`` the ServerApp talks to the SuperLink through flwr 1.41's ``HttpGrid``, whose
``send_and_receive`` sleeps a fixed 3 s between reply polls: each train and each evaluate
phase waits up to 3 s after its last reply. ``ResponsiveGrid`` wraps any Grid and polls with
its public ``push_messages`` / ``pull_messages`` on a short, growing interval instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from flwr.app import Message
from flwr.serverapp import Grid

from strategies.delegating_grid import DelegatingGrid


class ResponsiveGrid(DelegatingGrid):
    """Delegates to ``grid``; ``send_and_receive`` polls every ``first_poll_s`` at first,
    then backs off by ``backoff`` up to ``max_poll_s`` (a reply waits at most that long)."""

    def __init__(self, grid: Grid, first_poll_s: float = 0.05, max_poll_s: float = 0.5,
                 backoff: float = 1.5) -> None:
        super().__init__(grid)
        self.first_poll_s, self.max_poll_s, self.backoff = first_poll_s, max_poll_s, backoff

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterator[Message]:
        """Push ``messages`` now; the returned iterator yields each reply as it is pulled,
        until all arrived or ``timeout`` passed (counted from the push).

        A strategy that consumes it one reply at a time (``CoLearnSchedule``'s streaming
        aggregation) holds one reply at a time; ``list()`` gives Flower's behaviour.
        """
        pending = set(self.push_messages(messages))
        end = None if timeout is None else time.monotonic() + timeout
        return self._replies(pending, end)

    def _replies(self, pending: set[str], end: float | None) -> Iterator[Message]:
        pause = self.first_poll_s
        while pending and (end is None or time.monotonic() < end):
            for reply in self.pull_messages(pending):
                pending.discard(reply.metadata.reply_to_message_id)
                yield reply
            if pending:
                time.sleep(pause)
                pause = min(self.max_poll_s, pause * self.backoff)
