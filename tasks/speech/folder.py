"""Speech Commands v0.02 on disk: the layout, its splits, and decoding WAV files (cached).

Layout (Warden, 2018; ``speech_commands_v0.02.tar.gz``): ``<word>/<speaker>_nohash_<n>.wav``
(16 kHz mono 16-bit PCM, at most 1 s), ``validation_list.txt`` and ``testing_list.txt``
(relative paths, one a line; training = every other file) and ``_background_noise_/*.wav``.
Without the list files, a file's split follows TensorFlow's ``which_set`` hash of its speaker.
Which files of a split a site uses is ``tasks.speech.index``'s job; the in-memory dataset is
``tasks.speech.clips``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import wave
from pathlib import Path

import numpy as np
import torch

from tasks.errors import DataError

LOG = logging.getLogger(__name__)
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
    LOG.warning("[colearn] speech data-dir %s holds SYNTHETIC espeak-ng speech (colearn "
                "speech-demo), not Speech Commands: its accuracies are not the paper's Table 5",
                root)


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
        LOG.warning("[colearn] no %s/*.wav in %s: silence clips are all zeros and no noise "
                    "is mixed into training clips", BACKGROUND_DIR, root)
    else:
        LOG.info("[colearn] %d background noise files from %s", len(noise), root)
    return tuple(noise)
