"""One module per `koemo` sub-command; see koemo.cli. Each module has `register(subparsers)`,
which adds its parser, and `run(args) -> int`, the exit status."""
from __future__ import annotations

import argparse
from typing import Iterator

# What each command's `register` receives (ArgumentParser.add_subparsers' result).
Subparsers = argparse._SubParsersAction


class SettingChoices:
    """argparse `choices` read from koemo.config.schema (the one place a setting's choices are
    written), or from the package module that owns them (`module`), only when a value is
    checked or the choices are printed, so that building the parser, which every `koemo` call
    does, stays free of pydantic and numpy. Pass a `metavar`."""

    def __init__(self, name: str, module: str = "koemo.config.schema"):
        self.name, self.module = name, module

    def _values(self) -> tuple[object, ...]:
        import importlib
        return getattr(importlib.import_module(self.module), self.name)

    def __contains__(self, value: object) -> bool:
        return value in self._values()

    def __iter__(self) -> Iterator[object]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


def add_config_arguments(parser: argparse.ArgumentParser, default: str = "paper") -> None:
    """--config and repeatable --set, the same for every command that reads a config."""
    parser.add_argument("--config", default=default,
                        help=f"config name in configs/ or a path (default: {default})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. train.audio.epochs=3 (repeatable)")
