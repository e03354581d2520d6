"""Tests of the toxic task's Jigsaw CSV reader: quoting, the -1 rows, every check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import DataError
from tasks.toxic.jigsaw import read_test, read_train
from tasks.toxic.synth import write_synthetic

HEADER = '"id","comment_text","toxic","severe_toxic","obscene","threat","insult","identity_hate"'
TRAIN_ROWS = [
    'a1,"Hello, world",0,0,0,0,0,0',
    'a2,"two\nline ""quoted"" comment",1,0,1,0,1,0',
    "a3,plain,1,1,0,0,0,1",
]
TEST_ROWS = ["id,comment_text", 't1,"first, one"', 't2,"multi\nline"', "t3,third"]
TEST_LABEL_ROWS = ["id,toxic,severe_toxic,obscene,threat,insult,identity_hate",
                   "t1,1,0,0,0,1,0", "t2,-1,-1,-1,-1,-1,-1", "t3,0,0,0,0,0,0"]


def _write(directory: Path, name: str, lines: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def _tiny(directory: Path, with_test: bool = True) -> Path:
    _write(directory, "train.csv", [HEADER, *TRAIN_ROWS])
    if with_test:
        _write(directory, "test.csv", TEST_ROWS)
        _write(directory, "test_labels.csv", TEST_LABEL_ROWS)
    return directory


def test_train_csv_keeps_quoted_commas_quotes_and_newlines(tmp_path: Path) -> None:
    # Execute
    comments = read_train(_tiny(tmp_path))

    # Assert
    assert comments.ids == ["a1", "a2", "a3"]
    assert comments.texts == ["Hello, world", 'two\nline "quoted" comment', "plain"]
    assert comments.labels.tolist() == [[0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0],
                                        [1, 1, 0, 0, 0, 1]]


def test_test_split_leaves_out_rows_labelled_minus_one(tmp_path: Path) -> None:
    # Execute
    comments = read_test(_tiny(tmp_path))

    # Assert: t2 was not scored by Kaggle
    assert comments.ids == ["t1", "t3"]
    assert comments.texts == ["first, one", "third"]
    assert comments.labels.tolist() == [[1, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]]


def test_missing_column_is_named(tmp_path: Path) -> None:
    # Prepare: no threat column
    _write(tmp_path, "train.csv", ["id,comment_text,toxic,severe_toxic,obscene,insult,"
                                   "identity_hate", "a,b,0,0,0,0,0"])

    # Execute / Assert
    with pytest.raises(DataError, match=r"train.csv: column 'threat' missing from the header"):
        read_train(tmp_path)


@pytest.mark.parametrize("bad", ["2", "x"])
def test_bad_label_names_column_row_line_and_id(tmp_path: Path, bad: str) -> None:
    # Prepare: data row 3 starts on line 5 (row 2 spans lines 3 and 4)
    rows = [*TRAIN_ROWS[:2], f"a3,plain,1,1,0,{bad},0,1"]
    _write(tmp_path, "train.csv", [HEADER, *rows])

    # Execute / Assert
    with pytest.raises(DataError, match=rf"data row 3 \(line 5, id 'a3'\): column 'threat' = "
                                        rf"'{bad}'; expected 0 or 1"):
        read_train(tmp_path)


def test_minus_one_is_only_allowed_in_test_labels(tmp_path: Path) -> None:
    # Prepare
    _write(tmp_path, "train.csv", [HEADER, "a1,text,-1,0,0,0,0,0"])

    # Execute / Assert
    with pytest.raises(DataError, match=r"data row 1 .*column 'toxic' = '-1'; expected 0 or 1"):
        read_train(tmp_path)


def test_short_row_is_reported(tmp_path: Path) -> None:
    # Prepare
    _write(tmp_path, "train.csv", [HEADER, "a1,text,0,0,0"])

    # Execute / Assert
    with pytest.raises(DataError, match=r"data row 1 .*column 'threat' is missing"):
        read_train(tmp_path)


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    # Prepare: Latin-1 bytes
    (tmp_path / "train.csv").write_bytes((HEADER + "\na1,caf\xe9,0,0,0,0,0,0\n").encode("latin-1"))

    # Execute / Assert
    with pytest.raises(DataError, match=r"train.csv is not UTF-8 text"):
        read_train(tmp_path)


def test_missing_files_say_where_to_get_them(tmp_path: Path) -> None:
    # Prepare: test.csv without test_labels.csv
    _write(_tiny(tmp_path, with_test=False), "test.csv", TEST_ROWS)

    # Execute / Assert
    with pytest.raises(DataError, match=r"train.csv is missing.*jigsaw-toxic-comment-class"):
        read_train(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"test_labels.csv is missing"):
        read_test(tmp_path)


def test_test_id_without_labels_is_reported(tmp_path: Path) -> None:
    # Prepare
    _tiny(tmp_path)
    _write(tmp_path, "test_labels.csv", TEST_LABEL_ROWS[:2])

    # Execute / Assert
    with pytest.raises(DataError, match=r"test.csv data row 2 .*id 't2' has no row in"):
        read_test(tmp_path)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=200, num_test=60)


def test_synthetic_files_read_back_with_scored_test_rows(synthetic: Path) -> None:
    # Execute
    train, test = read_train(synthetic), read_test(synthetic)

    # Assert: ~30% of the 60 test rows are unscored; every toxic row carries a cue (or noise)
    assert len(train) == 200 and 30 <= len(test) < 60
    assert 0.15 < train.labels[:, 0].mean() < 0.45
    assert (train.labels[:, 1:].max(axis=1) <= train.labels[:, 0]).all()
