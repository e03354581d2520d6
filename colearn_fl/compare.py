"""The paper's comparison at equal budget: vanilla, ensemble, FedAvg and co-learning.

Every method uses the same sites (partitioning, seed), the same model and the same total
budget of sample-epochs B = (sum of co-learning's per-round epochs) x (pooled training size).
The federated methods run through ``simulate`` — the same ServerApp/ClientApp code path as
``flwr run`` — and FedAvg is ``CoLearn`` with a constant LR and fixed epochs (docs/protocol.md:
how methods are compared). Writes ``comparison.md``, ``comparison.csv`` and ``comparison.png``.
"""

from __future__ import annotations

import csv
import platform
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.config import RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.nonfederated import ensemble, vanilla
from colearn_fl.results import read_history
from colearn_fl.seeds import SeedSummary, summarise, write_summary
from colearn_fl.simulation import simulate
from colearn_fl.task_adapter import TaskAdapter
from strategies.arrays import count_bytes
from strategies.server_optimizers import DEFAULT_SERVER_LR, OPTIMIZER_KEYS

METHODS = ("vanilla", "ensemble", "fedavg", "fedavg-1", "colearn")


@dataclass
class MethodResult:
    """One row of the comparison table and its accuracy-vs-budget curve."""

    method: str
    accuracy: float
    wall_s: float
    rounds: int
    sample_epochs: int
    bytes: int
    s_per_round: float = 0.0
    mb_per_round: float = 0.0
    curve: list[tuple[int, float]] = field(default_factory=list)


def compare(base: dict[str, Any], sites: int, methods: tuple[str, ...], fedavg_lr: float,
            cpus_per_site: float, folder: Path) -> list[MethodResult]:
    """Run ``methods`` on the same sites and budget; write and return the table rows."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"--methods: {unknown} not known; use any of {', '.join(METHODS)}.")
    config = RunConfig.from_dict({**base, "output-dir": str(folder)})
    base = {**base, "output-dir": str(folder), "fraction-train": 1.0, "fraction-evaluate": 0.0}
    epochs = config.round_epochs()
    total_epochs, task = sum(epochs), TaskAdapter.named(config.task)
    if "accuracy" not in task.task.metrics:
        # The table, the curves and the ensemble's arg-max vote are single-label accuracy.
        raise ConfigError(f"colearn compare scores methods by accuracy; task={config.task!r} "
                          f"reports {', '.join(task.task.metrics)}. Use task='image' or 'speech', "
                          "or run the federated methods with flwr run and compare history.json.")
    fedavg = {"lr-schedule": "constant", "lr-max": fedavg_lr, "lr-min": fedavg_lr}
    runs: dict[str, dict[str, Any]] = {
        "colearn": {},
        "fedavg": fedavg,
        "fedavg-1": {**fedavg, "epochs-schedule": "fixed", "epochs-initial": 1,
                     "num-server-rounds": total_epochs},
    }
    results, pooled = [], 0
    for method in (m for m in METHODS if m in methods):
        if method == "vanilla":
            out = vanilla(task, base, total_epochs)
            results.append(MethodResult("vanilla", out.accuracy, out.wall_s, 0,
                                        out.sample_epochs, 0, curve=out.curve))
        elif method == "ensemble":
            out = ensemble(task, base, sites, total_epochs)
            model_bytes = _model_bytes(task, base)
            results.append(MethodResult("ensemble", out.accuracy, out.wall_s, 0,
                                        out.sample_epochs, sites * model_bytes, curve=out.curve))
        else:
            run = {**base, **runs[method], "run-name": method}
            pooled = pooled if pooled else _pooled_size(task, base)
            results.append(_federated(method, run, sites, cpus_per_site, pooled))
    write_comparison(folder, results, base, sites, fedavg_lr)
    return results


def _federated(method: str, run: dict[str, Any], sites: int, cpus_per_site: float,
               pooled: int) -> MethodResult:
    """Simulate one federated method; its curve's x axis counts ``pooled`` per local epoch."""
    start = time.monotonic()
    folder = simulate(run, num_sites=sites, cpus_per_site=cpus_per_site)
    wall = time.monotonic() - start
    rows = read_history(folder)
    trained = [r for r in rows if r.get("local-epochs")]
    curve, budget = [(0, rows[0]["central-accuracy"])], 0
    for row in trained:
        budget += row["local-epochs"] * pooled
        curve.append((budget, row["central-accuracy"]))
    sent = sum(r.get("bytes-sent", 0) + r.get("bytes-received", 0) for r in trained)
    return MethodResult(method, rows[-1]["central-accuracy"], wall, len(trained), budget, sent,
                        s_per_round=sum(r["round-s"] for r in trained) / len(trained),
                        mb_per_round=sent / len(trained) / 1e6, curve=curve)


def _pooled_size(task: TaskAdapter, run: dict[str, Any]) -> int:
    """Training examples over all sites (the pooled data of the vanilla method)."""
    data = task.site_datamodule(run, partition=None)
    data.prepare_data()
    data.setup("fit")
    return len(data.train_dataloader().dataset)


def _model_bytes(task: TaskAdapter, run: dict[str, Any]) -> int:
    return count_bytes(state_dict_to_arrays(task.module_fn(run).state_dict()))


def write_comparison(folder: Path, results: list[MethodResult], base: dict[str, Any],
                     sites: int, fedavg_lr: float) -> None:
    """``comparison.md`` (table + setting), ``comparison.csv`` and ``comparison.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["method", "accuracy", "wall_s", "rounds", "sample_epochs", "bytes",
               "s_per_round", "mb_per_round"]
    with (folder / "comparison.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in results:
            writer.writerow([getattr(r, c) for c in columns])
    lines = [
        f"# Comparison at equal budget ({date.today().isoformat()}, {platform.node()}, "
        f"{platform.processor() or platform.machine()})", "",
        setting(RunConfig.from_dict(base), sites, fedavg_lr), "",
        "| method | accuracy (%) | wall (s) | rounds | sample-epochs | MB communicated "
        "| s/round | MB/round |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.method} | {100 * r.accuracy:.2f} | {r.wall_s:.0f} | {r.rounds or '-'} "
                     f"| {r.sample_epochs} | {r.bytes / 1e6:.1f} | "
                     f"{r.s_per_round:.1f} | {r.mb_per_round:.2f} |")
    (folder / "comparison.md").write_text("\n".join(lines) + "\n")
    _plot(folder / "comparison.png", results)


def setting(config: RunConfig, sites: int, fedavg_lr: float) -> str:
    """One sentence stating what every method of a comparison shares."""
    return (
        f"task `{config.task}`, model `{config.model or 'default'}`, {sites} sites, "
        f"partitioning `{config.partitioning}`"
        + (f" (alpha {config.dirichlet_alpha})" if config.partitioning == "dirichlet" else "")
        + f", seed {config.seed}, max-samples {config.max_samples}; co-learning "
        f"{config.lr_schedule} {config.lr_max:g}->{config.lr_min:g}, epochs "
        f"{config.epochs_schedule} {', '.join(map(str, config.round_epochs()))}, "
        f"{config.num_server_rounds} rounds; FedAvg constant LR {fedavg_lr:g}; server "
        f"optimizer {_optimizer(config)}; transport {config.transport_dtype}.")


def compare_seeds(base: dict[str, Any], seeds: list[int], sites: int,
                  methods: tuple[str, ...], fedavg_lr: float, cpus_per_site: float,
                  folder: Path) -> list[SeedSummary]:
    """``compare`` once per seed (in ``folder/seed-<s>``), then mean ± std and the paired
    differences to co-learning over the seeds (``seeds.md``, ``seeds.csv``, ``seeds.png``)."""
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {seeds}: give distinct seeds >= 0, e.g. --seeds 0,1,2.")
    accuracy = {}
    for seed in seeds:
        rows = compare({**base, "seed": seed}, sites, methods, fedavg_lr, cpus_per_site,
                       folder / f"seed-{seed}")
        accuracy[seed] = {row.method: row.accuracy for row in rows}
    summaries = summarise(accuracy)
    shared = setting(RunConfig.from_dict({**base, "seed": seeds[0]}), sites, fedavg_lr)
    write_summary(folder, summaries, seeds,
                  shared.replace(f"seed {seeds[0]}", f"seeds {', '.join(map(str, seeds))}"))
    return summaries


def _optimizer(config: RunConfig) -> str:
    """The server optimizer under every federated method, with the keys it uses."""
    values = {k: getattr(config, k.replace("-", "_"))
              for k in OPTIMIZER_KEYS[config.server_optimizer]}
    if "server-lr" in values and not values["server-lr"]:  # 0 = the optimizer's default
        values["server-lr"] = DEFAULT_SERVER_LR[config.server_optimizer]
    settings = ", ".join(f"{k} {v:g}" for k, v in values.items())
    return f"`{config.server_optimizer}`" + (f" ({settings})" if settings else "")


def _plot(path: Path, results: list[MethodResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for r in results:
        xs, ys = zip(*r.curve, strict=True) if r.curve else ((), ())
        ax.plot(xs, [100 * y for y in ys], marker="o", label=f"{r.method} ({100 * r.accuracy:.2f})")
    ax.set(xlabel="cumulative sample-epochs", ylabel="test accuracy (%)",
           title="accuracy at equal budget")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
