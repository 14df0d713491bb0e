"""The README is a short product page, and every relative link of it and of the pages under docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

from tests.conftest import REPO

README_MAX_LINES = 250
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")


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
