"""The gap to centralized training as the budget grows: does co-learning close it?

For budgets of B = 7, 15 and 31 pooled epochs (3, 4 and 5 rounds of the doubling schedule
1, 2, 4, ...), on 4 sites, IID and Dirichlet 0.5, over several seeds:

- ``vanilla``: centralized training on the pooled sites' data, one cosine cycle over B epochs;
- ``fedavg``: FedAvg at a constant LR with the same rounds and epochs as ILE (1, 2, 4, ...);
- ``fedavg-1``: FedAvg at a constant LR, B rounds of 1 epoch;
- ``colearn-ile``: co-learning with the paper's growing epochs 1, 2, 4, ... (ILE);
- ``colearn``: co-learning with the default decaying epochs of the same total (4, 2, 1;
  8, 4, 2, 1; 16, 8, 4, 2, 1).

Every method is paired seed by seed with ``vanilla`` (same seed: same data, same initial
model), and co-learning with FedAvg; the differences get Student-t 95 % intervals over the
seeds. A run whose rounds are a prefix of a longer one is read from the longer one: with a
growing or fixed schedule, nothing in round r depends on how many rounds follow, so the
3-round run *is* the first 3 rounds of the 5-round run (``fedavg``, ``fedavg-1``,
``colearn-ile``). Decaying schedules and vanilla's single cycle differ per budget and run
once each; vanilla does not depend on how the sites are partitioned and runs once per seed.

Each finished run is stored in ``<output-dir>/runs/`` and read back on a rerun with the same
configuration, so an interrupted grid resumes. Writes ``budget-curve.md``, ``.csv`` and
``.png`` in the output folder.

    python benchmarks/budget_curve.py --seeds 0,1,2 --max-samples 15000 --model tiny-cnn
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.experiments.nonfederated import vanilla
from colearn_fl.experiments.seeds import SeedSummary, summarise
from colearn_fl.server.history import read_history
from colearn_fl.simulation import simulate
from colearn_fl.task_adapter import TaskAdapter

PARTITIONS = {"iid": {"partitioning": "iid"},
              "dirichlet-0.5": {"partitioning": "dirichlet", "dirichlet-alpha": 0.5}}
METHODS = ("vanilla", "fedavg", "fedavg-1", "colearn-ile", "colearn")
PAIRS = (("colearn", "vanilla"), ("colearn-ile", "vanilla"), ("fedavg", "vanilla"),
         ("fedavg-1", "vanilla"), ("colearn", "fedavg"), ("colearn", "fedavg-1"),
         ("colearn", "colearn-ile"))


def rounds_of(budget: int) -> int:
    """Rounds of the doubling schedule 1, 2, 4, ... that sum to ``budget`` (2**R - 1)."""
    rounds = int(math.log2(budget + 1))
    if budget < 1 or 2 ** rounds - 1 != budget:
        raise ConfigError(f"--budgets {budget}: a budget must be the total of a doubling "
                          "schedule 1, 2, 4, ... (1, 3, 7, 15, 31, 63).")
    return rounds


def federated_plan(budgets: list[int], fedavg_lr: float
                   ) -> dict[str, tuple[str, dict[str, Any], dict[int, int]]]:
    """Each federated run by name: the method it stands for, its run-config overrides and,
    per budget, the round to read."""
    most = max(budgets)
    constant = {"lr-schedule": "constant", "lr-max": fedavg_lr, "lr-min": fedavg_lr}
    growing = {"epochs-schedule": "geometric", "epochs-initial": 1, "epochs-mult": 2.0,
               "num-server-rounds": rounds_of(most)}
    plan = {
        "fedavg": ("fedavg", {**constant, **growing}, {b: rounds_of(b) for b in budgets}),
        "fedavg-1": ("fedavg-1", {**constant, "epochs-schedule": "fixed", "epochs-initial": 1,
                                  "num-server-rounds": most}, {b: b for b in budgets}),
        "colearn-ile": ("colearn-ile", dict(growing), {b: rounds_of(b) for b in budgets}),
    }
    for b in budgets:
        plan[f"colearn-{b}"] = ("colearn", {"epochs-schedule": "budget", "epochs-budget": b,
                                            "budget-shape": "decaying",
                                            "num-server-rounds": rounds_of(b)},
                                {b: rounds_of(b)})
    return plan


def _cached(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored if stored.get("key") == json.loads(json.dumps(key)) else None


def _store(path: Path, key: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = {"key": key, **result}
    path.write_text(json.dumps(stored, indent=1))
    return stored


def run_vanilla(base: dict[str, Any], seed: int, budget: int, folder: Path) -> float:
    """Vanilla's test accuracy after ``budget`` pooled epochs (one cycle over them)."""
    key = {"method": "vanilla", "budget": budget, "run-config": {**base, "seed": seed}}
    path = folder / "runs" / f"seed-{seed}-vanilla-{budget}.json"
    stored = _cached(path, key)
    if stored is None:
        config = RunConfig.from_dict({**base, "seed": seed})
        start = time.monotonic()
        out = vanilla(TaskAdapter.of_run(config), config, budget)
        stored = _store(path, key, {"accuracy": out.accuracy,
                                    "wall_s": time.monotonic() - start})
        print(f"[budget-curve] seed {seed} vanilla B={budget}: {100 * out.accuracy:.2f} %",
              flush=True)
    return stored["accuracy"]


def run_federated(base: dict[str, Any], name: str, overrides: dict[str, Any], seed: int,
                  partition: str, folder: Path) -> list[dict[str, Any]]:
    """The run's rounds (``round``, ``local-epochs``, ``accuracy``), simulated once."""
    run = {**base, **PARTITIONS[partition], **overrides, "seed": seed}
    key = {"method": name, "run-config": run}
    path = folder / "runs" / f"{partition}-seed-{seed}-{name}.json"
    stored = _cached(path, key)
    if stored is None:
        start = time.monotonic()
        out = simulate({**run, "output-dir": str(folder / "sim"), "overwrite": True,
                        "run-name": f"{partition}-seed-{seed}-{name}"}, num_sites=4)
        rows = [{"round": r["round"], "local-epochs": r.get("local-epochs", 0),
                 "accuracy": r["central-accuracy"]} for r in read_history(out)]
        stored = _store(path, key, {"rounds": rows, "wall_s": time.monotonic() - start})
        print(f"[budget-curve] {partition} seed {seed} {name}: "
              + ", ".join(f"{100 * r['accuracy']:.2f}" for r in rows[1:]), flush=True)
    return stored["rounds"]


def grid(base: dict[str, Any], seeds: list[int], budgets: list[int], fedavg_lr: float,
         folder: Path) -> dict[str, dict[int, dict[int, dict[str, float]]]]:
    """accuracy[partition][budget][seed][method] over the whole grid."""
    plan = federated_plan(budgets, fedavg_lr)
    accuracy: dict[str, dict[int, dict[int, dict[str, float]]]] = {
        p: {b: {s: {} for s in seeds} for b in budgets} for p in PARTITIONS}
    for seed in seeds:
        for budget in budgets:
            value = run_vanilla(base, seed, budget, folder)
            for partition in PARTITIONS:
                accuracy[partition][budget][seed]["vanilla"] = value
        for partition in PARTITIONS:
            for name, (method, overrides, reads) in plan.items():
                rows = {r["round"]: r for r in
                        run_federated(base, name, overrides, seed, partition, folder)}
                for budget, round_ in reads.items():
                    done = sum(rows[r]["local-epochs"] for r in range(1, round_ + 1))
                    assert done == budget, f"{name}: {done} epochs by round {round_}, not {budget}"
                    accuracy[partition][budget][seed][method] = rows[round_]["accuracy"]
    return accuracy


def paired(values: dict[int, dict[str, float]], method: str, reference: str) -> SeedSummary:
    """``method`` - ``reference`` over the seeds (mean, 95 % interval)."""
    pairs = {s: {"a": v[method], "ref": v[reference]} for s, v in values.items()}
    return summarise(pairs, reference="ref")[0]


def write_report(folder: Path, accuracy: dict[str, dict[int, dict[int, dict[str, float]]]],
                 setting: str) -> None:
    """``budget-curve.md`` (means and paired gaps), ``budget-curve.csv`` and ``.png``."""
    lines = ["# The gap as the budget grows", "", setting, ""]
    rows = []
    for partition, by_budget in accuracy.items():
        lines += [f"## {partition}", "", "| method | " + " | ".join(
            f"B = {b}: accuracy (%)" for b in by_budget) + " |",
            "|---|" + "---|" * len(by_budget)]
        for method in METHODS:
            cells = [summarise({s: {"m": v[method]} for s, v in seeds.items()}, "m")[0]
                     for seeds in by_budget.values()]
            lines.append(f"| {method} | " + " | ".join(
                f"{100 * c.mean:.2f} ± {100 * c.std:.2f}" for c in cells) + " |")
        lines += ["", "| paired difference (points) | " + " | ".join(
            f"B = {b}" for b in by_budget) + " |", "|---|" + "---|" * len(by_budget)]
        for method, reference in PAIRS:
            cells = [paired(seeds, method, reference) for seeds in by_budget.values()]
            lines.append(f"| {method} − {reference} | " + " | ".join(_interval(c) for c in cells)
                         + " |")
            rows += [[partition, budget, method, reference, c.seeds, c.diff, c.diff_low,
                      c.diff_high] for budget, c in zip(by_budget, cells, strict=True)]
        lines.append("")
    (folder / "budget-curve.md").write_text("\n".join(lines))
    with (folder / "budget-curve.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["partition", "budget", "method", "reference", "seeds", "diff",
                         "diff_low", "diff_high"])
        writer.writerows(rows)
    _plot(folder / "budget-curve.png", accuracy)


def _interval(s: SeedSummary) -> str:
    text = f"{100 * s.diff:+.2f}"
    return text if math.isnan(s.diff_low) else \
        f"{text} [{100 * s.diff_low:+.2f}, {100 * s.diff_high:+.2f}]"


GAP_AXIS = (-6.0, 2.0)  # points; a gap or interval beyond it is drawn at the edge, labelled


def _plot(path: Path, accuracy: dict[str, dict[int, dict[int, dict[str, float]]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(accuracy), figsize=(11, 4.2), constrained_layout=True)
    low_edge, high_edge = GAP_AXIS

    def clip(value: float) -> float:  # a fraction, drawn in points within the axis
        return min(max(100 * value, low_edge), high_edge)

    for ax, (partition, by_budget) in zip(axes, accuracy.items(), strict=True):
        budgets = list(by_budget)
        for shift, method in enumerate(METHODS[1:]):
            xs = [i + 0.08 * (shift - 1.5) for i in range(len(budgets))]  # side by side
            gaps = [paired(by_budget[b], method, "vanilla") for b in budgets]
            means = [clip(g.diff) for g in gaps]
            lows = [0.0 if math.isnan(g.diff_low) else max(0.0, m - clip(g.diff_low))
                    for m, g in zip(means, gaps, strict=True)]
            highs = [0.0 if math.isnan(g.diff_high) else max(0.0, clip(g.diff_high) - m)
                     for m, g in zip(means, gaps, strict=True)]
            line = ax.errorbar(xs, means, yerr=[lows, highs], marker="o", capsize=4,
                               label=method)
            for x, mean, g in zip(xs, means, gaps, strict=True):
                if mean != 100 * g.diff:  # off the axis: say where it is
                    ax.annotate(f"{100 * g.diff:+.1f}", (x, mean), textcoords="offset points",
                                xytext=(4, 6), fontsize=8, color=line[0].get_color())
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set(xticks=range(len(budgets)), xticklabels=[str(b) for b in budgets],
               ylim=(low_edge - 0.3, high_edge), xlabel="budget (pooled epochs)",
               title=partition)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy − vanilla (points), mean and 95 % CI")
    axes[0].legend(loc="lower right")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budgets", default="7,15,31")
    parser.add_argument("--max-samples", type=int, default=15000)
    parser.add_argument("--model", default="tiny-cnn")
    parser.add_argument("--fedavg-lr", type=float, default=0.02)
    parser.add_argument("--output-dir", default="outputs/budget-curve")
    parser.add_argument("--run-config", default="", help="extra keys, e.g. \"batch-size=64\"")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = sorted(int(b) for b in args.budgets.split(","))
    for budget in budgets:
        rounds_of(budget)
    from flwr.common.config import parse_config_args

    base = {"task": "image", "model": args.model, "max-samples": args.max_samples,
            "fraction-train": 1.0, "fraction-evaluate": 0.0, "epoch-validation": False,
            "logger": "none", **(parse_config_args([args.run_config]) if args.run_config
                                 else {})}
    folder = Path(args.output_dir)
    start = time.monotonic()
    accuracy = grid(base, seeds, budgets, args.fedavg_lr, folder)
    setting = (f"task `image` (Fashion-MNIST), model `{args.model}`, 4 sites, max-samples "
               f"{args.max_samples}, seeds {args.seeds}, budgets {args.budgets} pooled epochs; "
               f"FedAvg constant LR {args.fedavg_lr:g}; co-learning's cycle the task's default; "
               f"extra run config: {args.run_config or 'none'}.")
    write_report(folder, accuracy, setting)
    print((folder / "budget-curve.md").read_text())
    print(f"[budget-curve] grid took {time.monotonic() - start:.0f} s (runs read back "
          "from runs/ included at no cost)")


if __name__ == "__main__":
    main()
