"""The image task's own run-config keys (kebab-case on the wire, snake_case here)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.errors import ConfigError

FOLDERS = "imagefolder"
# The in-memory sets (``tasks.image.data.IMAGE_SETS``), then ImageNet-style class folders.
DATASETS = ("fashion-mnist", "cifar10", FOLDERS)


@dataclass(frozen=True)
class ImageConfig:
    """The image task's own run-config keys.

    ``dataset=''`` and, for image folders, ``num_classes=0`` are decided by the run's data
    directory: ``tasks.image.resolve(config, data_dir)`` fills them in (the Flower apps do
    it with the run config's ``data-dir``), so that the server and every site build the same
    network.
    """

    dataset: str = ""  # fashion-mnist, cifar10, imagefolder; "" = detect from data-dir
    image_size: int = 224  # imagefolder: side of the crops; in-memory sets keep theirs
    num_classes: int = 0  # imagefolder: 0 = count the class folders of data-dir/train

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad key."""
        if self.dataset and self.dataset not in DATASETS:
            raise ConfigError(f"dataset={self.dataset!r} is not known; use one of: "
                              f"{', '.join(DATASETS)} (or '' to detect it from data-dir).")
        if self.image_size < 8:
            raise ConfigError(f"image-size={self.image_size}: must be >= 8 (e.g. 224).")
        if self.num_classes < 0:
            raise ConfigError(f"num-classes={self.num_classes}: must be >= 0 (0 = count "
                              "the class folders of data-dir/train).")
