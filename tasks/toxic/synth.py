"""SYNTHETIC stand-in for the Jigsaw toxic comment files, for tests and smoke runs.

Writes ``train.csv``, ``test.csv`` and ``test_labels.csv`` in the real format (quoted commas,
quotes and newlines in the text; ``-1`` rows in ``test_labels.csv``). The text is made-up
filler words; each positive label adds one of its own cue words, and with probability
``noise`` a cue is dropped or a wrong one added, so the labels are learnable but not trivially.
No real comment is in these files: results on them say nothing about Jigsaw.

    python -m tasks.toxic.synth --out /tmp/jigsaw-synth --train 4000 --test 1000
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from tasks.toxic.jigsaw import LABELS, TEST_CSV, TEST_LABELS_CSV, TRAIN_CSV, UNSCORED

# P(toxic), then P(label | toxic) for the other five (they are only positive with toxic).
TOXIC_RATE = 0.3
GIVEN_TOXIC = {"severe_toxic": 0.25, "obscene": 0.5, "threat": 0.2, "insult": 0.5,
               "identity_hate": 0.25}
UNSCORED_RATE = 0.3  # test rows written with -1 labels
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "du", "ba", "gi")


def cue_words(label: str) -> list[str]:
    """The three made-up words that signal ``label`` (e.g. ``xtoxic1``)."""
    return [f"x{label.replace('_', '')}{i}" for i in range(3)]


def synthetic_labels(count: int, rng: np.random.Generator) -> np.ndarray:
    """int8 ``[count, 6]`` labels with Jigsaw's structure (the others imply ``toxic``)."""
    labels = np.zeros((count, len(LABELS)), dtype=np.int8)
    labels[:, 0] = rng.random(count) < TOXIC_RATE
    for column, label in enumerate(LABELS[1:], start=1):
        labels[:, column] = labels[:, 0] & (rng.random(count) < GIVEN_TOXIC[label])
    return labels


def synthetic_text(labels: np.ndarray, rng: np.random.Generator, noise: float) -> str:
    """Filler words with the labels' cue words (noisy) at random places, CSV-awkward bits."""
    words = ["".join(rng.choice(_SYLLABLES, size=rng.integers(1, 3)))
             for _ in range(rng.integers(8, 30))]
    for column, label in enumerate(LABELS):
        if bool(labels[column]) != (rng.random() < noise):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(cue_words(label))))
    text = " ".join(words)
    if rng.random() < 0.2:
        text = text.replace(" ", ', "really"\n', 1)  # quoted comma, quote and newline
    return text


def write_synthetic(out_dir: str | Path, num_train: int = 4000, num_test: int = 1000,
                    seed: int = 0, noise: float = 0.1) -> Path:
    """Write the three SYNTHETIC CSV files into ``out_dir`` and return it.

    Parameters
    ----------
    out_dir : str | Path
        Created if missing.
    num_train, num_test : int
        Rows of ``train.csv`` and of ``test.csv`` (about ``UNSCORED_RATE`` of the test rows
        are labelled -1) (default: 4000, 1000).
    seed : int
        Seed of every draw (default: 0).
    noise : float
        Chance that each label's cue is flipped (dropped or added) (default: 0.1).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    header = ["id", "comment_text", *LABELS]
    train = synthetic_labels(num_train, rng)
    _write(out / TRAIN_CSV, header,
           ([f"tr{i:06d}", synthetic_text(row, rng, noise), *row.tolist()]
            for i, row in enumerate(train)))
    test = synthetic_labels(num_test, rng)
    texts = [synthetic_text(row, rng, noise) for row in test]
    scored = rng.random(num_test) >= UNSCORED_RATE
    _write(out / TEST_CSV, header[:2], ([f"te{i:06d}", text] for i, text in enumerate(texts)))
    _write(out / TEST_LABELS_CSV, [header[0], *LABELS],
           ([f"te{i:06d}", *(row.tolist() if keep else [UNSCORED] * len(LABELS))]
            for i, (row, keep) in enumerate(zip(test, scored, strict=True))))
    return out


def _write(path: Path, header: list[str], rows: object) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m tasks.toxic.synth --out DIR [--train N --test N --seed S]``."""
    parser = argparse.ArgumentParser(description="Write SYNTHETIC Jigsaw-format CSV files.")
    parser.add_argument("--out", required=True, help="directory to write")
    parser.add_argument("--train", type=int, default=4000, help="train.csv rows")
    parser.add_argument("--test", type=int, default=1000, help="test.csv rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.1, help="cue flip probability")
    args = parser.parse_args(argv)
    out = write_synthetic(args.out, args.train, args.test, args.seed, args.noise)
    print(f"wrote SYNTHETIC {TRAIN_CSV}, {TEST_CSV}, {TEST_LABELS_CSV} to {out}")


if __name__ == "__main__":
    main()
