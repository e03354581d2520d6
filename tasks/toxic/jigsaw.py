"""The Jigsaw Toxic Comment Classification CSV files, read and checked; no download.

As distributed by the Kaggle competition ``jigsaw-toxic-comment-classification-challenge``:

- ``train.csv``: ``id, comment_text`` and the six label columns (0 or 1);
- ``test.csv``: ``id, comment_text``; ``test_labels.csv``: ``id`` and the six labels, where
  ``-1`` marks a row that was not scored (those rows are left out).

Comments hold quoted commas, quotes and newlines, so the files are read with the ``csv``
module (one record may span several lines); columns are found by name, in any order.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.errors import DataError

LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult",
                           "identity_hate")
TRAIN_CSV, TEST_CSV, TEST_LABELS_CSV = "train.csv", "test.csv", "test_labels.csv"
DEFAULT_DATA_DIR = "~/.cache/colearn-fl/jigsaw-toxic"
UNSCORED = -1  # test_labels.csv value of rows Kaggle did not score
_HOW_TO_GET = (
    "Get the files from the Kaggle competition 'jigsaw-toxic-comment-classification-challenge' "
    "(kaggle competitions download -c jigsaw-toxic-comment-classification-challenge), unzip "
    "train.csv (and test.csv + test_labels.csv for a test split) into that directory, or set "
    "data-dir to where they are."
)


@dataclass(frozen=True)
class Comments:
    """Comments and their labels, row-aligned.

    Parameters
    ----------
    ids : list[str]
        The ``id`` column.
    texts : list[str]
        The ``comment_text`` column.
    labels : np.ndarray
        int8 ``[N, 6]`` of 0/1, columns in ``LABELS`` order.
    """

    ids: list[str]
    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> Comments:
        """The comments at positions ``rows``, in that order."""
        return Comments([self.ids[i] for i in rows], [self.texts[i] for i in rows],
                        self.labels[np.asarray(rows, dtype=np.int64)])


def has_test_split(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` has a test split (``test.csv`` or ``test_labels.csv``)."""
    directory = Path(data_dir).expanduser()
    return (directory / TEST_CSV).is_file() or (directory / TEST_LABELS_CSV).is_file()


def read_train(data_dir: str | Path) -> Comments:
    """``train.csv`` of ``data_dir``.

    Raises
    ------
    DataError
        When the file is missing (with download instructions), lacks a column, or has a label
        that is not 0 or 1 (naming the column, the data row, its line and its id).
    """
    path = _existing(Path(data_dir).expanduser() / TRAIN_CSV)
    return _read_train_once(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_train_once(path_str: str, mtime_ns: int) -> Comments:
    """Parse ``train.csv`` once per process and file version (sites rebuild data each round)."""
    path = Path(path_str)
    ids, texts, labels = [], [], []
    for where, record in _records(path, ("id", "comment_text", *LABELS)):
        ids.append(record["id"])
        texts.append(record["comment_text"])
        labels.append(_labels(record, where, ("0", "1")))
    return Comments(ids, texts, _label_array(labels))


def read_test(data_dir: str | Path) -> Comments:
    """The scored rows of ``test.csv`` joined by ``id`` with ``test_labels.csv``.

    A row with ``-1`` in any label column was not scored by Kaggle and is left out.

    Raises
    ------
    DataError
        When one of the two files is missing, a column is missing, a label is not 0, 1 or -1,
        or a ``test.csv`` id has no row in ``test_labels.csv``.
    """
    directory = Path(data_dir).expanduser()
    texts_path = _existing(directory / TEST_CSV)
    labels_path = _existing(directory / TEST_LABELS_CSV)
    return _read_test_once(str(texts_path), str(labels_path), texts_path.stat().st_mtime_ns,
                           labels_path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_test_once(texts_str: str, labels_str: str, texts_mtime_ns: int,
                    labels_mtime_ns: int) -> Comments:
    """Parse and join the test files once per process and file versions."""
    texts_path, labels_path = Path(texts_str), Path(labels_str)
    by_id = {record["id"]: _labels(record, where, ("0", "1", str(UNSCORED)))
             for where, record in _records(labels_path, ("id", *LABELS))}
    ids, texts, labels = [], [], []
    for where, record in _records(texts_path, ("id", "comment_text")):
        row = by_id.get(record["id"])
        if row is None:
            raise DataError(f"{where}: id {record['id']!r} has no row in {labels_path}; use "
                            "the test.csv and test_labels.csv of the same download.")
        if UNSCORED not in row:
            ids.append(record["id"])
            texts.append(record["comment_text"])
            labels.append(row)
    return Comments(ids, texts, _label_array(labels))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path} is missing. {_HOW_TO_GET}")
    return path


def _records(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, {column: value})`` per data row; ``where`` names file, row, line and id."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty; expected a header with columns "
                                f"{', '.join(columns)}. {_HOW_TO_GET}")
            position = _column_positions(path, header, columns)
            for number, fields in enumerate(reader, start=1):
                if not fields:
                    continue  # a blank line between records
                ident = fields[position["id"]] if position["id"] < len(fields) else "?"
                where = f"{path} data row {number} (line {reader.line_num}, id {ident!r})"
                if len(fields) < len(header):
                    missing = header[len(fields)]
                    raise DataError(f"{where}: column {missing!r} is missing ({len(fields)} of "
                                    f"{len(header)} fields); is a quote unbalanced?")
                yield where, {name: fields[i] for name, i in position.items()}
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error}); use the file as distributed."
                        ) from error
    except csv.Error as error:
        raise DataError(f"{path} is not valid CSV ({error}); use the file as distributed."
                        ) from error


def _column_positions(path: Path, header: list[str], columns: tuple[str, ...]
                      ) -> dict[str, int]:
    names = [name.strip().lstrip("\ufeff") for name in header]
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(f"{path}: column {', '.join(repr(c) for c in missing)} missing from "
                        f"the header ({', '.join(names)}); expected {', '.join(columns)}.")
    return {c: names.index(c) for c in columns}


def _labels(record: dict[str, str], where: str, allowed: tuple[str, ...]) -> list[int]:
    values = []
    for name in LABELS:
        value = record[name].strip()
        if value not in allowed:
            raise DataError(f"{where}: column {name!r} = {record[name]!r}; expected "
                            f"{' or '.join(allowed)}.")
        values.append(int(value))
    return values


def _label_array(rows: list[list[int]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int8).reshape(len(rows), len(LABELS))
