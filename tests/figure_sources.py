"""Numbers quoted in README.md and docs/*.md with a source tag, and the files they come from.

A tag follows its number: `7.2 s <!-- source: benchmarks/results/FILE.csv:0.candidate_s -->`
(the last number before the tag). KEY is a dotted path into a JSON file, or ROW.COLUMN of a
CSV file (ROW counted from 0). The file's value, rounded to the decimals shown, must equal the
quoted number."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAG = re.compile(r"<!--\s*source:\s*(?P<file>[^:\s]+):(?P<key>\S+)\s*-->")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def tagged_numbers(text: str) -> list[tuple[str, str, str]]:
    """(quoted number, file, key) of every tag in a Markdown text."""
    found, previous_end = [], 0
    for tag in TAG.finditer(text):
        numbers = NUMBER.findall(text[previous_end:tag.start()])
        found.append((numbers[-1] if numbers else "", tag["file"], tag["key"]))
        previous_end = tag.end()
    return found


def source_value(file: str, key: str) -> float:
    path = REPO / file
    if path.suffix == ".csv":
        row, column = key.split(".", 1)
        with open(path, newline="", encoding="utf-8") as fh:
            return float(list(csv.DictReader(fh))[int(row)][column])
    value = json.loads(path.read_text(encoding="utf-8"))
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return float(value)


def mismatch(quoted: str, file: str, key: str) -> str | None:
    """Why the quoted number does not come from file:key, or None when it does."""
    if not quoted:
        return f"no number before the tag for {file}:{key}"
    if not (REPO / file).is_file():
        return f"{quoted}: source {file} is not a committed file"
    try:
        value = source_value(file, key)
    except (KeyError, IndexError, ValueError) as err:
        return f"{quoted}: {file} has no number at {key} ({err!r})"
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    if round(value, decimals) != float(quoted.replace(",", "")):
        return f"{quoted}: {file}:{key} is {value:.{decimals + 2}f}"
    return None
