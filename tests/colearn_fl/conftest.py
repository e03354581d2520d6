"""Fixtures of the plugin's tests that start Flower's own CLI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from colearn_fl.cli import main
from colearn_fl.deploy.superlink import pids_mentioning


@pytest.fixture
def flwr_home(tmp_path: Path) -> Iterator[Path]:
    """A FLWR_HOME of the test's own; afterwards the managed local SuperLink that ``flwr run``
    started under it is stopped (README's one precise command), and nothing else."""
    home = tmp_path / "flwr-home"
    yield home
    assert main(["stop-superlink", "--flwr-home", str(home)]) == 0
    deadline = time.monotonic() + 15
    while pids_mentioning(str(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pids_mentioning(str(home)), "the managed SuperLink outlived the test"
