"""Repeated transcripts: the same (cleaned) line spoken in more than one session.

Scripted dialogues reuse their script across sessions, so a text model can meet in a test
session a line it memorised in training. `koemo prepare` reports, per corpus, how many kept
utterances share their text with another session, so session-fold numbers can be read with
that in mind.
"""
from __future__ import annotations

import pandas as pd

N_EXAMPLES = 5


def repeated_transcripts(table: pd.DataFrame, n_examples: int = N_EXAMPLES) -> dict:
    """{corpus: {utterances, repeated_utterances, share, repeated_texts, examples}}.

    An utterance counts as repeated when its cleaned text (empty texts aside) also occurs in
    another session of the same corpus; `examples` are the most widespread such lines, each
    with the number of sessions and utterances it occurs in.
    """
    if not len(table):
        return {}
    corpora = table["corpus"] if "corpus" in table else pd.Series("kemdy20", index=table.index)
    result = {}
    for corpus, rows in table.groupby(corpora, sort=True):
        texts = rows[rows["text"].str.len() > 0]
        sessions = texts.groupby("text")["session"].nunique()
        shared = sessions[sessions > 1]
        repeated = texts[texts["text"].isin(shared.index)]
        sizes = repeated.groupby("text").size()
        examples = sorted(shared.index, key=lambda t: (-shared[t], -sizes[t], t))[:n_examples]
        result[str(corpus)] = {
            "utterances": int(len(rows)), "repeated_utterances": int(len(repeated)),
            "share": round(len(repeated) / len(rows), 4), "repeated_texts": int(len(shared)),
            "examples": [{"text": t, "sessions": int(shared[t]), "utterances": int(sizes[t])}
                         for t in examples]}
    return result


def markdown_lines(report: dict) -> list[str]:
    """The prepare report's section on repeated transcripts."""
    lines = ["", "## Repeated transcripts (text leakage across sessions)", "",
             "Kept utterances whose cleaned text also occurs in another session: a text model "
             "may have seen such a line in training when a session fold tests on it.", ""]
    rows = [(corpus, r["utterances"], r["repeated_utterances"], f"{100 * r['share']:.1f}%",
             r["repeated_texts"]) for corpus, r in report.get("repeated_transcripts", {}).items()]
    lines += ["| corpus | utterances | repeated | share | distinct lines |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    for corpus, r in report.get("repeated_transcripts", {}).items():
        for ex in r["examples"]:
            text = ex["text"].replace("|", "\\|")
            lines.append(f"- {corpus}: \"{text}\" ({ex['sessions']} sessions, "
                         f"{ex['utterances']} utterances)")
    return lines
