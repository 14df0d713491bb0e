"""docs/development.md's Layout section is the package's map: it names every module and folder, and nothing else."""

from __future__ import annotations

import re

from tests.conftest import REPO


def layout_block() -> str:
    page = (REPO / "docs" / "development.md").read_text()
    section = page[page.index("## Layout\n"):]
    return section[section.index("```\n") + 4:section.index("\n```", section.index("```\n") + 4)]


def test_layout_names_every_module_and_subpackage_of_the_package():
    block = layout_block()
    named_modules = set(re.findall(r"\b([a-z_]+\.py)\b", block))
    named_folders = set(re.findall(r"\b([a-z_]+)/", block))
    package = REPO / "depth_strategies"
    modules = {p.name for p in package.rglob("*.py") if p.name != "__init__.py" and "__pycache__" not in p.parts}
    folders = {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert named_modules == modules, f"missing: {modules - named_modules}; stale: {named_modules - modules}"
    assert folders <= named_folders, f"folders not in docs/development.md: {folders - named_folders}"
