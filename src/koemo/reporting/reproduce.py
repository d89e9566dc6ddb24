"""`koemo reproduce`: run the numbered notebooks in order with papermill and collect paper/.

Each notebook gets the same parameters (absolute paths), is executed into
`<workdir>/notebooks/` (executed copies are outputs, never committed), and a failure stops the
run naming the notebook. Every step is idempotent: re-running picks up finished work.

The log stays readable: while a notebook runs, the training progress it writes to
`<workdir>/progress.jsonl` is shown as one live line per run (koemo.modeling.progress; papermill hides
the notebooks' own bars), and each kernel starts with its log level at ERROR, which drops
ipykernel's per-kernel "Kernel is running over TCP without encryption" warning (the kernel
listens on localhost only, started by this process).

Nothing outlives a killed run: the kernels exit with this process (ipykernel's parent poll),
their training workers with the kernel (koemo.experiments.workers), and every temporary file of
this process, its kernels and their workers (the kernels' connection files among them) goes to
one folder `<tmp>/koemo-reproduce-<pid>-*`, removed at the end; the next `reproduce` removes
those of processes no longer alive.

An interrupted run (Ctrl-C, or SIGTERM: a scheduler's time limit) stops quietly: the first
signal ends the kernel and its workers at once with SIGKILL (as a `kill -9` would: every file
they write is complete or absent, and the next run resumes from what finished), before either
can print a traceback, then `Interrupted` names the notebook that stopped; the CLI prints it as
one line and exits 130 (SIGINT) or 143 (SIGTERM).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Collection, Iterable, Iterator

from koemo.errors import Interrupted, KoemoInputError
from koemo.reporting.notebook import resolve_path
from koemo.modeling.progress import ProgressWatcher

TEMP_PREFIX = "koemo-reproduce-"

# Passed to every kernel papermill starts: its own log (not the notebook's outputs) at ERROR.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


class NotebookFailed(KoemoInputError):
    """A notebook raised: printed as one line naming the notebook, the cell and the cause."""

NOTEBOOK_ORDER = (
    "1-1_data_aggregation",
    "1-2_augmentation_split",
    "1-3_biosignal_analysis",
    "2-1_audio_arousal",
    "3-1_text_valence",
    "4-1_multimodal_classifier",
    "5-1_paper_tables",
    "5-2_fusion_study",
    "5-3_cross_corpus",
    "5-4_foundation_models",
)


# What the runs of each notebook load (koemo.inference.pretrained.USES); 5-2 also trains the
# configs of reproduce.frontends; 5-4 loads the foundation study's models.
NOTEBOOK_USES = {"2-1_audio_arousal": ("audio",), "3-1_text_valence": ("text",),
                 "4-1_multimodal_classifier": ("audio", "text"),
                 "5-2_fusion_study": ("audio", "text"), "5-3_cross_corpus": ("audio", "text"),
                 "5-4_foundation_models": ("foundation",)}
FRONTENDS_NOTEBOOK = "5-2_fusion_study"


def require_models(config: str, overrides: Iterable[str], names: list[str]) -> None:
    """Before the first notebook: every pretrained model the chosen notebooks load is on this
    machine (or on a reachable hub), else one line naming each missing one."""
    from koemo.config.load import load_config
    from koemo.experiments.frontends import frontend_configs
    from koemo.inference.pretrained import require_assets

    uses = sorted({use for name in names for use in NOTEBOOK_USES.get(name, ())})
    if not uses:
        return
    cfg = load_config(config, list(overrides))
    configs = frontend_configs(cfg, overrides) if FRONTENDS_NOTEBOOK in names else [cfg]
    require_assets(configs, uses, str(config), list(overrides))


def notebooks_dir() -> Path:
    """The checkout's notebooks/, or the copy a wheel carries (koemo.config.assets)."""
    from koemo.config.assets import notebooks_dir as located

    return located()


def reproduce(config: str, workdir: str | Path, out: str | Path, data_root: str | Path | None = None,
              synthetic: bool = False, overrides: list[str] | tuple = (),
              only: list[str] | None = None, progress: bool = False,
              kemdy19_root: str | Path | None = None) -> list[dict]:
    """Execute the notebooks (all, or those named in `only`) and return one timing row each.
    Relative paths follow the notebooks' rule (koemo.reporting.notebook.resolve_path); the
    command line passes them resolved against the current folder."""
    workdir, out = resolve_path(workdir), resolve_path(out)
    print(f"[koemo reproduce] workdir {workdir}, out {out}", flush=True)
    executed = workdir / "notebooks"
    params = {"CONFIG": str(config), "DATA_ROOT": str(resolve_path(data_root)) if data_root else "",
              "WORKDIR": str(workdir), "OUT": str(out), "SYNTHETIC": bool(synthetic),
              "OVERRIDES": list(overrides), "PROGRESS": bool(progress), "MOUNT_DRIVE": False,
              "KEMDY19_ROOT": str(resolve_path(kemdy19_root)) if kemdy19_root else ""}
    names = [name for name in NOTEBOOK_ORDER
             if not only or any(name.startswith(prefix) for prefix in only)]
    require_models(config, overrides, names)
    executed.mkdir(parents=True, exist_ok=True)          # after the pre-flight: nothing left
    running: dict = {}
    with stop_children_on_signal(running), private_tempdir():
        timings = [_run_one(name, executed, params, workdir, running) for name in names]
    _write_timings(out, timings)
    return timings


def _run_one(name: str, executed: Path, params: dict, workdir: Path, running: dict) -> dict:
    """Execute one notebook; its timing row. `running` names it while it runs."""
    import papermill

    started = time.perf_counter()
    running["what"] = f"notebook {name}"
    print(f"[koemo reproduce] {name} ...", flush=True)
    try:
        with progress_watcher(workdir, name):
            run_notebook(notebooks_dir() / f"{name}.ipynb", executed / f"{name}.ipynb",
                         params, notebooks_dir())
    except papermill.PapermillExecutionError as err:
        # The executed copy holds the full traceback; the error names the cell and the cause.
        raise NotebookFailed(f"notebook {name} failed in cell {err.exec_count}: {err.ename}: "
                             f"{err.evalue} (executed copy: {executed / f'{name}.ipynb'})") from err
    seconds = time.perf_counter() - started
    running.pop("what", None)
    print(f"[koemo reproduce] {name} done in {seconds:.0f} s", flush=True)
    return {"notebook": name, "seconds": round(seconds, 1)}


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_children_on_signal(running: dict) -> Iterator[None]:
    """Inside: SIGINT or SIGTERM first kills every process started meanwhile (the notebook
    kernel, its training workers: nothing is left to print a traceback or to outlive the run),
    then raises Interrupted naming `running["what"]`. Further signals are ignored until the way
    out is done (the temp folder removed); the previous handlers are back afterwards. Signal
    handlers can only be set from the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import psutil

    before = {child.pid for child in psutil.Process().children(recursive=True)}

    def stop(signum: int, frame: object) -> None:
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        kill_children(spare=before)
        raise Interrupted(signum, running.get("what", ""))

    saved = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def kill_children(spare: Collection[int] = frozenset()) -> None:
    """SIGKILL to every descendant of this process but those in `spare` (processes that were
    there before reproduce started theirs), then wait for them to go."""
    import psutil

    family = [child for child in psutil.Process().children(recursive=True)
              if child.pid not in spare]
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(family, timeout=10)


def progress_watcher(workdir: Path, name: str) -> ProgressWatcher:
    """The live lines of notebook `name`: every run it trains, in the workdir or in a workdir
    prepared inside it (5-3's `<workdir>/cross`)."""
    return ProgressWatcher.of_workdir(workdir, prefix=f"[koemo reproduce] {name}")


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """Inside: TMPDIR (inherited by kernels and workers) and this process's temp folder are a
    fresh `<tmp>/koemo-reproduce-<pid>-*`, removed on the way out; first, those of dead
    processes (a killed run) are removed."""
    base = Path(tempfile.gettempdir())
    for stale in stale_tempdirs(base):
        shutil.rmtree(stale, ignore_errors=True)
        print(f"[koemo reproduce] removed {stale} (left by an interrupted run)", flush=True)
    folder = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=base)
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = folder, folder
    try:
        yield Path(folder)
    finally:
        if saved[0] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[0]
        tempfile.tempdir = saved[1]
        shutil.rmtree(folder, ignore_errors=True)


def stale_tempdirs(base: Path) -> list[Path]:
    """This user's `koemo-reproduce-<pid>-*` folders under `base` whose process is gone."""
    stale = []
    for folder in base.glob(f"{TEMP_PREFIX}*"):
        pid = folder.name.removeprefix(TEMP_PREFIX).split("-")[0]
        with contextlib.suppress(OSError):
            if pid.isdigit() and folder.stat().st_uid == os.getuid() and not _alive(int(pid)):
                stale.append(folder)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # another user's process
        return True
    return True


def run_notebook(source: Path, executed: Path, params: dict, cwd: Path) -> None:
    """One notebook through papermill: no papermill bar, the kernel's own log quiet."""
    import papermill

    papermill.execute_notebook(str(source), str(executed), parameters=params, cwd=str(cwd),
                               progress_bar=False, kernel_name="python3",
                               extra_arguments=list(KERNEL_ARGUMENTS))


def _write_timings(out: Path, timings: list[dict]) -> None:
    """timings.json/.md keep the latest time of every notebook, also across `--only` runs."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    store = out / "timings.json"
    merged = json.loads(store.read_text(encoding="utf-8")) if store.is_file() else {}
    merged.update({row["notebook"]: row["seconds"] for row in timings})
    store.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    lines = ["| notebook | seconds |", "|---|---:|"]
    lines += [f"| {name} | {merged[name]} |" for name in NOTEBOOK_ORDER if name in merged]
    lines.append(f"| total | {sum(merged.values()):.1f} |")
    (out / "timings.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
