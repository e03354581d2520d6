"""``colearn compare`` end to end on a tiny Fashion-MNIST subset, and the CLI's errors."""

from __future__ import annotations

import csv
import json
import math

import pytest

from colearn_fl.cli import main


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_compare_runs_all_four_methods_at_equal_budget(tmp_path, capsys) -> None:
    # Execute: 2 sites, 400 images, 1 co-learning round of 1 epoch -> budget 400 sample-epochs
    status = main(["compare", "--sites", "2", "--max-samples", "400", "--rounds", "1",
                   "--run-config", "epochs-initial=1", "--cpus-per-site", "1",
                   "--output-dir", str(tmp_path), "--name", "t"])
    # Assert
    assert status == 0
    folder = tmp_path / "t"
    with (folder / "comparison.csv").open() as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"vanilla", "ensemble", "fedavg", "fedavg-1", "colearn"}
    for row in rows.values():
        assert math.isfinite(float(row["accuracy"])) and 0.0 <= float(row["accuracy"]) <= 1.0
        assert int(row["sample_epochs"]) == 400
    assert int(rows["vanilla"]["bytes"]) == 0
    # one round, 2 sites, float32: down + up = 4 copies of the model
    assert int(rows["colearn"]["bytes"]) == 2 * int(rows["ensemble"]["bytes"])
    assert (folder / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "| colearn |" in (folder / "comparison.md").read_text()
    assert "comparison.md" not in capsys.readouterr().err


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_compare_over_seeds_pairs_each_method_with_colearn(tmp_path, capsys) -> None:
    # Execute: 2 seeds, vanilla and co-learning, a tiny subset
    status = main(["compare", "--seeds", "0,1", "--methods", "vanilla,colearn", "--sites", "2",
                   "--max-samples", "300", "--rounds", "1", "--cpus-per-site", "1",
                   "--output-dir", str(tmp_path), "--name", "s"])
    # Assert: one comparison per seed, and the summary computed from their rows
    assert status == 0
    folder = tmp_path / "s"
    per_seed = {}
    for seed in (0, 1):
        with (folder / f"seed-{seed}" / "comparison.csv").open() as handle:
            per_seed[seed] = {r["method"]: float(r["accuracy"]) for r in csv.DictReader(handle)}
    with (folder / "seeds.csv").open() as handle:
        summary = {r["method"]: r for r in csv.DictReader(handle)}
    diffs = [per_seed[s]["vanilla"] - per_seed[s]["colearn"] for s in (0, 1)]
    assert float(summary["vanilla"]["diff"]) == pytest.approx(sum(diffs) / 2)
    assert float(summary["colearn"]["mean"]) == pytest.approx(
        (per_seed[0]["colearn"] + per_seed[1]["colearn"]) / 2)
    assert "seeds 0, 1" in (folder / "seeds.md").read_text()
    assert (folder / "seeds.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_seeds_are_one_clear_error(tmp_path, capsys) -> None:
    assert main(["compare", "--seeds", "0,x", "--output-dir", str(tmp_path)]) == 2
    assert "--seeds '0,x': expected comma-separated integers" in capsys.readouterr().err


def test_unknown_method_is_one_clear_error(tmp_path, capsys) -> None:
    status = main(["compare", "--methods", "colearn,magic", "--output-dir", str(tmp_path)])
    assert status == 2
    assert "--methods: ['magic'] not known" in capsys.readouterr().err


def test_compare_refuses_a_task_without_accuracy_before_running(tmp_path, capsys) -> None:
    # Execute: toxic reports AUROC; nothing may be simulated before the error
    status = main(["compare", "--task", "toxic", "--output-dir", str(tmp_path)])
    # Assert
    assert status == 2
    assert "scores methods by accuracy; task='toxic' reports auroc" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_tasks_lists_models_with_their_volume_per_round(capsys) -> None:
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    # small-cnn: 421,866 float32 parameters; + BN buffers and npy headers on the wire
    assert "image | small-cnn | 421,866 | 3.38" in out


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_variants_and_fedavg_lrs_run_once_and_are_reused(tmp_path, capsys) -> None:
    # Prepare: a co-learning variant and FedAvg at a chosen LR, one tiny round
    args = ["compare", "--methods", "fedavg@0.05,colearn", "--variant", "low: lr-min=0.01",
            "--sites", "2", "--max-samples", "200", "--rounds", "1", "--cpus-per-site", "1",
            "--output-dir", str(tmp_path), "--name", "v"]
    assert main(args) == 0
    folder = tmp_path / "v"
    with (folder / "comparison.csv").open() as handle:
        first = {row["method"]: row for row in csv.DictReader(handle)}
    runs = folder / "runs"
    stamps = {p.name: p.stat().st_mtime_ns for p in runs.iterdir()}
    # Execute: the same command again
    capsys.readouterr()
    assert main(args) == 0
    # Assert: one row per method, the variant ran with its override, FedAvg with its LR, and
    # the second command reused every stored result without running anything
    assert list(first) == ["fedavg@0.05", "colearn", "low"]
    assert json.loads((runs / "low.json").read_text())["key"]["run-config"]["lr-min"] == 0.01
    fedavg = json.loads((runs / "fedavg@0.05.json").read_text())["key"]["run-config"]
    assert (fedavg["lr-schedule"], fedavg["lr-max"]) == ("constant", 0.05)
    assert capsys.readouterr().out.count("reusing") == 3
    assert {p.name: p.stat().st_mtime_ns for p in runs.iterdir()} == stamps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "fedavg@fast"], "--methods fedavg@fast: the LR after @ must be a number"),
        (["--methods", "colearn@0.1"], "--methods: ['colearn@0.1'] not known"),
        (["--variant", "colearn: lr-min=0.01"], "--variant: ['colearn'] is a method's name"),
        (["--variant", "no-colon"], "--variant 'no-colon': expected NAME: RUN-CONFIG"),
        (["--variant", "bad: lr-max='fast'"], "lr-max='fast': expected a number"),
        (["--sites", "0"], "--sites 0: a comparison needs at least 1 site"),
        (["--run-config", "lr-mx=0.1"], "'lr-mx' (did you mean 'lr-max'?): not a key"),
        (["--variant", "s: swa-strat=2"], "'swa-strat' (did you mean 'swa-start'?): not a key"),
    ],
)
def test_bad_methods_and_variants_are_one_clear_error(args, message, tmp_path, capsys) -> None:
    status = main(["compare", *args, "--output-dir", str(tmp_path)])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_task_without_test_data_is_refused_before_any_training(tmp_path, capsys) -> None:
    # Execute: speech commands, which this machine does not hold at the default data-dir
    status = main(["compare", "--task", "speech", "--sites", "2", "--run-config",
                   f"data-dir='{tmp_path}'", "--output-dir", str(tmp_path / "out")])
    # Assert: one line naming data-dir, exit 2, nothing run
    assert status == 2
    assert "colearn compare scores every method on the test split of data-dir=" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))


def test_a_data_dir_that_does_not_exist_is_refused(tmp_path, capsys) -> None:
    status = main(["compare", "--sites", "2", "--run-config",
                   f"data-dir='{tmp_path / 'nowhere'}'", "--output-dir", str(tmp_path / "out")])
    assert status == 2
    assert "does not exist on the server" in capsys.readouterr().err


def test_ray_address_flag_puts_the_federated_methods_on_that_cluster(tmp_path, monkeypatch
                                                                     ) -> None:
    # Prepare: record where simulate() would start Ray, instead of running anything
    import colearn_fl.experiments.compare as compare_module
    from colearn_fl.simulation import ray_cluster

    monkeypatch.setenv("RAY_ADDRESS", "")  # restored afterwards, whatever the CLI sets
    seen = []
    monkeypatch.setattr(compare_module, "compare",
                        lambda *args, **kwargs: seen.append(ray_cluster()) or [])
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "comparison.md").write_text("table\n")
    # Execute
    status = main(["compare", "--ray-address", "127.0.0.1:6379", "--output-dir",
                   str(tmp_path), "--name", "t"])
    # Assert
    assert status == 0
    assert seen == ["127.0.0.1:6379"]
