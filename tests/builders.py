"""Models as the tests build them: from the config sections each model reads."""
from __future__ import annotations

from koemo.modeling.models import AudioRegressor, TextRegressor


def sections(cfg):
    """The sections a classifier is built from: models, fixes and data (its classes)."""
    return cfg.models, cfg.fixes, cfg.data


def regressors(cfg, **kwargs) -> tuple[AudioRegressor, TextRegressor]:
    """Untrained audio and text regressors of `cfg` (same keyword arguments for both)."""
    return (AudioRegressor(cfg.models, cfg.fixes, **kwargs),
            TextRegressor(cfg.models, cfg.fixes, **kwargs))
