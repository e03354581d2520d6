"""The ClientApp as Flower calls it: each message's run config is parsed once, then passed down.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from colearn_fl import client_app
from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.config import RunConfig
from colearn_fl.task_adapter import TaskAdapter
from tests.tiny import TinyClassifier, TinyData, fake_fashion_mnist

ROUND = {"server-round": 1, "local-epochs": 1, "lr-schedule": "cosine", "lr-max": 0.1,
         "lr-min": 0.001}


def counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record every ``RunConfig.from_dict`` call (its argument) from here on."""
    calls: list[dict] = []
    parse = RunConfig.from_dict.__func__  # type: ignore[attr-defined]

    def counted(cls: type[RunConfig], raw: dict) -> RunConfig:
        calls.append(dict(raw))
        return parse(cls, raw)

    monkeypatch.setattr(RunConfig, "from_dict", classmethod(counted))
    return calls


def train_message(model: ArrayRecord) -> Message:
    return Message(RecordDict({"arrays": model, "config": ConfigRecord(ROUND)}),
                   dst_node_id=3, message_type=MessageType.TRAIN)


def test_a_users_training_message_parses_the_run_config_once(
    flower_identity: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    app = client_app(lambda run_config: TinyClassifier(), lambda context: TinyData(n=32))
    context = Context(run_id=7, node_id=3, node_config={"partition-id": 0, "num-partitions": 2},
                      state=RecordDict(), run_config={"output-dir": str(tmp_path)})
    msg = train_message(model=state_dict_to_arrays(TinyClassifier().state_dict()))
    calls = counting_parses(monkeypatch)

    # Execute
    reply = app(msg, context)

    # Assert
    assert not reply.has_error(), reply.error
    assert reply.content["metrics"]["num-examples"] == 32
    assert len(calls) == 1


def test_the_default_apps_training_message_parses_the_run_config_once(
    flower_identity: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the pyproject ClientApp, its task's module and data bound to the parsed config
    from colearn_fl.apps import client

    run_config = {"task": "image", "model": "tiny-cnn", "output-dir": str(tmp_path),
                  "data-dir": str(fake_fashion_mnist(tmp_path / "data")), "batch-size": 16}
    model = TaskAdapter.named("image").module_fn(run_config)
    context = Context(run_id=7, node_id=3, node_config={"partition-id": 1, "num-partitions": 2},
                      state=RecordDict(), run_config=run_config)
    calls = counting_parses(monkeypatch)

    # Execute
    reply = client(train_message(model=state_dict_to_arrays(model.state_dict())), context)

    # Assert: half of the 120 training images, parsed once (the DP mod reads its own section)
    assert not reply.has_error(), reply.error
    assert reply.content["metrics"]["num-examples"] == 60
    assert calls == [run_config]
