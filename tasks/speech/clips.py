"""One site's decoded clips as a Dataset, with TensorFlow's training-time augmentation.

Keyword and unknown clips come from the decoded cache (``tasks.speech.folder.load_clips``);
silence clips are cut from the background noise, once for evaluation and afresh per item in
training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
