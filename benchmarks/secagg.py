"""Secure aggregation's cost per training round, next to plain aggregation, in one process.

Each site is a real ClientApp with colearn-fl's secagg mod whose "training" adds noise to the
model it received (so the seconds are the protocol's and the aggregation's, not training's);
a round is one ``send_and_receive`` of the strategy's training messages, then the weighted
mean. Bytes count the arrays and config values of every message sent and received (keys,
encrypted shares and masked int64 vectors included). The error column is the largest
difference between the secure mean and the plain one.

    python benchmarks/secagg.py                    # 4 and 16 sites, a 1M-parameter model
    python benchmarks/secagg.py --smoke            # 2 and 4 sites, 10k parameters
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity

from colearn_fl.site.secagg_mod import secagg_mod
from strategies.secagg import SecureAggregationGrid, Settings
from strategies.secagg.server import message_bytes
from strategies.streaming import WeightedSum


def site_app() -> ClientApp:
    app = ClientApp(mods=[secagg_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        rng = np.random.default_rng(context.node_id)
        received = next(iter(msg.content.array_records.values()))
        trained = ArrayRecord(OrderedDict(
            (k, Array(np.asarray(a.numpy() + rng.normal(0, 0.01, a.shape), dtype=a.dtype)
                      if a.dtype == "float32" else np.asarray(a.numpy() + 1)))
            for k, a in received.items()))
        metrics = MetricRecord({"num-examples": 100 + context.node_id})
        return Message(RecordDict({"arrays": trained, "metrics": metrics}), reply_to=msg)

    return app


class Fleet:
    """A Grid over ``sites`` in-process ClientApps; counts the bytes both ways."""

    def __init__(self, sites: int) -> None:
        self.app, self.sent, self.received = site_app(), 0, 0
        self.contexts = {n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(),
                                    run_config={}) for n in range(1, sites + 1)}

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterator[Message]:
        replies = []
        for i, msg in enumerate(messages):
            msg.metadata.__dict__["_message_id"] = f"m{i}"
            self.sent += message_bytes(msg)
            reply = self.app(copy.deepcopy(msg), self.contexts[msg.metadata.dst_node_id])
            self.received += message_bytes(reply)
            replies.append(reply)
        return iter(replies)


def round_of(grid, fleet: Fleet, model: ArrayRecord) -> tuple[float, ArrayRecord]:
    """Seconds of one round over ``grid`` (sending, the protocol, the mean), and the mean."""
    messages = [Message(RecordDict({"arrays": model, "config": ConfigRecord({"server-round": 1})}),
                        dst_node_id=n, message_type=MessageType.TRAIN) for n in fleet.contexts]
    start = time.perf_counter()
    summed = WeightedSum()
    for reply in grid.send_and_receive(messages, timeout=600):
        summed.add(reply.content["arrays"], float(reply.content["metrics"]["num-examples"]), {})
    return time.perf_counter() - start, summed.mean_arrays()


def measure(sites: int, params: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    model = ArrayRecord(OrderedDict([
        ("weight", Array(rng.normal(0, 0.1, (params // 1000, 1000)).astype(np.float32))),
        ("bn.num_batches_tracked", Array(np.array(10, dtype=np.int64)))]))
    plain_fleet, secure_fleet = Fleet(sites), Fleet(sites)
    plain_s, plain = round_of(plain_fleet, plain_fleet, model)
    secure_s, secure = round_of(SecureAggregationGrid(secure_fleet, Settings()), secure_fleet,
                                model)
    error = float(np.abs(secure["weight"].numpy() - plain["weight"].numpy()).max())
    return {"plain-mb": (plain_fleet.sent + plain_fleet.received) / 1e6, "plain-s": plain_s,
            "secure-mb": (secure_fleet.sent + secure_fleet.received) / 1e6,
            "secure-s": secure_s, "error": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args()
    sites, params = ([2, 4], 10_000) if args.smoke else (args.sites, args.params)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    print(f"one training round in one process; model {params} float32 parameters "
          f"({4 * params / 1e6:.1f} MB)")
    print("| sites | plain MB | secure MB | ratio | plain s | secure s | max error |")
    print("|---|---|---|---|---|---|---|")
    for n in sites:
        r = measure(n, params)
        print(f"| {n} | {r['plain-mb']:.2f} | {r['secure-mb']:.2f} | "
              f"{r['secure-mb'] / r['plain-mb']:.2f} | {r['plain-s']:.2f} | "
              f"{r['secure-s']:.2f} | {r['error']:.1e} |")


if __name__ == "__main__":
    main()
