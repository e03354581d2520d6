"""The ``speech`` task: keyword spotting on Speech Commands v0.02 (the paper's Table 5).

The standard 12-class setup of TensorFlow's tutorial: ten keywords, ``_silence_`` and
``_unknown_`` (docs/tasks/speech.md). Data per site:

- simulation (node config ``partition-id`` / ``num-partitions``, no ``data-dir``): every site
  indexes the run config's ``data-dir`` and decodes only its own clips: its partition of the
  training split (``iid``: speakers dealt out at random; ``dirichlet``: class skew) and its IID
  shard of the validation split;
- deployment (node config ``data-dir``): the site's own folder in the same layout, all of it;
- the server (``central_datamodule_fn``) evaluates on the whole testing split.

So ``federated-accuracy`` is the validation-list accuracy and ``central-accuracy`` the
testing-list accuracy: Table 5's two columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from logging import WARNING
from pathlib import Path
from typing import Any

import torch
from flwr.app import Context
from flwr.supercore import log

from colearn_fl.config import RunConfig, parse_section
from colearn_fl.errors import ConfigError, DataError
from tasks import Task, register_task
from tasks.common import (
    HOLD_OUT_FRACTION,
    SiteDataModule,
    cap_indices,
    site_arguments,
    site_source,
    validation_rows,
)
from tasks.speech_data import (
    KEYWORDS,
    LIST_FILES,
    SPLITS,
    Augmentation,
    ClipDataset,
    ClipIndex,
    load_background,
    load_clips,
    missing_message,
    scan,
    select_clips,
    site_rows,
    speaker_hold_out,
    split_files,
)
from tasks.speech_features import FeatureSpec, mel_filterbank
from tasks.speech_models import DEFAULT_MODEL, KeywordSpotter, list_models

DEFAULT_DATA_DIR = "~/data/speech_commands_v0.02"
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


class SpeechDataModule(SiteDataModule):
    """Speech Commands of one site (a simulation partition or its own files), decoded once.

    A simulated site keeps its partition (``site_rows``) of the training split and its IID
    shard of the validation split; a site without a partition keeps all of its files. With no
    validation clips, a seeded 10 % of the training clips is held out instead. ``test`` is the
    whole testing split. Each split gets its silence share after partitioning.

    Parameters
    ----------
    data_dir : str
        The Speech Commands folder (``~`` is expanded).
    batch_size : int
        Batch size of every loader.
    speech : SpeechConfig
        The task's keys (default: ``SpeechConfig()``).
    partition_id, num_partitions : int | None
        This site's simulation partition; ``None`` = all files (default: None).
    partitioning : {'iid', 'dirichlet'}
        ``iid`` deals speakers out; ``dirichlet`` skews classes (default: ``'iid'``).
    dirichlet_alpha : float
        Concentration for ``dirichlet`` (default: 0.5).
    seed : int
        Seed of the unknown draw, cap, partitions and evaluation silence (default: 0).
    max_samples : int
        Cap on each split's keyword + unknown clips, before partitioning; 0 = all (default: 0).
    num_workers : int
        DataLoader worker processes (default: 0).
    """

    def __init__(self, data_dir: str, batch_size: int, speech: SpeechConfig | None = None,
                 partition_id: int | None = None, num_partitions: int | None = None,
                 partitioning: str = "iid", dirichlet_alpha: float = 0.5, seed: int = 0,
                 max_samples: int = 0, num_workers: int = 0) -> None:
        super().__init__(batch_size, partition_id, num_partitions, partitioning, dirichlet_alpha,
                         seed, max_samples, num_workers)
        self.root = Path(data_dir).expanduser()
        self.speech = speech or SpeechConfig()
        self._files: dict[str, list[str]] | None = None
        self.train_set: ClipDataset | None = None
        self.val_set: ClipDataset | None = None
        self.test_set: ClipDataset | None = None

    def setup(self, stage: str) -> None:
        """Index, partition and decode once; later calls reuse the tensors."""
        if stage == "fit" and self.train_set is None:
            train, val = self._site_splits()
            self.train_set = self._dataset(train, "training", self.speech.augmentation())
            if self.val_set is None:
                self.val_set = self._dataset(val, "validation", None)
        elif stage == "validate" and self.val_set is None:
            self.val_set = self._dataset(self._site_splits()[1], "validation", None)
        elif stage in ("test", "predict") and self.test_set is None:
            test = self.split("testing")
            if len(test) == 0:
                raise DataError(f"no testing clips in {self.root}: {LIST_FILES['testing']} lists "
                                "none of its files; restore it from the archive.")
            self.test_set = self._dataset(test.with_silence(self.speech.speech_silence_percentage),
                                          "testing", None)

    def split(self, name: str) -> ClipIndex:
        """Keyword and unknown clips of split ``name`` after the ``max-samples`` cap."""
        if self._files is None:
            self._files = split_files(self.root, scan(self.root))
        words = self.speech.words
        index = select_clips(self._files[name], words, self.speech.speech_unknown_percentage,
                             self.seed, name)
        if name == "training" and not (index.labels >= 2).any():
            raise DataError(f"no training clips of the keywords ({', '.join(words)}) in "
                            f"{self.root}; check speech-words and data-dir. "
                            f"{missing_message(self.root)}")
        return index.take(cap_indices(len(index), self.max_samples, self.seed))

    def _site_splits(self) -> tuple[ClipIndex, ClipIndex]:
        train, val = self.split("training"), self.split("validation")
        if len(val) == 0:
            log(WARNING, "[colearn] no validation clips in %s: holding out %d%% of the training "
                "speakers instead", self.root, round(100 * HOLD_OUT_FRACTION))
            rest, held = speaker_hold_out(train, HOLD_OUT_FRACTION, self.seed)
            train, val = train.take(rest), train.take(held)
        partition = self.partition
        train = train.take(site_rows(train, partition, self.partitioning, self.dirichlet_alpha,
                                     self.seed))
        val = val.take(validation_rows(len(val), partition, self.seed))
        share = self.speech.speech_silence_percentage
        return train.with_silence(share), val.with_silence(share)

    def _dataset(self, index: ClipIndex, split: str, augmentation: Augmentation | None
                 ) -> ClipDataset:
        files = tuple(path for path in index.paths if path is not None)
        root, rate = str(self.root), self.speech.speech_sample_rate
        samples = self.speech.clip_samples
        salt = 31 * SPLITS.index(split) + (self.partition[0] if self.partition else 0)
        return ClipDataset(load_clips(root, files, rate, samples), torch.from_numpy(index.labels),
                           load_background(root, rate, samples), augmentation,
                           seed=self.seed * 7919 + salt)



def module_fn(run_config: Mapping[str, Any]) -> KeywordSpotter:
    """The model named by ``model`` ('' = conv) behind the configured frontend."""
    config = RunConfig.from_dict(run_config)
    speech = parse_section(SpeechConfig, run_config)
    spec = speech.feature_spec()
    return KeywordSpotter(
        model=config.model or DEFAULT_MODEL, num_classes=len(speech.words) + 2,
        sample_rate=spec.sample_rate, clip_samples=spec.clip_samples, window_ms=spec.window_ms,
        hop_ms=spec.hop_ms, n_mels=spec.n_mels, f_min=spec.f_min, f_max=spec.f_max,
        mfcc=spec.mfcc, dropout=speech.speech_dropout, lr=config.lr_max,
        max_grad_norm=speech.speech_max_grad_norm,
    )


def _datamodule(run_config: Mapping[str, Any], data_dir: str,
                partition: tuple[int, int] | None) -> SpeechDataModule:
    return SpeechDataModule(data_dir, speech=parse_section(SpeechConfig, run_config),
                            **site_arguments(RunConfig.from_dict(run_config), partition))


def datamodule_fn(context: Context) -> SpeechDataModule:
    """A site's data: its node-config ``data-dir`` (all of it) or its simulation partition."""
    source = site_source(context, DEFAULT_DATA_DIR)
    return _datamodule(context.run_config, source.data_dir, source.partition)


def central_datamodule_fn(run_config: Mapping[str, Any]) -> SpeechDataModule | None:
    """The whole testing split, or ``None`` when ``data-dir`` has none (no central metrics)."""
    data_dir = RunConfig.from_dict(run_config).data_dir or DEFAULT_DATA_DIR
    module = _datamodule(run_config, data_dir, None)
    try:
        empty = len(module.split("testing")) == 0
    except DataError as error:
        log(WARNING, "[colearn] speech: the server cannot read data-dir (%s)", error)
        return None
    return None if empty else module


register_task(
    Task(
        name="speech",
        module_fn=module_fn,
        datamodule_fn=datamodule_fn,
        central_datamodule_fn=central_datamodule_fn,
        metrics=("accuracy",),
        models=list_models,
        config=SpeechConfig,
    )
)
