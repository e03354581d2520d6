"""A user's Flower app for the fault tests: the image task, where a site can be made faulty.

``test_faults.py`` copies this file into a fresh app folder with its own ``pyproject.toml``
and runs it with ``flwr run <folder> dc``, as a user runs their own app built on
``colearn_fl.client_app`` / ``colearn_fl.server_app``. colearn-fl knows nothing of the
node-config keys below; a SuperNode opts in with
``--node-config "data-dir='...' diverge=true"`` (or ``hang=true``):

- ``diverge``: the site trains on NaN images, so its weights come back NaN, like a site whose
  optimisation blew up;
- ``hang``: the site's data never arrive, like a stuck data loader. Its ClientApp keeps
  sending Flower's task heartbeats, so neither the SuperNode nor the SuperLink reports it.
"""

from __future__ import annotations

import threading

from flwr.app import Context
from torch.utils.data import TensorDataset

from colearn_fl import client_app, server_app
from colearn_fl.task_adapter import TaskAdapter
from tasks import image

IMAGE = TaskAdapter.named("image")

DIVERGE, HANG = "diverge", "hang"


def datamodule_fn(context: Context) -> image.ImageDataModule:
    """This site's image data, made faulty as its node config says."""
    if context.node_config.get(HANG) is True:
        threading.Event().wait()  # forever; Flower's heartbeat thread keeps running
    data = IMAGE.datamodule_fn(context)
    if context.node_config.get(DIVERGE) is True:
        data.setup("fit")  # later setup('fit') calls keep the tensors set here
        assert data.train_set is not None
        images, labels = data.train_set.tensors
        data.train_set = TensorDataset(images * float("nan"), labels)
    return data


client = client_app(IMAGE.module_fn, datamodule_fn)
server = server_app(IMAGE.module_fn, IMAGE.central_datamodule_fn)
