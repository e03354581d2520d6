"""A site's Trainer prints no Lightning advertisement, no pytree deprecation warning and no
progress bar."""

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


def test_a_sites_round_draws_no_progress_bar(flower_identity: None, tmp_path, capsys) -> None:
    # Prepare: a training instruction as the server sends it
    from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict

    from colearn_fl.arrays import state_dict_to_arrays
    from colearn_fl.site.rounds import SiteCall, train_round

    context = Context(run_id=7, node_id=3, node_config={"partition-id": 0, "num-partitions": 1},
                      state=RecordDict(), run_config={"output-dir": str(tmp_path)})
    config = ConfigRecord({"server-round": 1, "local-epochs": 1, "lr-schedule": "cosine",
                           "lr-max": 0.1, "lr-min": 0.001})
    msg = Message(RecordDict({"arrays": state_dict_to_arrays(TinyClassifier().state_dict()),
                              "config": config}), dst_node_id=3, message_type=MessageType.TRAIN)
    # Execute
    train_round(msg, SiteCall.of(context, lambda cfg: TinyClassifier(), lambda ctx: TinyData()))
    # Assert: no bar redrawn per batch (Lightning's tqdm bar writes "it/s" to stdout)
    out = capsys.readouterr()
    assert "it/s" not in out.out + out.err
