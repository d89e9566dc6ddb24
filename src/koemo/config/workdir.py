"""What a prepared workdir records about its inputs, readable without importing `prepare`.

`koemo prepare` writes `W/prepare_report.json` last; its `input_fingerprint` names the corpus
files and data rules the table came from. Feature stores and training runs record it, so
outputs of an earlier preparation are rebuilt, not reused. Kept apart from `prepare` so that
the feature store (which `prepare` builds) can read it without an import circle.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    import pandas as pd

TABLE_FILE = "utterances.parquet"
REPORT_JSON = "prepare_report.json"
REPORT_MD = "prepare_report.md"


def data_fingerprint(workdir: str | Path) -> str | None:
    """The input fingerprint of the table prepared in `workdir` (None before `prepare`)."""
    try:
        report = json.loads((Path(workdir) / REPORT_JSON).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return report.get("input_fingerprint")


def load_utterances(workdir: str | Path) -> pd.DataFrame:
    import pandas as pd

    path = Path(workdir) / TABLE_FILE
    if not path.is_file():
        raise KoemoInputError(f"{path}: not found; run `koemo prepare` for this workdir first")
    return pd.read_parquet(path)


def require_writable(folder: str | Path, purpose: str) -> None:
    """A KoemoInputError naming `folder` (or, before it exists, the parent it would be made in)
    when nothing can be written there (read-only, not yours, read-only file system): found
    before any heavy work, instead of a traceback halfway through."""
    folder = Path(folder).expanduser().absolute()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".koemo-write-check-", dir=existing)
    except OSError as err:
        raise KoemoInputError(f"{existing}: cannot write here ({err.strerror or err}); "
                              f"{purpose}") from err
    os.close(fd)
    os.unlink(probe)
