"""Every experiment file under conf/ is a valid ``flwr run --run-config`` for this app."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from flwr.common.config import parse_config_args

from colearn_fl.config import RunConfig
from colearn_fl.task_adapter import TaskAdapter

ROOT = Path(__file__).resolve().parents[2]
CONF = sorted((ROOT / "conf").glob("*.toml"))
DEFAULTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


def test_there_are_experiment_files() -> None:
    assert len(CONF) >= 10


@pytest.mark.parametrize("path", CONF, ids=lambda p: p.name)
def test_experiment_file_keys_values_and_model_are_valid(path: Path) -> None:
    # Prepare: read the file the way flwr run reads --run-config <file>.toml
    overrides = parse_config_args([str(path)])

    # Execute
    run_config = {**DEFAULTS, **overrides}
    config = RunConfig.from_dict(run_config)
    adapter = TaskAdapter.named(config.task)
    adapter.config(config)  # the task's own keys parse and validate

    # Assert: flwr refuses keys the app does not declare; the model must exist in the task
    assert set(overrides) <= set(DEFAULTS), set(overrides) - set(DEFAULTS)
    assert config.model in ("", *adapter.task.models())
    assert f"conf/{path.name}" in path.read_text(), "the file's comment shows how to run it"
