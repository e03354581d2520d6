"""README's first command installs the Fashion-MNIST package where apt's package lists are
still empty (a fresh image): it updates them when the package is not found, and only then.
Run against a stand-in ``apt-get`` that behaves as apt does on such an image."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
# apt-get without package lists: "install" fails as apt does until "update" has run
FAKE_APT = """#!/bin/sh
echo "$@" >> "$APT_LOG"
case "$1" in
  update) touch "$APT_LISTS"; exit 0 ;;
  install) [ -f "$APT_LISTS" ] && exit 0
           echo "E: Unable to locate package dataset-fashion-mnist" >&2; exit 100 ;;
esac
"""


def apt_part() -> str:
    """The first command's apt steps: everything before it creates the venv."""
    block = re.search(r"## The two commands.*?```bash\n(.*?)\n```", README.read_text(),
                      re.S)
    assert block, "README has no first command"
    return block.group(1).split(" && python3 -m venv")[0]


@pytest.mark.parametrize(("lists", "calls"), [
    (False, ["install -y dataset-fashion-mnist", "update",
             "install -y dataset-fashion-mnist"]),
    (True, ["install -y dataset-fashion-mnist"]),
])
def test_apt_lists_are_updated_only_when_the_package_is_not_found(
        tmp_path: Path, lists: bool, calls: list[str]) -> None:
    # Prepare: apt-get (and sudo, for a non-root run) on PATH as stand-ins
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(FAKE_APT)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    if lists:
        (tmp_path / "lists").touch()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "APT_LOG": str(tmp_path / "log"), "APT_LISTS": str(tmp_path / "lists")}
    # Execute
    done = subprocess.run(["bash", "-c", apt_part()], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    # Assert
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "log").read_text().splitlines() == calls
