"""A site's Trainer prints no Lightning advertisement and no pytree deprecation warning."""

from __future__ import annotations

import logging
import warnings

from colearn_fl.trainer import make_trainer
from tests.tiny import TinyClassifier, TinyData


def test_site_trainers_are_quiet(caplog) -> None:
    # Execute: build and fit a Trainer as a site does, recording logs and warnings
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer("32-true", [], 1).fit(TinyClassifier(), TinyData())
    # Assert: Lightning still reports (e.g. its stop reason) but not the noise
    assert "seamless cloud logging" not in caplog.text
    assert not [w for w in caught if "LeafSpec" in str(w.message)]
    assert "max_epochs=1" in caplog.text

