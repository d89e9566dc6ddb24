"""Models, fusion baselines and checkpoints (see docs/architecture.md, "Models")."""
from koemo.modeling.checkpoint import (build_from_checkpoint, load_checkpoint,
                                       load_training_state, save_checkpoint,
                                       save_training_state)
from koemo.modeling.fusion import FUSION_KINDS, build_classifier
from koemo.modeling.models import (AudioRegressor, EmoClassifier, TextRegressor,
                                   trainable_parameters)

__all__ = ["AudioRegressor", "TextRegressor", "EmoClassifier", "build_classifier", "FUSION_KINDS",
           "trainable_parameters", "save_checkpoint", "load_checkpoint", "build_from_checkpoint",
           "save_training_state", "load_training_state"]
