"""The secure aggregation keys (``SecureAggregation`` section): errors that name the key, and
the checks against the round's sites and SWA."""

from __future__ import annotations

import pytest

from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError

ON = {"secure-aggregation": True}


@pytest.mark.parametrize(("raw", "match"), [
    ({"secagg-threshold": 1}, r"secagg-threshold=1: must be 0 \(a majority"),
    ({"secagg-threshold": -2}, "secagg-threshold=-2"),
    ({"secagg-clipping-range": 0.0}, "secagg-clipping-range=0.0: must be a finite number > 0"),
    ({"secagg-clipping-range": float("inf")}, "secagg-clipping-range=inf"),
    ({"secagg-quantization-range": 2**31}, r"secagg-quantization-range=2147483648: must be in"),
    ({**ON, "min-available-nodes": 1}, "needs at least 2 sites a round, and min-available-nodes"),
    ({**ON, "min-available-nodes": 4, "fraction-train": 0.25}, "gives 1: raise"),
    ({**ON, "min-available-nodes": 3, "secagg-threshold": 4},
     r"secagg-threshold=4 > 3 sites a round \(min-available-nodes x fraction-train\)"),
    ({**ON, "num-server-rounds": 3, "swa-start": 2}, "with swa-start=2: SWA's statistics round"),
])
def test_errors_name_the_key_and_the_fix(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict(raw)


def test_the_checks_across_sections_apply_only_when_it_is_on() -> None:
    config = RunConfig.from_dict({"min-available-nodes": 1, "secagg-threshold": 5,
                                  "num-server-rounds": 3, "swa-start": 2})
    assert (config.secagg.secure_aggregation, config.secagg.secagg_threshold) == (False, 5)


def test_a_threshold_up_to_the_sites_a_round_is_accepted() -> None:
    config = RunConfig.from_dict({**ON, "min-available-nodes": 3, "secagg-threshold": 3})
    assert config.secagg.secagg_threshold == 3
