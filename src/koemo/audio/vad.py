"""Voice activity detection with Silero VAD: where in a long recording someone speaks.

The model is Silero VAD v5/v6 (16 kHz), whose weights ship inside the `silero-vad` wheel
(`silero_vad/data/silero_vad_16k.safetensors`): nothing is downloaded. The network is rebuilt
here in plain torch from those safetensors (the same graph as the package's own TorchScript
and tinygrad models; tests/test_segments.py checks the probabilities against the package's
TorchScript model), so that
- no TorchScript/pickle archive is loaded (koemo loads weights from safetensors only),
- `import silero_vad` is never needed at run time (importing it calls
  torch.set_num_threads(1) for the whole process),
- the convolutional front end runs on many 32 ms chunks at once; only the 128-unit LSTM cell
  steps chunk by chunk, so an hour of audio takes seconds on a CPU.

Streaming: `SileroVAD.probabilities(chunk)` carries the LSTM state and the 64-sample context
between calls, so a file read block by block gives the same probabilities as the whole file.
`speech_segments` turns the per-chunk probabilities into (start, end) seconds with the
hysteresis rules of silero's `get_speech_timestamps` (threshold to open, threshold - 0.15 to
close, minimum speech and silence durations, padding, a maximum utterance length).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from koemo.config.schema import SAMPLE_RATE, Vad
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    import torch

CHUNK = 512                 # samples per probability (32 ms at 16 kHz)
CONTEXT = 64                # samples of the previous chunk the model also reads
WEIGHTS_FILE = "silero_vad_16k.safetensors"


def weights_path() -> Path:
    """The safetensors file inside the installed silero-vad package (found without importing
    it: its import changes torch's thread count)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise KoemoInputError("speech segmentation needs the silero-vad package "
                              "(pip install 'silero-vad>=6'); its model ships inside the wheel")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / WEIGHTS_FILE
    if not path.is_file():
        raise KoemoInputError(f"{path}: not found; silero-vad >= 6 ships {WEIGHTS_FILE} "
                              "(pip install -U silero-vad)")
    return path


def _build_network() -> Any:          # a SileroNet (defined here: torch is imported lazily)
    import torch
    from torch import nn

    class SileroNet(nn.Module):
        """Silero VAD 16 kHz: STFT as a convolution, four convolutions, an LSTM cell, a sigmoid."""

        def __init__(self) -> None:
            super().__init__()
            self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
            self.conv1 = nn.Conv1d(129, 128, 3, padding=1)
            self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
            self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
            self.lstm_cell = nn.LSTMCell(128, 128)
            self.final_conv = nn.Conv1d(128, 1, 1)

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            """[N, CONTEXT + CHUNK] samples -> [N, 128] features (independent per row)."""
            x = nn.functional.pad(x.unsqueeze(1), (0, 64), mode="reflect")
            x = self.stft_conv(x)
            x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
                x = torch.relu(conv(x))
            return x.squeeze(-1)

        def decode(self, feats: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
                   ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
            """[N, 128] features of consecutive chunks -> [N] speech probabilities."""
            hs = []
            for row in feats:
                state = self.lstm_cell(row.unsqueeze(0), state)
                hs.append(state[0])
            h = torch.relu(torch.cat(hs).unsqueeze(-1))
            return torch.sigmoid(self.final_conv(h)).reshape(-1), state

    return SileroNet()


class SileroVAD:
    """Streaming speech probabilities per 32 ms chunk of 16 kHz mono audio."""

    def __init__(self, device: str = "cpu"):
        import torch
        from safetensors.torch import load_file

        self.net = _build_network()
        self.net.load_state_dict(load_file(str(weights_path())))
        self.net.eval().to(device)
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        self._state = None
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._rest = np.zeros(0, dtype=np.float32)

    def probabilities(self, wave: np.ndarray, final: bool = False) -> np.ndarray:
        """Speech probability of every complete 512-sample chunk of `wave` (appended to what
        earlier calls left over); `final=True` zero pads the last partial chunk."""
        import torch

        wave = np.concatenate([self._rest, np.asarray(wave, dtype=np.float32).reshape(-1)])
        if final and wave.size % CHUNK:
            wave = np.pad(wave, (0, CHUNK - wave.size % CHUNK))
        n = wave.size // CHUNK
        self._rest = wave[n * CHUNK:]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        with_context = np.concatenate([self._context, wave[:n * CHUNK]])
        frames = np.lib.stride_tricks.sliding_window_view(with_context, CONTEXT + CHUNK)[::CHUNK]
        self._context = wave[n * CHUNK - CONTEXT:n * CHUNK].copy()
        with torch.inference_mode():
            x = torch.as_tensor(np.array(frames), device=self.device)
            probs, self._state = self.net.decode(self.net.encode(x), self._state)
        return probs.float().cpu().numpy()


def speech_segments(probs: np.ndarray, settings: Vad = Vad(),
                    total_s: float | None = None) -> list[tuple[float, float]]:
    """Per-chunk speech probabilities -> [(start_s, end_s)] of utterances (silero's rules)."""
    step = CHUNK / SAMPLE_RATE
    low = settings.neg_threshold if settings.neg_threshold is not None else max(settings.threshold - 0.15, 0.01)
    total_s = len(probs) * step if total_s is None else total_s
    raw: list[list[float]] = []
    start = None
    silence_from = None
    for i, p in enumerate(probs):
        t = i * step
        if start is None:
            if p >= settings.threshold:
                start, silence_from = t, None
            continue
        if p >= settings.threshold:
            silence_from = None
        elif p < low and silence_from is None:
            silence_from = t
        if silence_from is not None and t + step - silence_from >= settings.min_silence_s:
            raw.append([start, silence_from])
            start = silence_from = None
        elif t + step - start >= settings.max_speech_s:
            # Too long: cut at the latest pause, else here.
            cut = silence_from if silence_from is not None and silence_from > start else t + step
            raw.append([start, cut])
            start = cut if p >= low else None
            silence_from = None
    if start is not None:
        raw.append([start, silence_from if silence_from is not None else len(probs) * step])
    kept = [s for s in raw if s[1] - s[0] >= settings.min_speech_s]
    pad = settings.speech_pad_s
    bare = [tuple(s) for s in kept]
    for k, seg in enumerate(kept):
        before = bare[k - 1][1] if k else 0.0
        after = bare[k + 1][0] if k + 1 < len(kept) else total_s
        seg[0] = max(seg[0] - pad, (before + seg[0]) / 2 if k else 0.0)
        seg[1] = min(seg[1] + pad, (seg[1] + after) / 2 if k + 1 < len(kept) else total_s)
    return [(round(a, 3), round(b, 3)) for a, b in kept]
