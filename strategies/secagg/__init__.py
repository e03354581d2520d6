"""Secure aggregation (SecAgg+) for message-API strategies: the server learns only the
weighted sum of the sites' models (``grid``: the server's side; ``site``: the sites')."""

from strategies.secagg.grid import SecureAggregationGrid
from strategies.secagg.server import Settings

__all__ = ["SecureAggregationGrid", "Settings"]
