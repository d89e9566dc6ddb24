"""Where koemo's configs and notebooks are: the checkout, or the copy inside the package.

In a checkout (or an editable install of one) the repository's top-level `configs/` and
`notebooks/` are the source of truth. A wheel (`pip install koemo-*.whl`, `pip install git+URL`)
carries copies of them as package data under `koemo/_data/` (setup.py copies them at build time;
nothing under src/koemo/_data is committed), so `load_config("paper")`, the folds file and
`koemo reproduce` work without a checkout.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]   # src/koemo
PACKAGED_DATA = PACKAGE_DIR / "_data"


def find_repo_root(start: Path | None = None) -> Path | None:
    """The koemo checkout containing `start` (default: the current folder), if any."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "koemo").is_dir():
            return folder
    return None


def source_checkout() -> Path | None:
    """The checkout this koemo is imported from (a source tree or an editable install)."""
    root = PACKAGE_DIR.parents[1]
    return root if (root / "pyproject.toml").is_file() and root / "src" / "koemo" == PACKAGE_DIR \
        else None


def data_dir(name: str) -> Path:
    """`configs` or `notebooks`: the checkout's folder, else the packaged copy."""
    root = source_checkout()
    if root is not None and (root / name).is_dir():
        return root / name
    return PACKAGED_DATA / name


def configs_dir() -> Path:
    return data_dir("configs")


def notebooks_dir() -> Path:
    path = data_dir("notebooks")
    if not path.is_dir():
        raise FileNotFoundError(f"notebooks not found: neither a koemo checkout nor {path} "
                                "(a wheel built by this repository's setup.py carries them)")
    return path
