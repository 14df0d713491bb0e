"""Copy generated tables into the README and the pages under docs/: each table that follows a marker line

    <!-- table: docs/results/v0.3/robustness/results.md :: Robustness on `lego-10`: noise, psnr -->

is replaced by the table under the first heading of that ``results.md`` (written by ``ds-compare``) that starts with
the text after ``::`` (without its ``#``). A marker may end with ``:: columns psnr, ssim, depth_l1`` to copy only
the first column and those columns, in the source's order (a column is named by its header's first word:
``depth_l1`` is ``depth_l1 (units) ↓``, not ``depth_l1_expected (units) ↓``). ``--check`` changes nothing and exits
1 if a table differs from its source, naming it (the test suite runs it), so the README's copies cannot drift from
the committed results.

    python scripts/readme_tables.py            # rewrite the README's marked tables
    python scripts/readme_tables.py --check    # only compare
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import List, Tuple

from depth_strategies.core.atomic import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- table: (?P<path>\S+) :: (?P<heading>.+?)(?: :: columns (?P<columns>.+?))? -->$")


class TableError(ValueError):
    """A marker whose source file or heading does not exist, or whose heading has no table under it."""


def source_table(path: Path, heading: str) -> List[str]:
    """The table (its ``|`` lines) under the first heading of ``path`` that starts with ``heading``."""
    if not path.is_file():
        raise TableError(f"{path}: no such file (run the ds-compare command that writes it)")
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#") and line.lstrip("#").strip().startswith(heading):
            table = []
            for below in lines[i + 1:]:
                if below.startswith("|"):
                    table.append(below)
                elif table or below.startswith("#"):
                    break
            if not table:
                raise TableError(f"{path}: no table under the heading {heading!r}")
            return table
    raise TableError(f"{path}: no heading starting with {heading!r}")


def _cells(row: str) -> List[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def select_columns(table: List[str], columns: List[str]) -> List[str]:
    """The first column of a markdown ``table`` and the columns whose header's first word is in ``columns``, in the
    table's order; raises TableError naming a requested column the table does not have."""
    header = _cells(table[0])
    keep = [0] + [i for i, name in enumerate(header) if i and name.split(" ")[0] in columns]
    missing = [c for c in columns if c not in {header[i].split(" ")[0] for i in keep}]
    if missing:
        raise TableError(f"no column {missing[0]!r} in the table (its columns: {', '.join(header[1:])})")
    return ["| " + " | ".join(_cells(row)[i] for i in keep) + " |" if n != 1 else "|" + "---|" * len(keep)
            for n, row in enumerate(table)]


def fill(readme: str, root: Path) -> Tuple[str, List[str]]:
    """The README with every marked table replaced by its source, and the markers whose table changed."""
    lines = readme.splitlines()
    out: List[str] = []
    changed: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        match = MARKER.match(line.strip())
        if not match:
            continue
        old = []
        while i < len(lines) and lines[i].startswith("|"):
            old.append(lines[i])
            i += 1
        new = source_table(root / match["path"], match["heading"])
        if match["columns"]:
            new = select_columns(new, [c.strip() for c in match["columns"].split(",")])
        if new != old:
            changed.append(f"{match['path']} :: {match['heading']}")
        out.extend(new)
    return "\n".join(out) + ("\n" if readme.endswith("\n") else ""), changed


def pages(given: List[Path] | None) -> List[Tuple[Path, Path]]:
    """(page, the folder its marker paths are relative to): the given files (each relative to its own folder), or
    README.md and every page under docs/ (relative to the repository root)."""
    if given:
        return [(path, path.parent) for path in given]
    return [(REPO / "README.md", REPO)] + [(path, REPO) for path in sorted((REPO / "docs").glob("*.md"))]


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if a table differs")
    parser.add_argument("--readme", type=Path, action="append",
                        help="a page to fill (repeatable); default: README.md and docs/*.md")
    args = parser.parse_args(argv)
    status = 0
    for page, root in pages(args.readme):
        text = page.read_text()
        try:
            new, changed = fill(text, root)
        except TableError as err:
            print(f"{page}: {err}", file=sys.stderr)
            return 2
        if args.check:
            for name in changed:
                print(f"{page}: the table from {name} differs from its source; run python "
                      f"scripts/readme_tables.py", file=sys.stderr)
            status = max(status, 1 if changed else 0)
            continue
        if changed:
            write_text_atomic(page, new)
        print(f"{page.relative_to(root) if page.is_relative_to(root) else page}: {len(changed)} table(s) updated")
    return status


if __name__ == "__main__":
    sys.exit(main())
