"""Project exceptions: every message names what is wrong and how to fix it.

Defined in ``tasks.errors`` (the layer below, which tasks raise from without Flower) and
re-exported here, where the apps, the CLI and users look for them.
"""

from __future__ import annotations

from tasks.errors import ColearnError, ConfigError, DataError

__all__ = ["ColearnError", "ConfigError", "DataError"]
