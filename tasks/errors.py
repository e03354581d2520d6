"""The project's exceptions: every message names what is wrong and how to fix it.

They live in ``tasks`` (the layer with no Flower) so tasks can raise them as plain Lightning
code; ``colearn_fl.errors`` re-exports them for the apps, the CLI and users.
"""

from __future__ import annotations


class ColearnError(ValueError):
    """Base class of colearn-fl's errors (a ``ValueError``, so callers may catch either)."""


class ConfigError(ColearnError):
    """A run-config or node-config value is missing, of the wrong type or out of range."""


class DataError(ColearnError):
    """A data set is missing, incomplete or malformed on disk."""
