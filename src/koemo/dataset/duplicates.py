"""One rule for a Segment ID written on more than one annotation row, in KEMDy20 and KEMDy19.

A Segment ID names one recording, so it may hold one label. When several rows carry it:
- rows that say the same thing (every field but the running number `Numb`) are copies: the
  first is used, each other one is dropped as `duplicate_segment_id`;
- rows that differ in any field are a conflict: no row says which is right, so none of them is
  used; each is dropped as `conflicting_segment_id`, its message naming the fields that differ
  and their values, and where the other rows are.

Keeping the first of two conflicting rows would pick a label by file order; KEMDy19's known
case (a repeated id where the other actor's row is missing) shows a repeated id often hides
another utterance's row. `koemo.dataset.prepare` applies the rule over the rows of every
annotation file together (an id in two files is a repeat too), and `koemo.dataset.kemdy19`
within each rating file before it picks each utterance's label row, so both corpora follow
exactly this code. Every row left out is reported to prepare's collector (`out.drop_row`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from koemo.dataset.kemdy20 import ANNOTATION_COLUMNS


class RowDropper(Protocol):
    """Where a left-out row is reported: prepare's collector, or the bio-signal coverage."""

    def drop_row(self, segment_id: str, session: int, file: str | Path, reason: str, message: str,
                 input_problem: bool = True) -> None: ...

# What a row says: every field but the running number (`line` is where it is, not what).
CONTENT_COLUMNS = [c for c in ANNOTATION_COLUMNS if c != "numb"]
# A conflict's message shows the values of this many differing fields, then counts the rest.
_SHOWN_FIELDS = 3


def _same(a: object, b: object) -> bool:
    return (pd.isna(a) and pd.isna(b)) if (pd.isna(a) or pd.isna(b)) else a == b


def differing_fields(rows: list[pd.Series]) -> list[str]:
    """The content columns whose value is not the same on every row."""
    first = rows[0]
    return [c for c in CONTENT_COLUMNS if not all(_same(first[c], row[c]) for row in rows[1:])]


def _value(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return "empty" if pd.isna(value) else f"{float(value):g}"


def _describe(fields: list[str], rows: list[pd.Series]) -> str:
    shown = [f"{c} ({' / '.join(_value(row[c]) for row in rows)})" for c in fields[:_SHOWN_FIELDS]]
    more = len(fields) - _SHOWN_FIELDS
    return ", ".join(shown) + (f" and {more} more field(s)" if more > 0 else "")


def drop_repeated_ids(frames: list[tuple[int, Path, pd.DataFrame]], out: RowDropper
                      ) -> list[tuple[int, Path, pd.DataFrame]]:
    """`frames` (session, annotation file, rows with `line` and ANNOTATION_COLUMNS) without the
    rows the module's rule leaves out, each of them reported to `out` with its file and line."""
    where: dict[str, list[tuple[int, int]]] = {}
    for k, (_, _, frame) in enumerate(frames):
        for position, sid in enumerate(frame["segment_id"]):
            where.setdefault(sid, []).append((k, position))
    dropped: dict[int, list[int]] = {}
    for sid, places in where.items():
        if len(places) < 2:
            continue
        rows = [frames[k][2].iloc[position] for k, position in places]
        fields = differing_fields(rows)
        listed = ", ".join(f"{frames[k][1].name} line {row['line']}"
                           for (k, _), row in zip(places, rows))
        for n, ((k, position), row) in enumerate(zip(places, rows)):
            if not fields and n == 0:
                continue                                 # the first of identical copies is used
            session, path, _ = frames[k]
            head = f"{path} line {row['line']}: segment id {sid} is on {listed}"
            if fields:
                out.drop_row(sid, session, path, "conflicting_segment_id",
                             f"{head}, with different {_describe(fields, rows)}; none of them "
                             "is used")
            else:
                out.drop_row(sid, session, path, "duplicate_segment_id",
                             f"{head}; a copy of the first, which is used")
            dropped.setdefault(k, []).append(position)
    return [(session, path, frame.drop(index=frame.index[dropped[k]]).reset_index(drop=True))
            if k in dropped else (session, path, frame)
            for k, (session, path, frame) in enumerate(frames)]
