"""An in-memory federation for secure aggregation: a Grid that hands each message to a real
ClientApp with colearn-fl's secagg mod, one Context per site, in this process.

It records every message the server receives (``received``), and can make a site leave from
a stage on (``leave``: node id -> SecAgg+ stage name): from then it never answers, as a site
whose process died and whose SuperLink reports nothing before the timeout.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from colearn_fl.site.secagg_mod import secagg_mod

Trainer = Callable[[int, ArrayRecord], tuple[ArrayRecord, int]]  # node, received -> model, n


def model(seed: int = 0) -> ArrayRecord:
    """A small state_dict: weights, a BatchNorm buffer set and an integer step counter."""
    rng = np.random.default_rng(seed)
    return ArrayRecord(OrderedDict([
        ("w", Array(rng.normal(0, 0.5, (6, 5)).astype(np.float32))),
        ("b", Array(rng.normal(0, 0.5, (5,)).astype(np.float32))),
        ("bn.running_var", Array(rng.uniform(0.5, 3, (5,)).astype(np.float32))),
        ("bn.num_batches_tracked", Array(np.array(7, dtype=np.int64)))]))


def shifted(node: int, received: ArrayRecord) -> tuple[ArrayRecord, int]:
    """What site ``node`` 'trains': a node-specific update of every array, and ``10 * node``
    examples."""
    rng = np.random.default_rng(node)
    out = OrderedDict()
    for key, array in received.items():
        values = array.numpy()
        if values.dtype.kind == "f":
            values = (values + rng.normal(0, 0.1, values.shape)).astype(values.dtype)
        else:
            values = values + node
        out[key] = Array(np.array(values))
    return ArrayRecord(out), 10 * node


def site_app(train: Trainer, mods: list | None = None) -> ClientApp:
    """A site whose training is ``train``, behind the secagg mod (then ``mods``)."""
    app = ClientApp(mods=[secagg_mod, *(mods or [])])

    @app.train()
    def fit(msg: Message, context: Context) -> Message:
        received = next(iter(msg.content.array_records.values()))
        trained, examples = train(context.node_id, received)
        metrics = MetricRecord({"num-examples": examples, "train-loss": 0.1 * context.node_id})
        return Message(RecordDict({"arrays": trained, "metrics": metrics}), reply_to=msg)

    return app


class FleetGrid:
    """Sites ``nodes``, each a ``site_app(train, mods)`` with its own Context and
    ``run_config``."""

    def __init__(self, nodes: list[int], train: Trainer = shifted,
                 run_config: dict | None = None, mods: list | None = None) -> None:
        self.app = site_app(train, mods)
        self.contexts = {n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(),
                                    run_config=dict(run_config or {})) for n in nodes}
        self.leave: dict[int, str] = {}
        self.received: list[Message] = []
        self.pushed = 0

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterator[Message]:
        replies = []
        if timeout is not None and timeout <= 0:  # no time left: nothing arrives
            return iter(replies)
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = f"m{self.pushed}"
            self.pushed += 1
            node = msg.metadata.dst_node_id
            if self._left(node, msg):
                continue
            replies.append(self._answer(node, msg))
        self.received.extend(copy.deepcopy(r) for r in replies)  # as they arrived
        return iter(replies)

    def _left(self, node: int, msg: Message) -> bool:
        if node not in self.leave:
            return False
        stages = Stage.all()
        record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        stage = record.get(Key.STAGE) if record is not None else None
        return stage is not None and stages.index(stage) >= stages.index(self.leave[node])

    def _answer(self, node: int, msg: Message) -> Message:
        arrived = copy.deepcopy(msg)  # the site gets its own copy, as over the wire
        try:
            return self.app(arrived, self.contexts[node])
        except Exception as error:  # noqa: BLE001 - the runtime's error reply
            return Message(Error(1, f"{type(error).__name__}: {error}"), reply_to=msg)
