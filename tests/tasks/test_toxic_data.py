"""Tests of the toxic task's data: CSV reading and checks, tokenizers, the data module."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import ByT5Tokenizer

from colearn_fl.errors import ConfigError, DataError
from tasks.toxic_csv import read_test, read_train
from tasks.toxic_data import CLEAN, ToxicDataModule, representative_class
from tasks.toxic_synth import write_synthetic
from tasks.toxic_text import WordHashEncoder, build_encoder, load_tokenizer_dir

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


def test_representative_class_is_first_positive_label_else_clean() -> None:
    # Prepare
    labels = np.array([[0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]])

    # Execute / Assert
    assert representative_class(labels).tolist() == [CLEAN, 0, 3]


def test_byt5_ids_are_utf8_bytes_plus_three_then_eos_then_padding() -> None:
    # Prepare
    encoder = build_encoder("byt5")

    # Execute
    ids = encoder.encode(["hé", "abcdef"], seq_len=5)

    # Assert: h=104, é=0xC3 0xA9; EOS=1, pad=0; truncation keeps room for EOS
    assert ids.dtype == torch.int32 and encoder.pad_id == 0 and encoder.vocab_size == 384
    assert ids.tolist() == [[107, 198, 172, 1, 0], [100, 101, 102, 103, 1]]


def test_cutting_text_before_tokenizing_changes_no_id() -> None:
    # Prepare: multi-byte characters near the cut
    text = "ça ü 🙂 " * 40
    full = ByT5Tokenizer()([text], truncation=True, max_length=32, padding="max_length")

    # Execute
    ids = build_encoder("byt5").encode([text], seq_len=32)

    # Assert
    assert ids.tolist() == full["input_ids"]


def test_word_hash_is_crc32_of_lowercase_words() -> None:
    # Prepare
    encoder = WordHashEncoder(buckets=100)
    expected = [1 + zlib.crc32(word.encode()) % 99 for word in ("you", "are", "great")]

    # Execute
    ids = encoder.encode(["You ARE, great!", ""], seq_len=4)

    # Assert
    assert ids.tolist() == [[*expected, 0], [0, 0, 0, 0]]


def test_tokenizer_dir_loads_a_saved_tokenizer(tmp_path: Path) -> None:
    # Prepare
    ByT5Tokenizer().save_pretrained(tmp_path)

    # Execute
    encoder = build_encoder("pretrained", str(tmp_path))

    # Assert
    assert encoder.encode(["ok"], 4).tolist() == [[114, 110, 1, 0]]


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_bad_tokenizer_dir_is_a_config_error(tmp_path: Path, kind: str) -> None:
    # Prepare
    directory = tmp_path / kind
    if kind == "empty":
        directory.mkdir()
    match = "is not a directory" if kind == "missing" else "holds no loadable tokenizer"

    # Execute / Assert
    with pytest.raises(ConfigError, match=rf"tokenizer-dir='{directory}' {match}"):
        load_tokenizer_dir(str(directory))


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


def test_sites_partition_train_and_shard_the_test_rows(synthetic: Path) -> None:
    # Prepare
    encoder = WordHashEncoder(1000)
    sites = [ToxicDataModule(str(synthetic), 16, encoder, 12, partition_id=i, num_partitions=2,
                             max_samples=100) for i in range(2)]
    scored = len(read_test(synthetic))

    # Execute
    for site in sites:
        site.setup("fit")

    # Assert: 100 capped train rows -> 50 + 50; validation shards cover the scored test rows
    assert [len(s.train_set) for s in sites] == [50, 50]
    assert sum(len(s.val_set) for s in sites) == scored
    ids, labels = sites[0].train_set.tensors
    assert ids.shape == (50, 12) and labels.dtype == torch.float32 and labels.shape == (50, 6)


def test_dirichlet_partition_uses_representative_classes(synthetic: Path) -> None:
    # Prepare
    sites = [ToxicDataModule(str(synthetic), 16, WordHashEncoder(1000), 12, partition_id=i,
                             num_partitions=2, partitioning="dirichlet", dirichlet_alpha=1.0)
             for i in range(2)]

    # Execute
    for site in sites:
        site.setup("fit")

    # Assert: disjoint cover of the 200 rows
    assert sum(len(s.train_set) for s in sites) == 200


def test_site_without_test_files_holds_out_ten_percent(tmp_path: Path) -> None:
    # Prepare
    write_synthetic(tmp_path, num_train=50, num_test=5)
    (tmp_path / "test.csv").unlink()
    (tmp_path / "test_labels.csv").unlink()
    module = ToxicDataModule(str(tmp_path), 8, WordHashEncoder(100), 8)

    # Execute
    module.setup("fit")

    # Assert
    assert (len(module.train_set), len(module.val_set)) == (45, 5)


def test_validate_stage_tokenizes_only_this_sites_validation_rows(synthetic: Path) -> None:
    # Prepare
    module = ToxicDataModule(str(synthetic), 8, WordHashEncoder(100), 8, partition_id=1,
                             num_partitions=2)

    # Execute
    module.setup("validate")

    # Assert: the second half-shard of the scored test rows, and no training tensors
    assert len(module.val_set) == len(read_test(synthetic)) // 2 and module.train_set is None


def test_site_without_test_files_validates_on_the_same_hold_out(tmp_path: Path) -> None:
    # Prepare
    write_synthetic(tmp_path, num_train=50, num_test=5)
    for name in ("test.csv", "test_labels.csv"):
        (tmp_path / name).unlink()
    fitted = ToxicDataModule(str(tmp_path), 8, WordHashEncoder(100), 8)
    validated = ToxicDataModule(str(tmp_path), 8, WordHashEncoder(100), 8)

    # Execute
    fitted.setup("fit")
    validated.setup("validate")

    # Assert: an evaluate round sees exactly the rows the training round held out
    assert torch.equal(fitted.val_set.tensors[0], validated.val_set.tensors[0])


def test_test_stage_tokenizes_only_the_test_split(synthetic: Path) -> None:
    # Prepare
    module = ToxicDataModule(str(synthetic), 8, WordHashEncoder(100), 8)

    # Execute
    module.setup("test")

    # Assert
    assert len(module.test_set) == len(read_test(synthetic)) and module.train_set is None


def test_tokenized_rows_are_reused_in_later_rounds() -> None:
    # Prepare: an encoder that counts its calls
    from tasks.toxic_text import WordHashEncoder, encode_cached

    class Counting(WordHashEncoder):
        calls = 0

        def encode(self, texts, seq_len):
            Counting.calls += 1
            return super().encode(texts, seq_len)

    encoder = Counting(50)
    texts = ["you are kind", "what a fool"]

    # Execute: the same rows twice (two rounds), then changed text
    first = encode_cached(encoder, texts, 4)
    again = encode_cached(encoder, list(texts), 4)
    changed = encode_cached(encoder, ["you are kind", "what a FOOL!"], 4)

    # Assert: one tokenization for the repeat; changed text is tokenized anew
    assert Counting.calls == 2 and again is first
    assert torch.equal(changed, first)  # lowercased words hash alike
