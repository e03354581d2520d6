"""The package layout: three layers, colearn_fl grouped by side, a cheap ``import colearn_fl``.

Imports are read from the source (``ast``), so a test fails the day a module imports across a
boundary, whether or not that code path runs in the suite.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "colearn_fl"
SIDES = ("site", "server", "experiments", "deploy")
# The top-level modules that put the sides together (and the lazy public face).
JOINERS = ("__init__", "apps", "simulation", "cli")


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def offending(paths: list[Path], prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        bad = sorted(n for n in imported(path) if n.split(".")[0] in prefixes
                     or any(n == p or n.startswith(p + ".") for p in prefixes))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_strategies_import_no_torch_lightning_or_higher_layer() -> None:
    assert offending(modules(ROOT / "strategies"), (
        "torch", "pytorch_lightning", "lightning", "colearn_fl", "tasks")) == {}


def test_tasks_import_no_flower_and_no_bridge() -> None:
    assert offending(modules(ROOT / "tasks"), ("flwr", "colearn_fl", "strategies")) == {}


def test_top_level_modules_do_not_import_a_side_except_the_joiners() -> None:
    top = [p for p in PACKAGE.glob("*.py") if p.stem not in JOINERS]
    assert offending(top, tuple(f"colearn_fl.{side}" for side in SIDES)) == {}


def test_the_server_side_never_imports_the_site_side() -> None:
    assert offending(modules(PACKAGE / "server"), ("colearn_fl.site",)) == {}


def test_the_apps_sides_import_no_joiner() -> None:
    # (experiments run whole federations, so they may call simulate)
    sides = [p for side in ("site", "server", "deploy") for p in modules(PACKAGE / side)]
    assert offending(sides, tuple(f"colearn_fl.{name}" for name in JOINERS[1:])) == {}


@pytest.mark.parametrize("folder", ["", *SIDES, "site/callbacks"])
def test_each_package_stays_small(folder: str) -> None:
    # about a dozen modules per side and at the top (__init__ not counted), ~350 lines each
    files = [p for p in (PACKAGE / folder).glob("*.py") if p.stem != "__init__"]
    assert len(files) <= 12, sorted(p.name for p in files)
    long = {p.name: n for p in files if (n := len(p.read_text().splitlines())) > 360}
    assert long == {}


def test_import_colearn_fl_loads_neither_torch_nor_flower_until_a_factory_is_used() -> None:
    # Execute: a fresh interpreter, as a user's script or `flwr` starts
    probe = (
        "import sys, colearn_fl\n"
        "before = sorted(m for m in ('torch', 'flwr', 'pytorch_lightning') if m in sys.modules)\n"
        "colearn_fl.client_app\n"
        "after = sorted(m for m in ('torch', 'flwr', 'pytorch_lightning') if m in sys.modules)\n"
        "print(before, after)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    # Assert
    assert result.stdout.strip() == "[] ['flwr']"  # the handlers import torch when they run


def test_the_default_apps_load_without_torch_or_lightning() -> None:
    # Prepare: Flower's simulation loads the ClientApp before it starts Ray, and the server
    # thread imports torch meanwhile; a light module lets Ray start at once.
    probe = ("import sys, colearn_fl.apps\n"
             "print(sorted(m for m in ('torch', 'pytorch_lightning', 'ray') if m in sys.modules))")
    # Execute
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    # Assert
    assert result.stdout.strip() == "[]"


def test_the_public_face_names_what_it_has() -> None:
    import colearn_fl

    assert colearn_fl.__all__ == ["LRCycle", "client_app", "server_app", "shard", "simulate",
                                  "site_of"]
    with pytest.raises(AttributeError, match="public names are LRCycle, client_app"):
        colearn_fl.ServerSchedule  # noqa: B018 - renamed LRCycle; no alias is kept
