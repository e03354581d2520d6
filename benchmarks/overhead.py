"""Federation overhead: simulated co-learning wall time / the same training without Flower.

Both sides run the same rounds, sites, data, epochs, LR cycle, Lightning Trainers and central
evaluation (of the initial model too, as the federated history's round 0), and neither
validates at the sites (federated evaluation and ``epoch-validation`` off); the local side
replaces Flower (ServerApp, ClientApp actors, messages) by a plain loop that trains the sites
one after the other in this process and averages their weights. Target at the default
Fashion-MNIST configuration: <= 1.10. Both are measured in one run of this script, so the ratio
compares like with like on this machine. ``--repeats N`` measures N pairs in ABBA order
(local, federated, federated, local, ...), which cancels a machine that drifts steadily
faster or slower during the run; the ratio is total federated over total local time.

    python benchmarks/overhead.py                  # default configuration (~7 min, 2 cores)
    python benchmarks/overhead.py --repeats 2      # two pairs, ABBA (~14 min)
    python benchmarks/overhead.py --smoke          # tiny subset, for the test suite
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from colearn_fl.config import RunConfig
from colearn_fl.server.central_eval import central_evaluator
from colearn_fl.server.history import read_history
from colearn_fl.simulation import simulate
from colearn_fl.site.callbacks.lr_cycle import LRCycle
from colearn_fl.task_adapter import TaskAdapter
from colearn_fl.trainer import make_trainer
from strategies import CoLearn


def local_colearning(run_config: dict[str, Any], sites: int) -> float:
    """Co-learning as a plain in-process loop (no Flower); returns its wall time in seconds."""
    start = time.monotonic()
    config = RunConfig.from_dict(run_config)
    task = TaskAdapter.of_run(config)
    lr_max, lr_min = config.schedule.cycle(task.lr(config))  # the small CNN: numbers
    plan = config.schedule
    schedule = CoLearn(
        lr_schedule=plan.lr_schedule, lr_max=lr_max, lr_min=lr_min,
        epochs_schedule=plan.epochs_schedule, epochs_initial=plan.epochs_initial,
        epochs_mult=plan.epochs_mult)
    torch.manual_seed(config.seed)
    global_state = task.module(config).state_dict()
    evaluate = central_evaluator(task.central_datamodule_fn, run_config,
                                 config.training.precision)
    for server_round in range(config.rounds.num_server_rounds + 1):  # round 0: the initial model
        if server_round:
            global_state = _train_round(task, config, global_state,
                                        schedule.round_schedule(server_round), sites)
        if evaluate is not None:
            module = task.module(config)
            module.load_state_dict(global_state)
            evaluate(module)
    return time.monotonic() - start


def _train_round(task: TaskAdapter, config: RunConfig, global_state: dict[str, Any],
                 sent: dict[str, Any], sites: int) -> dict[str, Any]:
    """Every site trains the round's epochs from ``global_state``, one after the other; the
    weighted average of their states."""
    states, weights = [], []
    for site in range(sites):
        module = task.module(config)
        module.load_state_dict(global_state)
        data = task.site_datamodule(config, (site, sites))
        cycle = LRCycle(sent["lr-schedule"], sent["lr-max"], sent["lr-min"])
        trainer = make_trainer(config.training.precision, [cycle], sent["local-epochs"])
        trainer.fit(module, datamodule=data)
        states.append(module.state_dict())
        weights.append(len(data.train_dataloader().dataset))
    return _average(states, weights)


def _average(states: list[dict[str, torch.Tensor]], weights: list[int]) -> dict[str, Any]:
    total = sum(weights)
    averaged = {}
    for key, ref in states[0].items():
        value = sum(s[key].double() * (w / total) for s, w in zip(states, weights, strict=True))
        averaged[key] = value.round().to(ref.dtype) if not ref.is_floating_point() else \
            value.to(ref.dtype)
    return averaged


def federated_colearning(run_config: dict[str, Any], sites: int) -> tuple[float, float]:
    """The same job through Flower's simulation; its wall time and its strategy's time (from
    the strategy's start to its last round: without Ray's start and stop and the data check)
    in seconds."""
    start = time.monotonic()
    # One site at a time on as many threads as the local side: the same compute
    threads = torch.get_num_threads()
    folder = simulate({**run_config, "run-name": "federated", "site-threads": threads},
                      num_sites=sites, cpus_per_site=threads)
    federated = time.monotonic() - start
    return federated, float(read_history(Path(folder))[-1]["elapsed-s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny subset, 2 sites, 1 round")
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1,
                        help="pairs of measurements, in ABBA order (default: 1)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: expected at least 1 pair; e.g. --repeats 2")
    sites = 2 if args.smoke else args.sites
    local, federated, strategy = [], [], []
    for pair in range(args.repeats):
        order = ("local", "federated") if pair % 2 == 0 else ("federated", "local")
        for side in order:
            with tempfile.TemporaryDirectory() as tmp:
                # No validation at the sites after every local epoch (the federated side's
                # default): the local loop does none, and the two sides compute the same
                run_config: dict[str, Any] = {"output-dir": tmp, "fraction-evaluate": 0.0,
                                              "epoch-validation": False}
                if args.smoke:
                    run_config.update({"max-samples": 600, "num-server-rounds": 1})
                if side == "local":
                    local.append(local_colearning(run_config, sites))
                else:
                    wall, inside = federated_colearning(run_config, sites)
                    federated.append(wall)
                    strategy.append(inside)
    print(f"sites {sites}, pairs {args.repeats}, torch threads {torch.get_num_threads()}")
    for pair, (lo, fe, st) in enumerate(zip(local, federated, strategy, strict=True)):
        print(f"pair {pair + 1}: local {lo:8.1f} s | federated {fe:8.1f} s (strategy {st:.1f} s) "
              f"| ratio {fe / lo:.3f}")
    print(f"local (no Flower)        : {sum(local):8.1f} s")
    print(f"federated (simulate)     : {sum(federated):8.1f} s  (strategy {sum(strategy):.1f} s)")
    print(f"overhead ratio           : {sum(federated) / sum(local):8.3f}  (target <= 1.10)")
    print(f"overhead ratio, strategy : {sum(strategy) / sum(local):8.3f}  "
          "(without Ray start/stop and the data check)")


if __name__ == "__main__":
    main()
