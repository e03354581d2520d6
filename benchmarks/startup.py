"""Time from ``flwr run .`` to the first co-learning round starting, cold and warm.

Cold: a fresh FLWR_HOME, so ``flwr run`` first starts its managed local SuperLink. Warm: a
second run against that SuperLink. The first round starts when the ServerApp logs
``[ROUND 1/``. Every process the script caused to start is stopped at the end.

    python benchmarks/startup.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from colearn_fl.deploy.superlink import stop_flwr_home

REPO = Path(__file__).resolve().parents[1]
FLWR = Path(sys.executable).with_name("flwr")


def time_to_first_round(env: dict[str, str], out: str) -> float:
    """Seconds from launching ``flwr run --stream`` to its ``[ROUND 1/`` line."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(FLWR), "run", str(REPO), "--stream",
         "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
         "--run-config", f"max-samples=200 num-server-rounds=1 output-dir='{out}'"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "[ROUND 1/" in line:
                return time.monotonic() - start
        raise RuntimeError("the run ended without starting round 1")
    finally:
        proc.wait(timeout=300)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "flwr-home"
        env = {**os.environ, "FLWR_HOME": str(home),
               "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
        try:
            cold = time_to_first_round(env, tmp)
            warm = time_to_first_round(env, tmp)
        finally:
            stop_flwr_home(home)
    print(f"flwr run -> round 1 starts: cold {cold:.1f} s (SuperLink start included), "
          f"warm {warm:.1f} s")


if __name__ == "__main__":
    main()
