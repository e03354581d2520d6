"""The model registry every task uses: duplicates refused, sorted names, helpful errors."""

from __future__ import annotations

import warnings

import pytest

from colearn_fl.errors import ConfigError
from tasks import get_task, list_tasks
from tasks.registry import ModelRegistry


def test_registry_registers_lists_sorted_and_refuses_duplicates() -> None:
    # Prepare
    models: ModelRegistry = ModelRegistry("a test model", "b", "demo")
    models.register("b")(lambda: "built b")
    models.register("a")(lambda: "built a")

    # Execute / Assert
    assert models.names() == ["a", "b"]
    assert models.builder("a")() == "built a"
    with pytest.raises(ValueError, match="model 'a' is already registered"):
        models.register("a")(lambda: None)


def test_unknown_name_lists_the_valid_ones_and_the_default() -> None:
    models: ModelRegistry = ModelRegistry("a test model", "b", "demo")
    models.register("b")(lambda: None)
    with pytest.raises(ConfigError, match=r"model='x' is not a test model; use one of: b "
                                          r"\(or model='' for b\).*task='demo' model='b'"):
        models.builder("x")


@pytest.mark.parametrize("name", list_tasks())
def test_every_task_builds_its_default_model_from_an_empty_model_key(name: str) -> None:
    # Prepare
    task = get_task(name)

    # Execute: model='' must build the task's default, so the default must be registered
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # audioset warns about Adam at the common lr-max
        module = task.module_fn({"task": name, "model": ""})

    # Assert
    assert module.hparams.model in task.models()
