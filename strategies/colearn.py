"""CoLearn: FedAvg whose server also dictates each round's LR cycle (CLR) and local epochs (ILE)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from colearn_fl.arrays import count_bytes, reply_problem, restore_dtypes
from colearn_fl.errors import ConfigError
from colearn_fl.transport import TRANSPORT_DTYPES, decode, encode
from strategies.schedules import local_epochs, round_lr_bounds, validate_epochs
from strategies.wire import LOCAL_EPOCHS, LR_MAX, LR_MIN, LR_SCHEDULE, NUM_EXAMPLES


class CoLearn(FedAvg):
    """Co-learning across data centers.

    Implementation of Mi et al., "Collaborative deep learning across multiple data centers",
    Sci China Inf Sci 63:182102 (2020), https://arxiv.org/abs/1810.06877. Each round the
    server sends the global model with the round's number of local epochs (ILE) and the bounds
    and shape of the LR cycle the sites follow inside the round (CLR); it then averages the
    sites' full state_dicts weighted by ``num-examples``. Replies with non-finite values or
    keys, shapes or dtypes that differ from the global model are dropped with a logged reason.
    FedAvg is this class with ``lr_schedule="constant"`` and ``epochs_schedule="fixed"``.

    Parameters
    ----------
    lr_schedule : str (default: "cosine")
        Cycle shape inside each round; one of ``strategies.schedules.LR_SCHEDULES``.
    lr_max : float (default: 0.05)
        Top of the cycle (the constant LR for ``constant``).
    lr_min : float (default: 0.0005)
        Bottom of the cycle.
    lr_gamma : float (default: 0.5)
        Per-round amplitude factor of ``exp-range``.
    epochs_schedule : str (default: "geometric")
        Local epochs over rounds; one of ``strategies.schedules.EPOCH_SCHEDULES``.
    epochs_initial : int (default: 1)
        Local epochs in round 1 (T0).
    epochs_mult : float (default: 2.0)
        Growth factor of ``geometric``.
    epochs_step : int (default: 1)
        Growth step of ``linear``.
    transport_dtype : str (default: "float32")
        Precision of the floating arrays on the wire (``float32``, ``float16``, ``bfloat16``);
        the global model and the averaging stay in full precision, buffers keep their dtypes.
    round_offset : int (default: 0)
        Rounds already completed before this strategy starts (resume): loop round ``r`` is
        sent, scheduled and logged as round ``r + round_offset``.
    **kwargs : Any
        Passed to ``FedAvg`` (``fraction_train``, ``min_available_nodes``, ...).
    """

    # pylint: disable=too-many-arguments
    def __init__(
        self,
        *,
        lr_schedule: str = "cosine",
        lr_max: float = 0.05,
        lr_min: float = 0.0005,
        lr_gamma: float = 0.5,
        epochs_schedule: str = "geometric",
        epochs_initial: int = 1,
        epochs_mult: float = 2.0,
        epochs_step: int = 1,
        transport_dtype: str = "float32",
        round_offset: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lr_schedule = lr_schedule
        self.lr_max, self.lr_min, self.lr_gamma = lr_max, lr_min, lr_gamma
        self.epochs_schedule = epochs_schedule
        self.epochs_initial, self.epochs_mult, self.epochs_step = (
            epochs_initial, epochs_mult, epochs_step
        )
        self.round_offset = round_offset
        if transport_dtype not in TRANSPORT_DTYPES:
            raise ConfigError(f"transport-dtype={transport_dtype!r} is not known; use one of: "
                              f"{', '.join(TRANSPORT_DTYPES)}.")
        self.transport_dtype = transport_dtype
        round_lr_bounds(lr_schedule, lr_max, lr_min, 1, lr_gamma)  # validates
        validate_epochs(epochs_schedule, epochs_initial, epochs_mult, epochs_step)
        self.rounds: dict[int, dict[str, Any]] = {}  # what each round sent and received
        self._global: ArrayRecord | None = None  # the round's global model, full precision
        self._wire: ArrayRecord | None = None  # the same, as sent (transport-dtype)

    def summary(self) -> None:
        """Log the schedule, then FedAvg's summary."""
        log(INFO, "\t├──> Co-learning schedule:")
        log(INFO, "\t│\t├──LR cycle: %s, %g -> %g (gamma %g)",
            self.lr_schedule, self.lr_max, self.lr_min, self.lr_gamma)
        log(INFO, "\t│\t├──Local epochs: %s, T0=%d, mult=%g, step=%d",
            self.epochs_schedule, self.epochs_initial, self.epochs_mult, self.epochs_step)
        log(INFO, "\t│\t└──Transport precision: %s", self.transport_dtype)
        super().summary()

    def round_schedule(self, server_round: int) -> dict[str, Any]:
        """The wire config of round ``server_round`` (counted from 1, offset included)."""
        top, bottom = round_lr_bounds(
            self.lr_schedule, self.lr_max, self.lr_min, server_round, self.lr_gamma
        )
        epochs = local_epochs(
            self.epochs_schedule, server_round, self.epochs_initial, self.epochs_mult,
            self.epochs_step,
        )
        return {LOCAL_EPOCHS: epochs, LR_SCHEDULE: self.lr_schedule, LR_MAX: top, LR_MIN: bottom}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Add the round's schedule to the config, then let FedAvg sample and send."""
        round_ = server_round + self.round_offset
        self._global, self._wire = arrays, encode(arrays, self.transport_dtype)
        schedule = self.round_schedule(round_)
        messages = list(super().configure_train(
            round_, self._wire, ConfigRecord({**dict(config), **schedule}), grid
        ))
        self.rounds[round_] = {
            "schedule": schedule,
            "sites-sent": len(messages),
            "model-bytes": count_bytes(arrays),  # one full-precision copy
            "bytes-sent": count_bytes(self._wire) * len(messages),  # as sent (transport-dtype)
        }
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Drop invalid replies (logged), average the rest, restore every array's dtype."""
        round_ = server_round + self.round_offset
        replies = list(replies)
        accepted = [m for m in replies if m.has_error() or self._accept(round_, m)]
        accepted = self._same_metric_keys(round_, accepted)
        received = sum(count_bytes(a) for m in replies if not m.has_error()
                       for a in m.content.array_records.values())
        for msg in accepted:
            if not msg.has_error() and self._global is not None:
                key = next(iter(msg.content.array_records))
                msg.content[key] = decode(msg.content[key], self._global)
        arrays, metrics = super().aggregate_train(round_, accepted)
        if arrays is not None and self._global is not None:
            arrays = restore_dtypes(arrays, self._global)
        record = self.rounds.setdefault(round_, {})
        record["train-metrics"] = dict(metrics) if metrics is not None else {}
        record["sites-failed"] = sum(m.has_error() for m in replies)
        record["sites-dropped"] = len(replies) - len(accepted)
        record["sites-averaged"] = sum(not m.has_error() for m in accepted)
        record["errors"] = [m.error.reason for m in replies if m.has_error()]
        record["bytes-received"] = received
        if record["sites-averaged"] == 0:
            log(WARNING, "Round %d: no site returned a usable model; the global model is "
                "unchanged (see the reasons above)", round_)
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's federated evaluation (model sent in transport-dtype), numbered like training."""
        return super().configure_evaluate(server_round + self.round_offset,
                                          encode(arrays, self.transport_dtype), config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """FedAvg's weighted average of the sites' evaluation metrics, kept per round."""
        round_ = server_round + self.round_offset
        metrics = super().aggregate_evaluate(round_, replies)
        self.rounds.setdefault(round_, {})["federated-metrics"] = (
            dict(metrics) if metrics is not None else {}
        )
        return metrics

    def _accept(self, server_round: int, reply: Message) -> bool:
        reason = self._reply_problem(reply.content)
        if reason is not None:
            log(WARNING, "Round %d: dropped the reply of node %d: %s",
                server_round, reply.metadata.src_node_id, reason)
        return reason is None

    def _same_metric_keys(self, server_round: int, replies: list[Message]) -> list[Message]:
        """Drop replies whose metric names differ from the most common set (logged).

        FedAvg refuses to aggregate a round whose replies disagree on metric names; one odd
        site must not cost the round.
        """
        keysets = [frozenset(next(iter(m.content.metric_records.values())).keys())
                   for m in replies if not m.has_error()]
        if not keysets:
            return replies
        common = Counter(keysets).most_common(1)[0][0]
        kept = []
        for msg in replies:
            keys = None if msg.has_error() else frozenset(
                next(iter(msg.content.metric_records.values())).keys())
            if keys is None or keys == common:
                kept.append(msg)
            else:
                log(WARNING, "Round %d: dropped the reply of node %d: metrics %s differ from "
                    "the other sites' %s", server_round, msg.metadata.src_node_id,
                    sorted(keys), sorted(common))
        return kept

    def _reply_problem(self, content: RecordDict) -> str | None:
        if len(content.array_records) != 1 or len(content.metric_records) != 1:
            return "expected exactly one ArrayRecord and one MetricRecord"
        metrics = next(iter(content.metric_records.values()))
        weight = metrics.get(NUM_EXAMPLES)
        if not isinstance(weight, (int, float)) or weight <= 0:
            return f"'{NUM_EXAMPLES}' missing or not positive ({weight!r})"
        if self._wire is None:
            return None
        return reply_problem(self._wire, next(iter(content.array_records.values())))
