"""Tests of Speech Commands on disk: splits, silence / unknown, partitions, WAV checks, cache."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import tasks.speech.folder as folder
from tasks.errors import ConfigError, DataError
from tasks.shared import Site
from tasks.speech import SpeechDataModule
from tasks.speech.clips import Augmentation, ClipDataset
from tasks.speech.folder import load_clips, speaker_of, which_set
from tasks.speech.index import ClipIndex, speaker_hold_out
from tasks.speech.synth import write_wav
from tests.tasks.speech.tones import RATE, write_tone_set


def _module(root: Path, partition: tuple[int, int] | None = None) -> SpeechDataModule:
    return SpeechDataModule(Site(str(root), partition=partition, batch_size=8))


def test_list_files_decide_the_splits_with_silence_and_unknown(tmp_path: Path) -> None:
    # Prepare: 4 training speakers -> 40 keyword clips, ceil(10 % of 40) = 4 of the 8 other
    # words' clips as unknown, 4 silence; validation and testing: 20 + 2 + 2 each.
    module = _module(write_tone_set(tmp_path))

    # Execute
    module.setup("fit")
    module.setup("test")

    # Assert
    listed = set((tmp_path / "validation_list.txt").read_text().split())
    train_paths = set(module.split("training").paths)
    assert not train_paths & listed
    assert set(module.split("validation").paths) <= listed
    assert (len(module.train_set), len(module.val_set), len(module.test_set)) == (48, 24, 24)
    assert torch.bincount(module.train_set.labels).tolist() == [4] * 12
    assert torch.bincount(module.test_set.labels).tolist() == [2, 2] + [2] * 10


def test_without_list_files_a_speaker_stays_in_one_split(tmp_path: Path) -> None:
    # Prepare
    root = write_tone_set(tmp_path)
    for name in ("validation_list.txt", "testing_list.txt"):
        (root / name).unlink()
    module = _module(root)

    # Execute
    splits = {name: module.split(name) for name in ("training", "validation", "testing")}

    # Assert: TensorFlow's hash puts every clip of a speaker in the same split
    for name, index in splits.items():
        assert {which_set(p, 10.0, 10.0) for p in index.paths} <= {name}
    assert which_set("yes/abc_nohash_0.wav", 0.0, 0.0) == "training"


def test_iid_sites_get_disjoint_speakers(tmp_path: Path) -> None:
    # Prepare
    root = write_tone_set(tmp_path, speakers=10)
    sites = [_module(root, (i, 2)) for i in range(2)]

    # Execute
    for site in sites:
        site.setup("fit")

    # Assert: 6 training speakers, 3 each; every training file at exactly one site
    speakers = [{speaker_of(p) for p in site._site_splits()[0].paths if p} for site in sites]
    assert len(speakers[0]) == len(speakers[1]) == 3 and not speakers[0] & speakers[1]
    files = sum(site.train_set.num_files for site in sites)
    assert files == len(sites[0].split("training"))
    assert sum(site.val_set.num_files for site in sites) == len(sites[0].split("validation"))


def test_more_iid_sites_than_training_speakers_is_refused(tmp_path: Path) -> None:
    # Prepare: 8 speakers, 4 of them training
    module = _module(write_tone_set(tmp_path), (0, 5))

    # Execute / Assert
    with pytest.raises(ConfigError, match="num-partitions=5 exceeds the 4 training speakers"):
        module.setup("fit")


def test_missing_validation_list_holds_out_whole_speakers(tmp_path: Path) -> None:
    # Prepare: without validation_list.txt, s00 and s01 train too: 60 keyword + 6 unknown clips
    root = write_tone_set(tmp_path)
    (root / "validation_list.txt").unlink()
    module = _module(root)

    # Execute
    module.setup("fit")

    # Assert: every clip is used once, some of them to validate
    assert module.val_set.num_files > 0
    assert module.train_set.num_files + module.val_set.num_files == 66


def test_speaker_hold_out_keeps_each_speaker_on_one_side() -> None:
    # Prepare: 10 speakers with 3 clips each, and one silence clip (no speaker)
    paths = tuple(f"yes/s{i:02d}_nohash_{n}.wav" for i in range(10) for n in range(3))
    index = ClipIndex(paths + (None,), np.zeros(31, dtype=np.int64))

    # Execute
    rest, held = speaker_hold_out(index, 0.2, seed=0)

    # Assert: 2 of 10 speakers (6 clips) held out; no speaker on both sides; silence trains
    held_speakers = {speaker_of(paths[i]) for i in held}
    rest_speakers = {speaker_of(paths[i]) for i in rest if i < 30}
    assert len(held) == 6 and len(held_speakers) == 2
    assert held_speakers.isdisjoint(rest_speakers) and 30 in rest


@pytest.mark.parametrize(
    ("channels", "width", "rate", "match"),
    [(2, 2, RATE, "2 channels"), (1, 1, RATE, "8-bit samples"), (1, 2, 8000, "8000 Hz")],
)
def test_bad_wav_files_are_named(tmp_path: Path, channels: int, width: int, rate: int,
                                 match: str) -> None:
    # Prepare
    root = write_tone_set(tmp_path)
    with wave.open(str(root / "yes" / "s05_nohash_0.wav"), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(bytes(channels * width * 100))

    # Execute / Assert
    with pytest.raises(DataError, match=rf"yes/s05_nohash_0.wav has {match}"):
        _module(root).setup("fit")


def test_an_unreadable_wav_is_named(tmp_path: Path) -> None:
    # Prepare
    root = write_tone_set(tmp_path)
    (root / "no" / "s06_nohash_0.wav").write_bytes(b"not a wav file at all")

    # Execute / Assert
    with pytest.raises(DataError, match=r"no/s06_nohash_0.wav cannot be read as a PCM WAV"):
        _module(root).setup("fit")


def test_missing_folder_says_what_to_download_and_where(tmp_path: Path) -> None:
    # Execute / Assert
    with pytest.raises(DataError, match=r"not found in data-dir .*speech_commands_v0.02.tar.gz"
                                        r".*colearn speech-demo"):
        _module(tmp_path / "absent").setup("fit")


def test_clips_are_decoded_once_per_process(tmp_path: Path, monkeypatch) -> None:
    # Prepare
    root = write_tone_set(tmp_path)
    reads: list[Path] = []
    original = folder.read_wav
    monkeypatch.setattr(folder, "read_wav",
                        lambda path, rate: reads.append(path) or original(path, rate))

    # Execute: two rounds = two data modules of the same site
    _module(root).setup("fit")
    first = len(reads)
    _module(root).setup("fit")

    # Assert: 44 training + 22 validation files + 1 background file, once
    assert (first, len(reads)) == (67, 67)


def test_short_clips_are_padded_and_long_ones_cropped(tmp_path: Path) -> None:
    # Prepare
    write_wav(tmp_path / "a.wav", np.full(RATE // 2, 1000, np.int16))
    write_wav(tmp_path / "b.wav", np.full(2 * RATE, -7, np.int16))

    # Execute
    clips = load_clips(str(tmp_path), ("a.wav", "b.wav"), RATE, RATE)

    # Assert
    assert clips.shape == (2, RATE) and clips.dtype == torch.int16
    assert (clips[0, :8000] == 1000).all() and (clips[0, 8000:] == 0).all()
    assert (clips[1] == -7).all()


def test_time_shift_moves_the_clip_and_fills_zeros() -> None:
    # Prepare: a clip of ones (int16 16384 = 0.5); shifts of up to 100 samples, no noise
    clips = torch.full((1, 1000), 16384, dtype=torch.int16)
    data = ClipDataset(clips, torch.tensor([2]), (), Augmentation(0.0, 0.0, time_shift=100))
    torch.manual_seed(0)

    # Execute
    shifted = [data[0][0] for _ in range(40)]

    # Assert: s > 0 zeros the first s samples, s < 0 the last |s|; both directions occur
    shifts = []
    for clip in shifted:
        zeros = int((clip == 0).sum())
        assert zeros <= 100 and (clip[clip != 0] == 0.5).all()
        shifts.append(zeros if clip[0] == 0 else -zeros)
        assert (clip[:zeros] == 0).all() if clip[0] == 0 else (clip[1000 - zeros:] == 0).all()
    assert min(shifts) < 0 < max(shifts)


def test_background_volume_bounds_the_mixed_noise() -> None:
    # Prepare: a silent keyword clip, a constant 0.5 background, volume up to 0.1, always mixed
    data = ClipDataset(torch.zeros(1, 500, dtype=torch.int16), torch.tensor([3]),
                       (torch.full((800,), 0.5),), Augmentation(1.0, 0.1, time_shift=0))
    torch.manual_seed(0)

    # Execute
    levels = [float(data[0][0].max()) for _ in range(20)]

    # Assert: each clip is 0.5 * volume everywhere, volume uniform in [0, 0.1]
    assert all(0.0 <= level <= 0.05 for level in levels) and len(set(levels)) > 1


def test_evaluation_silence_is_fixed_and_training_silence_fresh() -> None:
    # Prepare: no file clips, two silence clips cut from a background in [-0.5, 0.5]
    noise = (torch.rand(5000) - 0.5,)
    labels = torch.zeros(2, dtype=torch.int64)
    evaluation = ClipDataset(torch.zeros(0, 400, dtype=torch.int16), labels, noise, None, seed=1)
    training = ClipDataset(torch.zeros(0, 400, dtype=torch.int16), labels, noise,
                           Augmentation())

    # Execute / Assert
    assert torch.equal(evaluation[1][0], evaluation[1][0])
    assert not torch.equal(training[1][0], training[1][0])
    assert math.isclose(float(evaluation[0][1]), 0.0) and evaluation[0][0].abs().max() <= 0.5
