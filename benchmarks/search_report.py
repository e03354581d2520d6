"""Summarise a multi-seed search of ``colearn compare`` runs against the co-learning targets.

Reads every ``<folder>/seed-<s>/runs/<method>.json`` that ``colearn compare --seeds`` (with
``--variant`` co-learning variants) wrote, and prints, as Markdown:

- every method's accuracy, mean ± std over the seeds;
- for the co-learning configuration ``--colearn`` (default: ``colearn``): its paired
  difference to vanilla and to the best FedAvg at the same rounds (the ``fedavg@LR`` whose
  mean is highest: one LR for all seeds, chosen by mean), each with a 95 % interval;
- the bytes co-learning needs to reach FedAvg-1's final accuracy (its first round at or above
  it, over FedAvg-1's total bytes), per seed.

    python benchmarks/search_report.py outputs/search/q-dirichlet --colearn colearn-swa
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from colearn_fl.experiments.compare import RUNS_FOLDER
from colearn_fl.experiments.seeds import SeedSummary, summarise


def load(folder: Path) -> dict[int, dict[str, dict]]:
    """``runs[seed][method]`` = the stored result of every method of every seed."""
    runs: dict[int, dict[str, dict]] = {}
    for path in sorted(folder.glob(f"seed-*/{RUNS_FOLDER}/*.json")):
        seed = int(path.parent.parent.name.removeprefix("seed-"))
        runs.setdefault(seed, {})[path.stem] = json.loads(path.read_text())["result"]
    return runs


def complete(runs: dict[int, dict[str, dict]]) -> dict[int, dict[str, float]]:
    """Accuracy of the methods that ran with every seed."""
    shared = set.intersection(*(set(r) for r in runs.values()))
    return {seed: {m: r[m]["accuracy"] for m in sorted(shared)} for seed, r in runs.items()}


def bytes_to_reach(curve: list, mb_per_round: float, target: float) -> float | None:
    """MB co-learning sent until its central accuracy first reached ``target``."""
    for rounds, (_, accuracy) in enumerate(curve[1:], start=1):
        if accuracy >= target:
            return rounds * mb_per_round
    return None


def _ci(s: SeedSummary) -> str:
    interval = "" if math.isnan(s.diff_low) else (
        f" [{-100 * s.diff_high:+.2f}, {-100 * s.diff_low:+.2f}]")
    return f"{-100 * s.diff:+.2f}{interval}"


def report(folder: Path, colearn: str) -> str:
    runs = load(folder)
    accuracy = complete(runs)
    summaries = {s.method: s for s in summarise(accuracy, reference=colearn)}
    lines = [f"**{folder.name}** (seeds {', '.join(map(str, sorted(runs)))}; reference "
             f"`{colearn}`)", "", "| method | accuracy (%), mean ± std | "
             f"`{colearn}` − method (points) [95 % CI] |", "|---|---|---|"]
    for name, s in sorted(summaries.items(), key=lambda kv: -kv[1].mean):
        lines.append(f"| {name} | {100 * s.mean:.2f} ± {100 * s.std:.2f} | "
                     f"{'-' if name == colearn else _ci(s)} |")
    fedavg = [m for m in summaries if m.startswith("fedavg@")]
    if fedavg:
        best = max(fedavg, key=lambda m: summaries[m].mean)
        lines += ["", f"Best FedAvg at the same rounds (by mean): `{best}`; `{colearn}` − it: "
                  f"{_ci(summaries[best])} points."]
    if "vanilla" in summaries:
        lines.append(f"`{colearn}` − vanilla: {_ci(summaries['vanilla'])} points.")
    one = [m for m in summaries if m.startswith("fedavg-1")]
    for name in one:
        ratios = []
        for seed in sorted(runs):
            mine, theirs = runs[seed][colearn], runs[seed][name]
            spent = bytes_to_reach(mine["curve"], mine["mb_per_round"], theirs["accuracy"])
            total = theirs["bytes"] / 1e6
            ratios.append("not reached" if spent is None else f"{100 * spent / total:.0f} %")
        lines.append(f"Bytes `{colearn}` needs to reach `{name}`'s final accuracy, per seed: "
                     f"{', '.join(ratios)} of `{name}`'s.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--colearn", default="colearn",
                        help="the co-learning configuration the targets are measured for")
    args = parser.parse_args()
    for folder in args.folders:
        print(report(folder, args.colearn), end="\n\n")


if __name__ == "__main__":
    main()
