"""The README is an entry page: short, and every page or file it (or a docs page) links exists."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "paper" / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_readme_is_an_entry_page():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    text = page.read_text(encoding="utf-8")
    broken = [target for target, _ in LINK.findall(text)
              if not target.startswith(("http://", "https://", "mailto:"))
              and not (page.parent / target).exists()]
    assert not broken, f"{page.name}: broken links {broken}"


def test_every_docs_page_is_indexed_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in readme]
    assert not missing, f"docs pages the README's index does not list: {missing}"


def make_recipe(makefile: str, target: str) -> str:
    """The command lines of one Makefile target."""
    body = makefile.split(f"\n{target}:", 1)[1].split("\n", 1)[1]
    return "\n".join(line for line in body.split("\n\n", 1)[0].splitlines()
                     if line.startswith("\t"))


def test_make_demo_leaves_the_committed_results_alone():
    """`make demo` writes to a git-ignored folder and prints itself beside the committed
    paper/demo/; only `make demo-refresh` writes paper/demo/ and paper/README.md."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    variables = dict(re.findall(r"^(\w+)\s*\?=\s*(\S+)", makefile, re.M))
    demo = make_recipe(makefile, "demo")
    assert "--out $(DEMO_OUT)" in demo and "summary $(DEMO_OUT) --against paper/demo" in demo
    assert "--out paper/demo" not in demo and "--readme" not in demo
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert variables["DEMO_OUT"].rstrip("/") + "/" in ignored
    assert variables["REFRESH_WORKDIR"].startswith("data/")            # data/* is ignored
    refresh = make_recipe(makefile, "demo-refresh")
    assert "--out paper/demo" in refresh and "summary paper/demo --readme paper/README.md" in refresh
    assert "demo-refresh" in make_recipe(makefile, "help")
    two_commands = (ROOT / "README.md").read_text(encoding="utf-8").split("## Two commands")[1]
    two_commands = two_commands.split("\n## ")[0]
    assert variables["DEMO_OUT"] in two_commands and "make demo-refresh" in two_commands
