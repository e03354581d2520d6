"""Secure aggregation, site side: the mod that answers SecAgg+'s stages of a training round.

A training message that carries SecAgg+'s record is one stage of a secure round
(``strategies.secagg.site``): the site answers the key stages itself and trains at the
masked-vector stage, where it checks its own model and sends it only masked. A site whose run
config sets ``secure-aggregation=true`` refuses to send its model in the clear, whatever the
server asks.
"""

from __future__ import annotations

from flwr.app import Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable

from colearn_fl.config import parse_section
from colearn_fl.errors import ConfigError
from colearn_fl.sections import SecureAggregation
from strategies.secagg.site import answer_stage, is_secure


def secagg_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """A ClientApp mod: SecAgg+'s stages on the training messages that carry them; any other
    message passes through (a plain training message only when this site's run config does
    not ask for secure aggregation). Install it outermost, so the mods inside see the plain
    training message and its plain reply."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    if is_secure(msg):
        return answer_stage(msg, context, call_next)
    if parse_section(SecureAggregation, context.run_config).secure_aggregation:
        raise ConfigError("secure-aggregation=true, but the server asked for this site's model "
                          "in the clear (a training message without SecAgg+'s stages); it is "
                          "not sent. Run the server with the same run config (colearn-fl's "
                          "ServerApp), or set secure-aggregation=false.")
    return call_next(msg, context)
