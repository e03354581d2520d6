"""A canonical order of replies: the same replies give the same average, whatever order
they arrived in.

Floating-point addition is not associative, so a weighted average summed in arrival order can
differ in its last bits between two runs whose sites replied in a different order (one site
was slower, Ray scheduled differently). Over rounds those bits grow into different models.
Sorting the replies by their content before summing removes the dependence on arrival: two
runs whose sites sent the same replies sum them in the same order. The order needs nothing
from the sites (no site id on the wire; Flower's simulated node ids change from run to run),
so it works with any ClientApp.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord


def array_digest(arrays: ArrayRecord) -> bytes:
    """A digest of ``arrays``: keys, dtypes, shapes and values (BLAKE2b, 16 bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    for key, array in arrays.items():  # the serialized bytes as received: no decoding
        digest.update(f"{key}|{array.dtype}|{tuple(array.shape)}|{array.stype}|".encode())
        digest.update(array.data)
    return digest.digest()


def metrics_digest(metrics: MetricRecord) -> bytes:
    """A digest of a metric record (names in sorted order, values as exact reprs)."""
    text = json.dumps({k: metrics[k] for k in sorted(metrics)}, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def reply_key(reply: Message) -> tuple[int, bytes]:
    """The sort key of one reply: error replies last (by reason), others by their content."""
    if reply.has_error():
        reason = reply.error.reason.encode()
        return 1, hashlib.blake2b(reason, digest_size=16).digest()
    digest = hashlib.blake2b(digest_size=16)
    content = reply.content
    for name in sorted(content.array_records):
        digest.update(name.encode() + array_digest(content.array_records[name]))
    for name in sorted(content.metric_records):
        digest.update(name.encode() + metrics_digest(content.metric_records[name]))
    return 0, digest.digest()


def canonical_order(replies: Iterable[Message]) -> list[Message]:
    """``replies`` sorted by ``reply_key``: the order depends on what they hold only."""
    return sorted(replies, key=reply_key)
