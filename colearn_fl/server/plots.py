"""``curves.png``: a run's metric, LR cycles and local epochs, one panel each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from colearn_fl.server.history import Row
from strategies.cycles import lr_at

CURVES_PNG = "curves.png"


def plot_curves(path: Path, rows: Sequence[Row], metric: str) -> None:
    """Three panels: ``metric`` per round (central and federated), the LR cycle, epochs.

    The LR panel is drawn against cumulative local epochs, so each round's cycle appears with
    its true length.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    trained = [r for r in rows if r.get("local-epochs")]
    fig, (ax_m, ax_lr, ax_ep) = plt.subplots(3, 1, figsize=(7, 9), constrained_layout=True)
    for prefix in ("central", "federated"):
        points = [(r["round"], r[f"{prefix}-{metric}"]) for r in rows
                  if f"{prefix}-{metric}" in r]
        if points:
            ax_m.plot(*zip(*points, strict=True), marker="o", label=f"{prefix} {metric}")
    ax_m.set(xlabel="round", ylabel=metric, title=f"global model {metric}")
    if ax_m.lines:  # no metric at all when central-eval and federated evaluation are off
        ax_m.legend()
    start = 0.0
    for row in trained:
        epochs = row["local-epochs"]
        xs = [start + epochs * i / 50 for i in range(51)]
        ys = [lr_at(row["lr-schedule"], i / 50, row["lr-max"], row["lr-min"]) for i in range(51)]
        ax_lr.plot(xs, ys, color="tab:blue")
        start += epochs
    ax_lr.set(xlabel="cumulative local epochs", ylabel="learning rate",
              title="LR cycle sent by the server (CLR)")
    ax_ep.bar([r["round"] for r in trained], [r["local-epochs"] for r in trained])
    ax_ep.set(xlabel="round", ylabel="local epochs", title="local epochs per round (ILE)")
    for ax in (ax_m, ax_ep):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.savefig(path, dpi=100)
    plt.close(fig)
