"""The web demo behind `koemo app`: a Gradio page over a `koemo.inference.predictor.Predictor`.

    from koemo.inference.app import AppSettings, build_app
    build_app(predictor, AppSettings()).launch(server_name="127.0.0.1", server_port=7860)

Upload a recording (any file; it is checked here, not by the browser) or record one with the
microphone, optionally type its Korean transcript, press Predict. The page shows the emotion
with its five probabilities as a bar chart, arousal and valence on the valence-arousal plane
(axes 1-5, the annotation scale), the transcript as the model read it, the predictor's notes
and, for a recording longer than the model's window, a timeline. With a typed transcript the
timeline is the overlapping windows the result averages (each scored with that transcript; no
speech model is loaded), so it agrees with the result; without one it is the recording's
utterances found by voice activity, each transcribed and scored on its own
(`koemo.inference.segments`), and its caption says so. The timeline figure is rendered in a
temporary folder that is removed before the page is answered.

Bad input never shows a traceback: no file, an empty, non-audio, silent, too short or too long
recording, a file over the upload limit or an unusable transcript each give one message on the
page (`KoemoInputError`'s message, worded for the page by `page_message`: no server paths such
as Gradio's upload folder, no command-line advice). Speech recognition that cannot load (no
transcript typed) says so and asks for the transcript; the reason goes to the server log, as
does anything unexpected, with its traceback.

`analyse` is the page's logic without Gradio (tested directly); `build_app` wires it to the
components; `serve` launches it (127.0.0.1 unless told otherwise).
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from koemo.errors import KoemoInputError
from koemo.inference.palette import class_colours
from koemo.inference.predictor import SCALE
from koemo.inference.provenance import describe, provenance_notes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from koemo.inference.predictor import Prediction, Predictor

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_SECONDS = 600.0
TITLE = "koemo: Korean speech emotion recognition"


@dataclass(frozen=True)
class AppSettings:
    """Limits of the page. An upload over `max_upload_mb` is refused by the server before it
    is stored; a recording over `max_seconds` is refused before any feature is computed."""
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_seconds: float = DEFAULT_MAX_SECONDS

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0 or not self.max_seconds > 0:
            raise KoemoInputError(f"app limits must be positive: max_upload_mb={self.max_upload_mb}, "
                                  f"max_seconds={self.max_seconds}")


@dataclass
class AppOutput:
    """What one press of Predict shows. `error` set: only the message is shown."""
    error: str | None = None
    summary: str = ""
    label: str | None = None
    probabilities: dict[str, float] | None = None
    arousal: float | None = None
    valence: float | None = None
    transcript: str | None = None
    notes: list[str] = field(default_factory=list)
    timeline: object | None = None          # pandas.DataFrame (koemo.inference.segments columns)
    timeline_image: object | None = None    # PIL image of the timeline figure
    timeline_caption: str = ""              # what the timeline's rows are
    predictor: str = ""                     # what the predictor was trained on (one line)


# ----------------------------------------------------------------------------- logic

def choose_audio(upload: object, recording: object) -> str:
    """The uploaded file wins over a microphone recording; neither is an input error."""
    for candidate in (upload, recording):
        path = getattr(candidate, "name", candidate)    # gr.File may hand a tempfile wrapper
        if path:
            return str(path)
    raise KoemoInputError("no recording: upload an audio file (wav, flac, ogg) or record one")


def check_audio_file(path: str, settings: AppSettings) -> float:
    """Size and length limits, read from the header only; returns the duration in seconds."""
    import soundfile as sf

    name = Path(path).name
    if not Path(path).is_file():
        raise KoemoInputError(f"{name}: the upload did not arrive; try again")
    size = Path(path).stat().st_size
    if size == 0:
        raise KoemoInputError(f"{name}: the file is empty (0 bytes)")
    if size > settings.max_upload_mb * 1024 * 1024:
        raise KoemoInputError(f"{name}: {size / 2 ** 20:.1f} MB is over the upload limit of "
                              f"{settings.max_upload_mb:g} MB")
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise KoemoInputError(f"{name}: not an audio file koemo can read ({err}); "
                              "upload wav, flac or ogg") from err
    if info.frames <= 0 or info.samplerate <= 0:
        raise KoemoInputError(f"{name}: the recording is empty (no samples)")
    duration = info.frames / info.samplerate
    if duration > settings.max_seconds:
        raise KoemoInputError(f"{name}: {duration:.1f} s is longer than this page accepts "
                              f"({settings.max_seconds:g} s); cut it and upload the part you want")
    return duration


def load_timeline_tools() -> tuple[Callable[..., pd.DataFrame], Callable[..., Path]] | None:
    """(predict_timeline, plot_timeline) from koemo.inference.segments, or None where that module is
    not installed yet (long recordings are then averaged over windows)."""
    try:
        segments = importlib.import_module("koemo.inference.segments")
    except ModuleNotFoundError as err:
        if err.name != "koemo.inference.segments":
            raise                                  # a dependency of segments is missing: a bug
        return None
    return segments.predict_timeline, segments.plot_timeline


def analyse(predictor: Predictor, upload: object, recording: object, transcript: str | None,
            settings: AppSettings = AppSettings()) -> AppOutput:
    """One prediction for the page: every input problem becomes `AppOutput.error`."""
    path = None
    try:
        path = choose_audio(upload, recording)
        duration = check_audio_file(path, settings)
        text = transcript.strip() if transcript and transcript.strip() else None
        if text is None and not speech_recognition_ready(predictor):
            return AppOutput(error=ASR_UNAVAILABLE)
        result = predictor.predict(path, text)
        out = AppOutput(label=result.label, probabilities=result.probabilities,
                        arousal=result.arousal, valence=result.valence,
                        transcript=result.text, notes=list(result.notes),
                        predictor=describe(predictor.provenance))
        if duration > predictor.window_seconds:
            if text is not None:
                add_window_timeline(out, predictor, result)
            else:
                add_timeline(out, predictor, path)
    except KoemoInputError as err:
        return AppOutput(error=page_message(str(err), path))
    except Exception:                                  # noqa: BLE001 - the page must not crash
        log.exception("koemo app: prediction failed")
        return AppOutput(error="the prediction failed on the server (the log has the details); "
                               "try another recording")
    out.summary = summary_markdown(out)
    return out


ASR_UNAVAILABLE = ("speech recognition is not available on this server (its log says why): "
                   "type the Korean transcript and press Predict again")
# API and command-line wording that means nothing on the page -> what a web user can do.
PAGE_WORDING = {"pass the Korean transcript, or no text (None) to predict arousal only":
                "type the Korean transcript, or leave it empty to predict arousal only"}
FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z-]*|\(None\)")
# An absolute path (not a URL): only its last part is shown, never the server's folders.
PATH_RE = re.compile(r"(?<![\w:/.])(?:/[^/\s'\"]+)+/([^/\s'\"]+)")


def page_message(message: str, path: str | None = None) -> str:
    """A KoemoInputError's message as the page shows it: file names without the server's
    folders (Gradio's upload folder), and no clause that gives command-line advice."""
    if path:
        message = message.replace(str(Path(path).parent) + os.sep, "")
    message = PATH_RE.sub(r"\1", message)
    for api, page in PAGE_WORDING.items():
        message = message.replace(api, page)
    clauses = message.split("; ")
    kept = [clause for clause in clauses if not FLAG_RE.search(clause)]
    return "; ".join(kept) if kept else FLAG_RE.sub("", clauses[0]).strip()


def speech_recognition_ready(predictor: Predictor) -> bool:
    """Without a transcript the page needs speech recognition, or the predictor has it off
    (arousal only). A speech model that cannot load is logged, not shown."""
    if predictor.asr is None:
        return True
    try:
        predictor.transcriber
    except KoemoInputError as err:
        log.warning("koemo app: speech recognition not available: %s", err)
        return False
    return True


def add_window_timeline(out: AppOutput, predictor: Predictor, result: Prediction) -> None:
    """The windows the result averages, one row each (a typed transcript: no speech model)."""
    from koemo.inference.segments import timeline_frame

    w, scores = result.windows, result.per_window
    assert scores is not None              # every prediction keeps its windows' scores
    rows = []
    for k, start in enumerate(w.starts_s):
        probs = dict(zip(predictor.classes, scores.probabilities[k])) \
            if scores.probabilities is not None else {}
        rows.append({"start": start, "end": min(start + w.window_s, w.audio_s),
                     "label": max(probs, key=probs.get) if probs else "",  # type: ignore[arg-type]
                     **{f"prob_{c}": float(p) for c, p in probs.items()},
                     "arousal": float(scores.arousal[k]), "valence": result.valence,
                     "text": result.text or "", "text_source": result.text_source or "",
                     "notes": result.notes})
    frame = timeline_frame(rows, predictor.classes, provenance_notes(predictor.provenance))
    caption = (f"Timeline: the {w.n_windows} overlapping windows of {w.window_s:.1f} s that the "
               "result averages, each scored with the typed transcript (valence reads the "
               "transcript alone: the same in every window)")
    show_timeline(out, frame, caption)


def add_timeline(out: AppOutput, predictor: Predictor, path: str) -> None:
    tools = load_timeline_tools()
    if tools is None:
        out.notes.append("timeline not shown: koemo.inference.segments is not installed in this koemo")
        return
    predict_timeline, _ = tools
    caption = ("Timeline: the utterances voice activity finds, each transcribed and scored on "
               "its own; the result above scores the whole recording in overlapping windows, "
               "so the two can differ")
    show_timeline(out, predict_timeline(predictor, path), caption)


def show_timeline(out: AppOutput, frame: pd.DataFrame, caption: str) -> None:
    """The timeline's table, caption and figure (drawn in a temporary folder, then removed)."""
    from PIL import Image

    out.timeline, out.timeline_caption = frame, caption
    out.notes.append(caption)
    tools = load_timeline_tools()
    if tools is None:
        return
    with tempfile.TemporaryDirectory(prefix="koemo-app-") as folder:
        image = Path(folder) / "timeline.png"
        tools[1](frame, image)
        with Image.open(image) as png:
            png.load()
            out.timeline_image = png.copy()


def rounded_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The timeline as the page shows it: numbers to 3 decimals."""
    from koemo.inference.segments import TABLE_DECIMALS

    return frame.round(TABLE_DECIMALS)


def summary_markdown(out: AppOutput) -> str:
    lines = []
    if out.label is None or out.probabilities is None:
        lines.append("**Emotion:** not predicted (no transcript: the classifier needs audio and text)")
    else:
        lines.append(f"**Emotion: {out.label}** ({out.probabilities[out.label]:.0%})")
    lines.append(f"**Arousal:** {out.arousal:.2f} (1-5)")
    lines.append("**Valence:** " + ("not predicted (no transcript)" if out.valence is None
                                    else f"{out.valence:.2f} (1-5)"))
    lines.append("**Transcript:** " + (out.transcript if out.transcript else "(none)"))
    if out.predictor:
        lines.append(f"**Predictor:** {out.predictor}")
    return "  \n".join(lines)


# ----------------------------------------------------------------------------- figures

def probability_figure(probabilities: dict[str, float] | None, classes: Sequence[str]) -> Figure:
    """Horizontal bars of the class probabilities (empty axes with a note when None)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.8, 3.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    names = list(classes)
    values = [probabilities.get(c, 0.0) if probabilities else 0.0 for c in names]
    ax.barh(names[::-1], values[::-1], color=[class_colours(names)[c] for c in names[::-1]])
    for y, value in enumerate(values[::-1]):
        ax.text(min(value + 0.02, 0.9), y, f"{value:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title("Class probabilities", fontsize=10)
    if probabilities is None:
        ax.text(0.5, 0.5, "not predicted (no transcript)", ha="center", va="center",
                transform=ax.transAxes)
    return fig


def va_figure(arousal: float | None, valence: float | None, label: str | None = None,
              classes: Sequence[str] = ()) -> Figure:
    """The valence-arousal plane on the annotation scale, the point in `label`'s colour among
    `classes` (koemo.inference.palette); arousal alone is a dashed line."""
    from matplotlib.figure import Figure

    low, high = SCALE
    fig = Figure(figsize=(3.8, 3.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    mid = (low + high) / 2
    ax.axhline(mid, color="#cccccc", lw=0.8)
    ax.axvline(mid, color="#cccccc", lw=0.8)
    if arousal is not None and valence is not None:
        colour = "#222222" if label is None else \
            class_colours(list(classes) or [label]).get(label, "#222222")
        ax.scatter([valence], [arousal], s=120, zorder=3, color=colour)
        ax.annotate(f"({valence:.2f}, {arousal:.2f})", (valence, arousal), textcoords="offset points",
                    xytext=(8, 8), fontsize=9)
    elif arousal is not None:
        ax.axhline(arousal, color="#222222", ls="--", label=f"arousal {arousal:.2f}")
        ax.legend(loc="lower right", fontsize=8, title="valence not predicted", title_fontsize=8)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("valence (1 negative - 5 positive)")
    ax.set_ylabel("arousal (1 calm - 5 excited)")
    ax.set_aspect("equal")
    ax.set_title("Valence-arousal plane", fontsize=10)
    return fig


# ----------------------------------------------------------------------------- the page

def build_app(predictor: Predictor, settings: AppSettings = AppSettings()) -> Any:
    """The Gradio Blocks of the page (not launched)."""
    import gradio as gr

    classes = list(predictor.classes)

    def on_predict(upload: object, recording: object, transcript: str | None) -> tuple:
        out = analyse(predictor, upload, recording, transcript, settings)
        if out.error:
            return (gr.update(value=f"**Cannot predict:** {out.error}", visible=True),
                    gr.update(value="", visible=False), gr.update(value=None, visible=False),
                    gr.update(value=None, visible=False), gr.update(value="", visible=False),
                    gr.update(value=None, visible=False), gr.update(value=None, visible=False))
        notes = "\n".join(f"- {note}" for note in out.notes)
        has_table, has_image = out.timeline is not None, out.timeline_image is not None
        return (gr.update(value="", visible=False),
                gr.update(value=out.summary, visible=True),
                gr.update(value=probability_figure(out.probabilities, classes), visible=True),
                gr.update(value=va_figure(out.arousal, out.valence, out.label, classes), visible=True),
                gr.update(value=f"**Notes**\n\n{notes}" if notes else "", visible=bool(notes)),
                gr.update(value=out.timeline_image, visible=has_image),
                gr.update(value=rounded_table(out.timeline) if has_table else None,
                          label=out.timeline_caption or "Timeline", visible=has_table))

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\nEmotion ({', '.join(classes)}), arousal and valence (1-5) "
                    "from a recording and its Korean transcript. Recordings up to "
                    f"{settings.max_seconds:g} s and {settings.max_upload_mb:g} MB; longer than "
                    f"{predictor.window_seconds:.1f} s are scored window by window.\n\n"
                    f"**Predictor:** {describe(predictor.provenance)}")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload a recording (wav, flac, ogg)", elem_id="koemo-upload",
                                 type="filepath")
                recording = gr.Audio(label="... or record one", sources=["microphone"],
                                     type="filepath", elem_id="koemo-record")
                transcript = gr.Textbox(label="Transcript (Korean, optional)", lines=2,
                                        placeholder="오늘 정말 기분이 좋아요", elem_id="koemo-text")
                button = gr.Button("Predict", variant="primary", elem_id="koemo-predict")
            with gr.Column():
                error = gr.Markdown(visible=False, elem_id="koemo-error")
                summary = gr.Markdown(visible=False, elem_id="koemo-result")
                with gr.Row():
                    bars = gr.Plot(label="Class probabilities", show_label=False, visible=False,
                                   elem_id="koemo-probabilities")
                    plane = gr.Plot(label="Valence-arousal plane", show_label=False, visible=False,
                                    elem_id="koemo-va")
                notes = gr.Markdown(visible=False, elem_id="koemo-notes")
        timeline_image = gr.Image(label="Timeline", type="pil", visible=False,
                                  elem_id="koemo-timeline")
        timeline_table = gr.Dataframe(label="Segments", visible=False, elem_id="koemo-segments")
        button.click(on_predict, inputs=[upload, recording, transcript],
                     outputs=[error, summary, bars, plane, notes, timeline_image, timeline_table])
    return demo


def check_port_free(host: str, port: int) -> None:
    """One clear error when another program listens on host:port (Gradio would raise
    "Cannot find empty port" with a traceback). SO_REUSEADDR as the server binds: a port
    left in TIME_WAIT by a stopped app is free."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as err:
        raise KoemoInputError(f"--host {host}: not an address of this machine ({err})") from err
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise KoemoInputError(f"{host}:{port}: cannot listen there ({err.strerror}): another "
                                  "program (another koemo app?) has the port; stop it or "
                                  "choose another with --port") from err


def serve(predictor: Predictor, settings: AppSettings = AppSettings(), host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, block: bool = True) -> Any:
    """Launch the page; returns the Blocks (running in a thread when block=False)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    check_port_free(host, port)
    demo = build_app(predictor, settings)
    demo.queue(default_concurrency_limit=1)          # one model, one prediction at a time
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                max_file_size=int(settings.max_upload_mb * 1024 * 1024), show_error=False,
                prevent_thread_lock=not block, quiet=not block)
    return demo
