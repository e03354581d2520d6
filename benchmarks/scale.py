"""How the framework's time per round and the server's memory grow with the number of sites.

Each configuration runs in a fresh Python process (so its peak RSS is its own): a simulated
co-learning run of 2 rounds with one batch of 64 images per site (Fashion-MNIST), so the
sites' own compute is small and the framework's share shows. The sites time their own work
(a client mod around each training call); per round:

    framework time = round wall time - (sum of the sites' training calls) / parallel sites

where parallel sites = min(sites, 2 cores / CPUs per site). The server's peak RSS is the
driver process's (the ServerApp, its grid and the simulation's in-memory link state). Both are
printed as ratios to the smallest site count measured in the same run.

Runs stream (``deterministic=false``: each reply is folded into the running sum as it
arrives, server memory O(model)); ``--deterministic`` measures the default instead, which
holds a round's replies to sum them in a canonical order (memory O(sites x model)).

    python benchmarks/scale.py                 # tiny-cnn at 4, 16, 64, 128 sites
    python benchmarks/scale.py --mid           # vgg-19-bn (80 MB) at 4, 16, 32 sites
    python benchmarks/scale.py --mid --deterministic   # the same, replies held per round
    python benchmarks/scale.py --smoke         # 2 and 4 sites, for the test suite
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORES = 2
ROUNDS = 2


def timed(msg, context, call_next):  # a Flower client mod
    """Adds ``site-call-s`` (the seconds this site's training call took) to its reply."""
    start = time.monotonic()
    reply = call_next(msg, context)
    if msg.metadata.message_type == "train" and not reply.has_error():
        next(iter(reply.content.metric_records.values()))["site-call-s"] = (
            time.monotonic() - start)
    return reply


def one(sites: int, model: str, cpus: float, out: str,
        deterministic: bool = False) -> dict[str, float]:
    """One configuration, in this process: per-round figures and this process's peak RSS."""
    from colearn_fl.server.history import read_history
    from colearn_fl.simulation import simulate

    folder = simulate({"model": model, "max-samples": 64 * sites, "batch-size": 64,
                       "num-server-rounds": ROUNDS, "epochs-schedule": "fixed",
                       "fraction-evaluate": 0.0, "central-eval": False, "output-dir": out,
                       "run-name": f"{model}-{sites}", "deterministic": deterministic},
                      num_sites=sites, cpus_per_site=cpus, mods=[timed])
    rows = read_history(folder)[1:]
    parallel = min(sites, max(1, int(CORES / cpus)))
    # train-metrics are example-weighted means; every site holds 64 images, so mean x sites
    framework = [r["round-s"] - r["site-call-s"] * sites / parallel for r in rows]
    return {"sites": sites, "round-s": sum(r["round-s"] for r in rows) / len(rows),
            "framework-s": sum(framework) / len(framework),
            "model-mb": rows[0]["model-bytes"] / 1e6,
            "peak-rss-mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(sites: int, model: str, cpus: float, deterministic: bool) -> dict[str, float]:
    """``one`` in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as out:
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"from scale import one; print('RESULT', json.dumps(one({sites}, {model!r}, "
                f"{cpus}, {out!r}, {deterministic})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=3600, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                              cwd=Path(__file__).parents[1])
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{sites} sites of {model} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--mid", action="store_true", help="vgg-19-bn at 4, 16, 32 sites")
    parser.add_argument("--deterministic", action="store_true",
                        help="hold each round's replies and sum them in a canonical order")
    args = parser.parse_args()
    if args.smoke:
        model, counts, cpus = "tiny-cnn", (2, 4), 1.0
    elif args.mid:
        model, counts, cpus = "vgg-19-bn", (4, 16, 32), 0.5
    else:
        model, counts, cpus = "tiny-cnn", (4, 16, 64, 128), 0.25
    results = [measure(n, model, cpus, args.deterministic) for n in counts]
    base = results[0]
    print(f"model {model} ({base['model-mb']:.1f} MB), {ROUNDS} rounds, one batch of 64 per "
          f"site, {cpus:g} CPU per site on {CORES} cores, deterministic="
          f"{str(args.deterministic).lower()}")
    print("| sites | round (s) | framework (s) | framework / first | peak RSS (MB) | "
          "RSS - first (MB) | (RSS - first) / model |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        extra = r["peak-rss-mb"] - base["peak-rss-mb"]
        print(f"| {r['sites']} | {r['round-s']:.2f} | {r['framework-s']:.2f} | "
              f"{r['framework-s'] / base['framework-s']:.2f} | {r['peak-rss-mb']:.0f} | "
              f"{extra:.0f} | {extra / base['model-mb']:.2f} |")
    last = results[-1]
    slope = ((last["framework-s"] - base["framework-s"]) / (last["sites"] - base["sites"]))
    print(f"framework time slope: {slope:.4f} s per extra site per round; "
          f"{last['sites']} sites / {base['sites']} sites = "
          f"{last['framework-s'] / base['framework-s']:.2f} (linear: "
          f"{last['sites'] / base['sites']:.0f})")


if __name__ == "__main__":
    main()
