"""``curves.png``: the global model's metric over the sites' per-epoch curves, the sites'
training loss, the LR cycles and the local epochs, one panel each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from colearn_fl.server.history import Row
from strategies.cycles import lr_at

CURVES_PNG = "curves.png"


def epoch_ends(rows: Sequence[Row]) -> dict[int, float]:
    """Each round's end on the cumulative local-epoch axis (round 0 at 0). Without epochs
    (rows of a strategy that sends none) a round counts as one epoch."""
    ends, total = {}, 0.0
    for row in rows:
        total += row.get("local-epochs", 0 if row["round"] == 0 else 1)
        ends[row["round"]] = total
    return ends


def site_series(rows: Sequence[Row], name: str) -> dict[str, list[tuple[float, float]]]:
    """Every site's per-epoch ``name`` (from ``site-reports``' ``epochs``) as points on the
    cumulative local-epoch axis, by site (its name, else its place in the round's reports)."""
    series: dict[str, list[tuple[float, float]]] = {}
    ends = epoch_ends(rows)
    for row, site, values in site_epochs(rows):
        start = ends[row["round"]] - row.get("local-epochs", len(values))
        points = series.setdefault(site, [])
        points += [(start + e + 1, v) for e, v in enumerate(values.get(name, [])) if v is not None]
    return {site: points for site, points in series.items() if points}


def site_epochs(rows: Sequence[Row]) -> Iterator[tuple[Row, str, dict[str, Any]]]:
    """Each row's site reports as (row, site name, its per-epoch curves): a site without a
    name is ``site #<i>``, its place in the round's reports."""
    for row in rows:
        for i, report in enumerate(row.get("site-reports", [])):
            yield row, report.get("site") or f"site #{i + 1}", report.get("epochs", {})


def plot_curves(path: Path, rows: Sequence[Row], metric: str) -> None:
    """Four panels against cumulative local epochs: ``metric`` of the global model after each
    round (central and federated) over each site's per-epoch validation ``metric``; each
    site's per-epoch training loss; the LR cycle sent with the LR the sites ended each epoch
    on; the local epochs per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_m, ax_loss, ax_lr, ax_ep) = plt.subplots(4, 1, figsize=(8, 13),
                                                      constrained_layout=True)
    ends = epoch_ends(rows)
    _sites(ax_m, site_series(rows, metric), f"{metric} (site, local model)")
    for prefix, style in (("central", "o-"), ("federated", "s--")):
        points = [(ends[r["round"]], r[f"{prefix}-{metric}"]) for r in rows
                  if isinstance(r.get(f"{prefix}-{metric}"), (int, float))]
        if points:
            ax_m.plot(*zip(*points, strict=True), style, color="black", lw=2,
                      label=f"global model, {prefix}")
    ax_m.set(xlabel="cumulative local epochs", ylabel=metric,
             title=f"{metric}: global model after each round, local models after each epoch")
    _sites(ax_loss, site_series(rows, "train-loss"), "training loss")
    ax_loss.set(xlabel="cumulative local epochs", ylabel="training loss",
                title="each site's training loss per local epoch")
    _lr_cycles(ax_lr, rows, ends)
    trained = [r for r in rows if r.get("local-epochs")]
    ax_ep.bar([r["round"] for r in trained], [r["local-epochs"] for r in trained])
    ax_ep.set(xlabel="round", ylabel="local epochs", title="local epochs per round (ILE)")
    from matplotlib.ticker import MaxNLocator

    ax_ep.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_m, ax_loss, ax_lr):
        if ax.lines:  # nothing to show when no site reported epochs and nothing was evaluated
            ax.legend(fontsize="small", ncol=2)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _sites(ax: Any, series: dict[str, list[tuple[float, float]]], what: str) -> None:
    """One thin line per site (many sites: the first ten named, the rest unlabelled)."""
    for i, (site, points) in enumerate(sorted(series.items())):
        ax.plot(*zip(*points, strict=True), ".-", lw=0.8, alpha=0.7,
                label=f"{site}" if i < 10 else None)


def _lr_cycles(ax: Any, rows: Sequence[Row], ends: dict[int, float]) -> None:
    """The cycle the server sent each round, drawn with its true length, and the LR at which
    each site ended each epoch (what it did)."""
    for n, row in enumerate(r for r in rows if r.get("local-epochs")):
        epochs, start = row["local-epochs"], ends[row["round"]] - row["local-epochs"]
        xs = [start + epochs * i / 50 for i in range(51)]
        ys = [lr_at(row["lr-schedule"], i / 50, row["lr-max"], row["lr-min"]) for i in range(51)]
        ax.plot(xs, ys, color="tab:blue", label="LR cycle sent" if n == 0 else None)
    for n, points in enumerate(site_series(rows, "lr").values()):
        ax.plot(*zip(*points, strict=True), "x", color="tab:orange", ms=4,
                label="sites' LR at each epoch's end" if n == 0 else None)
    ax.set(xlabel="cumulative local epochs", ylabel="learning rate",
           title="LR cycle sent by the server (CLR)")
