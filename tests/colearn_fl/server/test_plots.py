"""curves.png's data: each round's end and each site's per-epoch points on the cumulative
local-epoch axis, hand-computed."""

from __future__ import annotations

from colearn_fl.server.plots import epoch_ends, plot_curves, site_series

SITE_A = {"site": "site-a", "epochs": {"train-loss": [0.9], "accuracy": [0.6]}}
ROWS = [
    {"round": 0, "central-accuracy": 0.1},
    {"round": 1, "local-epochs": 1, "lr-schedule": "cosine", "lr-max": 0.1, "lr-min": 0.0,
     "central-accuracy": 0.7, "site-reports": [SITE_A, {"epochs": {"train-loss": [1.0]}}]},
    {"round": 2, "local-epochs": 2, "lr-schedule": "cosine", "lr-max": 0.1, "lr-min": 0.0,
     "central-accuracy": 0.8, "site-reports": [
         {"site": "site-a", "epochs": {"train-loss": [0.7, 0.5], "accuracy": [None, 0.75],
                                       "lr": [0.05, 0.0]}}]},
]


def test_rounds_end_where_their_epochs_add_up() -> None:
    assert epoch_ends(ROWS) == {0: 0.0, 1: 1.0, 2: 3.0}
    assert epoch_ends([{"round": 0}, {"round": 1}, {"round": 2}]) == {0: 0, 1: 1, 2: 2}


def test_each_sites_epochs_follow_its_round_start_and_skip_missing_values() -> None:
    # Round 2 starts at epoch 1: its epochs end at 2 and 3; the None accuracy is skipped
    assert site_series(ROWS, "train-loss") == {
        "site-a": [(1.0, 0.9), (2.0, 0.7), (3.0, 0.5)], "site #2": [(1.0, 1.0)]}
    assert site_series(ROWS, "accuracy") == {"site-a": [(1.0, 0.6), (3.0, 0.75)]}
    assert site_series(ROWS, "auroc") == {}


def test_curves_png_with_site_curves_is_written(tmp_path) -> None:
    plot_curves(tmp_path / "curves.png", ROWS, "accuracy")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
