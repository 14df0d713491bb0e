"""The marked tables of README.md and docs/*.md are copies of tables ``ds-compare`` wrote (scripts/readme_tables.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "readme_tables.py"


def run_script(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True)


def test_every_marked_readme_table_equals_its_committed_source():
    result = run_script("--check")
    assert result.returncode == 0, result.stderr
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert any("<!-- table: " in page.read_text() for page in pages)


SOURCE = """# Results

### Robustness on `s`: noise, psnr ↑ (mean)

| method | clean (0) |
|---|---|
| depth-soft | 20.00 (+1.00†) |

### Robustness on `s`: noise, depth_l1 ↓ (mean)

| method | clean (0) |
|---|---|
| depth-soft | 0.050 (-0.010†) |
"""

README = """# Project

Noise, depth:

<!-- table: results.md :: Robustness on `s`: noise, depth_l1 -->
| method | clean (0) |
|---|---|
| depth-soft | 0.040 (-0.020†) |

After.
"""


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "results.md").write_text(SOURCE)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    return readme


def test_check_names_a_table_that_drifted_and_changes_nothing(tiny):
    result = run_script("--check", "--readme", str(tiny))
    assert result.returncode == 1
    assert "results.md :: Robustness on `s`: noise, depth_l1" in result.stderr
    assert tiny.read_text() == README


def test_fill_copies_the_table_under_the_named_heading_only_and_keeps_the_text_around_it(tiny):
    assert run_script("--readme", str(tiny)).returncode == 0
    text = tiny.read_text()
    assert "| depth-soft | 0.050 (-0.010†) |" in text and "0.040" not in text and "20.00" not in text
    assert text.startswith("# Project\n\nNoise, depth:\n\n<!-- table: ") and text.endswith("\n\nAfter.\n")
    assert run_script("--check", "--readme", str(tiny)).returncode == 0


def test_a_marker_naming_a_missing_heading_stops_with_the_file_and_heading(tiny):
    tiny.write_text(README.replace("noise, depth_l1", "sparse, depth_l1"))
    result = run_script("--check", "--readme", str(tiny))
    assert result.returncode == 2
    assert "results.md: no heading starting with 'Robustness on `s`: sparse, depth_l1'" in result.stderr


def test_a_column_selection_keeps_the_first_column_and_the_named_ones_by_their_first_word(tmp_path):
    (tmp_path / "results.md").write_text(
        "## Scene `s`\n\n| method | psnr (dB) ↑ | depth_l1 (units) ↓ | depth_l1_expected (units) ↓ |\n"
        "|---|---|---|---|\n| depth-baseline | 20.00 ± 1.00 | 0.060 ± 0.010 | 0.070 ± 0.010 |\n\nAfter.\n")
    page = tmp_path / "page.md"
    page.write_text("<!-- table: results.md :: Scene `s` :: columns depth_l1 -->\n| stale |\n")
    assert run_script("--readme", str(page)).returncode == 0
    assert page.read_text().splitlines()[1:] == [
        "| method | depth_l1 (units) ↓ |", "|---|---|", "| depth-baseline | 0.060 ± 0.010 |"]
    page.write_text("<!-- table: results.md :: Scene `s` :: columns lpips -->\n| stale |\n")
    result = run_script("--check", "--readme", str(page))
    assert result.returncode == 2 and "no column 'lpips'" in result.stderr
