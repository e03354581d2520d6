"""Masks of SecAgg+ (Bell et al., CCS 2020), with Flower's primitives, modulo ``MOD_RANGE``.

A site adds its private mask (from its seed ``b``) and, for every neighbour ``v`` that shared
keys with it, the pairwise mask from their agreed key, added when its node id is larger and
subtracted when smaller: summed over the sites, the pairwise masks cancel. The server removes
each contributing site's private mask (its seed rebuilt from ``threshold`` shares) and, for a
site that dropped after sharing keys, the pairwise masks its neighbours added (its first
private key rebuilt from shares). Every step reduces modulo ``MOD_RANGE``, so int64 never
overflows.
"""

from __future__ import annotations

import numpy as np
from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
from flwr.common.secure_aggregation.ndarrays_arithmetic import (
    parameters_addition,
    parameters_mod,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.supercore.primitives.asymmetric import bytes_to_private_key, bytes_to_public_key

from strategies.secagg.vectors import MOD_RANGE

Vector = list[np.ndarray]


def shapes(vector: Vector) -> list[tuple[int, ...]]:
    return [tuple(a.shape) for a in vector]


def added(vector: Vector, other: Vector) -> Vector:
    """``vector + other`` modulo ``MOD_RANGE``."""
    return parameters_mod(parameters_addition(vector, other), MOD_RANGE)


def subtracted(vector: Vector, other: Vector) -> Vector:
    """``vector - other`` modulo ``MOD_RANGE``."""
    return parameters_mod(parameters_subtraction(vector, other), MOD_RANGE)


def private_mask(seed: bytes, like: list[tuple[int, ...]]) -> Vector:
    """The mask a site's seed ``b`` expands to."""
    return pseudo_rand_gen(seed, MOD_RANGE, like)


def pairwise_mask(secret_key: bytes, public_key: bytes, like: list[tuple[int, ...]]) -> Vector:
    """The mask two sites agree on: one's first private key with the other's public key."""
    shared = generate_shared_key(bytes_to_private_key(secret_key),
                                 bytes_to_public_key(public_key))
    return pseudo_rand_gen(shared, MOD_RANGE, like)


def masked(vector: Vector, node: int, seed: bytes, secret_key: bytes,
           neighbours: dict[int, bytes]) -> Vector:
    """A site's ``vector`` with its private mask and one pairwise mask per neighbour
    (``neighbours``: node id -> that neighbour's first public key)."""
    like = shapes(vector)
    out = added(vector, private_mask(seed, like))
    for other, public_key in neighbours.items():
        mask = pairwise_mask(secret_key, public_key, like)
        out = added(out, mask) if node > other else subtracted(out, mask)
    return out


def unmasked(total: Vector, seeds: list[bytes], dropped: dict[int, tuple[bytes, dict[int, bytes]]]
             ) -> Vector:
    """The sum of the sites' vectors from the sum of their masked ones.

    Parameters
    ----------
    total : Vector
        Sum of the masked vectors received, modulo ``MOD_RANGE``.
    seeds : list[bytes]
        The rebuilt seed of every site whose masked vector is in ``total``.
    dropped : dict
        For each site that shared keys but sent no masked vector: its rebuilt first private
        key, and the first public keys of the neighbours that masked with it (those in
        ``total``), by node id.
    """
    like = shapes(total)
    for seed in seeds:
        total = subtracted(total, private_mask(seed, like))
    for node, (secret_key, neighbours) in dropped.items():
        for other, public_key in neighbours.items():
            # ``other`` added the mask when ``other > node``: take it off the same way round
            mask = pairwise_mask(secret_key, public_key, like)
            total = subtracted(total, mask) if other > node else added(total, mask)
    return total
