"""Bytes on the wire per site and round, over the model's size, at each transport precision.

Runs one short co-learning simulation per ``transport-dtype`` and reads the byte counts the
strategy recorded from the actual records it sent and received. Expected: 2.0 at float32
(one copy down, one up), at most 1.01 at 16 bit (float16 travels as standard NumPy arrays
with a small header each, which any Flower client reads; bfloat16 as raw words); the accuracy
column shows what the precision costs on the same data, rounds and seed.

    python benchmarks/communication.py               # 4 sites, 8000 images, 2 rounds
    python benchmarks/communication.py --smoke       # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from colearn_fl.server.history import read_history
from colearn_fl.simulation import simulate
from strategies.transport import TRANSPORT_DTYPES


def measure(dtype: str, sites: int, samples: int, rounds: int, tmp: str) -> dict[str, float]:
    """One run at ``dtype``: bytes ratio per site and round, and the final central accuracy."""
    folder = simulate({"transport-dtype": dtype, "max-samples": samples, "output-dir": tmp,
                       "num-server-rounds": rounds, "fraction-evaluate": 0.0,
                       "run-name": dtype}, num_sites=sites, cpus_per_site=1)
    rows = read_history(Path(folder))[1:]
    per_site_round = [(r["bytes-sent"] + r["bytes-received"]) / r["sites-sent"] for r in rows]
    return {"model-bytes": rows[0]["model-bytes"],
            "ratio": sum(per_site_round) / len(rows) / rows[0]["model-bytes"],
            "accuracy": rows[-1]["central-accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sites, samples, rounds = (2, 400, 1) if args.smoke else (args.sites, args.samples,
                                                              args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        results = {d: measure(d, sites, samples, rounds, tmp) for d in TRANSPORT_DTYPES}
    print(f"{sites} sites, {samples} images, {rounds} rounds; model "
          f"{results['float32']['model-bytes'] / 1e6:.3f} MB at float32")
    print("transport-dtype | bytes per site per round / model bytes | central accuracy")
    for dtype, r in results.items():
        print(f"{dtype:>15} | {r['ratio']:.4f} | {100 * r['accuracy']:.2f} %")


if __name__ == "__main__":
    main()
