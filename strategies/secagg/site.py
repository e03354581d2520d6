"""A site's side of SecAgg+: it answers the server's four stages of a training round.

The key stages are Flower's own (``flwr.client.mod.secure_aggregation.secaggplus_mod``:
``_setup`` makes the two key pairs, ``_share_keys`` splits the mask seed and the first
private key into Shamir shares and encrypts one for each neighbour, ``_unmask`` hands the
server the shares it asks for), with Flower's state kept in the node's context between
stages. The masked-vector stage is this module's: Flower's reads the legacy ``fitres.*``
records, while here the wrapped app's message-API reply is checked (the model must fit the
one received, with finite values, and ``num-examples`` must be a positive integer: nothing
else is ever sent) and turned into a masked vector of its weighted update
(``strategies.secagg.vectors``). The reply then carries the site's metrics in the clear and
the masked vector; never the model.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod.secure_aggregation.secaggplus_mod import (
    SecAggPlusState,
    _setup,
    _share_keys,
    _unmask,
    check_configs,
    check_stage,
)
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.crypto.symmetric_encryption import decrypt
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
    Key,
    Stage,
)
from flwr.common.secure_aggregation.secaggplus_utils import share_keys_plaintext_separate

from strategies.arrays import checked_arrays
from strategies.checks import metrics_of
from strategies.secagg.masks import masked
from strategies.secagg.vectors import site_vector
from strategies.transport import to_numpy
from strategies.wire import NUM_EXAMPLES

MASKED = "secagg-masked"  # the ArrayRecord of a masked vector in a site's reply
# The server's settings, sent with the setup stage next to Flower's keys.
CLIPPING, LEVELS = Key.CLIPPING_RANGE, Key.TARGET_RANGE


class SiteRefused(ValueError):
    """The site will not send this round's model: it would not fit the sum."""


def is_secure(msg: Message) -> bool:
    """Whether ``msg`` is a stage of a secure round (it carries SecAgg+'s config record)."""
    return RECORD_KEY_CONFIGS in msg.content.config_records


def answer_stage(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """The site's reply to one stage of a secure round; the wrapped app trains at the
    masked-vector stage only."""
    records = context.state.config_records
    state = SecAggPlusState(**records.get(RECORD_KEY_STATE, ConfigRecord({})))
    configs = msg.content.config_records[RECORD_KEY_CONFIGS]
    check_stage(state.current_stage, configs)
    state.current_stage = cast(str, configs.pop(Key.STAGE))
    check_configs(state.current_stage, configs)
    content = RecordDict()
    try:
        if state.current_stage == Stage.SETUP:
            state.nid = msg.metadata.dst_node_id
            result = _setup(state, configs)
        elif state.current_stage == Stage.SHARE_KEYS:
            result = _share_keys(state, configs)
        elif state.current_stage == Stage.COLLECT_MASKED_VECTORS:
            content, result = _collect(state, msg, context, call_next)
        else:
            result = _unmask(state, configs)
    finally:  # a failed stage still moves on: the next round starts from setup
        records[RECORD_KEY_STATE] = ConfigRecord(state.to_dict())
    content[RECORD_KEY_CONFIGS] = ConfigRecord(result, False)
    return Message(content, reply_to=msg)


def _collect(state: SecAggPlusState, msg: Message, context: Context,
             call_next: ClientAppCallable) -> tuple[RecordDict, dict]:
    """Read the neighbours' shares, train, check the model, reply the masked vector."""
    configs = msg.content.config_records[RECORD_KEY_CONFIGS]
    sources = _store_shares(state, cast(list[int], configs[Key.SOURCE_LIST]),
                            cast(list[bytes], configs[Key.CIPHERTEXT_LIST]))
    del msg.content[RECORD_KEY_CONFIGS]  # the app sees the plain training message
    received = _one_model(msg.content, "the server's message")
    reply = call_next(msg, context)
    if reply.has_error():
        raise SiteRefused(f"training failed: {reply.error.reason}")
    trained = _one_model(reply.content, "this site's reply")
    reference = ArrayRecord(OrderedDict((k, Array(to_numpy(a))) for k, a in received.items()))
    _, problem = checked_arrays(reference, trained)
    if problem is not None:
        raise SiteRefused(f"this site's model does not fit the sum, so it is not sent: {problem}")
    examples = metrics_of(reply.content).get(NUM_EXAMPLES) if reply.content.metric_records \
        else None
    if isinstance(examples, bool) or not isinstance(examples, (int, float)) or \
            examples <= 0 or float(examples) != int(examples):
        raise SiteRefused(f"'{NUM_EXAMPLES}' is {examples!r}: secure aggregation weighs each "
                          "model by a positive whole number of examples")
    vector = site_vector(received, trained, int(examples), state.clipping_range,
                         state.target_range)
    neighbours = {node: state.public_keys_dict[node][0] for node in sources}
    hidden = masked(vector, state.nid, state.rd_seed, state.sk1, neighbours)
    content = RecordDict({key: record for key, record in reply.content.items()
                          if key not in reply.content.array_records})
    content[MASKED] = ArrayRecord(OrderedDict(
        (str(i), Array(np.asarray(a, dtype=np.int64))) for i, a in enumerate(hidden)))
    return content, {}


def _store_shares(state: SecAggPlusState, sources: list[int], ciphertexts: list[bytes]
                  ) -> list[int]:
    """Decrypt the shares the neighbours sent through the server; return their node ids."""
    if len(ciphertexts) + 1 < state.threshold:
        raise SiteRefused(f"{len(ciphertexts) + 1} sites hold this site's shares, fewer than "
                          f"the threshold {state.threshold}")
    for source, ciphertext in zip(sources, ciphertexts, strict=True):
        plain = decrypt(state.ss2_dict[source], ciphertext)
        actual, destination, seed_share, key_share = share_keys_plaintext_separate(plain)
        if actual != source or destination != state.nid:
            raise SiteRefused(f"a share from node {actual} to node {destination} arrived as "
                              f"one from node {source} to node {state.nid}")
        state.rd_seed_share_dict[source] = seed_share
        state.sk1_share_dict[source] = key_share
    return list(sources)


def _one_model(content: RecordDict, where: str) -> ArrayRecord:
    if len(content.array_records) != 1:
        raise SiteRefused(f"{where} holds {len(content.array_records)} ArrayRecords, not one "
                          "model")
    return next(iter(content.array_records.values()))
