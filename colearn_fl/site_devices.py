"""A site's hardware, from its node config: ``accelerator``, ``devices``, ``strategy``.

Node config is per site (each SuperNode's ``--node-config``), run config per run: a data
center with 8 GPUs says ``devices=8`` on its own SuperNode, and the run stays the same for
every other site. With ``devices > 1`` the site's training rounds run Lightning's
distributed data parallel over them:

- the strategy is ``ddp_spawn``: Lightning's ``ddp`` relaunches the command that started the
  process, which inside a ClientApp is Flower's ``flwr-clientapp``, not a training script;
  ``ddp_spawn`` starts the workers from the ClientApp itself and hands rank 0's weights and
  metrics back to it;
- each step averages the gradients of ``devices`` batches of ``batch-size`` (a global batch
  of ``devices x batch-size``), every worker seeing its share of the data, so an epoch has
  ``1 / devices`` of the steps; the server's LR cycle spans the round's steps whatever they
  are, and the epochs are the server's;
- the reply is rank 0's state_dict (BatchNorm statistics: rank 0's, from its share), with
  the examples and loss summed over the workers.

Evaluation, the SWA statistics round and the LR range test run on one device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from colearn_fl.errors import ConfigError

ACCELERATOR, DEVICES, STRATEGY = "accelerator", "devices", "strategy"  # node-config keys
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp_spawn")  # "auto" = ddp_spawn with devices > 1


@dataclass(frozen=True)
class SiteDevices:
    """Where a site trains: Lightning's ``accelerator``, ``devices`` and ``strategy``."""

    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"

    @classmethod
    def from_node_config(cls, node: Mapping[str, Any]) -> SiteDevices:
        """The node config's hardware keys (absent: one device, chosen by Lightning)."""
        accelerator = str(node.get(ACCELERATOR, "auto"))
        strategy = str(node.get(STRATEGY, "auto"))
        devices = node.get(DEVICES, 1)
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise ConfigError(f"node config {DEVICES}={devices!r}: expected an int >= 1, the "
                              "number of GPUs (or CPU processes) this site trains on, e.g. "
                              "--node-config \"devices=8\".")
        if accelerator not in ACCELERATORS:
            raise ConfigError(f"node config {ACCELERATOR}={accelerator!r}: use one of "
                              f"{', '.join(ACCELERATORS)}.")
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"node config {STRATEGY}={strategy!r}: a site supports {', '.join(STRATEGIES)}. "
                "Lightning's 'ddp' relaunches the command that started the process, which "
                "inside a ClientApp is flwr-clientapp; 'ddp_spawn' starts the workers itself.")
        return cls(accelerator, devices, strategy)

    def trainer_kwargs(self) -> dict[str, Any]:
        """``accelerator``, ``devices`` and ``strategy`` for ``pl.Trainer``."""
        strategy = "ddp_spawn" if self.devices > 1 and self.strategy == "auto" else self.strategy
        return {"accelerator": self.accelerator, "devices": self.devices, "strategy": strategy}
