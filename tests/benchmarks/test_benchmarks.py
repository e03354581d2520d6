"""The benchmark scripts run end to end in their smoke modes and print their ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], text=True,
                          capture_output=True, timeout=600, cwd=BENCHMARKS.parent)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_communication_ratios() -> None:
    out = run("communication.py", "--smoke")
    ratios = {m[0]: float(m[1]) for m in re.findall(r"(\w+) \| ([0-9.]+) \|", out)}
    # float32: one copy down and one up, exactly; 16 bit: about one copy in all (float16's
    # standard NumPy arrays carry a 128-byte header each, bfloat16's raw words none)
    assert ratios["float32"] == pytest.approx(2.0)
    assert ratios["float16"] <= 1.01 and ratios["bfloat16"] <= 1.0


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_overhead_ratio_is_printed() -> None:
    out = run("overhead.py", "--smoke")
    ratio = float(re.search(r"overhead ratio\s+:\s+([0-9.]+)", out).group(1))
    assert ratio > 0.5  # a ratio, measured; its target is checked at full size, not here


@pytest.mark.slow
def test_startup_time_is_printed() -> None:
    out = run("startup.py")
    assert re.search(r"cold [0-9.]+ s .* warm [0-9.]+ s", out)


def test_model_zoo_table_is_printed() -> None:
    out = run("model_zoo.py", "--smoke")
    rows = dict(re.findall(r"\| ([a-z-]+) \| ([0-9.]+) \|", out))
    # small-cnn: 0.42 M parameters (docs/results.md), tiny-cnn about a quarter of it
    assert float(rows["small-cnn"]) == pytest.approx(0.42, abs=0.01)
    assert float(rows["tiny-cnn"]) < float(rows["small-cnn"])


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_scale_ratios_are_printed() -> None:
    out = run("scale.py", "--smoke")
    rows = re.findall(r"^\| (\d+) \| ([0-9.]+) \| (-?[0-9.]+) \| (-?[0-9.]+) \| (\d+) \|", out,
                      flags=re.MULTILINE)
    assert [int(r[0]) for r in rows] == [2, 4]
    assert float(rows[0][3]) == pytest.approx(1.0)  # the first row is its own reference
    assert all(int(r[4]) > 100 for r in rows)  # a peak RSS in MB, measured per process
    assert "framework time slope" in out


def test_gpu_benchmark_ratio_is_printed_on_cpu() -> None:
    out = run("gpu.py", "--smoke")
    ratio = float(re.search(r"throughput ratio \(plugin / plain\): ([0-9.]+)", out).group(1))
    assert 0.2 < ratio < 5.0  # a ratio, measured; its target applies on a GPU, at full size
    assert "tiny-cnn, 32-true" in out


def test_secagg_costs_are_printed() -> None:
    out = run("secagg.py", "--smoke")
    rows = re.findall(r"^\| (\d+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| .* \| ([0-9.e+-]+) \|$",
                      out, flags=re.MULTILINE)
    assert [int(r[0]) for r in rows] == [2, 4]
    # the model goes down as float32 and comes up as int64: 1.5 times plain, keys aside
    assert all(1.5 <= float(r[3]) < 1.7 for r in rows)
    assert all(float(r[4]) < 3e-8 for r in rows)  # within one quantisation step
