"""Where src/ reads each `fixes.*` switch and data policy, found by walking the AST, and how to
ignore one read (replace it with the faithful default) in a copy of the source.

A read is `X["fixes"]["name"]`, `fixes["name"]`, `X["fixes"].get("name", ...)`, and the attribute
style of a typed config, `cfg.fixes.name` / `self.fixes.name` (likewise `data` for the
policies): the owner is whatever ends in `fixes` / `data`. Assignments are not reads."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
FIX_NAMES = tuple(yaml.safe_load((REPO / "configs" / "paper.yaml").read_text(encoding="utf-8"))["fixes"])
# data policies: the faithful value of each (what ignoring the read falls back to)
POLICY_DEFAULTS = {"silent_audio": "keep", "label_policy": "paper5"}


@dataclass(frozen=True)
class Read:
    switch: str          # "fixes.db_floor_padding", "data.silent_audio"
    reader: str          # "koemo.inference.predictor:Predictor.audio_windows"
    path: Path
    span: tuple          # (lineno, col, end_lineno, end_col) of the whole read expression

    @property
    def faithful(self) -> str:
        """The source text the read becomes when ignored: the original's value."""
        section, key = self.switch.split(".")
        return "False" if section == "fixes" else repr(POLICY_DEFAULTS[key])


def _owner_name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return node.slice.value
    return None


def _switch(owner, key) -> str | None:
    section = _owner_name(owner)
    if section == "fixes" and key in FIX_NAMES:
        return f"fixes.{key}"
    if section == "data" and key in POLICY_DEFAULTS:
        return f"data.{key}"
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, module: str, path: Path):
        self.module, self.path, self.scope, self.reads = module, path, [], []

    def _scoped(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def _found(self, switch, node):
        if switch and not isinstance(getattr(node, "ctx", None), (ast.Store, ast.Del)):
            reader = f"{self.module}:{'.'.join(self.scope) or '<module>'}"
            span = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
            self.reads.append(Read(switch, reader, self.path, span))

    def visit_Subscript(self, node):
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            self._found(_switch(node.value, node.slice.value), node)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        self._found(_switch(node.value, node.attr), node)
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "get" and node.args
                and isinstance(node.args[0], ast.Constant)):
            switch = _switch(func.value, node.args[0].value)
            if switch:
                self._found(switch, node)
                return                      # the .get(...) is the read, not its owner
        self.generic_visit(node)


def find_reads(src: Path = SRC) -> list[Read]:
    reads = []
    for path in sorted((src / "koemo").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts)
        finder = _Finder(module, path)
        finder.visit(ast.parse(path.read_text(encoding="utf-8")))
        reads += finder.reads
    return reads


def ignored_source(read: Read) -> str:
    """The read's file with that one read replaced by the faithful value."""
    lines = read.path.read_text(encoding="utf-8").splitlines(keepends=True)
    start, col, end, end_col = read.span
    head, tail = lines[start - 1][:col], lines[end - 1][end_col:]
    return "".join(lines[:start - 1]) + head + read.faithful + tail + "".join(lines[end:])
