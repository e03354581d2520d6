"""benchmarks/budget_curve.py: which runs the grid makes, which round it reads for each
budget, and the paired gaps it reports (runs replaced by hand-made histories)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from colearn_fl.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "budget_curve.py"


@pytest.fixture(scope="module")
def bc():
    spec = importlib.util.spec_from_file_location("budget_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_budgets_are_totals_of_a_doubling_schedule(bc) -> None:
    assert [bc.rounds_of(b) for b in (1, 3, 7, 15, 31)] == [1, 2, 3, 4, 5]
    with pytest.raises(ConfigError, match="--budgets 10: a budget must be the total"):
        bc.rounds_of(10)


def test_the_plan_runs_each_growing_schedule_once_and_each_decaying_one_per_budget(bc) -> None:
    # Execute
    plan = bc.federated_plan([7, 15, 31], fedavg_lr=0.02)
    # Assert: prefixes read from the longest run; decaying runs one per budget
    assert set(plan) == {"fedavg", "fedavg-1", "colearn-ile", "colearn-7", "colearn-15",
                         "colearn-31"}
    assert plan["fedavg"][1]["num-server-rounds"] == 5
    assert plan["fedavg"][2] == {7: 3, 15: 4, 31: 5}
    assert plan["fedavg"][1]["lr-max"] == plan["fedavg"][1]["lr-min"] == 0.02
    assert plan["fedavg-1"][1]["num-server-rounds"] == 31
    assert plan["fedavg-1"][2] == {7: 7, 15: 15, 31: 31}
    assert "lr-schedule" not in plan["colearn-ile"][1]  # the default cycle
    assert plan["colearn-15"] == ("colearn", {"epochs-schedule": "budget", "epochs-budget": 15,
                                              "budget-shape": "decaying",
                                              "num-server-rounds": 4}, {15: 4})


def _rows(epochs: list[int], accuracies: list[float]) -> list[dict]:
    return [{"round": 0, "local-epochs": 0, "accuracy": 0.1}] + [
        {"round": r, "local-epochs": e, "accuracy": a}
        for r, (e, a) in enumerate(zip(epochs, accuracies, strict=True), start=1)]


def test_the_grid_reads_each_budget_at_its_round_and_pairs_by_seed(bc, monkeypatch,
                                                                   tmp_path) -> None:
    # Prepare: budgets 1 and 3; every run's accuracy = seed/100 + round/10 (+0.05 decaying)
    def federated(base, name, overrides, seed, partition, folder):
        rounds = overrides["num-server-rounds"]
        if overrides["epochs-schedule"] == "budget":
            epochs = [2, 1][:rounds] if rounds == 2 else [1]
            return _rows(epochs, [seed / 100 + r / 10 + 0.05 for r in range(1, rounds + 1)])
        epochs = [1] * rounds if overrides["epochs-schedule"] == "fixed" else \
            [2 ** r for r in range(rounds)]
        return _rows(epochs, [seed / 100 + r / 10 for r in range(1, rounds + 1)])

    monkeypatch.setattr(bc, "run_federated", federated)
    monkeypatch.setattr(bc, "run_vanilla", lambda base, seed, budget, folder: 0.9 + seed / 100)
    # Execute
    accuracy = bc.grid({}, [0, 1], [1, 3], 0.02, tmp_path)
    # Assert: budget 3 = round 2 of the doubling runs, round 3 of fedavg-1
    seed1 = accuracy["iid"][3][1]
    assert seed1 == pytest.approx({"vanilla": 0.91, "fedavg": 0.21, "fedavg-1": 0.31,
                                   "colearn-ile": 0.21, "colearn": 0.26})
    gap = bc.paired(accuracy["iid"][3], "colearn", "vanilla")
    assert gap.diff == pytest.approx(0.26 - 0.91)  # the same in both seeds
    assert gap.diff_low == pytest.approx(gap.diff) and gap.diff_high == pytest.approx(gap.diff)
    # and the report holds the table and the paired gap
    bc.write_report(tmp_path, accuracy, "setting")
    report = (tmp_path / "budget-curve.md").read_text()
    assert "| colearn − vanilla | -75.00 [-75.00, -75.00] | -65.00 [-65.00, -65.00] |" in report
    assert (tmp_path / "budget-curve.png").read_bytes()[:4] == b"\x89PNG"
