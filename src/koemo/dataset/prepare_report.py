"""The report of `koemo prepare` as Markdown and as the summary it prints."""
from __future__ import annotations

from pathlib import Path

from koemo.config.workdir import REPORT_MD
from koemo.dataset import kemdy19
from koemo.dataset.leakage import markdown_lines as leakage_lines

NO_SIGNAL_POLICY_NOTE = (
    "These rows keep their place in every split. `data.silent_audio: keep` (configs/paper.yaml) "
    "trains and scores on them as the original did (digital silence gets what librosa gives for "
    "zeros: 0 dB in every bin); `drop` (configs/corrected.yaml) leaves them out of training and "
    "scoring.")


def _md_table(header: list[str], rows) -> list[str]:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def report_markdown(report: dict) -> str:
    lines = ["# koemo prepare report", "",
             f"- corpus: `{report['data_root']}` ({report.get('corpus', 'kemdy20')})",
             *kemdy19.report_lines(report.get("kemdy19")), f"- workdir: `{report['workdir']}`",
             f"- label policy: {report['label_policy']} (classes {', '.join(report['classes'])})",
             f"- rows read: {report['rows_read']}, kept: {report['rows_kept']}, "
             f"dropped: {report['rows_dropped']}; files with problems: "
             f"{len(report['problem_files'])}", f"- input fingerprint: `{report['input_fingerprint']}`",
             "- skipped as unreadable (--skip-unreadable): "
             + (", ".join(f"`{p}`" for p in report.get("skipped_unreadable") or []) or "none"),
             "", "## Kept rows per label", ""]
    lines += _md_table(["label", "rows"], report["labels_kept"].items())
    lines += ["", "## Dropped rows and problem files per reason", ""]
    lines += _md_table(["reason", "count"], report["counts_by_reason"].items())
    lines += ["", "## Splits", ""]
    lines += _md_table(["column", "train", "valid", "test"],
                       [(c, s.get("train", 0), s.get("valid", 0), s.get("test", 0))
                        for c, s in report["splits"].items()])
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
    skipped = (f"  skipped, unreadable (--skip-unreadable): {', '.join(skipped)}\n"
               if skipped else "")
    return (f"{head}prepare: {report['rows_read']} rows read, {report['rows_kept']} kept, "
            f"{report['rows_dropped']} dropped, {len(report['problem_files'])} problem files\n"
            f"{skipped}"
            f"  kept per label: {labels}\n  dropped/problems per reason: {reasons}\n{silent}"
            f"  details: {Path(report['workdir']) / REPORT_MD}")
