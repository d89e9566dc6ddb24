"""transformers' progress bars off while koemo loads or saves a model it manages itself."""
from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """No transformers "Loading weights" / "Writing model shards" bar: the frozen encoder is
    loaded once per run, in worker processes too, and the stand-in is saved once per workdir;
    their bars would land in the `koemo reproduce` log."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
