"""Project exceptions: every message names what is wrong and how to fix it."""

from __future__ import annotations


class ColearnError(ValueError):
    """Base class of colearn-fl's errors (a ``ValueError``, so callers may catch either)."""


class ConfigError(ColearnError):
    """A run-config or node-config value is missing, of the wrong type or out of range."""


class DataError(ColearnError):
    """A data set is missing, incomplete or malformed on disk."""
