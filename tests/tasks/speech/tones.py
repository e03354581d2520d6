"""A learnable Speech Commands look-alike for the speech tests: one pure tone per word."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.speech.folder import KEYWORDS, speaker_of
from tasks.speech.synth import write_wav

RATE = 16000
TONE_WORDS = (*KEYWORDS, "bed", "cat")  # the last two are _unknown_
VALIDATION_SPEAKERS, TESTING_SPEAKERS = ("s00", "s01"), ("s02", "s03")


def write_tone_set(root: Path, speakers: int = 8, seed: int = 0) -> Path:
    """A learnable Speech Commands look-alike: word i is a 0.4 s tone at 300 + 280 i Hz.

    Speakers s00, s01 are listed for validation, s02, s03 for testing; one clip per speaker
    and word, plus 2 s of white background noise.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.4 * RATE)) / RATE
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for i, word in enumerate(TONE_WORDS):
        for j in range(speakers):
            name = f"{word}/s{j:02d}_nohash_0.wav"
            clip = rng.normal(0.0, 0.02, RATE)
            start = int(rng.integers(0, RATE - len(t)))
            clip[start:start + len(t)] += 0.3 * np.sin(2 * np.pi * (300 + 280 * i) * t
                                                       + rng.uniform(0, 2 * np.pi))
            write_wav(root / name, clip)
            split = ("validation" if speaker_of(name) in VALIDATION_SPEAKERS else
                     "testing" if speaker_of(name) in TESTING_SPEAKERS else None)
            if split:
                lists[split].append(name)
    write_wav(root / "_background_noise_" / "white_noise.wav", rng.uniform(-0.5, 0.5, 2 * RATE))
    for split, names in lists.items():
        (root / f"{split}_list.txt").write_text("\n".join(names) + "\n")
    return root
