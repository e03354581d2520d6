"""Log-mel (and MFCC) features of 1-D waveforms, in torch, on the module's device.

``LogMel`` is an ``nn.Module`` so that it sits inside the keyword spotter and runs wherever the
model runs (GPU when the site has one). Its window, mel filterbank and DCT matrix are
non-persistent buffers: they follow ``.to(device)`` but stay out of the ``state_dict``, so they
are neither sent over the wire nor averaged.

The mel scale is HTK's, ``mel(f) = 2595 log10(1 + f / 700)``; the filters are triangles with
peaks evenly spaced on that scale between ``f_min`` and ``f_max`` (as TensorFlow's
``mfcc`` op and torchaudio's ``mel_scale='htk'``). Frames are taken without centring, as
TensorFlow's ``audio_spectrogram``: a 1 s clip at 16 kHz with a 30 ms window and a 10 ms hop
gives ``1 + (16000 - 480) // 160 = 98`` frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tasks.errors import ConfigError

LOG_FLOOR = 1e-6  # added to mel energies before the log: silence stays finite


def hz_to_mel(hz: torch.Tensor | float) -> torch.Tensor:
    """HTK mel scale: ``2595 log10(1 + hz / 700)``."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_to_hz(mel: torch.Tensor | float) -> torch.Tensor:
    """Inverse of ``hz_to_mel``: ``700 (10^(mel / 2595) - 1)``."""
    return 700.0 * (10.0 ** (torch.as_tensor(mel, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, f_min: float, f_max: float
                   ) -> torch.Tensor:
    """Triangular mel filters over the ``n_fft // 2 + 1`` FFT bins.

    Parameters
    ----------
    n_fft : int
        FFT size; bin ``k`` is at ``k * sample_rate / n_fft`` Hz.
    sample_rate : int
        Sampling rate in Hz.
    n_mels : int
        Number of filters.
    f_min, f_max : float
        Lower edge of the first and upper edge of the last filter, in Hz.

    Returns
    -------
    torch.Tensor
        float32 ``[n_fft // 2 + 1, n_mels]``; column ``m`` peaks (weight 1) at the ``m + 1``-th
        of ``n_mels + 2`` points evenly spaced in mel from ``f_min`` to ``f_max``.
    """
    bins = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)),
                                     n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    bank = torch.clamp(torch.minimum(rising, falling), min=0.0)
    empty = (bank.sum(dim=0) == 0).nonzero().flatten().tolist()
    if empty:
        raise ConfigError(
            f"speech-n-mels={n_mels}: mel filters {empty} fall between two FFT bins "
            f"(n_fft={n_fft}, f-min={f_min}, f-max={f_max}) and would always be 0; use fewer "
            "mels, a longer speech-window-ms or a wider speech-f-min..speech-f-max range."
        )
    return bank.float()


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II as a ``[n, n]`` matrix: ``x @ dct_matrix(n)`` = MFCCs of log-mels."""
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi / n * (k[:, None] + 0.5) * k[None, :])
    basis[:, 0] *= 1.0 / math.sqrt(2.0)
    return (basis * math.sqrt(2.0 / n)).float()


@dataclass(frozen=True)
class FeatureSpec:
    """Sizes of the feature frontend, all derived from the run config.

    Parameters
    ----------
    sample_rate : int
        Hz (default: 16000).
    clip_samples : int
        Samples per clip (default: 16000, 1 s).
    window_ms, hop_ms : float
        Analysis window and hop (default: 30.0, 10.0).
    n_mels : int
        Mel filters = feature bins (default: 40).
    f_min, f_max : float
        Mel range in Hz (default: 20.0, 7600.0).
    mfcc : bool
        Take the DCT of the log-mels (MFCCs, as many as mels) (default: False).
    """

    sample_rate: int = 16000
    clip_samples: int = 16000
    window_ms: float = 30.0
    hop_ms: float = 10.0
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    mfcc: bool = False

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return max(1, round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        """The smallest power of two that holds the window (512 for 30 ms at 16 kHz)."""
        return 1 << max(0, math.ceil(math.log2(self.win_length)))

    @property
    def num_frames(self) -> int:
        """Frames per clip: ``1 + (clip_samples - win_length) // hop_length``."""
        return 1 + (self.clip_samples - self.win_length) // self.hop_length

    def check(self) -> None:
        """Raise ``ConfigError`` when a clip is shorter than one window."""
        if self.win_length < 2 or self.clip_samples < self.win_length:
            raise ConfigError(
                f"speech-window-ms={self.window_ms}: the window ({self.win_length} samples) "
                f"must be >= 2 samples and fit in a clip of {self.clip_samples} samples; "
                "use a shorter window or a longer speech-clip-ms."
            )


class LogMel(nn.Module):
    """Waveforms ``[B, samples]`` -> log-mel (or MFCC) images ``[B, 1, frames, n_mels]``.

    Parameters
    ----------
    spec : FeatureSpec
        Rates, window, hop and mel range (default: ``FeatureSpec()``).
    """

    window: torch.Tensor
    filterbank: torch.Tensor
    dct: torch.Tensor

    def __init__(self, spec: FeatureSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or FeatureSpec()
        self.spec.check()
        self.register_buffer("window", torch.hann_window(self.spec.win_length), persistent=False)
        bank = mel_filterbank(self.spec.n_fft, self.spec.sample_rate, self.spec.n_mels,
                              self.spec.f_min, self.spec.f_max)
        self.register_buffer("filterbank", bank, persistent=False)
        dct = dct_matrix(self.spec.n_mels) if self.spec.mfcc else torch.empty(0)
        self.register_buffer("dct", dct, persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Features of ``waves`` (any float dtype; computed in float32, returned in its dtype)."""
        # torch frames n_fft samples with the window centred in them; padding by the margin
        # makes frame t hold samples [t * hop, t * hop + win) exactly, as TensorFlow's.
        margin = self.spec.n_fft - self.spec.win_length
        padded = F.pad(waves.float(), (margin // 2, margin - margin // 2))
        spectrum = torch.stft(
            padded, self.spec.n_fft, hop_length=self.spec.hop_length,
            win_length=self.spec.win_length, window=self.window.float(), center=False,
            return_complex=True,
        )  # [B, bins, frames]
        power = spectrum.real.square() + spectrum.imag.square()
        features = torch.log(power.transpose(1, 2) @ self.filterbank.float() + LOG_FLOOR)
        if self.spec.mfcc:
            features = features @ self.dct.float()
        return features.unsqueeze(1).to(waves.dtype)
