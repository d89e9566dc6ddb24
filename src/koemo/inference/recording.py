"""One recording -> the windows `koemo.inference.predictor.Predictor` scores, in flat memory.

With the mel front-end the recording is never held whole (`streamed_windows`): it is read in
blocks (`koemo.audio.stream.AudioStream`: soundfile blocks, a stateful resampler) twice.
Pass 1, while the utterance is prepared, finds what depends on every frame (the dB reference,
the number of frames) and makes load_audio's checks; pass 2 runs when the models ask for
windows, computing the features a block at a time (`koemo.audio.block_features`) and cutting
the windows from a buffer of about one batch of windows' frames (`WindowSource.chunks`). The
features equal those of the whole recording computed at once (tests/test_block_features.py);
peak memory: benchmarks/bench_predict_memory.py.

The speech-encoder front-end reads the recording in blocks too (`encoded_windows`) and encodes
it a piece of `PIECE_SECONDS` (30 s) at a time (`koemo.audio.speech_encoder.piece_states`):
self-attention over a whole recording grows with its square, and the models were trained on the
states of utterances seconds long, each encoded whole. A recording up to one piece (plus a
5 s tail) is encoded whole, exactly as before; a longer one has states that differ from one
whole-file pass (the extractor and a group-norm encoder normalise over their input, attention
reads across it), on the same frame grid. `Predictor.read_in_blocks = False` loads the recording
whole and encodes it in one pass (the reference path of the tests).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from koemo.audio.io import AudioInfo, AudioSource, load_audio, read_file_header
from koemo.audio.stream import AudioStream
from koemo.config.schema import Features
from koemo.errors import KoemoInputError
from koemo.inference.windows import WindowInfo, WindowSource, window_info, window_starts

if TYPE_CHECKING:
    from koemo.inference.predictor import Predictor


# What `koemo prepare` refuses in a corpus wav (koemo.dataset.kemdy20.check_wav, called as it
# is), as prediction treats it. Converted, and noted by the reader: another sample rate or
# channel count. Refused: a cut file (its header declares more data than it holds), whose
# prediction would be of the part that survived, named as if it were the whole recording, and
# which a new copy fixes. Predicted with a note: a sample format prepare does not read (mu-law,
# A-law, ADPCM, MP3 data under a .wav name): libsndfile decodes every sample, only coarser than
# the PCM the models were trained on. Any other problem check_wav may name: a note.
REFUSED_WAV_PROBLEMS = ("truncated_wav",)
CONVERTED_WAV_PROBLEMS = ("wrong_sample_rate", "not_mono")


def wav_notes(audio: AudioSource) -> list[str]:
    """The notes prediction adds for a `.wav` file that `koemo prepare` would drop (none for
    other files and arrays); KoemoInputError for a cut one. A multichannel wav is checked up to
    its channel count, where check_wav stops."""
    if not isinstance(audio, (str, Path)) or Path(audio).suffix.lower() != ".wav":
        return []
    from koemo.dataset.kemdy20 import CorpusFileError, check_wav

    rate = read_file_header(Path(audio), None)[0]      # unreadable or empty: the reader's error
    try:
        check_wav(audio, sample_rate=rate)
    except CorpusFileError as err:
        if err.reason in REFUSED_WAV_PROBLEMS:
            raise KoemoInputError(f"{err}: the prediction would be of a cut recording; copy or "
                                  "export the file again") from None
        if err.reason not in CONVERTED_WAV_PROBLEMS:
            return [f"{err.problem}: `koemo prepare` leaves such a wav out; predicted from its "
                    "decoded samples, which differ from the PCM audio the models were trained on"]
    return []


def recording_windows(predictor: Predictor, audio: AudioSource, sample_rate: int | None
                      ) -> tuple[WindowSource, WindowInfo, AudioInfo, Callable[[int], np.ndarray]]:
    """(windows, their WindowInfo, AudioInfo, head: n -> the first n samples at 16 kHz)."""
    rate = predictor.cfg.features.sample_rate
    checked = wav_notes(audio)          # before any sample is read: a cut file stops here
    if not predictor.read_in_blocks:
        wave, info = load_audio(audio, sample_rate, target_sample_rate=rate)
        info.notes += checked
        return (*whole_windows(predictor, wave, info), info, lambda n: wave[:n])
    stream = AudioStream(audio, sample_rate, target_sample_rate=rate)
    if predictor.speech_encoder is not None:
        frames, windows = encoded_windows(predictor, stream)
    else:
        frames, windows = streamed_windows(predictor, stream)
    info = stream.info()
    info.notes += checked
    return frames, windows, info, stream.head


def encoded_windows(predictor: Predictor, stream: AudioStream) -> tuple[WindowSource, WindowInfo]:
    """Pass 1 now (the file's checks and length); the speech encoder's states of each piece
    are computed by pass 2 each time the windows are cut."""
    from koemo.audio import speech_encoder as se

    encoder, step = predictor.speech_encoder, int(se.PIECE_SECONDS * predictor.cfg.features.sample_rate)
    assert encoder is not None             # recording_windows: a speech-encoder front-end only
    for _ in stream.blocks(step):       # pass 1: info() (silence, length) needs one
        pass
    info = stream.info()
    se.check_encodable(info.samples, info.source)      # now, not when the windows are cut
    n_frames = int(encoder.frames(info.samples)[0])
    max_frames = se.encoder_settings(predictor.cfg).max_frames
    starts = window_starts(n_frames, max_frames, predictor.long_audio)
    pieces = (se.PIECE_SECONDS, se.TAIL_SECONDS)     # (read here: tests shrink them)
    frames = WindowSource(lambda: se.piece_states(encoder, stream.blocks(step), info.source, *pieces),
                          n_frames, max_frames, starts)
    return frames, window_info(frames, predictor.window_seconds, encoder.hop_seconds,
                               info.duration_s)


def streamed_windows(predictor: Predictor, stream: AudioStream) -> tuple[WindowSource, WindowInfo]:
    """Pass 1 now (dB reference, number of frames, the file's checks); the windows' features
    are computed by pass 2 each time they are cut."""
    from koemo.audio import block_features

    fc, size = predictor.cfg.features, block_features.BLOCK_FRAMES     # (read here: tests shrink it)
    step = block_features.block_samples(fc, size)
    reference = block_features.scan_reference(stream.blocks(step), fc, fc.backend, size)
    info = stream.info()
    check_length(fc, info)
    starts = window_starts(reference.n_frames, int(fc.max_frames), predictor.long_audio)
    frames = WindowSource(
        lambda: block_features.feature_blocks(stream.blocks(step), fc, reference, fc.backend, size),
        reference.n_frames, int(fc.max_frames), starts, predictor._as_trained)
    hop_s = fc.hop_length / fc.sample_rate
    return frames, window_info(frames, predictor.window_seconds, hop_s, info.duration_s)


def whole_windows(predictor: Predictor, wave: np.ndarray, info: AudioInfo) -> tuple[WindowSource, WindowInfo]:
    """The windows of a recording held whole: the speech encoder's states, or the mel features
    computed at once."""
    from koemo.audio.features import extract_features, frames_for

    fc = predictor.cfg.features
    if predictor.speech_encoder is not None:        # models.audio.frontend: encoder
        from koemo.audio.speech_encoder import encoder_settings, whole_states

        whole = whole_states(predictor.speech_encoder, wave, info.source)   # float16-rounded
        n_frames, max_frames = whole.shape[1], encoder_settings(predictor.cfg).max_frames
        finish, hop_s = None, predictor.speech_encoder.hop_seconds
    else:
        check_length(fc, info)
        total = frames_for(wave.shape[0], fc.hop_length)
        whole, n_frames = extract_features(wave, fc.model_copy(update={"max_frames": total}),
                                           fc.backend)
        max_frames, finish = int(fc.max_frames), predictor._as_trained
        hop_s = fc.hop_length / fc.sample_rate
    starts = window_starts(n_frames, max_frames, predictor.long_audio)
    frames = WindowSource.of_array(whole, n_frames, max_frames, starts, finish)
    return frames, window_info(frames, predictor.window_seconds, hop_s, info.duration_s)


def check_length(fc: Features, info: AudioInfo) -> None:
    """KoemoInputError unless the recording has the frames the delta needs."""
    from koemo.audio.features import min_samples

    need = min_samples(fc)
    if info.samples < need:
        raise KoemoInputError(
            f"{info.source}: audio too short ({info.duration_s:.3f} s); the features need at "
            f"least {need / fc.sample_rate:.3f} s")
