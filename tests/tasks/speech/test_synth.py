"""Tests of the synthetic (espeak-ng) Speech Commands folder (``colearn speech-demo``'s writer)."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from tasks.errors import DataError
from tasks.shared import Site
from tasks.speech import SpeechDataModule
from tasks.speech.folder import KEYWORDS, read_wav, which_set
from tasks.speech.synth import (
    ACCENTS,
    DEMO_UNKNOWN,
    background_noise,
    resample,
    speakers,
    synthesize_speech_commands,
    write_wav,
)

HAS_ESPEAK = shutil.which("espeak-ng") is not None


def test_missing_espeak_names_the_debian_package(tmp_path: Path, monkeypatch) -> None:
    # Prepare
    monkeypatch.setattr(shutil, "which", lambda name: None)

    # Execute / Assert
    with pytest.raises(DataError, match=r"espeak-ng is not installed.*apt-get install espeak-ng"):
        synthesize_speech_commands(tmp_path, per_word=1)


def test_resampling_keeps_duration_and_pitch() -> None:
    # Prepare: 1 s of 1 kHz at espeak-ng's 22,050 Hz
    tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050)

    # Execute
    out = resample(tone, 22050, 16000)

    # Assert: 16,000 samples, spectrum peak at bin 1000 (1 Hz bins), same amplitude
    assert len(out) == 16000
    assert int(np.abs(np.fft.rfft(out)).argmax()) == 1000
    assert np.abs(out[100:-100]).max() == pytest.approx(1.0, abs=0.02)


def test_wav_round_trip_and_noise_files(tmp_path: Path) -> None:
    # Prepare
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0])

    # Execute
    read = read_wav(write_wav(tmp_path / "x.wav", samples), 16000)
    noises = background_noise(np.random.default_rng(0), seconds=1)

    # Assert: 0.5 * 32767 = 16383.5 rounds to 16384
    assert read.tolist() == [0, 16384, -16384, 32767, -32767]
    assert set(noises) == {"white_noise", "pink_noise", "brown_noise", "mains_hum"}
    assert all(np.abs(n).max() == pytest.approx(0.5) and len(n) == 16000
               for n in noises.values())


def test_speakers_are_distinct_and_cycle_the_accents() -> None:
    # Execute
    voices = speakers(2 * len(ACCENTS))

    # Assert
    assert len({v.id for v in voices}) == len(voices)
    assert [v.voice.split("+")[0] for v in voices[:len(ACCENTS)]] == list(ACCENTS)


@pytest.mark.skipif(not HAS_ESPEAK, reason="needs espeak-ng (apt-get install espeak-ng)")
def test_synthesize_writes_a_readable_speech_commands_folder(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "demo"

    # Execute: 2 speakers x (10 keywords + 8 other words)
    summary = synthesize_speech_commands(out, per_word=2)

    # Assert: the layout, 1 s 16 kHz clips, TensorFlow's speaker-hash lists, the label
    assert "SYNTHETIC speech" in str(summary)
    clips = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.wav")
                   if p.parent.name != "_background_noise_")
    assert len(clips) == 2 * 18 and (out / DEMO_UNKNOWN[0]).is_dir()
    with wave.open(str(out / clips[0])) as handle:
        assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth(),
                handle.getnframes()) == (16000, 1, 2, 16000)
    for split in ("validation", "testing"):
        listed = (out / f"{split}_list.txt").read_text().split()
        assert listed == sorted(c for c in clips if which_set(c, 10.0, 10.0) == split)
    assert len(list((out / "_background_noise_").glob("*.wav"))) == 4
    assert "SYNTHETIC" in (out / "SYNTHETIC_SPEECH.txt").read_text()
    module = SpeechDataModule(Site(str(out), batch_size=4))
    module.setup("validate")  # decodes the validation clips (or a hold-out when none)
    training = [c for c in clips if which_set(c, 10.0, 10.0) == "training"
                and c.split("/")[0] in KEYWORDS]
    assert set(training) <= set(module.split("training").paths)
    assert len(module.val_set) > 0
