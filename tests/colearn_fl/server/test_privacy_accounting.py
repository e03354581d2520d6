"""Central DP accounted over CoLearn: the config keys, epsilon per round against Google's
dp-accounting called directly, the budget stop, resume, and adaptive clipping."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from colearn_fl.config import RunConfig
from colearn_fl.errors import ColearnError, ConfigError
from colearn_fl.server.checkpoint import load_checkpoint
from colearn_fl.server.history import BUDGET_SPENT, read_status
from colearn_fl.server.privacy import AccountedClipping, with_privacy
from colearn_fl.server.server_app import run_colearning
from colearn_fl.server.strategy import build_strategy
from colearn_fl.simulation import simulate
from strategies import CoLearn
from strategies.dp_accounting import AdaptiveClip
from tests.colearn_fl.server.test_server_app import OneSilentSiteGrid
from tests.strategies.test_colearn import StaticGrid, model, reply
from tests.tiny import TinyClassifier, TinyData

DELTA = 1e-5


def gaussian_epsilon(multiplier: float, rounds: int, delta: float = DELTA) -> float:
    """Google's RDP accountant, called directly: ``rounds`` Gaussian releases."""
    accountant = RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(multiplier), rounds)
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"dp-delta": 0}, r"dp-delta=0.0: must be in \(0, 1\)"),
        ({"dp-delta": 1}, r"dp-delta=1.0: must be in \(0, 1\)"),
        ({"dp-target-epsilon": 3}, "dp-target-epsilon=3.0 with dp-noise-multiplier=0.0"),
        ({"dp-target-epsilon": -1}, "dp-target-epsilon=-1.0: must be a finite number >= 0"),
        ({"dp-clipping": "flat"}, "dp-clipping='flat' is not known; use one of: fixed, adaptive"),
        ({"dp-clip-quantile": 1.5}, r"dp-clip-quantile=1.5: must be in \[0, 1\]"),
        ({"dp-clip-lr": 0}, "dp-clip-lr=0.0: must be a finite number > 0"),
        ({"dp-clipped-count-stddev": -1}, "dp-clipped-count-stddev=-1.0: must be"),
        ({"dp-noise-multiplier": 1.0, "dp-clipping": "adaptive"},
         r"dp-noise-multiplier=1.0 with dp-clipping='adaptive' and dp-clipped-count-stddev=0.0 "
         r"\(so 0.1\).*Raise dp-clipped-count-stddev above 0.5"),
        ({"dp-noise-multiplier": 1.0, "dp-target-epsilon": 3, "server-optimizer": "fedadam"},
         "dp-target-epsilon=3.0 with server-optimizer='fedadam'"),
    ],
)
def test_privacy_config_errors_name_the_keys(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict(raw)


def test_epsilon_of_a_round_under_unequal_weights(flower_identity: None) -> None:
    # Prepare: z = 1.2 for 2 sampled sites; the sites hold 1 and 3 examples
    config = RunConfig.from_dict({"dp-noise-multiplier": 1.2, "dp-delta": 1e-6})
    wrapped = with_privacy(build_strategy(config), config)
    assert isinstance(wrapped, AccountedClipping)
    # Execute: one round
    list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    wrapped.aggregate_train(1, [reply(1, model([1, 2], 0), examples=1),
                                reply(2, model([3, 4], 0), examples=3)])
    # Assert: std 1.2*C/2 over the weighted mean's sensitivity 3C/4 -> z_eff = 0.8, and the
    # accountant's epsilon for one Gaussian release of 0.8 at delta 1e-6
    record = wrapped.strategy.rounds[1]
    assert record["dp-noise-effective"] == pytest.approx(1.2 * 4 / (2 * 3))
    assert record["dp-epsilon"] == pytest.approx(gaussian_epsilon(0.8, 1, 1e-6), rel=1e-9)
    assert (record["dp-delta"], record["dp-clipping-norm"]) == (1e-6, 1.0)


class EchoGrid(OneSilentSiteGrid):
    """Nodes 1 and 2 both echo the model (10 examples each): equal weights, z_eff = z."""

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        return [self._reply(m) for m in self.pushed if m.metadata.message_id in wanted]


def run(tmp_path: Path, **config: object) -> Path:
    run_config = {"num-server-rounds": 5, "dp-noise-multiplier": 1.0, "fraction-evaluate": 0.0,
                  "central-eval": False, "output-dir": str(tmp_path), "run-name": "t", **config}
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                      run_config=run_config)
    run_colearning(EchoGrid(), context, lambda raw: TinyClassifier())  # type: ignore[arg-type]
    return tmp_path / "t"


def test_the_run_stops_before_the_round_that_would_pass_the_budget(
    tmp_path: Path, flower_identity: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a budget between the epsilon of 2 and of 3 rounds at z = 1
    target = (gaussian_epsilon(1.0, 2) + gaussian_epsilon(1.0, 3)) / 2
    # Execute: returns (no exception) although 5 rounds were asked for
    with caplog.at_level(logging.INFO):
        folder = run(tmp_path, **{"dp-target-epsilon": target})
    # Assert: rounds 1 and 2 ran; the status says why it ended; round 2's model is kept
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    status, reason = read_status(folder)
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert status == BUDGET_SPENT
    assert "round 3 would bring it to" in reason and f"dp-target-epsilon={target:g}" in reason
    assert [row["dp-epsilon"] for row in rows[1:]] == pytest.approx(
        [gaussian_epsilon(1.0, 1), gaussian_epsilon(1.0, 2)], rel=1e-9)
    assert load_checkpoint(folder / "checkpoint.pt")["round"] == 2
    assert "privacy budget spent: epsilon" in caplog.text and "Traceback" not in caplog.text


def test_a_resumed_run_goes_on_from_the_epsilon_it_had_spent(
    tmp_path: Path, flower_identity: None
) -> None:
    # Prepare: a run stopped by its budget after 2 rounds
    run(tmp_path, **{"dp-target-epsilon": gaussian_epsilon(1.0, 2) * 1.01})
    # Execute: resumed with a budget between 3 and 4 rounds
    target = (gaussian_epsilon(1.0, 3) + gaussian_epsilon(1.0, 4)) / 2
    folder = run(tmp_path, **{"dp-target-epsilon": target, "resume": True})
    # Assert: round 3 accounts 3 releases, not 1
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    assert [row["round"] for row in rows] == [0, 1, 2, 3]
    assert rows[3]["dp-epsilon"] == pytest.approx(gaussian_epsilon(1.0, 3), rel=1e-9)
    assert read_status(folder)[0] == BUDGET_SPENT


def bit_reply(node: int, norm_bit: int) -> Message:
    """A site's reply as Flower's adaptiveclipping_mod leaves it: ``norm_bit`` 1 if it
    clipped."""
    sent = Message(RecordDict(), dst_node_id=node, message_type="train")
    metrics = MetricRecord({"num-examples": 5, "train-loss": 0.5, "norm_bit": norm_bit})
    return Message(RecordDict({"arrays": model([1, 1], 0), "metrics": metrics}), reply_to=sent)


def test_adaptive_clip_settles_at_the_target_quantile_of_known_norms(
    flower_identity: None
) -> None:
    # Prepare: four sites whose updates have norms 0.5, 1, 2 and 4; no noise (z = 0, count
    # stddev 0); a first clip of 0.1, target quantile 0.5, clip LR 0.2
    norms, q, lr = [0.5, 1.0, 2.0, 4.0], 0.5, 0.2
    wrapped = AccountedClipping(CoLearn(), noise_multiplier=0.0, clipping_norm=0.1,
                                num_sampled_clients=4, ledger=None,
                                adaptive=AdaptiveClip(q, lr, 0.0))
    grid, expected = StaticGrid([1, 2, 3, 4]), 0.1
    for server_round in range(1, 41):
        # Execute: each site reports whether its norm exceeded the clip it was sent
        messages = wrapped.configure_train(server_round, model([0, 0], 0), ConfigRecord(), grid)
        sent = messages[0].content["config"]["clipping_norm"]
        _, metrics = wrapped.aggregate_train(server_round, [
            bit_reply(node, int(norm > sent)) for node, norm in enumerate(norms, start=1)])
        # Assert: Andrew et al.'s step C * exp(-lr * (b - q)), b the fraction within the clip
        within = sum(norm <= expected for norm in norms) / len(norms)
        assert sent == pytest.approx(expected)
        assert wrapped.strategy.rounds[server_round]["dp-clipping-norm"] == pytest.approx(sent)
        assert wrapped.strategy.rounds[server_round]["dp-unclipped-fraction"] == within
        assert metrics is not None and "norm_bit" not in metrics
        expected *= math.exp(-lr * (within - q))
    # Assert: from 0.1 the clip grew to the median of the norms, where half are within
    assert 1.0 <= wrapped.clipping_norm < 2.0
    assert wrapped.clipping_norm == pytest.approx(expected)


def test_adaptive_clipping_refuses_a_reply_without_its_norm_bit(flower_identity: None) -> None:
    wrapped = AccountedClipping(CoLearn(), noise_multiplier=0.0, clipping_norm=1.0,
                                num_sampled_clients=2, ledger=None, adaptive=AdaptiveClip())
    list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    with pytest.raises(ColearnError, match="node 2 replied without 'norm_bit'"):
        wrapped.aggregate_train(1, [bit_reply(1, 0), reply(2, model([1, 1], 0))])


def test_adaptive_noise_on_the_model_is_raised_so_the_accounted_multiplier_is_z(
    flower_identity: None
) -> None:
    # Prepare: z = 0.5 for 2 sites, count stddev 1: the model's multiplier is
    # (0.5^-2 - 2^-2)^-1/2, and together with the count they are a multiplier of 0.5
    config = RunConfig.from_dict({"dp-noise-multiplier": 0.5, "dp-clipping": "adaptive",
                                  "dp-clipped-count-stddev": 1.0})
    wrapped = with_privacy(build_strategy(config), config)
    assert isinstance(wrapped, AccountedClipping)
    list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    # Execute
    wrapped.aggregate_train(1, [bit_reply(1, 0), bit_reply(2, 1)])
    # Assert
    record = wrapped.strategy.rounds[1]
    assert wrapped.noise_multiplier == pytest.approx((0.5 ** -2 - 2.0 ** -2) ** -0.5)
    assert record["dp-noise-effective"] == pytest.approx(0.5)
    assert record["dp-epsilon"] == pytest.approx(gaussian_epsilon(0.5, 1), rel=1e-9)
    assert isinstance(record["dp-unclipped-fraction"], float)
    assert np.isfinite(wrapped.clipping_norm) and wrapped.clipping_norm > 0


def test_no_epsilon_for_a_server_optimizer_that_steps_after_the_mean(
    flower_identity: None
) -> None:
    config = RunConfig.from_dict({"dp-noise-multiplier": 1.0, "server-optimizer": "fedadam"})
    wrapped = with_privacy(build_strategy(config), config)
    assert isinstance(wrapped, AccountedClipping) and wrapped.ledger is None
    list(wrapped.configure_train(1, model([0, 0], 0), ConfigRecord(), StaticGrid([1, 2])))
    arrays, _ = wrapped.aggregate_train(1, [reply(1, model([1, 2], 0)),
                                            reply(2, model([3, 4], 0))])
    assert isinstance(arrays, ArrayRecord)
    assert "dp-epsilon" not in wrapped.strategy.rounds[1]


def site_data(context: Context) -> TinyData:
    return TinyData(n=64, seed=int(context.node_config["partition-id"]))


@pytest.mark.slow  # a Ray simulation (~30 s); CI runs it with the slow checks
def test_a_simulated_adaptive_run_stops_at_its_budget(tmp_path: Path) -> None:
    # Prepare: two sites of 64 examples (equal weights), z = 1 with adaptive clipping (count
    # noise 1), a budget between the epsilon of 1 and of 2 rounds, 3 rounds asked
    target = (gaussian_epsilon(1.0, 1) + gaussian_epsilon(1.0, 2)) / 2
    # Execute: the real sites' clipping mod reports its norm bits
    folder = simulate({"output-dir": str(tmp_path), "run-name": "dp", "num-server-rounds": 3,
                       "epochs-schedule": "fixed", "epochs-initial": 1,
                       "dp-noise-multiplier": 1.0, "dp-clipping": "adaptive",
                       "dp-clipped-count-stddev": 1.0, "dp-target-epsilon": target},
                      num_sites=2, cpus_per_site=1, module_fn=lambda cfg: TinyClassifier(),
                      datamodule_fn=site_data, central_datamodule_fn=lambda cfg: TinyData())
    # Assert: one round, then the budget stop; the round's clip, epsilon and count recorded
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    assert [row["round"] for row in rows] == [0, 1]
    assert read_status(folder)[0] == BUDGET_SPENT
    assert rows[1]["sites-averaged"] == 2 and rows[1]["dp-clipping-norm"] == 1.0
    assert rows[1]["dp-noise-effective"] == pytest.approx(1.0)
    assert rows[1]["dp-epsilon"] == pytest.approx(gaussian_epsilon(1.0, 1), rel=1e-9)
    assert "dp-unclipped-fraction" in rows[1] and "norm_bit" not in rows[1]
