"""One module per `koemo` sub-command; see koemo.cli."""


class SettingChoices:
    """argparse `choices` read from koemo.config.schema (the one place a setting's choices are
    written), or from the package module that owns them (`module`), only when a value is
    checked or the choices are printed, so that building the parser, which every `koemo` call
    does, stays free of pydantic and numpy. Pass a `metavar`."""

    def __init__(self, name: str, module: str = "koemo.config.schema"):
        self.name, self.module = name, module

    def _values(self) -> tuple:
        import importlib
        return getattr(importlib.import_module(self.module), self.name)

    def __contains__(self, value) -> bool:
        return value in self._values()

    def __iter__(self):
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


def add_config_arguments(parser, default: str = "paper") -> None:
    """--config and repeatable --set, the same for every command that reads a config."""
    parser.add_argument("--config", default=default,
                        help=f"config name in configs/ or a path (default: {default})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. train.audio.epochs=3 (repeatable)")
