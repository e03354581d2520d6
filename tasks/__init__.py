"""Tasks as plain Lightning: one package per task, a lazy registry, no Flower.

``tasks.<name>`` (image, toxic, speech, audioset) holds ``config`` (its keys), ``module`` (the
LightningModule), ``models`` (its model registry), ``data`` (the DataModule) and what only it
needs; ``tasks.shared`` what every task shares. Importing ``tasks`` imports no task:
``get_task(name)`` loads the one asked for.
"""

from __future__ import annotations

from tasks.registry import Task, get_task, list_tasks, register_task

__all__ = ["Task", "get_task", "list_tasks", "register_task"]
