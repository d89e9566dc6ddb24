"""The `koemo` command line. Each sub-command lives in `koemo/commands/<name>.py` and exposes
`register(subparsers)`; modules there are discovered automatically. Command modules import heavy
libraries (torch, transformers) inside their run function so `koemo --help` stays fast."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading

from koemo import __version__, commands
from koemo.errors import Interrupted, KoemoInputError

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koemo", description="Korean multimodal speech emotion recognition (KEMDy20, KEMDy19).")
    parser.add_argument("--version", action="version", version=f"koemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"koemo.commands.{info.name}").register(sub)
    return parser


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's or Colab's stop) unwinds like Ctrl-C, so cleanup code runs
    (e.g. the feature build removes its half-written files) instead of dying mid-write."""
    raise Interrupted(signum)


def _report_interrupt(args: argparse.Namespace, err: KeyboardInterrupt) -> int:
    """One line for a stopped command: the signal, what stopped (when known) and the
    command's own note on resuming (its `interrupt_note` default); exit 128 + signal."""
    signum = getattr(err, "signum", signal.SIGINT)
    what = getattr(err, "what", "")
    note = getattr(args, "interrupt_note", "")
    print(f"koemo {args.command}: stopped by {SIGNAL_NAMES.get(signum, f'signal {signum}')}"
          + (f" in {what}" if what else "") + (f"; {note}" if note else ""), file=sys.stderr)
    return 128 + int(signum)


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():   # signal() works there only
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (KoemoInputError, FileNotFoundError) as err:
        # Known input problems: one readable line naming the file and the problem.
        # KOEMO_DEBUG=1 shows the traceback instead.
        if os.environ.get("KOEMO_DEBUG"):
            raise
        print(f"koemo {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        # Ctrl-C or SIGTERM: one line, no traceback (KOEMO_DEBUG=1 shows it).
        if os.environ.get("KOEMO_DEBUG"):
            raise
        return _report_interrupt(args, err)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
