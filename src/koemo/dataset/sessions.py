"""Per-session accounting of `koemo prepare`: no session vanishes unnamed.

Every session folder under `wav/` and every session the annotation rows name gets its counts:
rows read, kept and dropped (rows read = kept + dropped), wav files, those an annotation row
refers to and those none does (wavs = with a row + without one). A session folder holding
recordings but no annotation row at all (its annotation file is missing, header-only, skipped
as unreadable, or saved under a name koemo does not read, such as a browser's
`Sess02_eval (1).csv`) is one finding, named with its wav count and why it has no rows, not
hundreds of files without a row mixed with true orphans. That is also how a partial corpus
looks (sessions recorded but not yet annotated). The wavs and transcripts nobody refers to in
a session that does have rows are listed one by one, as before.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from koemo.dataset.collector import Collector
    from koemo.dataset.sources import Corpus

SESSION_FOLDER_RE = re.compile(r"^Session(\d+)$")


def session_folder(session: int) -> str:
    return f"Session{session:02d}"


def _files_per_folder(folders: Any) -> dict[str, Counter]:
    """wav and txt files per session folder (`folders.names` keys start with the folder)."""
    found: dict[str, Counter] = {}
    for key, names in folders.names.items():
        counts = found.setdefault(key.split("/")[0], Counter())
        for name in names:
            if name.endswith((".wav", ".txt")):
                counts[name[-3:]] += 1
    return found


def _why_no_rows(folder: str, annotation_root: Path, corpus: Corpus, skipped: list[str]) -> str:
    """Why a session folder has no annotation row: its annotation file(s) and what is wrong."""
    match = SESSION_FOLDER_RE.match(folder)
    if not match or session_folder(int(match.group(1))) != folder:
        return "not a SessionNN folder, so no annotation file names its recordings"
    parts = []
    for name in corpus.annotation_names(int(match.group(1))):
        path = annotation_root / name
        if str(path) in skipped:
            parts.append(f"{name} skipped as unreadable (--skip-unreadable)")
        elif path.is_file():
            parts.append(f"{name} has no data rows")
        else:
            stand_ins = [Path(p).name for p in skipped if corpus.expected_name(Path(p).name) == name]
            parts.append(f"no {name}" + (f"; {', '.join(stand_ins)} skipped, its name not "
                                         "recognised (--skip-unreadable)" if stand_ins else ""))
    return "; ".join(parts)


def account_sessions(folders: Any, out: Collector, records: list[dict], corpus: Corpus,
                     annotation_root: Path,
                     skipped: list[str]) -> dict[str, dict]:
    """Counts per session folder (module docstring); reports to `out` each session folder
    without annotation rows (`session_problem`) and each file without a row elsewhere
    (`problem_file`). `records` are the kept rows, `out.dropped` the dropped ones."""
    files = _files_per_folder(folders)
    kept = Counter(session_folder(r["session"]) for r in records)
    dropped = Counter(session_folder(d["session"]) for d in out.dropped)
    unclaimed: dict[str, list[Path]] = {}
    for path in folders.unclaimed():
        unclaimed.setdefault(path.relative_to(folders.root).parts[0], []).append(path)
    sessions = {}
    for folder in sorted(set(files) | set(kept) | set(dropped)):
        orphans = unclaimed.get(folder, [])
        wavs = files.get(folder, Counter())
        without = sum(p.suffix == ".wav" for p in orphans)
        sessions[folder] = {"rows_read": kept[folder] + dropped[folder], "rows_kept": kept[folder],
                            "rows_dropped": dropped[folder], "wavs": wavs["wav"],
                            "wavs_with_row": wavs["wav"] - without, "wavs_without_row": without}
        if not sessions[folder]["rows_read"] and orphans:
            why = _why_no_rows(folder, annotation_root, corpus, skipped)
            out.session_problem(folders.root / folder, "session_without_rows",
                                f"{folders.root / folder}: {wavs['wav']} wav file(s), none with "
                                f"an annotation row ({why})", wavs=wavs["wav"], txts=wavs["txt"])
            continue
        for path in orphans:
            kind = path.suffix[1:]
            out.problem_file(path, f"{kind}_without_row",
                             f"{path}: {kind} file without an annotation row")
    return sessions
