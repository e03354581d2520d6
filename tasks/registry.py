"""One model registry type for every task (torchvision/timm-style: flat dict, decorator).

``register`` refuses duplicates, ``names`` is sorted and ``builder`` lists the valid names when
asked for an unknown one. Each task keeps its own instance, since each task's builders take
different arguments (image: channels, classes, size; toxic: vocabulary, labels, padding id...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from colearn_fl.errors import ConfigError

B = TypeVar("B", bound=Callable)


class ModelRegistry(Generic[B]):
    """Model builders of one task, by name (the ``model`` run-config key).

    Parameters
    ----------
    kind : str
        What the models are, for error messages (e.g. ``'an image model'``).
    default : str
        The model ``model=''`` means.
    task : str
        The task's registry name, for the example in error messages.
    """

    def __init__(self, kind: str, default: str, task: str) -> None:
        self.kind, self.default, self.task = kind, default, task
        self._builders: dict[str, B] = {}

    def register(self, name: str) -> Callable[[B], B]:
        """Decorator registering a builder as ``name``; a second one is refused."""

        def decorate(builder: B) -> B:
            if name in self._builders:
                raise ValueError(f"model {name!r} is already registered")
            self._builders[name] = builder
            return builder

        return decorate

    def names(self) -> list[str]:
        """Names of the registered models, sorted."""
        return sorted(self._builders)

    def builder(self, name: str) -> B:
        """The builder registered as ``name``; an unknown name lists the valid ones."""
        try:
            return self._builders[name]
        except KeyError:
            raise ConfigError(
                f"model={name!r} is not {self.kind}; use one of: {', '.join(self.names())} "
                f"(or model='' for {self.default}), e.g. --run-config "
                f"\"task='{self.task}' model='{self.default}'\"."
            ) from None
