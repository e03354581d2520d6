"""The server's side of SecAgg+ for one training round (Bell et al., CCS 2020).

Flower's ``SecAggPlusWorkflow`` runs these stages for a legacy strategy only; this is the same
protocol over a message-API round: the training messages a strategy built go out at the
masked-vector stage, and what comes back is the weighted mean model (``SecureRound.run``).

1. setup: each sampled site gets the settings and answers two public keys;
2. share keys: each gets its neighbours' keys and answers its encrypted Shamir shares;
3. masked vectors: each gets the shares meant for it and the strategy's training message,
   trains, and answers its metrics and its masked weighted update;
4. unmask: each gets who sent a vector and who did not, and answers the shares that rebuild
   the mask seeds of the first and the private keys of the second.

Every site is every other's neighbour (cross-silo rounds are small, so the complete graph of
the original SecAgg costs little). A site that stops answering after sharing its keys is
recovered as long as ``threshold`` sites answer the unmask stage; with fewer, the round fails
with one line that names how many dropped and the threshold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from logging import WARNING
from typing import cast

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MessageType, RecordDict
from flwr.common.secure_aggregation.crypto.shamir import combine_shares
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.serverapp import Grid
from flwr.supercore import log

from strategies.checks import ARRAYS, metrics_of
from strategies.secagg.masks import added, unmasked
from strategies.secagg.site import MASKED
from strategies.secagg.vectors import (
    MOD_RANGE,
    overflows,
    read_sum,
    shapes_of,
)
from strategies.wire import NUM_EXAMPLES, SERVER_ROUND

PROTOCOL_ERROR = 0  # the error code of a site's reply the protocol cannot use


class RoundFailed(Exception):
    """Too few sites remain to unmask the sum (the message is the line the server logs)."""


@dataclass(frozen=True)
class Settings:
    """``secagg-*`` keys: the threshold (0 = a majority of the round's sites, at least 2),
    the clipping range of each update value and the quantisation levels."""

    threshold: int = 0
    clipping_range: float = 16.0
    quantization_range: int = 2**30

    def threshold_for(self, sites: int) -> int:
        return self.threshold or max(2, sites // 2 + 1)


@dataclass
class SecureRound:
    """One secure training round over ``grid``: ``run`` sends ``messages`` (one per site)
    through the four stages and returns one reply per site that contributed, each with its
    own metrics and the same mean model, plus the error replies of the sites that failed."""

    grid: Grid
    messages: list[Message]
    settings: Settings
    timeout: float | None = None
    threshold: int = 0
    sent_bytes: int = 0  # what the round's stages sent and received, for the benchmark
    received_bytes: int = 0
    errors: dict[int, Message] = field(default_factory=dict)  # node id -> its error reply
    public_keys: dict[int, list[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_node = {m.metadata.dst_node_id: m for m in self.messages}
        self.sampled = sorted(self.by_node)
        self.threshold = self.settings.threshold_for(len(self.sampled))
        self.end = None if self.timeout is None else time.monotonic() + self.timeout
        self.round = _round_of(self.messages[0])

    def run(self) -> list[Message]:
        """The round's replies; a failed round logs its one line and returns error replies."""
        try:
            if len(self.sampled) < 2 or self.threshold > len(self.sampled):
                raise RoundFailed(self._too_few("setup", len(self.sampled)))
            keyed = self._setup()
            sharing = self._share_keys(keyed)
            replies, total = self._collect(sharing)
            mean = self._unmask(sharing, replies, total)
        except RoundFailed as failure:
            log(WARNING, "Round %s: %s", self.round, failure)
            return [*self.errors.values(), *(
                Message(Error(PROTOCOL_ERROR, str(failure)), reply_to=self.by_node[node])
                for node in self.sampled if node not in self.errors)]
        for reply in replies.values():
            reply.content[ARRAYS] = mean
        return [*replies.values(), *self.errors.values()]

    def _setup(self) -> set[int]:
        settings = {Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: len(self.sampled),
                    Key.SHARE_NUMBER: len(self.sampled), Key.THRESHOLD: self.threshold,
                    Key.CLIPPING_RANGE: float(self.settings.clipping_range),
                    Key.TARGET_RANGE: self.settings.quantization_range,
                    Key.MOD_RANGE: MOD_RANGE, Key.MAX_WEIGHT: 1.0}
        replies = self._exchange(Stage.SETUP, {n: settings for n in self.sampled})
        for node, configs in replies.items():
            self.public_keys[node] = [cast(bytes, configs[Key.PUBLIC_KEY_1]),
                                      cast(bytes, configs[Key.PUBLIC_KEY_2])]
        return self._enough(Stage.SETUP, set(replies))

    def _share_keys(self, keyed: set[int]) -> dict[int, list[tuple[int, bytes]]]:
        """Forward everyone's keys; return, per site, the (source, ciphertext) pairs for it."""
        keys = {str(n): self.public_keys[n] for n in keyed}
        replies = self._exchange(Stage.SHARE_KEYS,
                                 {n: {Key.STAGE: Stage.SHARE_KEYS, **keys} for n in keyed})
        sharing = {n: [] for n in self._enough(Stage.SHARE_KEYS, set(replies))}
        for source, configs in replies.items():
            for destination, ciphertext in zip(
                    cast(list[int], configs[Key.DESTINATION_LIST]),
                    cast(list[bytes], configs[Key.CIPHERTEXT_LIST]), strict=True):
                if destination in sharing:
                    sharing[destination].append((source, ciphertext))
        return sharing

    def _collect(self, sharing: dict[int, list[tuple[int, bytes]]]
                 ) -> tuple[dict[int, Message], list[np.ndarray]]:
        """The training messages, with each site's shares; the replies and their sum."""
        for node, pairs in sharing.items():
            msg = self.by_node[node]  # its own content: a strategy may share one among all
            msg.content = RecordDict({**msg.content, RECORD_KEY_CONFIGS: ConfigRecord({
                Key.STAGE: Stage.COLLECT_MASKED_VECTORS,
                Key.SOURCE_LIST: [s for s, _ in pairs],
                Key.CIPHERTEXT_LIST: [c for _, c in pairs]})})
        sent = {n: self.by_node[n] for n in sharing}
        expected = shapes_of(_model_of(self.messages[0]))
        total, replies = None, {}
        for node, reply in self._send(Stage.COLLECT_MASKED_VECTORS, sent).items():
            vector = _vector(reply, expected)
            if vector is None:
                self._refuse(node, reply, f"its reply holds no masked vector of {len(expected)} "
                             "int64 arrays of the model's shapes")
                continue
            for key in (MASKED, RECORD_KEY_CONFIGS):
                if key in reply.content:
                    del reply.content[key]
            replies[node] = reply
            total = vector if total is None else added(total, vector)
        self._enough(Stage.COLLECT_MASKED_VECTORS, set(replies), len(sharing))
        return replies, cast(list[np.ndarray], total)

    def _unmask(self, sharing: dict[int, list], replies: dict[int, Message],
                total: list[np.ndarray]) -> ArrayRecord:
        alive, dead = sorted(replies), sorted(set(sharing) - set(replies))
        answers = self._exchange(Stage.UNMASK, {n: {
            Key.STAGE: Stage.UNMASK, Key.ACTIVE_NODE_ID_LIST: alive,
            Key.DEAD_NODE_ID_LIST: dead} for n in alive})
        self._enough(Stage.UNMASK, set(answers), len(sharing))
        shares: dict[int, list[bytes]] = {n: [] for n in alive + dead}
        for configs in answers.values():
            for owner, share in zip(cast(list[int], configs[Key.NODE_ID_LIST]),
                                    cast(list[bytes], configs[Key.SHARE_LIST]), strict=True):
                if owner in shares:
                    shares[owner].append(share)
        seeds = [combine_shares(shares[n]) for n in alive]
        lost = {n: (combine_shares(shares[n]), {v: self.public_keys[v][0] for v in alive})
                for n in dead}
        summed = unmasked(total, seeds, lost)
        sent = _model_of(self.messages[0])
        mean, examples, clipped = read_sum(summed, sent, self.settings.clipping_range,
                                           self.settings.quantization_range)
        self._check_sum(replies, examples, clipped)
        return mean

    def _check_sum(self, replies: dict[int, Message], examples: int, clipped: int) -> None:
        if overflows(examples, self.settings.quantization_range):
            raise RoundFailed(f"secure aggregation: {examples} examples x secagg-quantization-"
                              f"range={self.settings.quantization_range} exceed the modulus "
                              "2^62, so the sum wrapped around; lower secagg-quantization-range")
        if clipped:
            log(WARNING, "Round %s: secure aggregation clipped %d update value(s) to +-%g "
                "(secagg-clipping-range); raise it if this recurs", self.round, clipped,
                self.settings.clipping_range)
        plain = sum(_examples(r) for r in replies.values())
        if plain != examples:
            log(WARNING, "Round %s: the sites' num-examples add up to %s, but their masked "
                "counts to %d; the model is averaged over the masked counts", self.round,
                plain, examples)

    def _exchange(self, stage: str, configs: dict[int, dict]) -> dict[int, ConfigRecord]:
        """Send one stage's settings; return each answering site's SecAgg+ config record."""
        messages = {node: Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord(values)}),
                                  dst_node_id=node, message_type=MessageType.TRAIN,
                                  group_id=self.by_node[node].metadata.group_id)
                    for node, values in configs.items()}
        answers = {}
        for node, reply in self._send(stage, messages).items():
            if RECORD_KEY_CONFIGS in reply.content.config_records:
                answers[node] = reply.content.config_records[RECORD_KEY_CONFIGS]
            else:
                self._refuse(node, reply, "its reply has no SecAgg+ record (does the site run "
                             "colearn-fl's secure aggregation mod?)")
        return answers

    def _send(self, stage: str, messages: dict[int, Message]) -> dict[int, Message]:
        """Send ``messages``; the replies without error, by node (errors are kept)."""
        left = None if self.end is None else max(self.end - time.monotonic(), 0.0)
        self.sent_bytes += sum(message_bytes(m) for m in messages.values())
        replies = {}
        for reply in self.grid.send_and_receive(list(messages.values()), timeout=left):
            node = reply.metadata.src_node_id
            if reply.has_error():
                self.errors[node] = reply
            else:
                self.received_bytes += message_bytes(reply)
                replies[node] = reply
        return replies

    def _refuse(self, node: int, reply: Message, why: str) -> None:
        self.errors[node] = Message(Error(PROTOCOL_ERROR, f"secure aggregation: node {node}: "
                                          f"{why}"), reply_to=self.by_node[node])

    def _enough(self, stage: str, answered: set[int], asked: int | None = None) -> set[int]:
        if len(answered) < self.threshold:
            raise RoundFailed(self._too_few(stage, len(answered), asked))
        return answered

    def _too_few(self, stage: str, remaining: int, asked: int | None = None) -> str:
        sampled = len(self.sampled)
        if remaining == sampled and self.threshold > sampled:
            return (f"secure aggregation: secagg-threshold={self.threshold} > the {sampled} "
                    "site(s) sampled this round; lower it to at most the sites sampled")
        if sampled < 2:
            return ("secure aggregation needs at least 2 sites a round, and 1 was sampled; "
                    "raise min-available-nodes")
        late = self.end is not None and time.monotonic() >= self.end
        return (f"secure aggregation failed: {sampled - remaining} of {sampled} sites dropped "
                f"out (at the {stage.replace('_', ' ')} stage"
                f"{', round-timeout passed' if late else ''}), {remaining} remain, fewer than "
                f"secagg-threshold={self.threshold}; the round is not aggregated")


def _round_of(msg: Message) -> int | str:
    """The round a strategy's message is for (its ``server-round``), else its group id."""
    config = next(iter(msg.content.config_records.values()), ConfigRecord())
    value = config.get(SERVER_ROUND)
    return value if isinstance(value, int) else (msg.metadata.group_id or "?")


def _model_of(msg: Message) -> ArrayRecord:
    return next(r for k, r in msg.content.array_records.items() if k != MASKED)


def _vector(reply: Message, expected: list[tuple[int, ...]]) -> list[np.ndarray] | None:
    record = reply.content.array_records.get(MASKED)
    if record is None or len(record) != len(expected):
        return None
    try:
        arrays = [record[str(i)].numpy() for i in range(len(expected))]
    except Exception:  # noqa: BLE001 - a site's bytes must never end the round
        return None
    if any(a.dtype != np.int64 or a.shape != s for a, s in zip(arrays, expected, strict=True)):
        return None
    return [a % MOD_RANGE for a in arrays]


def _examples(reply: Message) -> float:
    if len(reply.content.metric_records) != 1:
        return 0.0
    return float(metrics_of(reply.content).get(NUM_EXAMPLES, 0))


def message_bytes(msg: Message) -> int:
    """Bytes of a message's arrays and config values (what the protocol adds is both)."""
    content = msg.content
    arrays = sum(len(a.data) for r in content.array_records.values() for a in r.values())
    values = [v for r in content.config_records.values() for v in r.values()]
    flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
    return arrays + sum(len(x) if isinstance(x, (bytes, str)) else 8 for x in flat)
