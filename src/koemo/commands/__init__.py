"""One module per `koemo` sub-command; see koemo.cli."""


def add_config_arguments(parser, default: str = "paper") -> None:
    """--config and repeatable --set, the same for every command that reads a config."""
    parser.add_argument("--config", default=default,
                        help=f"config name in configs/ or a path (default: {default})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. train.audio.epochs=3 (repeatable)")
