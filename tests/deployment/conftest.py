"""Fixtures of the deployment tests: the admin's files once, federations per module or test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from colearn_fl.deploy.tls import make_certificates, make_node_keys
from tasks.image.fashion_mnist import DEFAULT_DATA_DIR
from tasks.image.shards import write_site_shards
from tests.deployment.federation import (
    SHARD_SAMPLES,
    SITES,
    AdminFiles,
    Federation,
    StartFederation,
)


@pytest.fixture(scope="session")
def admin_files(tmp_path_factory) -> AdminFiles:
    """Certificates, one key pair per site (+ an unregistered one), one shard per site."""
    tmp = tmp_path_factory.mktemp("admin")
    return AdminFiles(
        certs=make_certificates(tmp / "certs"),
        keys=make_node_keys(tmp / "keys", [f"site-{i}" for i in range(SITES)] + ["intruder"]),
        shards=write_site_shards(DEFAULT_DATA_DIR, tmp / "shards", SITES, seed=0,
                                 max_samples=SHARD_SAMPLES),
    )


def _started(federation: Federation, node_configs: dict[str, str]) -> Federation:
    federation.start_superlink()
    federation.register(list(node_configs))
    federation.start_nodes(node_configs)
    return federation


@pytest.fixture(scope="module")
def federation(tmp_path_factory, admin_files: AdminFiles) -> Iterator[Federation]:
    """Three registered SuperNodes on their shards, shared by a module's tests."""
    fed = Federation(tmp_path_factory.mktemp("deployment"), admin_files)
    try:
        yield _started(fed, {f"site-{i}": "" for i in range(SITES)})
    finally:
        left = fed.stop()
        assert not left, f"processes outlived the fixture: {left}"


@pytest.fixture
def make_federation(tmp_path, admin_files: AdminFiles) -> Iterator[StartFederation]:
    """A fresh federation for one test, which may kill or restart its processes.

    Call it with ``{"site-0": "", "site-2": "diverge=true"}``: the sites to start and the node
    config each adds to its ``data-dir``.
    """
    started: list[Federation] = []

    def make(node_configs: dict[str, str]) -> Federation:
        fed = Federation(tmp_path / f"federation-{len(started)}", admin_files)
        started.append(fed)
        return _started(fed, node_configs)

    yield make
    left = [pid for fed in started for pid in fed.stop()]
    assert not left, f"processes outlived the test: {left}"
