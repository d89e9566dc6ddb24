"""Every number quoted in README.md or docs/ with a source tag is the number in its committed
result file (tests/figure_sources.py says how a tag reads)."""
from __future__ import annotations

import pytest

from tests.figure_sources import REPO, mismatch, tagged_numbers

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_tagged_number_matches_its_source(page):
    problems = [why for why in (mismatch(*tag) for tag in tagged_numbers(page.read_text(encoding="utf-8")))
                if why]
    assert not problems, f"{page.name}: " + "; ".join(problems)


def test_the_performance_page_quotes_its_figures_from_files():
    tags = tagged_numbers((REPO / "docs" / "performance.md").read_text(encoding="utf-8"))
    assert len(tags) >= 8 and all(number for number, _, _ in tags)


def test_a_number_that_is_not_its_files_is_caught(tmp_path):
    text = ("found 6 <!-- source: benchmarks/results/vad-boundaries.json:default.recordings_found -->, "
            "99.5 s <!-- source: benchmarks/results/vad-boundaries.json:default.recordings -->, "
            "3 <!-- source: benchmarks/results/nowhere.json:x -->")
    quoted = tagged_numbers(text)
    assert [q for q, _, _ in quoted] == ["6", "99.5", "3"]
    assert mismatch(*quoted[0]) is None
    assert "is 8.00" in mismatch(*quoted[1]) and "not a committed file" in mismatch(*quoted[2])
