"""The README and docs/ stay true: links resolve, the results table is generated, documented commands exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from absl import flags

from common import cli
from conftest import ROOT, load_script

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "common" / "paper" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Flags of other programs that the documents show (pip, venv, pytest, git) and of TensorFlow's environment.
OTHER_PROGRAMS_FLAGS = {"--no-deps", "--no-build-isolation", "--system-site-packages", "--durations", "--help",
                        "--helpshort", "--quiet", "--disable-pip-version-check"}


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    result = set()
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("#!"):
            title = line.lstrip("#").strip().lower()
            result.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return result


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(document):
    for target in LINK.findall(document.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        assert path.exists(), f"{document.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(path), f"{document.name}: {target} names no heading of {path.name}"


def test_the_readme_table_is_the_generated_one():
    tool = load_script(ROOT / "tools" / "results_table.py")
    readme = (ROOT / "README.md").read_text()
    assert f"{tool.START}\n{tool.readme_block()}\n{tool.END}" in readme, "run python tools/results_table.py --write"


def test_the_readme_is_short_and_starts_with_what_a_newcomer_needs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings[:4] == ["## Install", "## Quick start", "## A first experiment", "## Tests"]
    for command in ("python -m pytest -q", "python -m pytest -q -m slow"):  # the commands CI runs
        assert command in readme and command in (ROOT / ".ci" / "run").read_text()


def test_the_documents_speak_from_the_readers_side():
    """No "here" or "this CPU": a reader's machine is not the one the figures were measured on."""
    for document in DOCUMENTS:
        text = document.read_text()
        found = re.findall(r"\bhere\b|\bthis (?:CPU|machine|2-core)\b", text, re.I)
        assert not found, f"{document.name}: {found}"


def documented_commands() -> tuple[set[str], set[str], set[str]]:
    """Scripts (``python path.py``), modules (``python -m name``) and flags (``--name``) in code."""
    scripts, modules, names = set(), set(), set()
    for document in DOCUMENTS:
        text = document.read_text()
        code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text))
        scripts |= set(re.findall(r"python3? ((?:[\w.-]+/)*[\w.-]+\.py)", code))
        modules |= set(re.findall(r"python3? -m ([\w.]+)", code))
        names |= set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", code))
    return scripts, modules, names


def known_flags() -> set[str]:
    """Every flag of the workspace scripts, the tools and the modules that take command lines."""
    known = set()
    for define in (lambda fv: cli.define_ann_flags(1e-4, 1, flag_values=fv),
                   lambda fv: cli.define_snn_flags(20, flag_values=fv)):
        fv = flags.FlagValues()
        define(fv)
        known |= {f"--{name}" for name in fv}
    for path in [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "tools").glob("*.py"),
                 *(ROOT / "examples").glob("*/*.py"), ROOT / "common" / "plots.py", ROOT / "common" / "checkpoint.py",
                 ROOT / "common" / "convert.py"]:
        known |= set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", path.read_text()))
        known |= {f"--{name}" for name in re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", path.read_text())}
    return known


def test_documented_scripts_modules_and_flags_exist():
    scripts, modules, names = documented_commands()
    workspaces = [ROOT, *(p.parent for p in ROOT.glob("**/Spiking_*.py"))]
    for script in scripts:
        if "<" in script:
            continue
        assert any((w / script).is_file() for w in workspaces), f"python {script}: no such script"
    for module in modules:
        if module in ("pytest", "pip", "venv"):
            continue
        assert importlib.util.find_spec(module) is not None, f"python -m {module}: no such module"
    unknown = sorted(names - known_flags() - OTHER_PROGRAMS_FLAGS)
    assert not unknown, f"documented flags that no script defines: {unknown}"

