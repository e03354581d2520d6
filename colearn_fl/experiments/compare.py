"""The paper's comparison at equal budget: vanilla, ensemble, FedAvg and co-learning.

Every method uses the same sites (partitioning, seed), the same model and the same total
budget of sample-epochs B = (sum of co-learning's per-round epochs) x (pooled training size).
The federated methods run through ``simulate`` — the same ServerApp/ClientApp code path as
``flwr run`` — and FedAvg is ``CoLearn`` with a constant LR and fixed epochs (docs/protocol.md:
how methods are compared). Writes ``comparison.md``, ``comparison.csv`` and ``comparison.png``.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from colearn_fl.arrays import state_dict_to_arrays
from colearn_fl.config import AUTO, RunConfig
from colearn_fl.errors import ConfigError
from colearn_fl.experiments.nonfederated import ensemble, vanilla
from colearn_fl.experiments.seeds import SeedSummary, summarise, write_summary
from colearn_fl.server.history import read_history
from colearn_fl.server.preflight import check_data_dir
from colearn_fl.simulation import simulate
from colearn_fl.task_adapter import TaskAdapter, describe_unknown, unknown_keys
from strategies.arrays import count_bytes
from strategies.server_optimizers import DEFAULT_SERVER_LR, OPTIMIZER_KEYS

METHODS = ("vanilla", "ensemble", "fedavg", "fedavg-1", "colearn")
RUNS_FOLDER = "runs"  # one JSON per method and seed: its result and the config it ran with


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
            cpus_per_site: float, folder: Path,
            variants: dict[str, dict[str, Any]] | None = None) -> list[MethodResult]:
    """Run ``methods`` on the same sites and budget; write and return the table rows.

    A method is one of ``METHODS``; ``fedavg@0.01`` (or ``fedavg-1@0.01``) runs FedAvg at that
    constant LR instead of ``fedavg_lr``; a name of ``variants`` runs co-learning with that
    variant's run-config overrides. A method whose result is in ``folder/runs/`` from a run
    with the same configuration is read back, not run again.
    """
    if sites < 1:
        raise ConfigError(f"--sites {sites}: a comparison needs at least 1 site (default 4).")
    given = {**base, **{k: v for overrides in (variants or {}).values()
                        for k, v in overrides.items()}}
    unknown = unknown_keys(given)
    if unknown:  # compare runs registered tasks only: every key must mean something
        raise ConfigError(f"--run-config / --variant: {describe_unknown(unknown)}: not a key of "
                          "colearn-fl or of any task (docs/configuration.md lists them).")
    base = {**base, "output-dir": str(folder), "fraction-train": 1.0, "fraction-evaluate": 0.0}
    config = RunConfig.from_dict(base)
    total_epochs, task = sum(config.round_epochs()), TaskAdapter.of_run(config)
    runs = _plan(methods, variants or {}, fedavg_lr, total_epochs)
    if "accuracy" not in task.task.metrics:
        # The table, the curves and the ensemble's arg-max vote are single-label accuracy.
        raise ConfigError(f"colearn compare scores methods by accuracy; task={config.task!r} "
                          f"reports {', '.join(task.task.metrics)}. Use task='image' or 'speech', "
                          "or run the federated methods with flwr run and compare history.json.")
    for overrides in runs.values():  # every configuration is valid before anything runs
        RunConfig.from_dict({**base, **(overrides or {})})
    check_data_dir(config)
    if task.central_datamodule(config) is None:  # every method is scored on the test split
        raise ConfigError(f"colearn compare scores every method on the test split of data-dir="
                          f"{config.data.data_dir!r} (task={config.task!r}), and there is none "
                          "there. Point --run-config \"data-dir='...'\" at the task's data "
                          "(docs/data.md says where to get it).")
    results, pooled = [], 0
    for method, overrides in runs.items():
        key = {"method": method, "sites": sites, "budget-epochs": total_epochs,
               "run-config": {**base, **(overrides or {})}}
        cached = _cached(folder, method, key)
        if cached is not None:
            results.append(cached)
        elif method == "vanilla":
            out = vanilla(task, config, total_epochs)
            results.append(MethodResult("vanilla", out.accuracy, out.wall_s, 0,
                                        out.sample_epochs, 0, curve=out.curve))
        elif method == "ensemble":
            out = ensemble(task, config, sites, total_epochs)
            model_bytes = _model_bytes(task, config)
            results.append(MethodResult("ensemble", out.accuracy, out.wall_s, 0,
                                        out.sample_epochs, sites * model_bytes, curve=out.curve))
        else:
            # compare keeps its own record of what ran (runs/): a run it repeats is replaced
            run = {**base, **overrides, "run-name": method.replace("@", "-lr"), "overwrite": True}
            pooled = pooled if pooled else _pooled_size(task, config)
            results.append(_federated(method, run, sites, cpus_per_site, pooled))
        if cached is None:
            _store(folder, results[-1], key)
    write_comparison(folder, results, base, sites, fedavg_lr)
    return results


def _plan(methods: tuple[str, ...], variants: dict[str, dict[str, Any]], fedavg_lr: float,
          total_epochs: int) -> dict[str, dict[str, Any] | None]:
    """Each method's run-config overrides (``None`` for the non-federated ones), in table
    order: ``METHODS`` first, then the variants, in the order given."""
    clash = sorted(set(variants) & set(METHODS))
    if clash:
        raise ConfigError(f"--variant: {clash} is a method's name; name variants otherwise "
                          "(e.g. colearn-lr-min-0.01).")
    known = (*METHODS, *variants)
    unknown = sorted(m for m in methods if m.split("@")[0] not in known
                     or ("@" in m and m.split("@")[0] not in ("fedavg", "fedavg-1")))
    if unknown:
        raise ConfigError(f"--methods: {unknown} not known; use any of {', '.join(known)} "
                          "(fedavg@LR and fedavg-1@LR set FedAvg's constant LR).")
    order = {name: i for i, name in enumerate(known)}
    runs: dict[str, dict[str, Any] | None] = {}
    for method in sorted(dict.fromkeys(methods), key=lambda m: order[m.split("@")[0]]):
        name, _, lr_text = method.partition("@")
        if name in ("vanilla", "ensemble"):
            runs[method] = None
        elif name in ("fedavg", "fedavg-1"):
            lr = _lr(lr_text, method) if lr_text else fedavg_lr
            runs[method] = {"lr-schedule": "constant", "lr-max": lr, "lr-min": lr}
            if name == "fedavg-1":
                runs[method].update({"epochs-schedule": "fixed", "epochs-initial": 1,
                                     "epochs-budget": 0, "num-server-rounds": total_epochs})
        else:
            runs[method] = dict(variants.get(name, {}))
    return runs


def _lr(text: str, method: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"--methods {method}: the LR after @ must be a number > 0, e.g. "
                          "fedavg@0.01.")
    return value


def _cached(folder: Path, method: str, key: dict[str, Any]) -> MethodResult | None:
    """The stored result of ``method`` if it ran with exactly ``key``'s configuration."""
    path = folder / RUNS_FOLDER / f"{method}.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    if stored.get("key") != json.loads(json.dumps(key)):
        return None
    result = stored["result"]
    result["curve"] = [tuple(point) for point in result["curve"]]
    print(f"[colearn compare] {method}: reusing {path} (same configuration)")
    return MethodResult(**result)


def _store(folder: Path, result: MethodResult, key: dict[str, Any]) -> None:
    path = folder / RUNS_FOLDER / f"{result.method}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "result": asdict(result)}, indent=1))


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


def _pooled_size(task: TaskAdapter, config: RunConfig) -> int:
    """Training examples over all sites (the pooled data of the vanilla method)."""
    data = task.site_datamodule(config, partition=None)
    data.prepare_data()
    data.setup("fit")
    return len(data.train_dataloader().dataset)


def _model_bytes(task: TaskAdapter, config: RunConfig) -> int:
    return count_bytes(state_dict_to_arrays(task.module(config).state_dict()))


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
    data = config.data
    return (
        f"task `{config.task}`, model `{config.model or 'default'}`, {sites} sites, "
        f"partitioning `{data.partitioning}`"
        + (f" (alpha {data.dirichlet_alpha})" if data.partitioning == "dirichlet" else "")
        + f", seed {config.seed}, max-samples {data.max_samples}; co-learning "
        f"{config.schedule.lr_schedule} {_cycle_text(config)}, epochs "
        f"{config.schedule.epochs_schedule} {', '.join(map(str, config.round_epochs()))}, "
        f"{config.rounds.num_server_rounds} rounds; FedAvg constant LR {fedavg_lr:g}; server "
        f"optimizer {_optimizer(config)}; transport {config.transport.transport_dtype}.")


def _cycle_text(config: RunConfig) -> str:
    """The co-learning cycle as the runs used it (the task's numbers for ``'default'``)."""
    top, bottom = config.schedule.cycle(TaskAdapter.of_run(config).lr(config))
    if top == AUTO:
        return "auto (LR range test)" + ("" if bottom is None else f"->{bottom:g}")
    return f"{top:g}->{bottom:g}"


def compare_seeds(base: dict[str, Any], seeds: list[int], sites: int,
                  methods: tuple[str, ...], fedavg_lr: float, cpus_per_site: float,
                  folder: Path, variants: dict[str, dict[str, Any]] | None = None,
                  ) -> list[SeedSummary]:
    """``compare`` once per seed (in ``folder/seed-<s>``), then mean ± std and the paired
    differences to co-learning over the seeds (``seeds.md``, ``seeds.csv``, ``seeds.png``)."""
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {seeds}: give distinct seeds >= 0, e.g. --seeds 0,1,2.")
    accuracy = {}
    for seed in seeds:
        rows = compare({**base, "seed": seed}, sites, methods, fedavg_lr, cpus_per_site,
                       folder / f"seed-{seed}", variants)
        accuracy[seed] = {row.method: row.accuracy for row in rows}
    summaries = summarise(accuracy)
    shared = setting(RunConfig.from_dict({**base, "seed": seeds[0]}), sites, fedavg_lr)
    write_summary(folder, summaries, seeds,
                  shared.replace(f"seed {seeds[0]}", f"seeds {', '.join(map(str, seeds))}"))
    return summaries


def _optimizer(config: RunConfig) -> str:
    """The server optimizer under every federated method, with the keys it uses."""
    values = {k: getattr(config.server, k.replace("-", "_"))
              for k in OPTIMIZER_KEYS[config.server.server_optimizer]}
    if "server-lr" in values and not values["server-lr"]:  # 0 = the optimizer's default
        values["server-lr"] = DEFAULT_SERVER_LR[config.server.server_optimizer]
    settings = ", ".join(f"{k} {v:g}" for k, v in values.items())
    return f"`{config.server.server_optimizer}`" + (f" ({settings})" if settings else "")


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
