"""The ``speech`` task's run-config keys (``speech-*``): TensorFlow's tutorial defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.errors import ConfigError
from tasks.speech.clips import Augmentation
from tasks.speech.features import FeatureSpec, mel_filterbank
from tasks.speech.folder import KEYWORDS

DEFAULT_DATA_DIR = "~/data/speech_commands_v0.02"  # where data-dir='' looks
FEATURES = ("log-mel", "mfcc")
_WORD = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class SpeechConfig:
    """The task's run-config keys (kebab-case: ``speech-n-mels`` ...), TensorFlow's defaults."""

    speech_words: str = ",".join(KEYWORDS)  # comma-separated keywords (classes 2..)
    speech_silence_percentage: float = 10.0  # silence clips per 100 keyword clips
    speech_unknown_percentage: float = 10.0  # other words' clips per 100 keyword clips
    speech_sample_rate: int = 16000  # Hz; every WAV must have it
    speech_clip_ms: int = 1000  # clips zero-padded / cropped to this length
    speech_features: str = "log-mel"  # or "mfcc" (DCT of the log-mels)
    speech_n_mels: int = 40  # mel filters = feature bins
    speech_window_ms: float = 30.0  # STFT window (Hann); n_fft = next power of two
    speech_hop_ms: float = 10.0  # STFT hop
    speech_f_min: float = 20.0  # lowest mel filter edge, Hz
    speech_f_max: float = 7600.0  # highest mel filter edge, Hz
    speech_background_frequency: float = 0.8  # training clips that get noise mixed in
    speech_background_volume: float = 0.1  # that noise's volume is uniform in [0, this]
    speech_time_shift_ms: float = 100.0  # training clips shift by up to +- this
    speech_dropout: float = 0.5  # after each convolution
    speech_max_grad_norm: float = 1.0  # clip each step's gradient to this L2 norm; 0 = off

    @property
    def words(self) -> tuple[str, ...]:
        """The keywords, in label order (labels 2..)."""
        return tuple(word.strip().lower() for word in self.speech_words.split(","))

    @property
    def clip_samples(self) -> int:
        """Samples per clip."""
        return round(self.speech_sample_rate * self.speech_clip_ms / 1000)

    def feature_spec(self) -> FeatureSpec:
        """The frontend's sizes."""
        return FeatureSpec(self.speech_sample_rate, self.clip_samples, self.speech_window_ms,
                           self.speech_hop_ms, self.speech_n_mels, self.speech_f_min,
                           self.speech_f_max, self.speech_features == "mfcc")

    def augmentation(self) -> Augmentation:
        """Training-time noise and shift."""
        return Augmentation(self.speech_background_frequency, self.speech_background_volume,
                            round(self.speech_sample_rate * self.speech_time_shift_ms / 1000))

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is out of range."""
        words = self.words
        bad = [w for w in words if not _WORD.fullmatch(w)]
        if bad or len(set(words)) != len(words):
            raise ConfigError(
                f"speech-words={self.speech_words!r}: need distinct folder names (a-z, 0-9, "
                f"'_' or '-', not starting with '_'), comma-separated; bad: {bad or 'repeats'}."
            )
        ranges = (("speech-silence-percentage", self.speech_silence_percentage, 0, 100),
                  ("speech-unknown-percentage", self.speech_unknown_percentage, 0, 100),
                  ("speech-background-frequency", self.speech_background_frequency, 0, 1),
                  ("speech-background-volume", self.speech_background_volume, 0, 1),
                  ("speech-dropout", self.speech_dropout, 0, 0.99),
                  ("speech-max-grad-norm", self.speech_max_grad_norm, 0, float("inf")),
                  ("speech-time-shift-ms", self.speech_time_shift_ms, 0, self.speech_clip_ms))
        for key, value, low, high in ranges:
            if not low <= value <= high:
                raise ConfigError(f"{key}={value}: must be in [{low}, {high}].")
        for key, value in (("speech-sample-rate", self.speech_sample_rate),
                           ("speech-clip-ms", self.speech_clip_ms),
                           ("speech-n-mels", self.speech_n_mels),
                           ("speech-hop-ms", self.speech_hop_ms)):
            if value <= 0:
                raise ConfigError(f"{key}={value}: must be > 0.")
        if self.speech_features not in FEATURES:
            raise ConfigError(f"speech-features={self.speech_features!r} is not known; use one "
                              f"of: {', '.join(FEATURES)}.")
        if not 0 <= self.speech_f_min < self.speech_f_max <= self.speech_sample_rate / 2:
            raise ConfigError(
                f"speech-f-min={self.speech_f_min}, speech-f-max={self.speech_f_max}: need "
                f"0 <= f-min < f-max <= speech-sample-rate / 2 = {self.speech_sample_rate / 2}."
            )
        spec = self.feature_spec()
        spec.check()
        mel_filterbank(spec.n_fft, spec.sample_rate, spec.n_mels, spec.f_min, spec.f_max)
