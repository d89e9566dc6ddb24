"""One module per `koemo` sub-command; see koemo.cli."""


class SettingChoices:
    """argparse `choices` read from koemo.config.schema (the one place a setting's choices are
    written) only when a value is checked or the choices are printed, so that building the
    parser, which every `koemo` call does, stays free of pydantic. Pass a `metavar`."""

    def __init__(self, name: str):
        self.name = name

    def _values(self) -> tuple:
        from koemo.config import schema
        return getattr(schema, self.name)

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
