"""A site's SWA statistics round on a tiny module: per-site moments pooled by the server equal
one pass over the pooled data."""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.site.bn_refresh import input_moments
from strategies.swa import pool_statistics
from tests.tiny import TinyClassifier


def shifted(n: int, shift: float, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator) + shift
    return TensorDataset(x, torch.zeros(n, dtype=torch.long))


def test_pooled_site_statistics_equal_a_pass_over_the_pooled_data() -> None:
    # Prepare: one model; two sites whose inputs differ in mean (non-IID), 300 and 100 rows
    torch.manual_seed(0)
    module = TinyClassifier()
    sites = [shifted(300, 0.0, 1), shifted(100, 3.0, 2)]
    # Execute: each site's moments (batches of 32), pooled by the server's rule
    replies = []
    for data in sites:
        moments, examples, batches = input_moments(module, DataLoader(data, batch_size=32))
        mean, var = moments["net.1"]
        replies.append((ArrayRecord({
            "net.1.running_mean": state_dict_to_arrays({"m": mean.float()})["m"],
            "net.1.running_var": state_dict_to_arrays({"v": var.float()})["v"],
            "net.1.num_batches_tracked": state_dict_to_arrays(
                {"n": torch.tensor(batches)})["n"]}), float(examples)))
    pooled = pool_statistics(replies)
    # Assert: equal to torch's own BN refresh over all 400 rows in one batch (its variance is
    # unbiased: x (N-1)/N gives the population variance)
    reference = TinyClassifier()
    reference.load_state_dict(module.state_dict())
    everything = torch.utils.data.ConcatDataset(sites)
    update_bn(DataLoader(everything, batch_size=400), reference)
    bn = reference.net[1]
    np.testing.assert_allclose(pooled["net.1.running_mean"].numpy(), bn.running_mean.numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled["net.1.running_var"].numpy(),
                               bn.running_var.numpy() * 399 / 400, rtol=1e-4, atol=1e-5)
    assert replies[0][1] == 300 and int(pooled["net.1.num_batches_tracked"].numpy()) == 10 + 4
    assert module.training  # the module's mode is restored
