"""The task and model registries: lazy task loading, sorted names, helpful errors, and the
layer rule (tasks are plain Lightning: no Flower, no colearn_fl)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from tasks import get_task, list_tasks
from tasks.errors import ConfigError
from tasks.shared import ModelRegistry

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    """The top-level module names a fresh interpreter holds after running ``code``."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import json, sys
        print(json.dumps(sorted({name.split('.')[0] for name in sys.modules}
                                | {name for name in sys.modules if name.startswith('tasks.')})))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


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


def test_unknown_task_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="task='images' is not known; use one of: audioset, "
                                          "image, speech, toxic"):
        get_task("images")


@pytest.mark.parametrize("name", list_tasks())
def test_every_task_builds_its_default_model_from_an_empty_model_name(name: str) -> None:
    # Prepare
    task = get_task(name)

    # Execute: model='' must build the task's default, so the default must be registered
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # audioset warns about Adam at the common lr-max
        module = task.build_module(task.resolve(task.config(), ""), model="", lr=0.05)

    # Assert
    assert module.hparams.model in task.models()


def test_importing_tasks_imports_no_task() -> None:
    # Execute
    loaded = _modules_after("import tasks; names = tasks.list_tasks()")

    # Assert: the registry knows the names without loading the code behind them
    assert not loaded & {"tasks.image", "tasks.toxic", "tasks.speech", "tasks.audioset",
                         "torch", "flwr"}


def test_an_image_run_imports_no_other_task_and_no_flower() -> None:
    # Execute: an image model and a site's data module, built and set up from plain arguments
    loaded = _modules_after("""
        import numpy as np, torch
        from tasks import get_task
        from tasks.shared import Site
        from tasks.image.fashion_mnist import write_idx
        import tempfile, pathlib
        root = pathlib.Path(tempfile.mkdtemp())
        rng = np.random.default_rng(0)
        for split, n in (('train', 40), ('t10k', 20)):
            write_idx(root / f'{split}-images-idx3-ubyte.gz',
                      rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
            write_idx(root / f'{split}-labels-idx1-ubyte.gz',
                      rng.integers(0, 10, n).astype(np.uint8))
        task = get_task('image')
        config = task.resolve(task.config(), str(root))
        module = task.build_module(config, model='tiny-cnn', lr=0.01)
        data = task.build_datamodule(config, Site(str(root), partition=(0, 2), batch_size=8))
        data.setup('fit')
        images, labels = next(iter(data.train_dataloader()))
        assert module(images).shape == (len(labels), 10)
    """)

    # Assert (transformers is not checked: torchmetrics, which Lightning imports, loads it)
    assert not loaded & {"flwr", "colearn_fl", "h5py", "tasks.speech", "tasks.toxic",
                         "tasks.audioset"}


@pytest.mark.parametrize("name", ["toxic", "speech", "audioset"])
def test_each_other_task_builds_from_plain_arguments_without_flower(name: str) -> None:
    # Execute: the task's default model and a DataModule from the task's own config dataclass
    loaded = _modules_after(f"""
        import warnings
        from tasks import get_task
        from tasks.shared import Site
        task = get_task({name!r})
        config = task.resolve(task.config(), '')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            module = task.build_module(config, model='', lr=0.001)
        data = task.build_datamodule(config, Site('/nonexistent', partition=(1, 2)))
        assert module.hparams.model in task.models() and data.batch_size == 64
    """)

    # Assert
    assert "flwr" not in loaded and "colearn_fl" not in loaded
    assert not loaded & ({"tasks.image", "tasks.toxic", "tasks.speech", "tasks.audioset"}
                         - {f"tasks.{name}"})
