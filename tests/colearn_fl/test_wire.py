"""What leaves a site: every reply of a real simulated federation, inspected by a client mod."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from flwr.app import ArrayRecord, Context, Message, MetricRecord
from flwr.clientapp.typing import ClientAppCallable, Mod

from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData


def reply_recorder(folder: Path) -> Mod:
    """A mod that writes a description of every outgoing reply to ``folder`` (one JSON each).

    The sites run in other processes, so the description goes through files.
    """

    def record(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(msg, context)
        records = {}
        for name, rec in ({} if reply.has_error() else reply.content).items():
            values = ({k: a.dtype for k, a in rec.items()} if isinstance(rec, ArrayRecord)
                      else {k: type(v).__name__ for k, v in rec.items()})
            records[name] = {"kind": type(rec).__name__, "keys": list(rec.keys()),
                             "values": values}
        description = {"type": msg.metadata.message_type, "error": reply.has_error(),
                       "records": records}
        (folder / f"{uuid.uuid4().hex}.json").write_text(json.dumps(description))
        return reply

    return record


def site_data(context: Context) -> TinyData:
    return TinyData(n=64, seed=int(context.node_config["partition-id"]))


def test_sites_send_only_state_dict_arrays_metrics_and_epoch_curves(tmp_path) -> None:
    # Prepare
    replies_dir = tmp_path / "replies"
    replies_dir.mkdir()
    state_dict = TinyClassifier().state_dict()
    # Execute: 2 sites, 1 round of training and federated evaluation
    simulate({"output-dir": str(tmp_path), "run-name": "wire", "num-server-rounds": 1},
             num_sites=2, cpus_per_site=1, module_fn=lambda cfg: TinyClassifier(),
             datamodule_fn=site_data, central_datamodule_fn=lambda cfg: TinyData(),
             mods=[reply_recorder(replies_dir)])
    # Assert: 2 data-check, 2 train and 2 evaluate replies, none an error
    replies = [json.loads(p.read_text()) for p in sorted(replies_dir.iterdir())]
    assert sorted(r["type"] for r in replies) == (
        ["evaluate"] * 2 + ["query.data_check"] * 2 + ["train"] * 2)
    assert not any(r["error"] for r in replies)
    for reply in replies:
        kinds = sorted(rec["kind"] for rec in reply["records"].values())
        metrics = next(rec for rec in reply["records"].values()
                       if rec["kind"] == MetricRecord.__name__)
        # numbers, and the per-epoch curves as lists (one value per local epoch)
        assert {v for k, v in metrics["values"].items() if not k.startswith("epoch-")} <= {
            "int", "float"}
        assert {v for k, v in metrics["values"].items() if k.startswith("epoch-")} <= {"list"}
        if reply["type"] == "train":
            # the state_dict, key for key and dtype for dtype, the training metrics and what
            # the site did (epochs run, first and last LR)
            assert kinds == ["ArrayRecord", "MetricRecord"]
            arrays = next(rec for rec in reply["records"].values()
                          if rec["kind"] == ArrayRecord.__name__)
            assert arrays["keys"] == list(state_dict)
            assert arrays["values"] == {k: str(t.dtype).removeprefix("torch.")
                                        for k, t in state_dict.items()}
            assert set(metrics["keys"]) == {"num-examples", "train-loss", "epochs-run",
                                            "lr-first", "lr-last", "epoch-train-loss",
                                            "epoch-lr", "epoch-loss", "epoch-accuracy"}
        elif reply["type"] == "query.data_check":  # the site's data sizes and its name
            assert kinds == ["ConfigRecord", "MetricRecord"]
            assert set(metrics["keys"]) == {"train-examples", "val-examples"}
            assert reply["records"]["site"] == {"kind": "ConfigRecord", "keys": ["site-name"],
                                                "values": {"site-name": "str"}}
        else:
            assert kinds == ["MetricRecord"]
            assert set(metrics["keys"]) == {"num-examples", "loss", "accuracy"}
