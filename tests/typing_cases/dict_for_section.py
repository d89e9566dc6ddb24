"""Not a test module: code the type check must refuse (tests/test_types.py runs mypy on it with
the project's settings). Each line marked `refused:` is an error mypy must report there."""
from koemo.config.load import load_config
from koemo.modeling.models import AudioRegressor, num_classes
from koemo.modeling.trim import trimmed_passes

cfg = load_config("tiny")
num_classes({"label_policy": "paper5"})                          # refused: arg-type
AudioRegressor(cfg.models, {"last_valid_step": True})            # refused: arg-type
trimmed_passes(cfg.as_dict(), "audio")                           # refused: arg-type


def classes_of(cfg):                                             # refused: no-untyped-def
    """Unannotated, `cfg` would take a dict unchecked: the settings refuse the function."""
    return num_classes(cfg.data)
