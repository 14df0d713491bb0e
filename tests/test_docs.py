"""The README is a short product page, and every relative link of it and of the pages under docs/ resolves: to an
existing file and, where it names an anchor of a Markdown page, to one of that page's headings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Set, Tuple

from tests.conftest import REPO

README_MAX_LINES = 250
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def pages() -> List[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def relative_links(page: Path) -> List[Tuple[str, Path]]:
    """(the link as written, the file it points to) for every ``[text](path)`` or ``[text](path#anchor)`` of
    ``page`` outside code, skipping web links and links to an anchor of the page itself."""
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text()))
    links = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        links.append((target, (page.parent / path).resolve()))
    return links


def test_every_relative_markdown_link_points_to_an_existing_file():
    broken = [f"{page.relative_to(REPO)}: {target}" for page in pages()
              for target, path in relative_links(page) if not path.exists()]
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_the_link_check_sees_links_and_skips_web_and_anchor_links(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# There\n")
    page.write_text("[a](there.md) [b](there.md#part) [c](https://example.org/x.md) [d](#here)\n"
                    "![e](missing.png)\n`[f](in-code.md)`\n```\n[g](in-fence.md)\n```\n[h\ni](two-lines.md)\n")
    found = {target: path.exists() for target, path in relative_links(page)}
    assert found == {"there.md": True, "there.md#part": True, "missing.png": False, "two-lines.md": False}


def test_readme_is_a_product_page_of_at_most_250_lines():
    lines = len((REPO / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to a page under docs/"


def heading_anchors(page: Path) -> Set[str]:
    """The anchors GitHub gives the headings of ``page``: lower case, every character but letters, digits, spaces,
    ``-`` and ``_`` dropped, spaces as ``-``; a repeated heading gets ``-1``, ``-2``, ..."""
    anchors, seen = set(), {}
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", re.sub(r"<[^>]+>", "", heading).strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def anchored_links(page: Path) -> List[Tuple[str, Path, str]]:
    """(the link as written, the Markdown page it points to, the anchor) for every link of ``page`` outside code
    that names an anchor of a Markdown page of this repository (the page itself for ``#anchor``)."""
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text()))
    links = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        dest = (page.parent / path).resolve() if path else page
        if dest.suffix == ".md" and dest.exists():
            links.append((target, dest, anchor))
    return links


def test_every_anchor_of_a_link_names_a_heading_of_its_page():
    broken = [f"{page.relative_to(REPO)}: {target}" for page in pages()
              for target, dest, anchor in anchored_links(page) if anchor not in heading_anchors(dest)]
    assert not broken, "links to headings that do not exist (renamed?):\n" + "\n".join(broken)


def test_heading_anchors_follow_github_s_rule(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Real sensor depth: the `redkitchen` (version 0.6, 5 seeds)\n## A — B × 2\n## Notes\n"
                    "### Notes\n```\n# not a heading\n```\n[x](#notes-1) [y](#gone)\n")
    assert heading_anchors(page) == {"real-sensor-depth-the-redkitchen-version-06-5-seeds", "a--b--2", "notes",
                                     "notes-1"}
    assert [(t, a in heading_anchors(d)) for t, d, a in anchored_links(page)] == [("#notes-1", True), ("#gone", False)]
