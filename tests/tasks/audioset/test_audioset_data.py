"""Tests of the audioset task's data: packed HDF5 checks, lazy rows, site splits, factories."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tasks.audioset import build_central_datamodule, build_datamodule
from tasks.audioset.config import AudioSetConfig
from tasks.audioset.data import DEFAULT_DATA_DIR, AudioSetDataModule
from tasks.audioset.hdf5 import PackedRows, RowSet, packed_length
from tasks.audioset.synth import synthetic_clips, write_packed, write_synthetic
from tasks.errors import ConfigError, DataError
from tasks.shared import Site


def _write_numbered(path: Path, count: int) -> Path:
    """Clip i has every byte equal to i and label i (so a row shows where it came from)."""
    x = np.repeat(np.arange(count, dtype=np.uint8), 10 * 128).reshape(count, 10, 128)
    y = np.zeros((count, 527), dtype=bool)
    y[np.arange(count), np.arange(count)] = True
    return write_packed(path, x, y)


def test_bytes_are_dequantised_as_x_minus_128_over_128(tmp_path: Path) -> None:
    # Prepare: one clip whose first second starts with bytes 0, 64, 128, 192, 255
    x = np.full((1, 10, 128), 128, dtype=np.uint8)
    x[0, 0, :5] = [0, 64, 128, 192, 255]
    path = write_packed(tmp_path / "eval.h5", x, np.ones((1, 527), dtype=bool))

    # Execute
    clip, labels = PackedRows(RowSet.whole([path]))[0]

    # Assert: (b - 128) / 128, float32
    assert clip.dtype == torch.float32 and clip.shape == (10, 128)
    torch.testing.assert_close(clip[0, :5], torch.tensor([-1.0, -0.5, 0.0, 0.5, 127 / 128]))
    assert labels.dtype == torch.float32 and labels.sum() == 527


def test_batches_read_only_their_rows_in_the_asked_order(tmp_path: Path) -> None:
    # Prepare: rows 2, 5, 7 of a 10-clip file; no file is opened before a read
    path = _write_numbered(tmp_path / "bal_train.h5", 10)
    rows = PackedRows(RowSet.whole([path]).take(np.array([2, 5, 7])))
    assert rows._files == {}

    # Execute: unsorted and repeated positions, as a shuffled batch may hold
    batch = rows.__getitems__([2, 0, 2, 1])

    # Assert: file rows 7, 2, 7, 5 (byte value = row number)
    assert [int(clip[0, 0] * 128 + 128) for clip, _ in batch] == [7, 2, 7, 5]
    assert [int(labels.argmax()) for _, labels in batch] == [7, 2, 7, 5]
    with pytest.raises(IndexError):
        rows[3]


@pytest.mark.parametrize(("x", "y", "match"), [
    (np.zeros((4, 10, 64), np.uint8), np.zeros((4, 527), bool),
     r"dataset 'x' is 4 x 10 x 64 uint8, expected N x 10 x 128 uint8"),
    (np.zeros((4, 10, 128), np.float32), np.zeros((4, 527), bool),
     r"dataset 'x' is 4 x 10 x 128 float32, expected N x 10 x 128 uint8"),
    (np.zeros((4, 10, 128), np.uint8), np.zeros((4, 500), bool),
     r"dataset 'y' is 4 x 500 bool, expected N x 527 bool or uint8"),
    (np.zeros((4, 10, 128), np.uint8), np.zeros((3, 527), bool),
     r"dataset 'x' has 4 rows but 'y' has 3"),
])
def test_wrong_shapes_and_dtypes_name_the_file_dataset_and_expected_shape(
        tmp_path: Path, x: np.ndarray, y: np.ndarray, match: str) -> None:
    # Prepare
    path = write_packed(tmp_path / "bal_train.h5", x, y)

    # Execute / Assert
    with pytest.raises(DataError, match=rf"bal_train\.h5: {match}"):
        packed_length(path)


def test_a_file_that_is_not_packed_audioset_is_refused(tmp_path: Path) -> None:
    # Prepare
    text = tmp_path / "eval.h5"
    text.write_text("not hdf5")
    no_y = tmp_path / "bal_train.h5"
    write_packed(no_y, np.zeros((2, 10, 128), np.uint8), np.zeros((2, 527), bool))
    with h5py.File(no_y, "a") as handle:
        del handle["y"]

    # Execute / Assert
    with pytest.raises(DataError, match=r"eval\.h5 is not a readable HDF5 file"):
        packed_length(text)
    with pytest.raises(DataError, match=r"has no dataset 'y' \(expected N x 527 bool"):
        packed_length(no_y)


def test_missing_files_say_which_and_where_to_get_them(tmp_path: Path) -> None:
    # Prepare
    data = AudioSetDataModule(Site(str(tmp_path), batch_size=4), train_set="both")

    # Execute / Assert
    with pytest.raises(DataError, match=r"missing in data-dir .*: bal_train\.h5, "
                       r"unbal_train\.h5 \(needed for audioset-train='both'\).*"
                       r"qiuqiangkong/audioset_classification.*features\.tar\.gz"):
        data.setup("fit")


def test_sites_split_both_training_files_disjointly(tmp_path: Path) -> None:
    # Prepare: 12 + 9 training clips, 6 eval clips, 3 sites
    _write_numbered(tmp_path / "bal_train.h5", 12)
    _write_numbered(tmp_path / "unbal_train.h5", 9)
    _write_numbered(tmp_path / "eval.h5", 6)
    sites = [AudioSetDataModule(Site(str(tmp_path), (i, 3), batch_size=4),
                                train_set="both") for i in range(3)]

    # Execute
    for site in sites:
        site.setup("fit")

    # Assert: every (file, row) once; validation = IID shards of eval.h5
    taken = [(Path(p).name, int(r)) for s in sites
             for p, rows in zip(s.train_set.row_set.paths, s.train_set.row_set.rows,
                                strict=True) for r in rows]
    assert sorted(taken) == sorted([("bal_train.h5", r) for r in range(12)]
                                   + [("unbal_train.h5", r) for r in range(9)])
    assert [len(s.train_set) for s in sites] == [7, 7, 7]
    assert [len(s.val_set) for s in sites] == [2, 2, 2] and len(sites[0].test_set) == 6


def test_dirichlet_skews_sites_by_each_clips_first_label(tmp_path: Path) -> None:
    # Prepare: 200 clips whose first labels are 8 generated classes
    x, y = synthetic_clips(200, num_signal=8, seed=0)
    write_packed(tmp_path / "bal_train.h5", x, y)
    _write_numbered(tmp_path / "eval.h5", 4)
    first = np.argmax(y, axis=1)
    sites = [AudioSetDataModule(Site(str(tmp_path), (i, 2), batch_size=4,
                                     partitioning="dirichlet", dirichlet_alpha=0.1))
             for i in range(2)]

    # Execute
    for site in sites:
        site.setup("fit")

    # Assert: disjoint, complete, and each class sits mostly at one site
    rows = [site.train_set.row_set.rows[0] for site in sites]
    assert sorted(np.concatenate(rows).tolist()) == list(range(200))
    share = [np.isin(np.flatnonzero(first == c), rows[0]).mean() for c in np.unique(first)]
    assert np.mean([max(s, 1 - s) for s in share]) > 0.8  # IID would give about 0.5


def test_site_without_eval_holds_out_ten_percent_and_caps_first(tmp_path: Path) -> None:
    # Prepare
    _write_numbered(tmp_path / "bal_train.h5", 100)
    site = AudioSetDataModule(Site(str(tmp_path), batch_size=4))
    capped = AudioSetDataModule(Site(str(tmp_path), batch_size=4, max_samples=50))

    # Execute
    site.setup("fit")
    capped.setup("fit")

    # Assert: 100 -> 90 train + 10 validation; 50 -> 45 + 5, disjoint
    assert (len(site.train_set), len(site.val_set)) == (90, 10)
    assert (len(capped.train_set), len(capped.val_set)) == (45, 5)
    assert not set(site.train_set.row_set.rows[0]) & set(site.val_set.row_set.rows[0])


def test_loader_yields_float_batches(tmp_path: Path) -> None:
    # Prepare
    write_synthetic(tmp_path, num_train=30, num_eval=10)
    site = AudioSetDataModule(Site(str(tmp_path), batch_size=8))
    site.setup("fit")

    # Execute
    clips, labels = next(iter(site.train_dataloader()))

    # Assert
    assert clips.shape == (8, 10, 128) and clips.dtype == torch.float32
    assert labels.shape == (8, 527) and set(labels.unique().tolist()) <= {0.0, 1.0}


def test_build_datamodule_reads_the_site_and_task_keys(tmp_path: Path) -> None:
    # Prepare
    config = AudioSetConfig(audioset_train="both")
    simulated = Site(str(tmp_path), (1, 2), batch_size=16, partitioning="dirichlet", seed=3)

    # Execute
    site, default = build_datamodule(config, simulated), build_datamodule(config, Site())

    # Assert: the site's settings reach the module; no data-dir means the default folder
    assert (site.partition, site.train_split, site.batch_size) == ((1, 2), "both", 16)
    assert (site.partitioning, site.seed, site.data_dir) == ("dirichlet", 3, str(tmp_path))
    assert default.data_dir == DEFAULT_DATA_DIR and default.partition is None


def test_central_data_is_the_whole_eval_file_or_none(tmp_path: Path) -> None:
    # Prepare
    write_synthetic(tmp_path / "full", num_train=20, num_eval=12)
    write_synthetic(tmp_path / "train-only", num_train=20, num_eval=0)

    # Execute
    central = build_central_datamodule(AudioSetConfig(), Site(str(tmp_path / "full")))
    absent = build_central_datamodule(AudioSetConfig(), Site(str(tmp_path / "train-only")))
    central.setup("test")

    # Assert
    assert absent is None and len(central.test_set) == 12 and central.train_set is None


@pytest.mark.parametrize(("config", "match"), [
    (AudioSetConfig(audioset_train="all"),
     r"audioset-train='all' is not known; use one of: bal_train"),
    (AudioSetConfig(audioset_hidden=7), r"audioset-hidden=7: must be an even number"),
    (AudioSetConfig(audioset_dropout=1.0), r"audioset-dropout=1.0: must be in \[0, 1\)"),
    (AudioSetConfig(audioset_optimizer="lamb"), r"audioset-optimizer='lamb' is not known"),
])
def test_bad_task_keys_raise_config_error_naming_the_key(config: AudioSetConfig,
                                                         match: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        config.validate()


def test_an_unknown_training_set_is_refused_by_the_data_module(tmp_path: Path) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"audioset-train='all' is not known"):
        AudioSetDataModule(Site(str(tmp_path)), train_set="all")
