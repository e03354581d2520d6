"""Central differential privacy, site side: Flower's clipping mods, integer-safe.

Each site clips its update (reply minus the model it received) to the L2 norm the server
sends (``clipping_norm``: ``dp-clipping-norm``, or with ``dp-clipping='adaptive'`` the clip of
the round) with Flower's ``fixedclipping_mod``, or with ``adaptiveclipping_mod``, which also
reports in the reply's metrics whether it had to clip (``norm_bit``); the server adds the noise
(``colearn_fl.server.privacy``). Flower's mods treat every array as a float vector: they would fold
an integer buffer's step count (BatchNorm's ``num_batches_tracked``) into the update's norm and
then fail to scale it in place (int64 ``*=`` float). Here integer and bool arrays are kept out
of the clipping and travel unchanged.
"""

from __future__ import annotations

from collections import OrderedDict

from flwr.app import Array, ArrayRecord, Context, Message, MessageType
from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from colearn_fl.config import parse_section
from colearn_fl.sections import Privacy
from strategies.transport import is_floating


def clipping_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """A ClientApp mod: Flower's ``fixedclipping_mod`` (``adaptiveclipping_mod`` when
    ``dp-clipping='adaptive'``) on training messages when the run config enables DP
    (``dp-noise-multiplier > 0``); otherwise a pass-through.

    Integer and bool arrays are hidden from Flower's mod (the ClientApp still receives
    and returns the whole state_dict) and put back unchanged in the reply. The mod runs before
    the handler parses the message's run config, so it reads its own section only.
    """
    privacy = parse_section(Privacy, context.run_config)
    if msg.metadata.message_type != MessageType.TRAIN or privacy.dp_noise_multiplier <= 0:
        return call_next(msg, context)
    flower_mod = adaptiveclipping_mod if privacy.dp_clipping == "adaptive" else fixedclipping_mod
    if len(msg.content.array_records) != 1:
        return flower_mod(msg, context, call_next)  # replies with Flower's error
    key, sent = next(iter(msg.content.array_records.items()))
    fixed = [k for k, a in sent.items() if not is_floating(a.dtype)]
    if not fixed:
        return flower_mod(msg, context, call_next)
    held: dict[str, Array] = {}

    def train_whole_model(inner: Message, ctx: Context) -> Message:
        inner.content[key] = sent
        reply = call_next(inner, ctx)
        if not reply.has_error() and len(reply.content.array_records) == 1:
            reply_key, arrays = next(iter(reply.content.array_records.items()))
            held.update((k, arrays[k]) for k in fixed if k in arrays)
            reply.content[reply_key] = _without(arrays, fixed)
        return reply

    msg.content[key] = _without(sent, fixed)
    reply = flower_mod(msg, context, train_whole_model)
    if reply.has_error() or len(reply.content.array_records) != 1:
        return reply
    reply_key, clipped = next(iter(reply.content.array_records.items()))
    reply.content[reply_key] = ArrayRecord(OrderedDict(
        (k, held[k] if k in held else clipped[k]) for k in sent.keys()
        if k in held or k in clipped))
    return reply


def _without(arrays: ArrayRecord, keys: list[str]) -> ArrayRecord:
    return ArrayRecord(OrderedDict((k, a) for k, a in arrays.items() if k not in keys))
