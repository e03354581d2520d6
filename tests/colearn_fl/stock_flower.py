"""A stock Flower ClientApp, written the way Flower's quickstart examples write theirs.

Message API, a plain PyTorch loop with its own optimizer and one local epoch, the model in and
out through ``ArrayRecord``'s torch helpers, snake_case metric names. It knows nothing of
co-learning and ignores every schedule key the server sends.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch.nn import functional as F
from torch.utils.data import DataLoader

from tests.tiny import TinyClassifier, rule_data

app = ClientApp()


def _load(msg: Message) -> TinyClassifier:
    model = TinyClassifier()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())  # casts 16-bit in
    return model


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One epoch of SGD at the client's own LR."""
    model = _load(msg)
    loader = DataLoader(rule_data(64, int(context.node_config["partition-id"])), batch_size=16,
                        shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item()
    metrics = MetricRecord({"train_loss": total / len(loader), "num-examples": 64})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}),
                   reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Loss and accuracy on 32 held-out samples."""
    model = _load(msg)
    model.eval()
    data = rule_data(32, 100 + int(context.node_config["partition-id"]))
    with torch.no_grad():
        logits = model(data.tensors[0])
    metrics = MetricRecord({
        "eval_loss": F.cross_entropy(logits, data.tensors[1]).item(),
        "eval_acc": (logits.argmax(1) == data.tensors[1]).float().mean().item(),
        "num-examples": 32})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
