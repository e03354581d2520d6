"""Speech Commands v0.02 on disk: the file index, its splits, and one site's clips in memory.

Layout (Warden, 2018; ``speech_commands_v0.02.tar.gz``): ``<word>/<speaker>_nohash_<n>.wav``
(16 kHz mono 16-bit PCM, at most 1 s), ``validation_list.txt`` and ``testing_list.txt``
(relative paths, one a line; training = every other file) and ``_background_noise_/*.wav``.
Without the list files, a file's split follows TensorFlow's ``which_set`` hash of its speaker.

As TensorFlow's tutorial (``input_data.py``), each split holds its keyword files, plus
``speech-unknown-percentage`` % (of the keyword count) files of other words drawn with the
seed, plus ``speech-silence-percentage`` % silence clips cut from the background noise. Labels are
``_silence_`` = 0, ``_unknown_`` = 1, then the keywords in the order given.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import wave
from dataclasses import dataclass
from logging import INFO, WARNING
from pathlib import Path

import numpy as np
import torch
from flwr.supercore import log

from colearn_fl.errors import ConfigError, DataError
from colearn_fl.partition import iid_partition
from tasks.common import partition_rows

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
BACKGROUND_DIR = "_background_noise_"
LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
SPLITS = ("training", "validation", "testing")
DOWNLOAD_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SYNTHETIC_MARKER = "SYNTHETIC_SPEECH.txt"  # written by ``colearn speech-demo``
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, TensorFlow's constant in which_set
# Decoded splits kept per process: training + validation of 4 sites, as when one Ray actor
# serves the default 4-site simulation (an estimated 1.3 GB for the real data split 4 ways).
DECODED_CACHE_SIZE = 8


def speaker_of(path: str) -> str:
    """``right/bc0b0a3b_nohash_1.wav`` -> ``bc0b0a3b`` (the whole stem when no ``_nohash_``)."""
    return re.sub(r"_nohash_.*$", "", Path(path).stem)


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """TensorFlow's stable split of a file by a hash of its speaker (``input_data.which_set``).

    Returns ``'validation'``, ``'testing'`` or ``'training'``; every file of a speaker lands
    in the same split, and adding files never moves existing ones.
    """
    hashed = hashlib.sha1(speaker_of(filename).encode()).hexdigest()
    percentage = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 /
                                                                     MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """int16 samples of a mono 16-bit PCM WAV at ``sample_rate``; ``DataError`` names the file."""
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width, rate = (handle.getnchannels(), handle.getsampwidth(),
                                     handle.getframerate())
            raw = handle.readframes(handle.getnframes())
    except (wave.Error, EOFError, OSError) as error:
        raise DataError(f"{path} cannot be read as a PCM WAV file ({error}); replace it (e.g. "
                        "extract it again from the archive) or delete it.") from error
    problems = [what for bad, what in (
        (channels != 1, f"{channels} channels (need mono)"),
        (width != 2, f"{8 * width}-bit samples (need 16-bit PCM)"),
        (rate != sample_rate, f"{rate} Hz (need {sample_rate} Hz, speech-sample-rate)"),
    ) if bad]
    if problems:
        raise DataError(f"{path} has {', '.join(problems)}; convert it, e.g. `sox IN -r "
                        f"{sample_rate} -c 1 -b 16 OUT.wav`, or delete it.")
    return np.frombuffer(raw, dtype="<i2")


def missing_message(root: Path) -> str:
    """Where to get Speech Commands and how to lay it out (for every not-found error)."""
    return (
        f"Speech Commands not found in data-dir {root}: expected <word>/<speaker>_nohash_<n>.wav "
        "files (16 kHz mono 16-bit), validation_list.txt, testing_list.txt and "
        f"{BACKGROUND_DIR}/. Fix: download {DOWNLOAD_URL} (2.3 GB), extract it with "
        "`mkdir -p DIR && tar -xzf speech_commands_v0.02.tar.gz -C DIR` and set "
        "data-dir='DIR' (run config; a deployment site sets it in its node config). "
        "Offline: `colearn speech-demo --out DIR` writes a small SYNTHETIC set in that layout."
    )


def scan(root: Path) -> list[str]:
    """Sorted relative paths (``word/file.wav``) of the word clips; ``DataError`` if none."""
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.wav")
                   if not p.parent.name.startswith("_"))
    if not files:
        raise DataError(missing_message(root))
    if (root / SYNTHETIC_MARKER).is_file():
        _note_synthetic(str(root))
    return files


@functools.lru_cache(maxsize=8)
def _note_synthetic(root: str) -> None:
    log(WARNING, "[colearn] speech data-dir %s holds SYNTHETIC espeak-ng speech (colearn "
        "speech-demo), not Speech Commands: its accuracies are not the paper's Table 5", root)


def split_files(root: Path, files: list[str]) -> dict[str, list[str]]:
    """Files per split: the list files when present, else TensorFlow's 10 % / 10 % hash."""
    listed: dict[str, set[str]] = {}
    for split, name in LIST_FILES.items():
        if (root / name).is_file():
            listed[split] = {line.strip() for line in (root / name).read_text().splitlines()}
    splits: dict[str, list[str]] = {split: [] for split in SPLITS}
    for path in files:
        if listed:
            split = next((s for s, names in listed.items() if path in names), "training")
        else:
            split = which_set(path, 10.0, 10.0)
        splits[split].append(path)
    return splits


@dataclass(frozen=True)
class ClipIndex:
    """Clips of one split: relative paths (``None`` = silence) and int64 labels."""

    paths: tuple[str | None, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, rows: np.ndarray) -> ClipIndex:
        """The clips at ``rows``."""
        return ClipIndex(tuple(self.paths[i] for i in rows), self.labels[rows])

    def with_silence(self, percentage: float) -> ClipIndex:
        """Append ``ceil(keywords * percentage / 100)`` silence clips (label 0)."""
        count = math.ceil(int((self.labels >= 2).sum()) * percentage / 100)
        return ClipIndex(self.paths + (None,) * count,
                         np.concatenate([self.labels, np.zeros(count, dtype=np.int64)]))

    @property
    def num_files(self) -> int:
        """Clips read from files (silence clips come last)."""
        return sum(path is not None for path in self.paths)


def select_clips(files: list[str], words: tuple[str, ...], unknown_percentage: float,
                 seed: int, split: str) -> ClipIndex:
    """Keyword files plus a seeded draw of other words' files labelled unknown (no silence)."""
    label = {word: i + 2 for i, word in enumerate(words)}
    known = [f for f in files if f.split("/")[0].lower() in label]
    others = [f for f in files if f.split("/")[0].lower() not in label]
    count = min(len(others), math.ceil(len(known) * unknown_percentage / 100))
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    unknown = [others[i] for i in np.sort(rng.permutation(len(others))[:count])]
    labels = [label[f.split("/")[0].lower()] for f in known] + [1] * len(unknown)
    return ClipIndex(tuple(known + unknown), np.asarray(labels, dtype=np.int64))


def site_rows(index: ClipIndex, partition: tuple[int, int] | None, partitioning: str,
              alpha: float, seed: int) -> np.ndarray:
    """This site's rows of ``index``: ``iid`` deals speakers out, ``dirichlet`` skews labels.

    ``iid`` splits the speakers (not the files) at random, so a speaker's clips are all at one
    site, as they would be at separate data centers. ``dirichlet`` shares each class over the
    sites in Dirichlet(alpha) proportions (a speaker may then be at several sites).
    """
    if partition is None or partitioning != "iid":
        return partition_rows(index.labels, partition, partitioning, alpha, seed)
    speakers = [speaker_of(path) for path in index.paths if path is not None]
    names = sorted(set(speakers))
    if partition[1] > len(names):
        raise ConfigError(
            f"num-partitions={partition[1]} exceeds the {len(names)} training speakers, and "
            "partitioning='iid' gives each site whole speakers; use fewer sites, more data "
            "(max-samples=0) or partitioning='dirichlet'."
        )
    mine = {names[i] for i in iid_partition(len(names), partition[1], seed)[partition[0]]}
    return np.asarray([i for i, s in enumerate(speakers) if s in mine], dtype=np.int64)


def speaker_hold_out(index: ClipIndex, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (rest, hold-out): a seeded ``fraction`` of the speakers (at least one), whole.

    A validation set of speakers the model never trained on, as the list files give.
    """
    speakers = [speaker_of(path) if path is not None else "" for path in index.paths]
    names = sorted(set(speakers) - {""})
    count = max(1, round(fraction * len(names)))
    held = {names[i] for i in np.random.default_rng(seed).permutation(len(names))[:count]}
    is_held = np.asarray([s in held for s in speakers], dtype=bool)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


@functools.lru_cache(maxsize=DECODED_CACHE_SIZE)
def load_clips(root: str, paths: tuple[str, ...], sample_rate: int, clip_samples: int
               ) -> torch.Tensor:
    """Decode ``paths`` once into int16 ``[N, clip_samples]``, zero-padded / cropped at the end.

    The client builds a new data module every round; this cache (keyed by the file list) makes
    a site decode its WAVs once per process, not once per round. Callers must not modify it.
    """
    clips = np.zeros((len(paths), clip_samples), dtype=np.int16)
    for row, path in enumerate(paths):
        samples = read_wav(Path(root) / path, sample_rate)[:clip_samples]
        clips[row, :len(samples)] = samples
    return torch.from_numpy(clips)


@functools.lru_cache(maxsize=2)
def load_background(root: str, sample_rate: int, clip_samples: int) -> tuple[torch.Tensor, ...]:
    """float32 waveforms in ``[-1, 1]`` of ``_background_noise_/*.wav``, each >= one clip."""
    noise = []
    for path in sorted((Path(root) / BACKGROUND_DIR).glob("*.wav")):
        wave_ = torch.from_numpy(read_wav(path, sample_rate).astype(np.float32) / 32768.0)
        if len(wave_) == 0:
            raise DataError(f"{path} holds no samples; delete it or replace it.")
        noise.append(wave_.repeat(math.ceil(clip_samples / len(wave_))))  # tile short files
    if not noise:
        log(WARNING, "[colearn] no %s/*.wav in %s: silence clips are all zeros and no noise "
            "is mixed into training clips", BACKGROUND_DIR, root)
    else:
        log(INFO, "[colearn] %d background noise files from %s", len(noise), root)
    return tuple(noise)


@dataclass(frozen=True)
class Augmentation:
    """TensorFlow tutorial's training-time augmentation, per clip, per epoch.

    Parameters
    ----------
    background_frequency : float
        Probability that a keyword / unknown clip gets background noise mixed in (default: 0.8).
    background_volume : float
        That noise's volume is uniform in ``[0, background_volume]`` (default: 0.1).
    time_shift : int
        Clips move by a uniform ``[-time_shift, time_shift]`` samples, zero-filled
        (default: 1600, 100 ms at 16 kHz).
    """

    background_frequency: float = 0.8
    background_volume: float = 0.1
    time_shift: int = 1600


class ClipDataset(torch.utils.data.Dataset):
    """Float waveforms ``[samples]`` in ``[-1, 1]`` and labels; file clips first, then silence.

    Parameters
    ----------
    clips : torch.Tensor
        int16 ``[num_files, samples]`` (the shared decoded cache; read only).
    labels : torch.Tensor
        int64 ``[num_files + num_silence]``.
    background : tuple[torch.Tensor, ...]
        Background-noise waveforms to cut silence and mixing noise from.
    augmentation : Augmentation | None
        Training-time shift and noise, drawn from torch's global RNG; ``None`` = evaluation,
        whose silence clips are cut once with ``seed`` (default: None).
    seed : int
        Seed of the evaluation silence clips (default: 0).
    """

    def __init__(self, clips: torch.Tensor, labels: torch.Tensor,
                 background: tuple[torch.Tensor, ...],
                 augmentation: Augmentation | None = None, seed: int = 0) -> None:
        self.clips, self.labels = clips, labels
        self.background, self.augmentation = background, augmentation
        self.num_files, self.samples = clips.shape
        # Evaluation silence is cut once (TensorFlow redraws it per call); training's per item.
        generator = torch.Generator().manual_seed(seed)
        count = len(labels) - self.num_files if augmentation is None else 0
        self.silence = [self._noise(torch.rand((), generator=generator).item(), generator)
                        for _ in range(count)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        augment = self.augmentation
        if row >= self.num_files:
            if augment is None:
                return self.silence[row - self.num_files], self.labels[row]
            return self._noise(torch.rand(()).item()), self.labels[row]
        clip = self.clips[row].float() / 32768.0
        if augment is None:
            return clip, self.labels[row]
        if augment.time_shift:
            shift = int(torch.randint(-augment.time_shift, augment.time_shift + 1, ()).item())
            clip = torch.roll(clip, shift)
            if shift > 0:
                clip[:shift] = 0.0
            elif shift < 0:
                clip[shift:] = 0.0
        if self.background and torch.rand(()).item() < augment.background_frequency:
            volume = torch.rand(()).item() * augment.background_volume
            clip = torch.clamp(clip + self._noise(volume), -1.0, 1.0)
        return clip, self.labels[row]

    def _noise(self, volume: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """``volume`` times a random one-clip cut of a random background file (zeros if none)."""
        if not self.background:
            return torch.zeros(self.samples)
        noise = self.background[int(torch.randint(len(self.background), (), generator=generator))]
        start = int(torch.randint(len(noise) - self.samples + 1, (), generator=generator))
        return noise[start:start + self.samples] * volume

