"""Writing a prepared workdir safely (koemo.dataset.prepare).

One `prepare` at a time per workdir (a file lock beside the table); every output is written
under a unique temporary name and renamed into place, so two runs never share a half-written
file; a write that fails (a full disk, a read-only folder) removes its temporary file and
ends in one KoemoInputError line naming the path instead of a traceback.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from koemo.config.workdir import REPORT_JSON, REPORT_MD, TABLE_FILE
from koemo.dataset.prepare_report import report_markdown
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    import pandas as pd
    from filelock import FileLock

LOCK_FILE = ".prepare.lock"


@contextlib.contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn an OSError while writing `what` at `path` into a one-line KoemoInputError."""
    try:
        yield
    except OSError as err:
        raise KoemoInputError(f"{path}: cannot write {what}: {err.strerror or err}") from err


def workdir_lock(workdir: Path) -> FileLock:
    """The workdir's prepare lock, its file created here so a read-only workdir fails with
    its path rather than inside filelock."""
    from filelock import FileLock

    lock_path = workdir / LOCK_FILE
    with writing(workdir, "the workdir"):
        workdir.mkdir(parents=True, exist_ok=True)
        os.close(os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o644))
    return FileLock(str(lock_path))


def replace_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to a unique temporary file beside `path`, then rename it to `path`."""
    with writing(path, f"{path.name}"):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            os.chmod(tmp, 0o644)             # mkstemp's 0600 would hide the table from others
            write(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def unreadable_inputs_error(problems: Sequence[object]) -> KoemoInputError:
    """One error naming every corpus file or folder that cannot be read, or whose name koemo
    does not recognise (CorpusFileErrors)."""
    listed = "; ".join(str(p) for p in problems)
    return KoemoInputError(
        f"{listed} ({len(problems)} corpus file(s) or folder(s) cannot be used as they are; "
        "nothing was prepared. Fix them, or pass --skip-unreadable to go on without them: the "
        "report then lists them)")


def write_outputs(workdir: Path, table: pd.DataFrame | None, report: dict) -> None:
    """The table (a DataFrame, or None: any old one is removed), then the report's Markdown,
    then its JSON: the JSON (holding the fingerprint) is the completion mark, so an interrupted
    run is never mistaken for a finished one. Each file is written under a unique temporary
    name and renamed; a failed write (full disk, read-only folder) removes its temporary file
    and raises KoemoInputError naming the file."""
    with writing(workdir, "the workdir"):
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / REPORT_JSON).unlink(missing_ok=True)
    if table is None:
        with writing(workdir / TABLE_FILE, "the utterance table"):
            (workdir / TABLE_FILE).unlink(missing_ok=True)  # never leave a stale table behind
    else:
        replace_atomic(workdir / TABLE_FILE, lambda tmp: table.to_parquet(tmp, index=False))
    markdown = report_markdown(report)
    replace_atomic(workdir / REPORT_MD, lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    text = json.dumps(report, indent=1, ensure_ascii=False, default=str)
    replace_atomic(workdir / REPORT_JSON, lambda tmp: tmp.write_text(text, encoding="utf-8"))
