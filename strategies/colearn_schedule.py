"""CoLearnSchedule: co-learning's round schedule (CLR + ILE) over any Flower strategy.

A wrapper in the manner of Flower's differential-privacy wrappers: it adds the round's
schedule to what the wrapped strategy sends, checks and evens out the replies before the
wrapped strategy aggregates them, and gives the aggregate back the global model's dtypes.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from strategies.arrays import count_bytes, restore_dtypes, sent_bytes
from strategies.canonical import canonical_order
from strategies.checks import Checked, check_reply, even_out
from strategies.cycles import round_lr_bounds
from strategies.epochs import local_epochs, validate_epochs
from strategies.notices import Notices
from strategies.query import short_reason
from strategies.running_stats import average_statistics, with_averages
from strategies.site_report import SITE_REPORT, epoch_curves, followed_schedule
from strategies.streaming import WeightedSum, is_mean_based, replies_reported_as
from strategies.swa import SwaAverage, refresh_statistics, statistics_keys
from strategies.transport import carrying, cast_for_wire, check_transport_dtype
from strategies.wire import (
    LOCAL_EPOCHS,
    LR_MAX,
    LR_MIN,
    LR_SCHEDULE,
    NUM_EXAMPLES,
    TRAIN_LOSS,
)


class CoLearnSchedule(Strategy):
    """Co-learning's schedule over any Flower strategy (Mi et al., Sci China Inf Sci 63:182102,
    2020, https://arxiv.org/abs/1810.06877).

    Every training round the wrapped strategy samples the sites and builds its messages; this
    wrapper adds the round's schedule to their ``ConfigRecord``:

    - ``local-epochs`` (int): epochs this round (ILE, e.g. ``T0 * mult^(round-1)``);
    - ``lr-schedule`` (str), ``lr-max``, ``lr-min`` (float): the LR cycle the site follows over
      the round's steps (CLR, restarting every round),

    next to the wrapped strategy's own keys (``server-round``; FedProx's ``proximal-mu``). The
    model travels in ``transport_dtype`` (an array the dtype cannot represent travels at
    float32). Every reply is decoded into the global model's dtypes, then judged by its model
    (keys, the data's shapes and dtypes, finite values) and a positive ``num-examples``, with
    and without streaming (``strategies.checks``); metrics never cost a site its model. A site
    reports what it did with ``epochs-run``, ``lr-first`` and ``lr-last``; a site that does not
    (e.g. a stock Flower client) is still averaged, and the server warns once that it did not
    follow the schedule. Normalisation statistics (``running_mean``, ``running_var``,
    ``num_batches_tracked``) and every non-floating array are the sites' weighted average
    whatever the wrapped strategy does to the parameters, and the aggregate keeps each array's
    dtype, whatever the wrapped strategy computes in (FedAdam computes in float64).

    Parameters
    ----------
    strategy : Strategy
        The wrapped strategy (``FedAvg``, ``FedAvgM``, ``FedProx``, ``FedAdam``, ...).
    lr_schedule : str (default: "cosine")
        Cycle shape inside each round; one of ``strategies.cycles.LR_SCHEDULES``.
    lr_max : float (default: 0.05)
        Top of the cycle (the constant LR for ``constant``).
    lr_min : float (default: 0.0005)
        Bottom of the cycle.
    lr_gamma : float (default: 0.5)
        Per-round amplitude factor of ``exp-range``.
    epochs_schedule : str (default: "geometric")
        Local epochs over rounds; one of ``strategies.epochs.EPOCH_SCHEDULES``.
    epochs_initial : int (default: 1)
        Local epochs in round 1 (T0).
    epochs_mult : float (default: 2.0)
        Growth factor of ``geometric``.
    epochs_step : int (default: 1)
        Growth step of ``linear``.
    epochs_budget : int (default: 0)
        ``budget``: pooled epochs to spread over ``num_rounds`` rounds.
    budget_shape : str (default: "geometric")
        ``budget``: ``geometric``, ``decaying`` or ``flat`` (``strategies.cycles
        .budget_epochs``).
    num_rounds : int (default: 0)
        The run's total rounds, resumed ones included (``budget`` needs it).
    transport_dtype : str (default: "float32")
        Precision of the floating arrays on the wire (``float32``, ``float16``: both read by
        any Flower client; ``bfloat16``: colearn-fl sites only).
    round_offset : int (default: 0)
        Rounds already completed before this strategy starts (resume): loop round ``r`` is
        sent, scheduled and logged as round ``r + round_offset``.
    swa_start : int (default: 0)
        Server-side SWA over cycle ends (``strategies.swa``): from this round on, the global
        model at the end of every round enters a running average, whose normalisation
        statistics the round's sites recompute (a forward-only ``query.bn_refresh`` round);
        ``evaluation_model`` is that average. The sites keep training from the plain global
        model. 0 = off.
    phase_timeout : float (default: 3600.0)
        Seconds the statistics round waits for the sites' replies.
    streaming : bool, optional
        Fold each training reply into a float64 running weighted sum as it arrives and
        release it (server memory O(model), not O(sites x model)); the wrapped strategy gets
        one reply carrying the mean. Default: on for the mean-based strategies
        (``strategies.server_optimizers.MEAN_BASED``), off for any other, which gets every reply.
    deterministic : bool (default: True)
        Aggregate each round's replies in a canonical order (``strategies.canonical``: sorted
        by content) instead of arrival order, so the same replies give bit-for-bit the same
        model and metrics. The round's replies are held until the last one came (memory
        O(sites x model) at transport precision, as Flower's FedAvg); ``False`` folds each
        reply as it arrives (with ``streaming``: O(model)).
    """

    # pylint: disable=too-many-arguments
    def __init__(
        self,
        strategy: Strategy,
        *,
        lr_schedule: str = "cosine",
        lr_max: float = 0.05,
        lr_min: float = 0.0005,
        lr_gamma: float = 0.5,
        epochs_schedule: str = "geometric",
        epochs_initial: int = 1,
        epochs_mult: float = 2.0,
        epochs_step: int = 1,
        epochs_budget: int = 0,
        budget_shape: str = "geometric",
        num_rounds: int = 0,
        transport_dtype: str = "float32",
        round_offset: int = 0,
        swa_start: int = 0,
        phase_timeout: float = 3600.0,
        streaming: bool | None = None,
        deterministic: bool = True,
    ) -> None:
        round_lr_bounds(lr_schedule, lr_max, lr_min, 1, lr_gamma)  # validates
        validate_epochs(epochs_schedule, epochs_initial, epochs_mult, epochs_step,
                        epochs_budget, num_rounds, budget_shape)
        check_transport_dtype(transport_dtype)
        self.strategy = strategy
        self.lr_schedule, self.lr_max, self.lr_min, self.lr_gamma = (
            lr_schedule, lr_max, lr_min, lr_gamma)
        self.epochs_schedule, self.epochs_initial = epochs_schedule, epochs_initial
        self.epochs_mult, self.epochs_step = epochs_mult, epochs_step
        self.epochs_budget, self.budget_shape, self.num_rounds = (
            epochs_budget, budget_shape, num_rounds)
        self.transport_dtype, self.round_offset = transport_dtype, round_offset
        self.swa, self.phase_timeout = SwaAverage(swa_start), phase_timeout
        self.streaming = is_mean_based(strategy) if streaming is None else streaming
        if self.streaming and not is_mean_based(strategy):
            raise ValueError("streaming=True needs a mean-based strategy (one of strategies."
                             f"server_optimizers.MEAN_BASED), not {type(strategy).__name__}")
        self.deterministic = deterministic
        self._grid: Grid | None = None  # the training rounds' grid, for the statistics round
        self.rounds: dict[int, dict[str, Any]] = {}  # what each round sent and received
        self._global: ArrayRecord | None = None  # the round's global model, full precision
        self._wire: ArrayRecord | None = None  # the same, as sent (transport-dtype)
        self.site_names: dict[int, str] = {}  # node id -> site name (from the data check)
        self.notices = Notices(self.site_names)  # what the server logs about replies

    def summary(self) -> None:
        """Log the schedule, then the wrapped strategy's summary."""
        log(INFO, "\t├──> Co-learning schedule over %s:", type(self.strategy).__name__)
        log(INFO, "\t│\t├──LR cycle: %s, %g -> %g (gamma %g)",
            self.lr_schedule, self.lr_max, self.lr_min, self.lr_gamma)
        log(INFO, "\t│\t├──Local epochs: %s, T0=%d, mult=%g, step=%d",
            self.epochs_schedule, self.epochs_initial, self.epochs_mult, self.epochs_step)
        log(INFO, "\t│\t└──Transport precision: %s", self.transport_dtype)
        self.strategy.summary()

    def round_schedule(self, server_round: int) -> dict[str, Any]:
        """The wire config of round ``server_round`` (counted from 1, offset included)."""
        top, bottom = round_lr_bounds(
            self.lr_schedule, self.lr_max, self.lr_min, server_round, self.lr_gamma)
        epochs = local_epochs(self.epochs_schedule, server_round, self.epochs_initial,
                              self.epochs_mult, self.epochs_step, self.epochs_budget,
                              self.num_rounds, self.budget_shape)
        return {LOCAL_EPOCHS: epochs, LR_SCHEDULE: self.lr_schedule, LR_MAX: top, LR_MIN: bottom}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's messages, with the round's schedule and the model as sent."""
        round_ = server_round + self.round_offset
        self._grid = grid
        self._global, self._wire = arrays, self._encode(round_, arrays)
        schedule = self.round_schedule(round_)
        messages = list(self.strategy.configure_train(
            round_, arrays, ConfigRecord({**dict(config), **schedule}), grid))
        carrying(messages, self._wire)
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
        """Drop unusable replies (logged), even out the rest, let the wrapped strategy
        aggregate them, and restore every array's dtype."""
        round_ = server_round + self.round_offset
        received, failed, dropped, sites, nodes = 0, [], [], [], []
        accepted, checked, summed = [], [], WeightedSum()
        if self.deterministic:  # every reply first, then in an order set by their content
            replies = canonical_order(replies)
        for msg in replies:  # one at a time: a streaming grid yields them as they arrive
            received += sent_bytes([msg])  # as it came, before it is decoded
            if msg.has_error():
                failed.append(msg)
                continue
            reply, problem = check_reply(msg.content, self._global)
            if not self.notices.usable(round_, msg, problem):
                dropped.append(f"{self.notices.site(msg.metadata.src_node_id)}: {problem}")
                continue
            sites.append(self._site_report(round_, msg, reply))  # takes its report out
            self.notices.unusable_metrics(round_, msg, reply)
            nodes.append(msg.metadata.src_node_id)
            msg.content = RecordDict()  # released: ``reply`` holds it, decoded
            if self.streaming:
                summed.add(reply.arrays, reply.weight, reply.metrics, reply.unusable)
                accepted = accepted or [msg]  # the first message will carry the mean
            else:
                accepted.append(msg)
                checked.append(reply)
        if self.streaming and accepted:
            accepted[0].content = summed.mean_reply()
            self.notices.left_out(round_, summed.left_out())
        else:
            self.notices.left_out(round_, even_out(accepted, checked))
        self.notices.failures(round_, failed, self.transport_dtype)
        arrays, aggregated, averages = None, None, ArrayRecord()
        if accepted:
            if self._global is not None:  # before the wrapped strategy reads (or pops) them
                averages = average_statistics(accepted, self._global)
            with replies_reported_as(len(nodes)):  # not the 1 mean a streamed round passes on
                arrays, aggregated = self.strategy.aggregate_train(round_, accepted + failed)
        if arrays is not None and self._global is not None:
            arrays = restore_dtypes(with_averages(arrays, averages), self._global)
        self.rounds.setdefault(round_, {}).update({
            "train-metrics": dict(aggregated) if aggregated is not None else {},
            "sites-failed": len(failed),
            "sites-dropped": len(dropped),
            "sites-averaged": len(nodes) if arrays is not None else 0,
            "sites-following": sum(site["followed"] for site in sites),
            "site-reports": sites,
            "errors": [m.error.reason for m in failed] + dropped,
            "bytes-received": received,
        })
        if arrays is None:
            log(WARNING, "Round %d: no site returned a usable model; the global model is "
                "unchanged (see the reasons above)", round_)
        elif self.swa.covers(round_):
            self._average(round_, arrays, nodes)
        return arrays, aggregated

    def evaluation_model(self, arrays: ArrayRecord) -> ArrayRecord:
        """The model to evaluate and keep after a round: the SWA average once it holds a
        model (``swa-start``), else ``arrays`` (the global model)."""
        averaged = self.swa.arrays()
        return arrays if averaged is None else averaged

    def _average(self, server_round: int, arrays: ArrayRecord, nodes: list[int]) -> None:
        """Fold the round's global model into the SWA average and have ``nodes`` recompute
        its normalisation statistics; without answers the averaged statistics stay."""
        self.swa.add(arrays)
        record = {"swa-models": self.swa.count, "swa-refresh-sites": 0}
        model = self.swa.arrays()
        if model is not None and statistics_keys(model) and self._grid is not None:
            pooled, problems = refresh_statistics(
                self._grid, model, self._encode(server_round, model), nodes, server_round,
                self.phase_timeout)
            if pooled is not None:
                self.swa.replace(pooled)
                record["swa-refresh-sites"] = len(nodes) - len(problems)
            if problems:
                log(WARNING, "Round %d: %d site(s) did not recompute the SWA model's "
                    "normalisation statistics (%s)%s", server_round, len(problems),
                    "; ".join(problems), "" if pooled is not None else
                    ": it keeps the models' averaged statistics")
        self.rounds.setdefault(server_round, {}).update(record)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's evaluation messages, the model in transport-dtype."""
        round_ = server_round + self.round_offset
        messages = list(self.strategy.configure_evaluate(round_, arrays, config, grid))
        return carrying(messages, self._encode(round_, arrays))

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """The wrapped strategy's average over the metric names the sites share; a round
        whose evaluation cannot be aggregated is logged, never fatal."""
        round_ = server_round + self.round_offset
        replies = canonical_order(replies) if self.deterministic else list(replies)
        accepted, checked, failed = [], [], [m for m in replies if m.has_error()]
        for msg in replies:
            if msg.has_error():
                continue
            reply, problem = check_reply(msg.content, None, model=False)
            if self.notices.usable(round_, msg, problem, "evaluation"):
                self.notices.unusable_metrics(round_, msg, reply)
                accepted.append(msg)
                checked.append(reply)
        self.notices.left_out(round_, even_out(accepted, checked))
        metrics = None
        if accepted:
            try:
                metrics = self.strategy.aggregate_evaluate(round_, accepted + failed)
            except Exception as error:  # noqa: BLE001 - a bad evaluation must not end the run
                log(WARNING, "Round %d: federated evaluation not aggregated: %s", round_, error)
        record = self.rounds.setdefault(round_, {})
        record["federated-metrics"] = dict(metrics) if metrics is not None else {}
        record.update({"sites-evaluated": len(accepted), "sites-evaluation-failed": len(failed),
                       "sites-evaluation-dropped": len(replies) - len(failed) - len(accepted)})
        if failed:  # the sites' reasons: run-log.json, and the round line's count
            record["evaluation-errors"] = [m.error.reason for m in failed]
            log(WARNING, "Round %d: federated evaluation failed at %d site(s): %s", round_,
                len(failed), "; ".join(dict.fromkeys(short_reason(m.error.reason)
                                                     for m in failed)))
        return metrics

    def _encode(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        """``arrays`` as sent in ``transport_dtype``; an array sent wider (a value the dtype
        cannot represent) is logged once per key."""
        sent, wider = cast_for_wire(arrays, self.transport_dtype)
        self.notices.sent_wider(server_round, wider)
        return sent

    def _site_report(self, server_round: int, reply: Message, checked: Checked) -> dict[str, Any]:
        """What the site did (taken out of its metrics), and whether it followed the round's
        schedule; a site that did not is warned about once."""
        sent = self.rounds.get(server_round, {}).get("schedule") or self.round_schedule(
            server_round)
        did = {key: checked.metrics.pop(key) for key in SITE_REPORT if key in checked.metrics}
        curves = epoch_curves(checked)
        for key in SITE_REPORT:
            checked.unusable.pop(key, None)  # never averaged: no reason to give
        followed = followed_schedule(sent, did)
        node = reply.metadata.src_node_id
        if not followed:
            self.notices.not_following(server_round, node, sent, did)
        report = {"node-id": node, "site": self.site_names.get(node),
                  NUM_EXAMPLES: checked.metrics.get(NUM_EXAMPLES),
                  TRAIN_LOSS: checked.metrics.get(TRAIN_LOSS), **did, "followed": followed}
        return {**report, "epochs": curves} if curves else report
