"""koemo: Korean multimodal speech emotion recognition (KEMDy20)."""
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy: `import koemo` stays light; torch loads only when prediction is used.
    if name in ("Predictor", "Prediction"):
        from koemo.inference import predictor as predict
        return getattr(predict, name)
    raise AttributeError(f"module 'koemo' has no attribute {name!r}")
