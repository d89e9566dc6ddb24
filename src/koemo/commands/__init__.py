"""One module per `koemo` sub-command; see koemo.cli."""
