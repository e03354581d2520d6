"""The strategy layer's error: a schedule setting is out of range or unknown.

A ``ValueError`` subclass, so callers may catch either; its message names the key, the value,
what is allowed and how to fix it. (``colearn_fl`` turns it into its ``ConfigError`` when it
parses a run config.)
"""

from __future__ import annotations


class ScheduleError(ValueError):
    """A co-learning schedule or transport setting is unknown or out of range."""
