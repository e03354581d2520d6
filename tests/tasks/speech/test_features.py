"""Tests of the speech task's log-mel frontend: sizes, the mel scale, buffers, errors."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.errors import ConfigError
from tasks.speech.features import (
    FeatureSpec,
    LogMel,
    dct_matrix,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
)

SAMPLE_RATE = 16000


def tone(hz: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(round(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return 0.5 * torch.sin(2 * math.pi * hz * t)


def test_default_frontend_gives_98_frames_of_40_mels() -> None:
    # Prepare: 30 ms = 480 samples -> n_fft 512; hop 160; 1 + (16000 - 480) // 160 = 98
    frontend = LogMel()

    # Execute
    features = frontend(torch.randn(3, SAMPLE_RATE) * 0.1)

    # Assert
    assert (frontend.spec.win_length, frontend.spec.n_fft, frontend.spec.hop_length) == (
        480, 512, 160)
    assert features.shape == (3, 1, 98, 40) and features.dtype == torch.float32
    assert torch.isfinite(features).all()


@pytest.mark.parametrize(("hz", "band"), [(1000.0, 13), (1818.0, 20)])
def test_a_pure_tone_peaks_in_the_mel_band_that_holds_it(hz: float, band: int) -> None:
    # Prepare: HTK mel(20 Hz) = 31.75, mel(7600 Hz) = 2786.98; 42 points 67.20 mel apart, band m
    # peaks at point m + 1. mel(1000 Hz) = 999.99 is point 14.41: band 13 weighs it 0.59,
    # band 14 0.41. 1818 Hz = mel 1443.0 = point 21.00: the peak of band 20.
    frontend = LogMel()

    # Execute
    mean_per_band = frontend(tone(hz)[None])[0, 0].mean(dim=0)

    # Assert
    assert int(mean_per_band.argmax()) == band


def test_htk_mel_scale_round_trips_and_matches_its_formula() -> None:
    # Execute / Assert: mel(700 Hz) = 2595 log10(2) = 781.17
    assert float(hz_to_mel(700.0)) == pytest.approx(781.17, abs=0.01)
    assert float(mel_to_hz(hz_to_mel(4321.0))) == pytest.approx(4321.0)


def test_filterbank_triangles_peak_at_one_and_cover_f_min_to_f_max() -> None:
    # Execute
    bank = mel_filterbank(512, SAMPLE_RATE, 40, 20.0, 7600.0)

    # Assert: bins are 31.25 Hz apart; nothing below 20 Hz (bin 0) or above 7600 Hz (bin 244)
    assert bank.shape == (257, 40)
    assert bank.max() <= 1.0 and (bank.max(dim=0).values > 0.5).all()
    assert bank[0].sum() == 0 and bank[244:].sum() == 0


def test_mfcc_is_an_orthonormal_dct_of_the_log_mels() -> None:
    # Prepare
    dct = dct_matrix(40)
    waves = torch.randn(2, SAMPLE_RATE) * 0.1

    # Execute
    log_mel = LogMel(FeatureSpec())(waves)
    mfcc = LogMel(FeatureSpec(mfcc=True))(waves)

    # Assert
    torch.testing.assert_close(dct @ dct.T, torch.eye(40), atol=1e-5, rtol=0)
    torch.testing.assert_close(mfcc, log_mel @ dct, atol=1e-4, rtol=1e-4)


def test_buffers_follow_the_module_but_stay_out_of_the_state_dict() -> None:
    # Execute
    frontend = LogMel(FeatureSpec(mfcc=True)).double()

    # Assert: nothing of the frontend travels to the server or is averaged
    assert frontend.state_dict() == {}
    assert frontend.filterbank.dtype == torch.float64
    assert frontend(torch.zeros(1, SAMPLE_RATE, dtype=torch.float64)).dtype == torch.float64


def test_too_many_mels_for_the_fft_name_the_key() -> None:
    # Execute / Assert: 128 mels over 257 bins leaves the lowest filters between two bins
    with pytest.raises(ConfigError, match="speech-n-mels=128"):
        LogMel(FeatureSpec(n_mels=128))


def test_a_window_longer_than_the_clip_names_the_key() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="speech-window-ms=30.0"):
        LogMel(FeatureSpec(clip_samples=400))
