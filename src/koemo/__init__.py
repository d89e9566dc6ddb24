"""koemo: Korean multimodal speech emotion recognition (KEMDy20)."""
__version__ = "0.1.0"
