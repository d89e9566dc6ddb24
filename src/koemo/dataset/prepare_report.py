"""The report of `koemo prepare` as Markdown and as the summary it prints."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from koemo.config.workdir import REPORT_MD
from koemo.dataset import kemdy19
from koemo.dataset.leakage import markdown_lines as leakage_lines

NO_SIGNAL_POLICY_NOTE = (
    "These rows keep their place in every split. `data.silent_audio: keep` (configs/paper.yaml) "
    "trains and scores on them as the original did (digital silence gets what librosa gives for "
    "zeros: 0 dB in every bin); `drop` (configs/corrected.yaml) leaves them out of training and "
    "scoring.")


def input_problem_counts(dropped_rows: list[dict], problem_files: list[dict],
                         sessions_without_rows: list[dict]) -> dict[str, int]:
    """The input problems of a prepare run by kind: dropped rows that are input problems (not
    the label policy's drops), problem files, and session folders without annotation rows. The
    report's `input_problems` is their sum and the summary prints both, so the two agree."""
    return {"rows": sum(bool(d["input_problem"]) for d in dropped_rows),
            "files": len(problem_files), "sessions": len(sessions_without_rows)}


def _problems_text(report: dict) -> str:
    """`1029 input problems (3 rows, 1026 files)`, from the report's own lists."""
    counts = input_problem_counts(report["dropped_rows"], report["problem_files"],
                                  report["sessions_without_rows"])
    parts = ", ".join(f"{n} {kind if n != 1 else kind[:-1]}" for kind, n in counts.items() if n)
    total = report["input_problems"]
    return (f"{total} input problem{'s' if total != 1 else ''}"
            + (f" ({parts})" if parts else ""))


def _session_rows(report: dict) -> list[tuple]:
    return [(folder, c["rows_read"], c["rows_kept"], c["rows_dropped"], c["wavs"],
             c["wavs_with_row"], c["wavs_without_row"])
            for folder, c in report["sessions"].items()]


def _md_table(header: list[str], rows: Iterable[Sequence[object]]) -> list[str]:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def report_markdown(report: dict) -> str:
    lines = ["# koemo prepare report", "",
             f"- corpus: `{report['data_root']}` ({report.get('corpus', 'kemdy20')})",
             *kemdy19.report_lines(report.get("kemdy19")), f"- workdir: `{report['workdir']}`",
             f"- label policy: {report['label_policy']} (classes {', '.join(report['classes'])})",
             f"- rows read: {report['rows_read']}, kept: {report['rows_kept']}, "
             f"dropped: {report['rows_dropped']}; {_problems_text(report)}",
             f"- input fingerprint: `{report['input_fingerprint']}`",
             "- skipped, unreadable or not recognised (--skip-unreadable): "
             + (", ".join(f"`{p}`" for p in report.get("skipped_unreadable") or []) or "none"),
             "", "## Kept rows per label", ""]
    lines += _md_table(["label", "rows"], report["labels_kept"].items())
    lines += ["", "## Dropped rows and problem files per reason", ""]
    lines += _md_table(["reason", "count"], report["counts_by_reason"].items())
    lines += ["", "## Splits", ""]
    lines += _md_table(["column", "train", "valid", "test"],
                       [(c, s.get("train", 0), s.get("valid", 0), s.get("test", 0))
                        for c, s in report["splits"].items()])
    lines += ["", "## Sessions", "",
              "Rows read = kept + dropped; wav files = with an annotation row + without one.", ""]
    lines += _md_table(["session folder", "rows read", "kept", "dropped", "wav files",
                        "with a row", "without a row"], _session_rows(report))
    lines += ["", "## Session folders without annotation rows", ""]
    lines += _md_table(["folder", "wav files", "transcripts", "message"],
                       [(s["folder"], s["wavs"], s["txts"], s["message"])
                        for s in report["sessions_without_rows"]])
    lines += ["", "## Problem files", ""]
    lines += _md_table(["file", "reason", "message"],
                       [(f["file"], f["reason"], f["message"]) for f in report["problem_files"]])
    lines += ["", "## Dropped rows", ""]
    lines += _md_table(["segment id", "file", "reason", "message"],
                       [(d["segment_id"], d["file"], d["reason"], d["message"])
                        for d in report["dropped_rows"]])
    lines += ["", "## Recordings without signal (kept in the table)", "",
              NO_SIGNAL_POLICY_NOTE, ""]
    lines += _md_table(["segment id", "label", "reason", "message"],
                       [(r["segment_id"], r["label"], r["reason"], r["message"])
                        for r in report["no_signal_rows"]])
    lines += ["", "## Notes (rows kept)", ""]
    lines += _md_table(["segment id", "reason", "message"],
                       [(n["segment_id"], n["reason"], n["message"]) for n in report["notes"]])
    return "\n".join(lines + leakage_lines(report)) + "\n"


def summary_text(report: dict, reused: bool = False) -> str:
    head = ("reusing prepared table (inputs unchanged, fingerprint "
            f"{report['input_fingerprint']})\n" if reused else "")
    reasons = ", ".join(f"{k} {v}" for k, v in report["counts_by_reason"].items()) or "none"
    labels = ", ".join(f"{k} {v}" for k, v in report["labels_kept"].items())
    no_signal = report["no_signal_by_reason"]
    silent = (f"  kept rows without signal: {sum(no_signal.values())} ("
              + ", ".join(f"{k} {v}" for k, v in no_signal.items())
              + "); data.silent_audio: keep trains and scores on them (as the original), "
              "drop leaves them out\n") if no_signal else ""
    skipped = report.get("skipped_unreadable") or []
    skipped = (f"  skipped, unreadable or not recognised (--skip-unreadable): "
               f"{', '.join(skipped)}\n" if skipped else "")
    sessions = "".join(f"  {s['message']}\n" for s in report["sessions_without_rows"])
    return (f"{head}prepare: {report['rows_read']} rows read, {report['rows_kept']} kept, "
            f"{report['rows_dropped']} dropped; {_problems_text(report)}\n"
            f"{sessions}{skipped}"
            f"  kept per label: {labels}\n  dropped/problems per reason: {reasons}\n{silent}"
            f"  details: {Path(report['workdir']) / REPORT_MD}")
