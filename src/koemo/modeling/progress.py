"""Watching a long run: training writes events to `<workdir>/progress.jsonl`, `koemo reproduce`
tails that file and prints one live line per run.

papermill runs each notebook in a kernel and hides its progress bars, so the training loop
(koemo.modeling.monitor) appends one JSON line per event instead, and the parent process reads it:

  {"event": "plan",  "runs": N, ...}                 run_plan: N runs still to train
  {"event": "start", "run": "<run dir>", "stage", "seed", "split", "config", "epochs", ...}
  {"event": "epoch", "run": ..., "epoch", "epochs", "train_loss", "valid_loss", "seconds", ...}
  {"event": "done",  "run": ..., "epoch", "stopped_early", ...}
  {"event": "pass",  "what": "<model> (<modality>)", "done", "total", "seconds"}
                                                    a frozen model's pass over the utterances
                                                    (the foundation study), not a numbered run

Every line is written with one `write` on a file opened for appending, so runs training in
parallel worker processes never interleave within a line. Nothing here imports torch.

A run writes to the progress file of the workdir it trains in. A study may train in a workdir
prepared inside the main one (notebook 5-3 trains in `<workdir>/cross`, koemo.experiments.cross),
so `ProgressWatcher.of_workdir` follows the workdir's file and those of the workdirs one level
inside it (`progress_files`), a file that appears while it watches from its first line.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

PROGRESS_FILE = "progress.jsonl"


def progress_path(workdir: str | Path) -> Path:
    return Path(workdir) / PROGRESS_FILE


def progress_files(workdir: str | Path) -> list[Path]:
    """The progress files of `workdir` and of the workdirs one level inside it, those there."""
    workdir = Path(workdir)
    found = [progress_path(workdir)] + sorted(workdir.glob(f"*/{PROGRESS_FILE}"))
    return [path for path in found if path.is_file()]


def emit(workdir: str | Path, event: str, **fields: Any) -> None:
    """Append one event line (with a timestamp) to the workdir's progress file."""
    path = progress_path(workdir)
    line = json.dumps({"event": event, "time": time.time(), **fields}, default=str,
                      ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressWatcher:
    """Reads new lines of progress files and prints one line per run update.

    Runs are numbered in the order they first appear; N is the sum of the `plan` events seen
    since the watcher started (so it covers the notebook being run). On a TTY the line is
    rewritten in place (`\\r`); otherwise every epoch gets its own line. `poll()` does one read
    (tests call it directly); `start()`/`stop()` poll from a thread. Made with a file, it follows
    that file; made by `of_workdir`, every file of `progress_files(workdir)`.
    """

    def __init__(self, path: str | Path, stream: TextIO | None = None, tty: bool | None = None,
                 prefix: str = "[koemo reproduce]", from_end: bool = True,
                 files: Callable[[], list[Path]] | None = None):
        self.path = Path(path)
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.prefix = prefix
        self._files = files or (lambda: [self.path] if self.path.is_file() else [])
        # Where each file is read from: its end now (from_end), its start if it appears later.
        self.offsets = {f: f.stat().st_size if from_end else 0 for f in self._files()}
        self.planned = 0
        self.runs: dict[str, int] = {}
        self.lines: list[str] = []          # every line printed (what tests read)
        self._pending: dict[Path, bytes] = {}
        self._width = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def of_workdir(cls, workdir: str | Path, **kwargs: Any) -> "ProgressWatcher":
        """A watcher of the workdir's progress file and those of the workdirs inside it."""
        return cls(progress_path(workdir), files=lambda: progress_files(workdir), **kwargs)

    # -- reading
    def poll(self) -> list[str]:
        """Read whatever was appended since the last poll; print and return the new lines."""
        printed = []
        for path in self._files():
            for raw in self._new_lines(path):
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                line = self.handle(event)
                if line is not None:
                    self._print(line)
                    printed.append(line)
        return printed

    def _new_lines(self, path: Path) -> list[bytes]:
        """The complete lines appended to `path` since the last read (a partial one waits)."""
        offset = self.offsets.setdefault(path, 0)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:           # removed since it was listed
            return []
        self.offsets[path] = offset + len(data)
        *complete, self._pending[path] = (self._pending.get(path, b"") + data).split(b"\n")
        return complete

    def handle(self, event: dict) -> str | None:
        kind = event.get("event")
        if kind == "plan":
            self.planned += int(event.get("runs", 0))
            return None
        if kind == "pass":
            return format_pass(event, self.prefix)
        run = event.get("run")
        if run is None or kind not in ("start", "epoch", "done"):
            return None
        index = self.runs.setdefault(run, len(self.runs) + 1)
        return format_event(event, index, max(self.planned, len(self.runs)), self.prefix)

    def _print(self, line: str) -> None:
        self.lines.append(line)
        if self.tty:
            pad = " " * max(0, self._width - len(line))
            self.stream.write("\r" + line + pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    # -- background polling
    def start(self, interval: float = 0.5) -> "ProgressWatcher":
        def loop() -> None:
            while not self._stopping.wait(interval):
                self.poll()
        self._thread = threading.Thread(target=loop, name="koemo-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None
        self.poll()
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> "ProgressWatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def format_event(event: dict, index: int, total: int, prefix: str = "") -> str:
    """`run 3/12 audio paper/tiny seed1 epoch 4/12 loss 0.412/0.455 3.1 s/epoch ETA 25s`"""
    name = {"multimodal": event.get("classifier_kind"),
            "probe": event.get("system")}.get(str(event.get("stage")))
    what = " ".join(str(part) for part in (
        event.get("stage"), name, f"{event.get('split')}/{event.get('config')}",
        f"seed{event.get('seed')}") if part)
    head = f"{prefix} run {index}/{total} {what}".lstrip()
    kind, epochs = event["event"], event.get("epochs")
    if kind == "start":
        resumed = f" (resumed after epoch {event['epoch']})" if event.get("epoch") else ""
        return f"{head} starting, {epochs} epochs, {event.get('precision', 'fp32')}{resumed}"
    if kind == "done":
        how = "stopped early" if event.get("stopped_early") else "finished"
        return f"{head} {how} after epoch {event.get('epoch')}/{epochs}"
    per_epoch = event.get("epoch_seconds") or event.get("seconds") or 0.0
    remaining = max(0, int(epochs or 0) - int(event["epoch"]))
    return (f"{head} epoch {event['epoch']}/{epochs} loss {event['train_loss']:.4f}/"
            f"{event['valid_loss']:.4f} (train/valid) {per_epoch:.1f} s/epoch "
            f"ETA {format_seconds(remaining * per_epoch)}")


def format_pass(event: dict, prefix: str = "") -> str:
    """`pass tiny:wavlm (audio): 300/1,200 utterances, 12s, ETA 36s` (`... starting` before
    the first, `... done in 48s` after the last)."""
    done, total, seconds = int(event["done"]), int(event["total"]), float(event["seconds"])
    head = f"{prefix} pass {event.get('what')}:".lstrip()
    if done >= total:
        return f"{head} {total:,} utterances done in {format_seconds(seconds)}"
    if not done:
        return f"{head} {total:,} utterances, starting"
    eta = seconds / done * (total - done)
    return f"{head} {done:,}/{total:,} utterances, {format_seconds(seconds)}, ETA {format_seconds(eta)}"


class PassReporter:
    """A frozen model's pass over `total` utterances, reported to the workdir's progress file:
    called with how many are done, it emits at the start, at most every `every` seconds, and
    at the end (koemo reproduce shows each as one line)."""

    def __init__(self, workdir: str | Path, what: str, every: float = 10.0):
        self.workdir, self.what, self.every = workdir, what, every
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done in (0, total) or now - self.last >= self.every:
            self.last = now
            emit(self.workdir, "pass", what=self.what, done=done, total=total,
                 seconds=round(now - self.started, 1))
