"""The docs run: every Python block of README.md and docs/ is run, and every link resolves.

Each fenced ``python`` block runs as a script of its own, in a fresh interpreter and an empty
folder, as a reader who pastes it into a file would run it. A block that is not meant to run
alone (a two-line excerpt, or one that needs a large data set or a GPU) says so in the page:
the line right before its fence is ``<!-- fragment: why -->``, and it is skipped with that
reason. docs/own-model.md is left to tests/colearn_fl/test_own_model_docs.py, which runs its
files as its walk-through does.

The links: every relative link of these pages names a file or folder in the repository, and
every ``#anchor`` a heading of the page it points to (GitHub's heading slugs).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Pages whose blocks another test runs.
RUN_ELSEWHERE = {"docs/own-model.md": "tests/colearn_fl/test_own_model_docs.py"}
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)")
PYTHON = ("python", "py", "python3")
MARKER = re.compile(r"^\s*<!--\s*fragment:(.*?)-->\s*$")
BLOCK_TIMEOUT_S = 300  # a block hangs rather than runs slowly past this (the longest: ~1 min)


@dataclass(frozen=True)
class Block:
    """A fenced Python block: its page, its number on the page (from 1), its first code line
    in the page, its code and, if it is not meant to run alone, why."""

    page: str
    index: int
    line: int
    code: str
    fragment: str | None

    @property
    def id(self) -> str:
        return f"{self.page}#{self.index}"


def fences(text: str) -> list[tuple[int, int, str, str]]:
    """Each fenced block of a Markdown text: (opening line index, closing line index, info
    word, code with the fence's indentation removed)."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = len(opening.group(1)), opening.group(2), opening.group(3)
        end = i + 1
        while end < len(lines) and not re.match(
                rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        body = [re.sub(rf"^ {{0,{indent}}}", "", line) for line in lines[i + 1:end]]
        found.append((i, end, info.lower(), "\n".join(body) + "\n"))
        i = end + 1
    return found


def page_blocks(page: Path) -> list[Block]:
    """The Python blocks of ``page``, with the reason of a ``<!-- fragment: -->`` marker on the
    line right before the fence (a marker with no reason gives ``''``)."""
    name, lines = page.relative_to(ROOT).as_posix(), page.read_text().splitlines()
    blocks = []
    for start, _end, info, code in fences(page.read_text()):
        if info not in PYTHON:
            continue
        marker = MARKER.match(lines[start - 1]) if start else None
        reason = marker.group(1).strip() if marker else None
        blocks.append(Block(name, len(blocks) + 1, start + 2, code, reason))
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in PAGES if page.relative_to(ROOT).as_posix() not in RUN_ELSEWHERE
            for block in page_blocks(page)]


def run_block(block: Block, folder: Path) -> None:
    """Run ``block`` as a script in ``folder``; an ``AssertionError`` with its output when it
    exits non-zero or hangs."""
    script = folder / "doc_block.py"  # not a name that shadows a module the block imports
    script.write_text(block.code)
    try:
        done = subprocess.run([sys.executable, script.name], cwd=folder, capture_output=True,
                              text=True, timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired as timeout:
        raise AssertionError(f"{block.page} line {block.line}: still running after "
                             f"{BLOCK_TIMEOUT_S} s") from timeout
    assert done.returncode == 0, (
        f"{block.page} line {block.line} exited {done.returncode}:\n"
        f"{(done.stdout + done.stderr)[-4000:]}")


@pytest.mark.parametrize("block", all_blocks(), ids=lambda block: block.id)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.fragment is not None:
        assert block.fragment, f"{block.id}: say why it is a fragment: <!-- fragment: why -->"
        pytest.skip(f"fragment: {block.fragment}")
    run_block(block, tmp_path)


def test_a_broken_block_fails(tmp_path: Path) -> None:
    broken = Block("docs/x.md", 1, 3, "import colearn_fl\ncolearn_fl.no_such_name\n", None)
    with pytest.raises(AssertionError, match=r"(?s)docs/x.md line 3 exited 1:\n.*AttributeError"):
        run_block(broken, tmp_path)


def test_every_python_block_is_collected_and_every_marker_precedes_one() -> None:
    for page in PAGES:
        text, name = page.read_text(), page.relative_to(ROOT).as_posix()
        python = [start for start, _end, info, _code in fences(text) if info in PYTHON]
        # counted without the parser: an opening fence it missed would go unrun
        counted = re.findall(r"^ *(?:```+|~~~+) *(?:python3?|py)\b", text, re.M | re.I)
        assert len(page_blocks(page)) == len(counted), name
        lines = text.splitlines()
        markers = [i for i, line in enumerate(lines) if MARKER.match(line)]
        # a marker sits right before a Python fence, or it marks nothing
        assert [i + 1 for i in markers if i + 1 in python] == [i + 1 for i in markers], name


# -- links ---------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link targets and markup dropped, lower case, only
    letters, digits, ``_``, ``-`` and spaces kept, each space a ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def prose(text: str) -> list[tuple[int, str]]:
    """The lines of a Markdown text outside fenced blocks, numbered from 1."""
    inside = set()
    for start, end, _info, _code in fences(text):
        inside.update(range(start, end + 1))
    return [(i + 1, line) for i, line in enumerate(text.splitlines()) if i not in inside]


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets ``-1``, ``-2``, ..."""
    seen: dict[str, int] = {}
    for _number, line in prose(page.read_text()):
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if heading:
            name = slug(heading.group(1))
            seen[name] = seen.get(name, -1) + 1
            if seen[name]:
                seen[f"{name}-{seen[name]}"] = 0
    return set(seen)


def links(page: Path) -> list[tuple[int, str]]:
    """The link targets in a page's prose (inline code left out), with their line numbers."""
    found = []
    for number, line in prose(page.read_text()):
        line = re.sub(r"`[^`]*`", "", line)
        found += [(number, target) for target in re.findall(r"\]\(([^)\s]+)\)", line)]
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for number, target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked here
            continue
        path, _, anchor = target.partition("#")
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{where}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading with that anchor")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_links_and_anchors_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_anchor_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Reply checks\n\n## `lr-max=\"auto\"`: the test\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#reply-checks), [ok](a.md#lr-maxauto-the-test), "
                    "[no](a.md#replies), [no](c.md), `[code](d.md)`\n")
    assert broken_links(page) == ["b.md:1: a.md#replies: no heading with that anchor",
                                  "b.md:1: c.md: no such file"]
