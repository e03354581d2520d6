"""The ``colearn`` command: what ``flwr run`` does not do (comparisons, listings, deployment files).

``colearn compare`` runs vanilla, ensemble, FedAvg and co-learning on the same sites at equal
budget and writes a table and a plot; ``colearn tasks`` lists the tasks and their models;
``colearn runs`` lists the runs in an output-dir and ``colearn show`` one run round by round;
``colearn deploy`` writes the certificates, SuperNode keys and per-site data folders of a
deployment (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from flwr.common.config import parse_config_args

from colearn_fl.config import RunConfig
from colearn_fl.errors import ColearnError, ConfigError
from tasks.partition import PARTITIONINGS

DEFAULTS = RunConfig.defaults()  # the one default of every run-config key
# compare's flags that set a run-config key; left out, the key is --run-config's or its default
KEY_FLAGS = ("task", "partitioning", "dirichlet-alpha", "seed", "max-samples")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``colearn`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ColearnError as error:
        print(f"colearn: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colearn", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")
    tasks = commands.add_parser("tasks", help="list the tasks and their models")
    tasks.set_defaults(handler=_tasks)
    cmp = commands.add_parser("compare", help="vanilla / ensemble / FedAvg / co-learning table")
    _key_flag(cmp, "task")
    cmp.add_argument("--sites", type=int, default=4)
    _key_flag(cmp, "partitioning", choices=PARTITIONINGS)
    _key_flag(cmp, "dirichlet-alpha", type=float)
    cmp.add_argument("--rounds", type=int, default=None,
                     help="co-learning rounds (default: num-server-rounds)")
    _key_flag(cmp, "seed", type=int)
    cmp.add_argument("--seeds", default="",
                     help="comma-separated seeds (e.g. 0,1,2): every method per seed, then "
                          "mean ± std and paired differences to co-learning (seeds.md)")
    _key_flag(cmp, "max-samples", type=int, help="0 = all (quick runs: e.g. 2000)")
    cmp.add_argument("--fedavg-lr", type=float, default=0.02,
                     help="FedAvg's constant LR (the best of 0.01/0.02/0.05 on IID here)")
    cmp.add_argument("--methods", default="all",
                     help="comma-separated subset of vanilla,ensemble,fedavg,fedavg-1,colearn "
                          "and the variants' names; fedavg@0.01 runs FedAvg at that LR")
    cmp.add_argument("--variant", action="append", default=[], metavar="NAME:RUN-CONFIG",
                     help="a co-learning variant, e.g. \"lr-min-0.01: lr-min=0.01\" "
                          "(repeatable; each is added to --methods)")
    cmp.add_argument("--cpus-per-site", type=float, default=1.0)
    cmp.add_argument("--ray-address", default="",
                     help="run the federated methods on this Ray cluster (e.g. 127.0.0.1:6379; "
                          "default: $RAY_ADDRESS, else a private Ray per run)")
    cmp.add_argument("--run-config", default="",
                     help="more run-config overrides, as for flwr run: \"lr-max=0.1 ...\"")
    cmp.add_argument("--output-dir", type=Path, default=Path("outputs/compare"))
    cmp.add_argument("--name", default="", help="result folder name (default: the partitioning)")
    cmp.set_defaults(handler=_compare)
    _add_runs(commands)
    _add_deploy(commands)
    stop = commands.add_parser(
        "stop-superlink", help="stop the local SuperLink `flwr run` started (and its SuperExec)")
    stop.add_argument("--flwr-home", type=Path, default=None,
                      help="its FLWR_HOME (default: $FLWR_HOME, else ~/.flwr)")
    stop.set_defaults(handler=_stop_superlink)
    demo = commands.add_parser("speech-demo", help="SYNTHETIC Speech Commands folder (espeak-ng)")
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--per-word", type=int, default=100, help="speakers, so clips per word")
    demo.set_defaults(handler=_speech_demo)
    return parser


def _key_flag(parser: argparse.ArgumentParser, key: str, help: str = "", **kwargs: Any) -> None:
    """``--<key>``: sets the run-config key; absent, --run-config's value or the key's default
    (``RunConfig.defaults()``, the same default flwr run uses)."""
    parser.add_argument(f"--{key}", default=None, **kwargs,
                        help=f"{help + '; ' if help else ''}run-config {key} "
                             f"(default: --run-config's, else {DEFAULTS[key]!r})")


def _add_runs(commands: argparse._SubParsersAction) -> None:
    """``colearn runs`` and ``colearn show RUN``: past and running runs of an output-dir."""
    where = {"type": Path, "default": Path(DEFAULTS["output-dir"]),
             "help": f"the run config's output-dir (default: {DEFAULTS['output-dir']!r})"}
    runs = commands.add_parser("runs", help="the runs in an output-dir, newest first")
    runs.add_argument("--output-dir", **where)
    runs.set_defaults(handler=_runs)
    show = commands.add_parser("show", help="one run round by round, with each site's part")
    show.add_argument("run", help="a run folder's name under --output-dir, or its path")
    show.add_argument("--output-dir", **where)
    show.set_defaults(handler=_show)


def _add_deploy(commands: argparse._SubParsersAction) -> None:
    """``colearn deploy certs|node-keys|shards``: files for flower-superlink / supernode."""
    deploy = commands.add_parser("deploy", help="TLS certificates, SuperNode keys, site shards")
    steps = deploy.add_subparsers(required=True, metavar="step")
    certs = steps.add_parser("certs", help="self-signed CA + SuperLink server certificate")
    certs.add_argument("--out", type=Path, required=True)
    certs.add_argument("--hostnames", nargs="+", default=["localhost", "127.0.0.1"],
                       help="names / IPs SuperNodes dial (the certificate's SANs)")
    certs.set_defaults(handler=_deploy_certs)
    keys = steps.add_parser("node-keys", help="one EC P-384 key pair per SuperNode")
    keys.add_argument("--out", type=Path, required=True)
    keys.add_argument("--names", nargs="+", required=True, help="e.g. site-0 site-1")
    keys.set_defaults(handler=_deploy_node_keys)
    shards = steps.add_parser("shards", help="one Fashion-MNIST folder per site (demo data)")
    shards.add_argument("--out", type=Path, required=True)
    shards.add_argument("--sites", type=int, required=True)
    shards.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    shards.add_argument("--max-samples", type=int, default=DEFAULTS["max-samples"],
                        help="cap on each site's train and test images (0 = its whole share)")
    shards.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    shards.add_argument("--partitioning", default=DEFAULTS["partitioning"], choices=PARTITIONINGS)
    shards.add_argument("--dirichlet-alpha", type=float, default=DEFAULTS["dirichlet-alpha"])
    shards.set_defaults(handler=_deploy_shards)


def _tasks(args: argparse.Namespace) -> int:
    """Each task's metrics and models, with the paper's Table 1 volume column per model."""
    from colearn_fl.arrays import state_dict_to_arrays
    from colearn_fl.task_adapter import TaskAdapter
    from strategies.arrays import count_bytes
    from strategies.transport import encode
    from tasks import list_tasks

    print("task | model | parameters | MB per site per round (down + up): float32 / float16")
    for name in list_tasks():
        adapter = TaskAdapter.named(name)
        task = adapter.task
        for model in task.models():
            module = adapter.module_fn({"task": name, "model": model})
            arrays = state_dict_to_arrays(module.state_dict())
            params = sum(p.numel() for p in module.parameters())
            full, half = count_bytes(arrays), count_bytes(encode(arrays, "float16"))
            print(f"{name} | {model} | {params:,} | {2 * full / 1e6:.3f} / {2 * half / 1e6:.3f}")
        print(f"{name}: metrics {', '.join(task.metrics)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from colearn_fl.experiments.compare import METHODS, compare, compare_seeds

    if args.ray_address:  # simulate() reads it, as Ray's own tools do
        os.environ["RAY_ADDRESS"] = args.ray_address
    base = parse_config_args([args.run_config]) if args.run_config.strip() else {}
    for key in KEY_FLAGS:
        value = getattr(args, key.replace("-", "_"))
        if value is not None:
            base[key] = value
    if args.rounds is not None:
        base["num-server-rounds"] = args.rounds
    variants = dict(_variant(text) for text in args.variant)
    methods = METHODS if args.methods == "all" else tuple(args.methods.split(","))
    methods = (*methods, *(v for v in variants if v not in methods))
    folder = args.output_dir.resolve() / (
        args.name or str(base.get("partitioning", DEFAULTS["partitioning"])))
    if args.seeds.strip():
        compare_seeds(base, _seeds(args.seeds), args.sites, methods, args.fedavg_lr,
                      args.cpus_per_site, folder, variants)
        print((folder / "seeds.md").read_text())
    else:
        compare(base, args.sites, methods, args.fedavg_lr, args.cpus_per_site, folder, variants)
        print((folder / "comparison.md").read_text())
    print(f"table, csv and plot in {folder}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from colearn_fl.experiments.runs import runs_lines

    print("\n".join(runs_lines(args.output_dir)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from colearn_fl.experiments.runs import show_lines

    print("\n".join(show_lines(args.run, args.output_dir)))
    return 0


def _stop_superlink(args: argparse.Namespace) -> int:
    import os

    from colearn_fl.deploy.superlink import stop_flwr_home

    home = args.flwr_home or Path(os.environ.get("FLWR_HOME", Path.home() / ".flwr"))
    stopped = stop_flwr_home(home.expanduser().resolve())
    print(f"stopped {len(stopped)} process(es) of the SuperLink under {home}: {stopped}"
          if stopped else f"no SuperLink started under {home} is running")
    return 0


def _variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"NAME: key=value ..."`` -> (NAME, run-config overrides)."""
    name, colon, overrides = text.partition(":")
    if not colon or not name.strip() or not overrides.strip():
        raise ConfigError(f"--variant {text!r}: expected NAME: RUN-CONFIG, e.g. "
                          "--variant \"lr-min-0.01: lr-min=0.01\".")
    return name.strip(), parse_config_args([overrides.strip()])


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. "
                          "--seeds 0,1,2.") from None


def _speech_demo(args: argparse.Namespace) -> int:
    from tasks.speech.synth import synthesize_speech_commands

    print(synthesize_speech_commands(args.out, args.per_word))
    return 0


def _deploy_certs(args: argparse.Namespace) -> int:
    from colearn_fl.deploy.tls import make_certificates

    for name, path in make_certificates(args.out, args.hostnames).items():
        print(f"{name}: {path}")
    return 0


def _deploy_node_keys(args: argparse.Namespace) -> int:
    from colearn_fl.deploy.tls import make_node_keys

    for name, (private, public) in make_node_keys(args.out, args.names).items():
        print(f"{name}: private {private} | public {public}")
    return 0


def _deploy_shards(args: argparse.Namespace) -> int:
    from tasks.image.shards import write_site_shards

    folders = write_site_shards(args.source, args.out, args.sites, args.seed, args.max_samples,
                                args.partitioning, args.dirichlet_alpha)
    for folder in folders:
        print(f"data-dir='{folder.resolve()}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
