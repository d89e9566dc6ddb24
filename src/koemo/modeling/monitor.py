"""What a training run reports while it trains, besides its log.csv: progress events for
`koemo reproduce` (koemo.modeling.progress, `<workdir>/progress.jsonl`) and, with
`train.tensorboard: true`, TensorBoard scalars in `<run dir>/tensorboard/` (the optional
`tensorboard` package: `pip install koemo[tensorboard]`; `tensorboard --logdir <workdir>/runs`
shows every run)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from koemo.config.schema import Config, FusionKind, Precision, Stage
from koemo.modeling import progress
from koemo.modeling.runs import RunDir
from koemo.errors import KoemoInputError


class RunMonitor:
    def __init__(self, workdir: str | Path, run_dir: Path, cfg: Config, stage: Stage, seed: int,
                 split: str, classifier_kind: FusionKind, precision: Precision, enabled: bool = True):
        self.workdir, self.run_dir, self.enabled = Path(workdir), Path(run_dir), enabled
        self.epochs = int(cfg.train.stage(stage).epochs)
        self.fields: dict[str, Any] = {"run": str(run_dir), "stage": stage, "seed": seed,
                       "split": split, "config": cfg.name,
                       "classifier_kind": classifier_kind, "epochs": self.epochs,
                       "precision": precision}
        self.writer = None
        if enabled and cfg.train.tensorboard:
            self.writer = tensorboard_writer(RunDir(run_dir).tensorboard)

    def _emit(self, event: str, **fields: Any) -> None:
        if self.enabled:
            progress.emit(self.workdir, event, **self.fields, **fields)

    def start(self, epoch: int) -> None:
        """Training begins (epoch > 0: resumed after that many epochs)."""
        self._emit("start", epoch=epoch)

    def epoch(self, row: dict, log: list[dict]) -> None:
        """One finished epoch: `row` is its log row, `log` every row so far (for the ETA)."""
        seconds = [r["seconds"] for r in log if "seconds" in r]
        self._emit("epoch", epoch=row["epoch"], train_loss=row["train_loss"],
                   valid_loss=row["valid_loss"], seconds=row["seconds"],
                   epoch_seconds=sum(seconds) / max(len(seconds), 1))
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "best") and isinstance(value, (int, float)):
                    self.writer.add_scalar(_tag(key), value, row["epoch"])
            self.writer.flush()

    def done(self, counters: dict) -> None:
        self._emit("done", epoch=counters["epoch"], stopped_early=counters["stopped_early"])
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tag(key: str) -> str:
    """log column -> TensorBoard tag: train_loss -> loss/train, valid_ccc -> valid/ccc."""
    if key.endswith("_loss"):
        return f"loss/{key.removesuffix('_loss')}"
    if key.startswith("valid_"):
        return f"valid/{key.removeprefix('valid_')}"
    return f"train/{key}"


def tensorboard_writer(directory: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:      # torch raises ImportError when tensorboard is missing
        raise KoemoInputError("train.tensorboard=true needs the tensorboard package: "
                              "pip install 'koemo[tensorboard]'") from err
    directory.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(log_dir=str(directory))
