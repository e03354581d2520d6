"""Run config: parsing, defaults that match pyproject, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from colearn_fl.config import RunConfig, section_defaults
from colearn_fl.errors import ConfigError
from tasks import get_task, list_tasks

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_defaults_equal_runconfig_defaults() -> None:
    # Prepare
    declared = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]
    # Execute: the common keys and every registered task's own keys
    defaults = RunConfig.defaults()
    for name in list_tasks():
        section = get_task(name).config
        overlap = set(defaults) & set(section_defaults(section))
        assert not overlap, f"task {name} redefines {overlap}"
        defaults.update(section_defaults(section))
    # Assert: one source of truth for users of flwr run and of simulate()
    assert declared == defaults


def test_parses_kebab_case_and_keeps_unknown_keys() -> None:
    config = RunConfig.from_dict({"lr-max": 1, "epochs-mult": 3, "resume": "true", "mine": 5})
    assert (config.schedule.lr_max, config.schedule.epochs_mult, config.outputs.resume) == (
        1.0, 3.0, True)
    assert config.extra == {"mine": 5}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"lr-schedule": "saw"}, "lr-schedule='saw' is not known; use one of: cosine"),
        ({"lr-max": 0.05, "lr-min": 0.5}, "lr-max=0.05, lr-min=0.5"),
        ({"lr-max": "fast"}, "lr-max='fast': expected a number or 'default' or 'auto'"),
        ({"lr-min": "auto"}, "lr-min='auto': expected a number or 'default'"),
        ({"lr-min-ratio": 1.5}, r"lr-min-ratio=1.5: must be in \(0, 1\)"),
        ({"lr-find-steps": 0}, "lr-find-steps=0"),
        ({"swa-start": 4}, "swa-start=4 > num-server-rounds=3: SWA would never start"),
        ({"swa-start": -1}, "swa-start=-1"),
        ({"logger": "wandb"}, "logger='wandb' is not known; use one of: csv, tensorboard, "
                              "mlflow, none"),
        ({"epochs-schedule": "cubic"}, "epochs-schedule='cubic'"),
        ({"epochs-initial": 0}, "epochs-initial=0"),
        ({"partitioning": "shards"}, "partitioning='shards' is not known; use one of: iid"),
        ({"num-server-rounds": 0}, "num-server-rounds=0"),
        ({"precision": "8-true"}, "precision='8-true' is not known; use one of: 32-true"),
        ({"batch-size": "64"}, "batch-size='64': expected an integer"),
        ({"resume": "yes"}, "resume='yes': expected true or false"),
        ({"fraction-train": 1.5}, r"fraction-train=1.5: must be in \[0, 1\]"),
        ({"dirichlet-alpha": 0}, "dirichlet-alpha=0"),
        ({"seed": -1}, "seed=-1"),
        ({"epochs-schedule": "budget", "epochs-budget": 2},
         "epochs-budget=2 with num-server-rounds=3"),
        ({"server-optimizer": "sgd"}, "server-optimizer='sgd' is not known"),
    ],
)
def test_errors_name_key_and_value(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict(raw)


def test_round_epochs_of_a_budget_sum_to_it() -> None:
    config = RunConfig.from_dict({"epochs-schedule": "budget", "epochs-budget": 7,
                                  "budget-shape": "decaying"})
    assert config.round_epochs() == [4, 2, 1]


@pytest.mark.parametrize(
    ("raw", "default_top", "expected"),
    [
        ({}, 0.05, (0.05, 0.0005)),  # the task's number, bottom = top x 0.01
        ({}, "auto", ("auto", None)),  # found at run time
        ({"lr-max": 0.2}, 0.05, (0.2, 0.002)),  # the user's number wins
        ({"lr-min-ratio": 0.1}, 0.01, (0.01, 0.001)),
        ({"lr-max": "auto", "lr-min": 0.0001}, 0.05, ("auto", 0.0001)),
        ({"lr-max": 0.1, "lr-min": 0.0}, "auto", (0.1, 0.0)),
    ],
)
def test_cycle_resolves_default_and_auto(raw: dict, default_top, expected) -> None:
    top, bottom = RunConfig.from_dict(raw).schedule.cycle(default_top)
    assert top == expected[0]
    assert bottom == pytest.approx(expected[1]) if expected[1] is not None else bottom is None


def test_tensorboard_logger_without_the_package_names_the_extra(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in (
        "tensorboard", "tensorboardX") else real(name, *a))
    with pytest.raises(ConfigError, match=r"logger='tensorboard' needs the tensorboard package "
                                          r"at the server and every site: pip install "
                                          r"\"colearn-fl\[tensorboard\]\""):
        RunConfig.from_dict({"logger": "tensorboard"})
