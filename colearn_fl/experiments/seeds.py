"""Multi-seed comparisons: mean ± std per method, and each method's paired difference to
co-learning with a 95 % confidence interval over seeds.

A seed changes the partition, the initial model and the data order together (the run
config's ``seed``). Differences are *paired*: for every seed, a method's accuracy minus
co-learning's on the same sites and initial model, so what the seeds share cancels out. The
interval is Student's t over the seeds' differences; with one seed there is none.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

REFERENCE = "colearn"  # the method every other one is paired with
# Two-sided 95 % quantiles of Student's t (0.975) for 1 .. 30 degrees of freedom.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class SeedSummary:
    """One method over the seeds: accuracy mean and std, paired difference to co-learning."""

    method: str
    seeds: int
    mean: float
    std: float  # sample standard deviation (n - 1); 0 with one seed
    diff: float  # mean over seeds of (method - co-learning); nan without co-learning
    diff_low: float  # 95 % confidence interval of ``diff``; nan with fewer than 2 seeds
    diff_high: float


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (normal above 30)."""
    if df < 1:
        raise ValueError(f"df={df}: need at least 1 degree of freedom (2 seeds)")
    return T_975[df - 1] if df <= len(T_975) else statistics.NormalDist().inv_cdf(0.975)


def summarise(accuracy: dict[int, dict[str, float]],
              reference: str = REFERENCE) -> list[SeedSummary]:
    """Per-method summary of ``accuracy[seed][method]`` (methods in first-seen order), each
    paired with ``reference`` (default: co-learning).

    Every method must have run with every seed; the pairs are formed seed by seed.
    """
    seeds = sorted(accuracy)
    methods = list(dict.fromkeys(m for s in seeds for m in accuracy[s]))
    missing = [(s, m) for s in seeds for m in methods if m not in accuracy[s]]
    if missing:
        raise ValueError(f"every method needs every seed; missing (seed, method): {missing}")
    summaries = []
    for method in methods:
        values = [accuracy[s][method] for s in seeds]
        diffs = ([accuracy[s][method] - accuracy[s][reference] for s in seeds]
                 if reference in methods else [])
        summaries.append(SeedSummary(method, len(seeds), statistics.fmean(values),
                                     statistics.stdev(values) if len(values) > 1 else 0.0,
                                     *_paired(diffs)))
    return summaries


def _paired(diffs: list[float]) -> tuple[float, float, float]:
    if not diffs:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def write_summary(folder: Path, summaries: list[SeedSummary], seeds: list[int],
                  setting: str) -> None:
    """``seeds.md`` (table), ``seeds.csv`` and ``seeds.png`` (means with std error bars)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["method", "seeds", "mean", "std", "diff", "diff_low", "diff_high"]
    with (folder / "seeds.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for s in summaries:
            writer.writerow([getattr(s, c) for c in columns])
    lines = [f"# Comparison over seeds {', '.join(map(str, seeds))}", "", setting, "",
             "| method | accuracy (%), mean ± std | − co-learning (points), paired mean "
             "[95 % CI] |", "|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s.method} | {100 * s.mean:.2f} ± {100 * s.std:.2f} | "
                     f"{_points(s)} |")
    (folder / "seeds.md").write_text("\n".join(lines) + "\n")
    _plot(folder / "seeds.png", summaries)


def _points(s: SeedSummary) -> str:
    if s.method == REFERENCE or math.isnan(s.diff):
        return "-"
    interval = ("" if math.isnan(s.diff_low)
                else f" [{100 * s.diff_low:+.2f}, {100 * s.diff_high:+.2f}]")
    return f"{100 * s.diff:+.2f}{interval}"


def _plot(path: Path, summaries: list[SeedSummary]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    names = [s.method for s in summaries]
    ax.bar(names, [100 * s.mean for s in summaries], yerr=[100 * s.std for s in summaries],
           capsize=6, color="tab:blue", alpha=0.8)
    low = min(100 * (s.mean - s.std) for s in summaries)
    ax.set_ylim(max(0.0, low - 2.0), min(100.0, max(100 * (s.mean + s.std)
                                                    for s in summaries) + 1.0))
    ax.set(ylabel="test accuracy (%)",
           title=f"mean ± std over {summaries[0].seeds} seed(s), equal budget")
    fig.savefig(path, dpi=100)
    plt.close(fig)
